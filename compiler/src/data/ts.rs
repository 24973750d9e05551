//! sktime / UEA `.ts` time-series files, and IMU window features computed from them.
//!
//! Format: `#` comment lines; `@key value` header lines up to `@data`; then one sample a line:
//! the dimensions' series, each a comma-separated list of numbers, separated by `:`, and the
//! class label last. Supported: equal-length series with class labels and no time stamps
//! (`@timeStamps false`, `@equalLength true`, `@classLabel true …`), which covers the UEA
//! classification archive. Anything else is refused with the line that says so.
//!
//! Two ways to turn a file into a [`Dataset`]:
//! - [`raw_dataset`]: the values as they are, time-major, channels last (`[length, dims]`);
//! - [`imu_dataset`]: six axes (accelerometer x y z in m/s², gyroscope x y z in rad/s) at
//!   10 Hz, windows of 100 samples, mapped to the firmware's integer feature vector by
//!   `bonsai_rt::features`, the same code the firmware runs on live sensor data.

use super::{read_maybe_gz, DataError, Dataset};
use bonsai_rt::features::{self, Sample, AXES, N_FEATURES, WINDOW};
use std::path::Path;

/// A parsed `.ts` file.
#[derive(Clone, Debug, PartialEq)]
pub struct TsFile {
    /// `@problemName`, or the file's stem.
    pub name: String,
    pub dims: usize,
    pub length: usize,
    /// `@classLabel` order; labels index it.
    pub class_names: Vec<String>,
    /// Per sample, per dimension, the series.
    pub series: Vec<Vec<Vec<f32>>>,
    pub labels: Vec<u32>,
    /// Line number of each sample in the file (for errors found after parsing).
    pub lines: Vec<usize>,
}

fn header_bool(v: &str, line: usize, key: &str) -> Result<bool, String> {
    match v.to_ascii_lowercase().as_str() {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(format!("line {line}: @{key} {v:?}: expected true or false")),
    }
}

/// Parses a `.ts` file (optionally gzipped). `path` names it in errors.
pub fn parse(raw: &[u8], path: &Path) -> Result<TsFile, DataError> {
    parse_inner(raw, path).map_err(|p| DataError::file(path, p))
}

fn parse_inner(raw: &[u8], path: &Path) -> Result<TsFile, String> {
    let bytes = read_maybe_gz(raw, path).map_err(|e| match e {
        DataError::File { problem, .. } => problem,
        other => other.to_string(),
    })?;
    let text = std::str::from_utf8(&bytes).map_err(|e| format!("not UTF-8 text: {e}"))?;
    let mut name = path
        .file_stem()
        .map(|s| s.to_string_lossy().trim_end_matches(".ts").to_string())
        .unwrap_or_else(|| "ts".into());
    let mut dims: Option<usize> = None;
    let mut length: Option<usize> = None;
    let mut class_names: Option<Vec<String>> = None;
    let mut missing_allowed = false;
    let mut in_data = false;
    let mut out = TsFile {
        name: String::new(),
        dims: 0,
        length: 0,
        class_names: vec![],
        series: vec![],
        labels: vec![],
        lines: vec![],
    };

    for (i, line) in text.lines().enumerate() {
        let n = i + 1;
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if !in_data {
            let Some(h) = line.strip_prefix('@') else {
                return Err(format!(
                    "line {n}: expected a `@key value` header line or `@data` before the samples"
                ));
            };
            let (key, value) = h.split_once(char::is_whitespace).unwrap_or((h, ""));
            let value = value.trim();
            match key.to_ascii_lowercase().as_str() {
                "problemname" => name = value.to_string(),
                "timestamps" => {
                    let on = header_bool(value, n, key)?;
                    if on {
                        return Err(format!(
                            "line {n}: time-stamped series (@timeStamps true) are not supported"
                        ));
                    }
                }
                "missing" => missing_allowed = header_bool(value, n, key)?,
                "univariate" => {
                    header_bool(value, n, key)?;
                }
                "dimensions" => {
                    dims = Some(
                        value
                            .parse()
                            .ok()
                            .filter(|&d: &usize| d > 0)
                            .ok_or_else(|| {
                                format!("line {n}: @dimensions {value:?} is not a positive integer")
                            })?,
                    )
                }
                "equallength" => {
                    let equal = header_bool(value, n, key)?;
                    if !equal {
                        return Err(format!(
                            "line {n}: unequal-length series (@equalLength false) are not supported"
                        ));
                    }
                }
                "serieslength" => {
                    length = Some(value.parse().ok().filter(|&l: &usize| l > 0).ok_or_else(
                        || format!("line {n}: @seriesLength {value:?} is not a positive integer"),
                    )?)
                }
                "classlabel" => {
                    let mut words = value.split_whitespace();
                    if !header_bool(words.next().unwrap_or(""), n, key)? {
                        return Err(format!(
                            "line {n}: @classLabel false: the file has no class labels to learn"
                        ));
                    }
                    let names: Vec<String> = words.map(str::to_string).collect();
                    if names.is_empty() {
                        return Err(format!("line {n}: @classLabel true lists no classes"));
                    }
                    class_names = Some(names);
                }
                "targetlabel" => {
                    let on = header_bool(value, n, key)?;
                    if on {
                        return Err(format!(
                            "line {n}: regression targets (@targetLabel true) are not supported"
                        ));
                    }
                }
                "data" => {
                    if class_names.is_none() {
                        return Err(format!(
                            "line {n}: @data before @classLabel: the class labels must be declared"
                        ));
                    }
                    in_data = true;
                }
                // Other headers (descriptions, newer sktime keys) do not change the samples.
                _ => {}
            }
            continue;
        }

        let names = class_names.as_ref().expect("checked at @data");
        let fields: Vec<&str> = line.split(':').collect();
        let d = *dims.get_or_insert(fields.len().saturating_sub(1));
        if d == 0 || fields.len() != d + 1 {
            return Err(format!(
                "line {n}: {} ':'-separated fields, expected {} ({d} series and the label)",
                fields.len(),
                d + 1
            ));
        }
        let label = fields[d].trim();
        let Some(class) = names.iter().position(|c| c == label) else {
            return Err(format!(
                "line {n}: label {label:?} is not one of the declared classes ({})",
                names.join(", ")
            ));
        };
        let mut sample = Vec::with_capacity(d);
        for (k, field) in fields[..d].iter().enumerate() {
            let values: Vec<&str> = field.split(',').collect();
            let len = *length.get_or_insert(values.len());
            if values.len() != len {
                return Err(format!(
                    "line {n}, dimension {}: {} values, expected {len} (the series must have equal length)",
                    k + 1,
                    values.len()
                ));
            }
            let mut s = Vec::with_capacity(len);
            for (t, v) in values.iter().enumerate() {
                let v = v.trim();
                if v == "?" || v.eq_ignore_ascii_case("nan") {
                    return Err(format!(
                        "line {n}, dimension {}, value {}: missing value{}",
                        k + 1,
                        t + 1,
                        if missing_allowed {
                            " (missing values are not supported)"
                        } else {
                            ", and the header says @missing false"
                        }
                    ));
                }
                let x: f32 = v.parse().map_err(|_| {
                    format!(
                        "line {n}, dimension {}, value {}: {v:?} is not a number",
                        k + 1,
                        t + 1
                    )
                })?;
                if !x.is_finite() {
                    return Err(format!(
                        "line {n}, dimension {}, value {}: {v:?} is not finite",
                        k + 1,
                        t + 1
                    ));
                }
                s.push(x);
            }
            sample.push(s);
        }
        out.series.push(sample);
        out.labels.push(class as u32);
        out.lines.push(n);
    }
    if !in_data {
        return Err("no @data line: not a .ts file, or a truncated one".into());
    }
    if out.series.is_empty() {
        return Err("no samples after @data".into());
    }
    out.name = name;
    out.dims = dims.unwrap_or(0);
    out.length = length.unwrap_or(0);
    out.class_names = class_names.unwrap_or_default();
    Ok(out)
}

/// The series as they are: one sample = `length × dims` values, time-major.
pub fn raw_dataset(f: &TsFile) -> Dataset {
    let mut features = Vec::with_capacity(f.series.len() * f.length * f.dims);
    for s in &f.series {
        for t in 0..f.length {
            features.extend(s.iter().map(|dim| dim[t]));
        }
    }
    Dataset {
        name: f.name.clone(),
        sample_shape: vec![f.length, f.dims],
        features,
        labels: f.labels.clone(),
        class_names: f.class_names.clone(),
    }
}

/// A recorded value (m/s² or rad/s) in the feature code's integer units, saturated to `i16`.
pub fn to_units(x: f32, axis: usize) -> i16 {
    let per_unit = if axis < 3 {
        features::ACCEL_UNITS_PER_MS2
    } else {
        features::GYRO_UNITS_PER_RADS
    };
    (x as f64 * per_unit as f64)
        .round()
        .clamp(i16::MIN as f64, i16::MAX as f64) as i16
}

/// One recorded window (`series[axis][t]`) as the samples the firmware would have buffered.
pub fn imu_samples(series: &[Vec<f32>]) -> Vec<Sample> {
    let len = series.first().map_or(0, Vec::len);
    (0..len)
        .map(|t| std::array::from_fn(|a| to_units(series[a][t], a)))
        .collect()
}

/// The firmware's feature vector for one recorded window.
pub fn imu_features(series: &[Vec<f32>]) -> [i8; N_FEATURES] {
    features::extract(imu_samples(series))
}

/// Every window's IMU features (as `f32` codes −128..=127). The file must hold 6 axes × 100
/// samples: the features' scales assume the window length, and the model the sensor layout.
pub fn imu_dataset(f: &TsFile, path: &Path) -> Result<Dataset, DataError> {
    if f.dims != AXES || f.length != WINDOW {
        return Err(DataError::file(
            path,
            format!(
                "IMU features need {AXES} axes (accelerometer x, y, z in m/s², gyroscope x, y, z in rad/s) \
                 × {WINDOW} samples at {} Hz; the file has {} dimensions × {} samples",
                features::RATE_HZ,
                f.dims,
                f.length
            ),
        ));
    }
    let mut feats = Vec::with_capacity(f.series.len() * N_FEATURES);
    for s in &f.series {
        feats.extend(imu_features(s).iter().map(|&c| c as f32));
    }
    Ok(Dataset {
        name: f.name.clone(),
        sample_shape: vec![N_FEATURES],
        features: feats,
        labels: f.labels.clone(),
        class_names: f.class_names.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::{load, DataSpec};

    const HEADER: &str = "# a comment\n@problemName Tiny\n@timeStamps false\n@missing false\n\
        @univariate false\n@dimensions 2\n@equalLength true\n@seriesLength 3\n\
        @classLabel true up down\n@data\n";

    fn parse_str(text: &str) -> Result<TsFile, String> {
        parse(text.as_bytes(), Path::new("dir/tiny.ts")).map_err(|e| e.to_string())
    }

    #[test]
    fn parses_a_small_file() {
        let f = parse_str(&format!(
            "{HEADER}1,2,3:4,5,6:down\n\n0.5,-1e-3,7:8,9,10:up\n"
        ))
        .unwrap();
        assert_eq!(f.name, "Tiny");
        assert_eq!((f.dims, f.length), (2, 3));
        assert_eq!(f.class_names, ["up", "down"]);
        assert_eq!(f.labels, [1, 0]);
        assert_eq!(f.lines, [11, 13]);
        assert_eq!(f.series[1], [vec![0.5, -1e-3, 7.0], vec![8.0, 9.0, 10.0]]);
        let d = raw_dataset(&f);
        assert_eq!(d.sample_shape, [3, 2]);
        // Time-major, channels last.
        assert_eq!(d.sample(0), &[1.0, 4.0, 2.0, 5.0, 3.0, 6.0]);
    }

    #[test]
    fn corrupt_files_name_the_file_and_line() {
        let cases: &[(&str, &str)] = &[
            (
                "1,2,3:4,5:up\n",
                "line 11, dimension 2: 2 values, expected 3",
            ),
            (
                "1,2,3:4,x,6:up\n",
                "line 11, dimension 2, value 2: \"x\" is not a number",
            ),
            (
                "1,2,3:4,5,6\n",
                "line 11: 2 ':'-separated fields, expected 3",
            ),
            (
                "1,2,3:4,5,6:sideways\n",
                "label \"sideways\" is not one of the declared classes",
            ),
            (
                "1,?,3:4,5,6:up\n",
                "line 11, dimension 1, value 2: missing value",
            ),
            ("1,2,inf:4,5,6:up\n", "is not finite"),
            ("", "no samples after @data"),
        ];
        for (data, want) in cases {
            let err = parse_str(&format!("{HEADER}{data}")).unwrap_err();
            assert!(err.starts_with("dir/tiny.ts: "), "{err}");
            assert!(err.contains(want), "{err:?} should contain {want:?}");
        }
        let headers: &[(&str, &str)] = &[
            ("@data\n1:up\n", "@data before @classLabel"),
            ("@classLabel true a\n", "no @data line"),
            ("@timeStamps true\n", "line 1: time-stamped series"),
            ("@equalLength false\n", "unequal-length series"),
            ("@classLabel false\n@data\n", "no class labels"),
            (
                "@dimensions two\n",
                "@dimensions \"two\" is not a positive integer",
            ),
            ("@missing perhaps\n", "expected true or false"),
            ("1,2:up\n", "line 1: expected a `@key value` header line"),
        ];
        for (text, want) in headers {
            let err = parse_str(text).unwrap_err();
            assert!(err.contains(want), "{err:?} should contain {want:?}");
        }
        let err = parse(&[0x1f, 0x8b, 8, 0, 1, 2], Path::new("x.ts.gz"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("x.ts.gz") && err.contains("gzip"), "{err}");
        let err = parse(&[b'@', 0xff, 0xfe], Path::new("x.ts"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("not UTF-8"), "{err}");
    }

    #[test]
    fn imu_features_need_six_axes_of_a_hundred_samples() {
        let f = parse_str(&format!("{HEADER}1,2,3:4,5,6:down\n")).unwrap();
        let err = imu_dataset(&f, Path::new("tiny.ts"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("6 axes") && err.contains("2 dimensions × 3 samples"),
            "{err}"
        );
    }

    #[test]
    fn units_round_and_saturate() {
        assert_eq!(to_units(9.80665, 2), 981);
        assert_eq!(to_units(-0.125, 0), -13); // -12.5: halves away from zero
        assert_eq!(to_units(34.866, 5), 3487);
        assert_eq!(to_units(1e6, 4), i16::MAX);
    }

    #[test]
    fn specs_parse() {
        let p = |s: &str| s.parse::<DataSpec>();
        assert_eq!(p("basicmotions").unwrap(), DataSpec::BasicMotions);
        assert_eq!(
            p("basicmotions:/d").unwrap(),
            DataSpec::basicmotions_dir(Path::new("/d"))
        );
        assert_eq!(
            p("ts:a.ts,b.ts").unwrap(),
            DataSpec::Ts {
                train: "a.ts".into(),
                test: Some("b.ts".into()),
                imu_features: false
            }
        );
        assert_eq!(
            p("imu:a.ts").unwrap(),
            DataSpec::Ts {
                train: "a.ts".into(),
                test: None,
                imu_features: true
            }
        );
        for bad in ["ts:", "ts:a.ts,", "imu:,b.ts", "tss:a"] {
            let err = p(bad).unwrap_err().to_string();
            assert!(err.contains("ts:TRAIN.ts"), "{bad}: {err}");
        }
    }

    #[test]
    fn embedded_basicmotions_keeps_the_official_split() {
        let s = load(&DataSpec::BasicMotions, 1).unwrap();
        assert_eq!((s.train.len(), s.val.len(), s.test.len()), (30, 10, 40));
        assert_eq!(
            s.test.class_names,
            ["Standing", "Running", "Walking", "Badminton"]
        );
        assert_eq!(s.train.sample_shape, [N_FEATURES]);
        for c in 0..4 {
            assert_eq!(s.test.labels.iter().filter(|&&l| l == c).count(), 10);
        }
        // Codes are integers in the int8 range; windows that move have features above the floor.
        assert!(s
            .train
            .features
            .iter()
            .all(|&v| v.fract() == 0.0 && (-128.0..=127.0).contains(&v)));
        assert!(s.test.features.iter().any(|&v| v > -100.0));
        let q = crate::data::fixed_input_quant(&DataSpec::BasicMotions).unwrap();
        let pre = crate::data::fit_preprocess(&DataSpec::BasicMotions, &s.train);
        // The preprocessed code quantizes back to itself: the firmware's features are the model's
        // input bytes without any requantization.
        for c in -128i32..=127 {
            let x = pre.apply(&[c as f32])[0];
            assert_eq!((x / q.scale).round() as i32 + q.zero_point, c);
        }
    }

    #[test]
    fn shared_copy_equals_the_embedded_one() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/data/uea");
        // A provenance check for developers who have the original files beside the checkout; the
        // project itself only ever reads the embedded copy, so a clean checkout (CI) skips it.
        if !dir.join("BasicMotions_TRAIN.ts").is_file() {
            eprintln!("skipped: {} not found", dir.display());
            return;
        }
        let a = load(&DataSpec::basicmotions_dir(&dir), 5).unwrap();
        let b = load(&DataSpec::BasicMotions, 5).unwrap();
        assert_eq!(a.test, b.test);
        assert_eq!(a.train.features, b.train.features);
    }
}
