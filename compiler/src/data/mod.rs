//! Datasets: loaders (IDX, CSV, the embedded default), preprocessing hints and fixed seeded splits.

mod csv;
mod idx;
mod split;

pub use split::{split_by_fractions, Splits};

use crate::ir::Preprocess;
use std::path::{Path, PathBuf};

/// The embedded default: UCI optical digits (8x8, 0-16), see `models/data/PROVENANCE.md`.
const DIGITS_CSV_GZ: &[u8] = include_bytes!("../../../models/data/digits.csv.gz");

#[derive(Debug, thiserror::Error)]
pub enum DataError {
    #[error("{path}: {problem}")]
    File { path: String, problem: String },
    #[error("unknown dataset {0:?}: use `digits`, `mnist:DIR`, `fashion-mnist:DIR` or `csv:FILE`")]
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
    /// A directory with the four standard gzipped IDX files (MNIST, Fashion-MNIST).
    Idx { name: String, dir: PathBuf },
    /// One CSV file; label in the last column unless named.
    Csv {
        path: PathBuf,
        label_column: Option<String>,
    },
}

impl std::str::FromStr for DataSpec {
    type Err = DataError;
    fn from_str(s: &str) -> Result<Self, DataError> {
        let (kind, rest) = s.split_once(':').unwrap_or((s, ""));
        match (kind, rest) {
            ("digits", "") => Ok(DataSpec::Digits),
            ("mnist" | "fashion-mnist", dir) if !dir.is_empty() => Ok(DataSpec::Idx {
                name: kind.into(),
                dir: dir.into(),
            }),
            ("csv", rest) if !rest.is_empty() => {
                let (path, label) = match rest.rsplit_once(":label=") {
                    Some((p, l)) => (p, Some(l.to_string())),
                    None => (rest, None),
                };
                Ok(DataSpec::Csv {
                    path: path.into(),
                    label_column: label,
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
        DataSpec::Idx { name, dir } => {
            let train = idx::load_pair(
                &dir.join("train-images-idx3-ubyte.gz"),
                &dir.join("train-labels-idx1-ubyte.gz"),
                name,
            )?;
            let test = idx::load_pair(
                &dir.join("t10k-images-idx3-ubyte.gz"),
                &dir.join("t10k-labels-idx1-ubyte.gz"),
                name,
            )?;
            Ok(Splits::with_test(&train, test, 0.1, seed))
        }
        DataSpec::Csv { path, label_column } => {
            let bytes = std::fs::read(path).map_err(|e| DataError::file(path, e.to_string()))?;
            let name = path
                .file_stem()
                .map(|s| s.to_string_lossy().trim_end_matches(".csv").to_string())
                .unwrap_or_else(|| "csv".into());
            let d = csv::parse_csv_bytes(&bytes, path, &name, label_column.as_deref())?;
            Ok(split_by_fractions(&d, 0.7, 0.1, seed))
        }
    }
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
        DataSpec::Csv { .. } => standardize(train),
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
