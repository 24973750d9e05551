//! The IDX format of MNIST and Fashion-MNIST (optionally gzipped): a big-endian header
//! (magic 0x0000_08_NN with NN the number of dimensions, then one u32 per dimension), then u8 data.

use super::{read_maybe_gz, DataError, Dataset};
use std::path::Path;

struct Idx {
    dims: Vec<usize>,
    data: Vec<u8>,
}

fn parse(bytes: &[u8], path: &Path, want_dims: usize) -> Result<Idx, DataError> {
    let fail = |p: String| DataError::file(path, p);
    if bytes.len() < 4 {
        return Err(fail(format!(
            "corrupt IDX header: {} bytes, too short for the magic number",
            bytes.len()
        )));
    }
    let magic = u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
    let expected = 0x0800 | want_dims as u32;
    if magic != expected {
        return Err(fail(format!(
            "corrupt IDX header: magic 0x{magic:08x}, expected 0x{expected:08x} (unsigned bytes, {want_dims} dimensions)"
        )));
    }
    let header = 4 + 4 * want_dims;
    if bytes.len() < header {
        return Err(fail("corrupt IDX header: truncated dimension sizes".into()));
    }
    let dims: Vec<usize> = (0..want_dims)
        .map(|i| {
            let o = 4 + 4 * i;
            u32::from_be_bytes([bytes[o], bytes[o + 1], bytes[o + 2], bytes[o + 3]]) as usize
        })
        .collect();
    let n: usize = dims
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .ok_or_else(|| fail(format!("corrupt IDX header: dimensions {dims:?} overflow")))?;
    let data = &bytes[header..];
    if data.len() != n {
        return Err(fail(format!(
            "header says {dims:?} = {n} bytes of data but the file has {}",
            data.len()
        )));
    }
    Ok(Idx {
        dims,
        data: data.to_vec(),
    })
}

fn read(path: &Path, want_dims: usize) -> Result<Idx, DataError> {
    let raw = std::fs::read(path).map_err(|e| DataError::file(path, e.to_string()))?;
    parse(&read_maybe_gz(&raw, path)?, path, want_dims)
}

/// Loads an images file and its labels file into one dataset of `[rows, cols, 1]` samples.
pub fn load_pair(images: &Path, labels: &Path, name: &str) -> Result<Dataset, DataError> {
    let img = read(images, 3)?;
    let lab = read(labels, 1)?;
    if img.dims[0] != lab.dims[0] {
        return Err(DataError::file(
            labels,
            format!(
                "{} labels for {} images in {}",
                lab.dims[0],
                img.dims[0],
                images.display()
            ),
        ));
    }
    let n_classes = lab.data.iter().copied().max().map_or(0, |m| m as usize + 1);
    Ok(Dataset {
        name: name.into(),
        sample_shape: vec![img.dims[1], img.dims[2], 1],
        features: img.data.iter().map(|&b| b as f32).collect(),
        labels: lab.data.iter().map(|&b| b as u32).collect(),
        class_names: (0..n_classes).map(|c| c.to_string()).collect(),
    })
}

#[cfg(test)]
pub(crate) fn encode(dims: &[u32], data: &[u8]) -> Vec<u8> {
    let mut v = vec![0, 0, 8, dims.len() as u8];
    for d in dims {
        v.extend_from_slice(&d.to_be_bytes());
    }
    v.extend_from_slice(data);
    v
}
