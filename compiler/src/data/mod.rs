//! Datasets: loaders (IDX, CSV, the embedded default), preprocessing hints and fixed seeded splits.

mod csv;
mod idx;
mod split;
pub mod ts;

pub use split::{split_by_fractions, Splits};

use crate::ir::{ActQuant, Preprocess};
use std::path::{Path, PathBuf};

/// The embedded default: UCI optical digits (8x8, 0-16), see `models/data/PROVENANCE.md`.
const DIGITS_CSV_GZ: &[u8] = include_bytes!("../../../models/data/digits.csv.gz");
/// BasicMotions (UEA archive: smartwatch IMU, 4 activities), train and test files.
const BASICMOTIONS_TRAIN_GZ: &[u8] =
    include_bytes!("../../../models/data/BasicMotions_TRAIN.ts.gz");
const BASICMOTIONS_TEST_GZ: &[u8] = include_bytes!("../../../models/data/BasicMotions_TEST.ts.gz");

#[derive(Debug, thiserror::Error)]
pub enum DataError {
    #[error("{path}: {problem}")]
    File { path: String, problem: String },
    #[error(
        "unknown dataset {0:?}: use `digits`, `mnist:DIR`, `fashion-mnist:DIR[:train-sample=N][:dev-test=N]`, `csv:FILE[:label=COLUMN][:train-rows=N]`, \
         `ts:TRAIN.ts[,TEST.ts]`, `imu:TRAIN.ts[,TEST.ts]` or `basicmotions[:DIR]`"
    )]
    UnknownSpec(String),
}

impl DataError {
    pub(crate) fn file(path: &Path, problem: impl Into<String>) -> Self {
        DataError::File {
            path: path.display().to_string(),
            problem: problem.into(),
        }
    }
}

/// A labelled set of samples; features are raw (as in the file), row-major.
#[derive(Clone, Debug, PartialEq)]
pub struct Dataset {
    pub name: String,
    /// Shape of one sample without batch; channels-last for images.
    pub sample_shape: Vec<usize>,
    pub features: Vec<f32>,
    pub labels: Vec<u32>,
    pub class_names: Vec<String>,
}

impl Dataset {
    pub fn len(&self) -> usize {
        self.labels.len()
    }
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }
    pub fn n_features(&self) -> usize {
        self.sample_shape.iter().product()
    }
    pub fn n_classes(&self) -> usize {
        self.class_names.len()
    }
    pub fn sample(&self, i: usize) -> &[f32] {
        let d = self.n_features();
        &self.features[i * d..(i + 1) * d]
    }
    /// The samples at `idx`, in that order.
    pub fn subset(&self, idx: &[usize]) -> Dataset {
        let mut features = Vec::with_capacity(idx.len() * self.n_features());
        for &i in idx {
            features.extend_from_slice(self.sample(i));
        }
        Dataset {
            name: self.name.clone(),
            sample_shape: self.sample_shape.clone(),
            features,
            labels: idx.iter().map(|&i| self.labels[i]).collect(),
            class_names: self.class_names.clone(),
        }
    }
}

/// Where a dataset comes from, parsed from the command line.
#[derive(Clone, Debug, PartialEq)]
pub enum DataSpec {
    /// The embedded UCI digits.
    Digits,
    /// A directory with the four standard gzipped IDX files (MNIST, Fashion-MNIST). With
    /// `train_sample`, only the first that many training images are used (a 10k sample of
    /// Fashion-MNIST's 60k, as the shipped MNIST files are of MNIST's); the test set is whole.
    /// With `dev_test`, the last that many of those training images are the test set and the
    /// official test file is not read: a development protocol, so recipes can be chosen without
    /// looking at the test set the benchmarks report.
    Idx {
        name: String,
        dir: PathBuf,
        train_sample: Option<usize>,
        dev_test: Option<usize>,
    },
    /// One CSV file; label in the last column unless named. With `train_rows`, the first rows
    /// are the training set and the rest the test set (the standard splits of UCI sets such as
    /// pendigits and letter); otherwise a seeded 70/10/20 split.
    Csv {
        path: PathBuf,
        label_column: Option<String>,
        train_rows: Option<usize>,
    },
    /// sktime `.ts` files: a training file and optionally the official test file. With
    /// `imu_features`, each window (6 axes × 100 samples at 10 Hz) becomes the firmware's int8
    /// feature vector (`bonsai_rt::features`); otherwise the raw series are the input.
    Ts {
        train: PathBuf,
        test: Option<PathBuf>,
        imu_features: bool,
    },
    /// The embedded BasicMotions windows (see `models/data/PROVENANCE.md`) as IMU features.
    BasicMotions,
}

impl DataSpec {
    /// `mnist:DIR`.
    pub fn mnist(dir: impl Into<PathBuf>) -> DataSpec {
        DataSpec::Idx {
            name: "mnist".into(),
            dir: dir.into(),
            train_sample: None,
            dev_test: None,
        }
    }

    /// `basicmotions:DIR`: the archive's two files in DIR, as IMU features.
    pub fn basicmotions_dir(dir: &Path) -> DataSpec {
        DataSpec::Ts {
            train: dir.join("BasicMotions_TRAIN.ts"),
            test: Some(dir.join("BasicMotions_TEST.ts")),
            imu_features: true,
        }
    }

    /// True when the samples are already the int8 codes the firmware computes itself.
    pub fn is_imu_features(&self) -> bool {
        matches!(
            self,
            DataSpec::BasicMotions
                | DataSpec::Ts {
                    imu_features: true,
                    ..
                }
        )
    }
}

impl std::str::FromStr for DataSpec {
    type Err = DataError;
    fn from_str(s: &str) -> Result<Self, DataError> {
        let (kind, rest) = s.split_once(':').unwrap_or((s, ""));
        match (kind, rest) {
            ("digits", "") => Ok(DataSpec::Digits),
            ("mnist" | "fashion-mnist", rest) if !rest.is_empty() => {
                // Options trail the directory: `:train-sample=N`, `:dev-test=N`, in any order.
                let (mut dir, mut train_sample, mut dev_test) = (rest, None, None);
                while let Some((d, opt)) = dir.rsplit_once(':') {
                    let slot = match opt.split_once('=') {
                        Some(("train-sample", n)) => (&mut train_sample, n),
                        Some(("dev-test", n)) => (&mut dev_test, n),
                        _ => break,
                    };
                    *slot.0 = Some(
                        slot.1
                            .parse::<usize>()
                            .ok()
                            .filter(|&n| n > 0)
                            .ok_or_else(|| DataError::UnknownSpec(s.into()))?,
                    );
                    dir = d;
                }
                Ok(DataSpec::Idx {
                    name: kind.into(),
                    dir: dir.into(),
                    train_sample,
                    dev_test,
                })
            }
            ("csv", rest) if !rest.is_empty() => {
                // Options trail the path: `:label=COLUMN`, `:train-rows=N`, in any order.
                let (mut path, mut label, mut train_rows) = (rest, None, None);
                while let Some((p, opt)) = path.rsplit_once(':') {
                    match opt.split_once('=') {
                        Some(("label", l)) if !l.is_empty() => label = Some(l.to_string()),
                        Some(("train-rows", n)) => {
                            train_rows = Some(
                                n.parse::<usize>()
                                    .ok()
                                    .filter(|&n| n > 0)
                                    .ok_or_else(|| DataError::UnknownSpec(s.into()))?,
                            )
                        }
                        _ => break,
                    }
                    path = p;
                }
                Ok(DataSpec::Csv {
                    path: path.into(),
                    label_column: label,
                    train_rows,
                })
            }
            ("basicmotions", "") => Ok(DataSpec::BasicMotions),
            ("basicmotions", dir) => Ok(DataSpec::basicmotions_dir(Path::new(dir))),
            ("ts" | "imu", files) if !files.is_empty() => {
                let (train, test) = match files.split_once(',') {
                    Some((a, b)) if !a.is_empty() && !b.is_empty() => (a, Some(b)),
                    Some(_) => return Err(DataError::UnknownSpec(s.into())),
                    None => (files, None),
                };
                Ok(DataSpec::Ts {
                    train: train.into(),
                    test: test.map(PathBuf::from),
                    imu_features: kind == "imu",
                })
            }
            _ => Err(DataError::UnknownSpec(s.into())),
        }
    }
}

/// Loads a dataset and splits it (seeded, fixed): files with an official test set keep it and
/// carve validation out of train; single files are split 70/10/20.
pub fn load(spec: &DataSpec, seed: u64) -> Result<Splits, DataError> {
    match spec {
        DataSpec::Digits => {
            let d = csv::parse_csv_bytes(
                DIGITS_CSV_GZ,
                Path::new("<embedded digits.csv.gz>"),
                "digits",
                None,
            )?;
            Ok(split_by_fractions(&d, 0.7, 0.1, seed))
        }
        DataSpec::Idx {
            name,
            dir,
            train_sample,
            dev_test,
        } => {
            let mut train = idx::load_pair(
                &dir.join("train-images-idx3-ubyte.gz"),
                &dir.join("train-labels-idx1-ubyte.gz"),
                name,
            )?;
            if let Some(n) = *train_sample {
                if n > train.len() {
                    return Err(DataError::file(
                        dir,
                        format!(
                            "train-sample={n} asks for more images than the {} in the training file",
                            train.len()
                        ),
                    ));
                }
                train = train.subset(&(0..n).collect::<Vec<_>>());
            }
            let test = match *dev_test {
                Some(n) if n < train.len() => {
                    let test = train.subset(&(train.len() - n..train.len()).collect::<Vec<_>>());
                    train = train.subset(&(0..train.len() - n).collect::<Vec<_>>());
                    test
                }
                Some(n) => {
                    return Err(DataError::file(
                        dir,
                        format!(
                            "dev-test={n} leaves no training images: the training set has {}",
                            train.len()
                        ),
                    ))
                }
                None => idx::load_pair(
                    &dir.join("t10k-images-idx3-ubyte.gz"),
                    &dir.join("t10k-labels-idx1-ubyte.gz"),
                    name,
                )?,
            };
            Ok(Splits::with_test(&train, test, 0.1, seed))
        }
        DataSpec::Csv {
            path,
            label_column,
            train_rows,
        } => {
            let bytes = std::fs::read(path).map_err(|e| DataError::file(path, e.to_string()))?;
            let name = path
                .file_stem()
                .map(|s| s.to_string_lossy().trim_end_matches(".csv").to_string())
                .unwrap_or_else(|| "csv".into());
            let d = csv::parse_csv_bytes(&bytes, path, &name, label_column.as_deref())?;
            match *train_rows {
                None => Ok(split_by_fractions(&d, 0.7, 0.1, seed)),
                Some(n) if n < d.len() => {
                    let train = d.subset(&(0..n).collect::<Vec<_>>());
                    let test = d.subset(&(n..d.len()).collect::<Vec<_>>());
                    Ok(Splits::with_test(&train, test, 0.1, seed))
                }
                Some(n) => Err(DataError::file(
                    path,
                    format!(
                        "train-rows={n} leaves no test rows: the file has {} samples",
                        d.len()
                    ),
                )),
            }
        }
        DataSpec::BasicMotions => {
            let (tr, te) = (
                Path::new("<embedded BasicMotions_TRAIN.ts.gz>"),
                Path::new("<embedded BasicMotions_TEST.ts.gz>"),
            );
            let train = ts_dataset(BASICMOTIONS_TRAIN_GZ, tr, true)?;
            let test = ts_dataset(BASICMOTIONS_TEST_GZ, te, true)?;
            with_test_file(train, test, te, seed)
        }
        DataSpec::Ts {
            train,
            test,
            imu_features,
        } => {
            let read = |p: &Path| std::fs::read(p).map_err(|e| DataError::file(p, e.to_string()));
            let train_d = ts_dataset(&read(train)?, train, *imu_features)?;
            match test {
                Some(t) => {
                    let test_d = ts_dataset(&read(t)?, t, *imu_features)?;
                    with_test_file(train_d, test_d, t, seed)
                }
                None => Ok(split_by_fractions(&train_d, 0.7, 0.1, seed)),
            }
        }
    }
}

fn ts_dataset(bytes: &[u8], path: &Path, imu: bool) -> Result<Dataset, DataError> {
    let f = ts::parse(bytes, path)?;
    if imu {
        ts::imu_dataset(&f, path)
    } else {
        Ok(ts::raw_dataset(&f))
    }
}

/// Validation share of a `.ts` training file. The UEA sets are small (BasicMotions: 40 training
/// windows); a quarter keeps enough windows for validation accuracy to tell models apart.
const TS_VAL_FRACTION: f64 = 0.25;

/// An official test file must describe the same samples as the training file.
fn with_test_file(
    train: Dataset,
    test: Dataset,
    test_path: &Path,
    seed: u64,
) -> Result<Splits, DataError> {
    if test.class_names != train.class_names {
        return Err(DataError::file(
            test_path,
            format!(
                "classes {:?} differ from the training file's {:?}",
                test.class_names, train.class_names
            ),
        ));
    }
    if test.sample_shape != train.sample_shape {
        return Err(DataError::file(
            test_path,
            format!(
                "samples of shape {:?}, but the training file's are {:?}",
                test.sample_shape, train.sample_shape
            ),
        ));
    }
    Ok(Splits::with_test(&train, test, TS_VAL_FRACTION, seed))
}

/// The int8 codes of IMU features are the model's input as they are: `x = code / 128` with
/// input quantization scale 1/128 and zero point 0 maps every code to itself, exactly (powers
/// of two), so the firmware feeds its features to the model without requantizing them.
const IMU_CODE_SCALE: f32 = 1.0 / 128.0;

/// The input quantization a dataset fixes instead of calibration (see [`IMU_CODE_SCALE`]).
pub fn fixed_input_quant(spec: &DataSpec) -> Option<ActQuant> {
    spec.is_imu_features().then_some(ActQuant {
        scale: IMU_CODE_SCALE,
        zero_point: 0,
    })
}

/// The float input a model sees: raw values mapped to roughly [0, 1] (images, bounded counts)
/// or standardised per feature (other tabular data), fitted on the training split only.
pub fn fit_preprocess(spec: &DataSpec, train: &Dataset) -> Preprocess {
    match spec {
        DataSpec::Digits => Preprocess {
            scale: vec![1.0 / 16.0],
            offset: vec![0.0],
        },
        DataSpec::Idx { .. } => Preprocess {
            scale: vec![1.0 / 255.0],
            offset: vec![0.0],
        },
        DataSpec::Csv { .. }
        | DataSpec::Ts {
            imu_features: false,
            ..
        } => standardize(train),
        DataSpec::BasicMotions | DataSpec::Ts { .. } => Preprocess {
            scale: vec![IMU_CODE_SCALE],
            offset: vec![0.0],
        },
    }
}

fn standardize(train: &Dataset) -> Preprocess {
    let d = train.n_features();
    let n = train.len().max(1) as f64;
    let mut scale = Vec::with_capacity(d);
    let mut offset = Vec::with_capacity(d);
    for j in 0..d {
        let col = (0..train.len()).map(|i| train.features[i * d + j] as f64);
        let mean = col.clone().sum::<f64>() / n;
        let var = col.map(|v| (v - mean) * (v - mean)).sum::<f64>() / n;
        // A constant feature carries nothing: map it to 0 rather than divide by 0.
        let s = if var > 1e-12 { 1.0 / var.sqrt() } else { 0.0 };
        scale.push(s as f32);
        offset.push((-mean * s) as f32);
    }
    Preprocess { scale, offset }
}

/// Reads a whole file, transparently gunzipping when it starts with the gzip magic.
pub(crate) fn read_maybe_gz(bytes: &[u8], path: &Path) -> Result<Vec<u8>, DataError> {
    if bytes.starts_with(&[0x1f, 0x8b]) {
        use std::io::Read;
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(bytes)
            .read_to_end(&mut out)
            .map_err(|e| DataError::file(path, format!("corrupt gzip data: {e}")))?;
        Ok(out)
    } else {
        Ok(bytes.to_vec())
    }
}

#[cfg(test)]
mod tests;
