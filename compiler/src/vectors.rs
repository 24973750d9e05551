//! Test-vector files for firmware (`BVEC`): b"BVEC", u32 version 1, u32 count, u32 input_len
//! (little-endian), then `count × input_len` int8 inputs. The firmware's build script reads the
//! same layout (firmware-examples/fw-common/build_support.rs).

use std::path::Path;

const MAGIC: &[u8; 4] = b"BVEC";
const VERSION: u32 = 1;

#[derive(Debug, thiserror::Error)]
pub enum VectorError {
    #[error("{path}: {msg}")]
    File { path: String, msg: String },
    #[error("vector {index} has {found} values, expected {expected}")]
    Length {
        index: usize,
        expected: usize,
        found: usize,
    },
}

pub fn encode<V: AsRef<[i8]>>(input_len: usize, inputs: &[V]) -> Result<Vec<u8>, VectorError> {
    let mut out = Vec::with_capacity(16 + inputs.len() * input_len);
    out.extend_from_slice(MAGIC);
    for v in [VERSION, inputs.len() as u32, input_len as u32] {
        out.extend_from_slice(&v.to_le_bytes());
    }
    for (index, v) in inputs.iter().enumerate() {
        let v = v.as_ref();
        if v.len() != input_len {
            return Err(VectorError::Length {
                index,
                expected: input_len,
                found: v.len(),
            });
        }
        out.extend(v.iter().map(|&b| b as u8));
    }
    Ok(out)
}

pub fn decode(bytes: &[u8], path: &Path) -> Result<Vec<Vec<i8>>, VectorError> {
    let fail = |msg: String| VectorError::File {
        path: path.display().to_string(),
        msg,
    };
    if bytes.len() < 16 || &bytes[..4] != MAGIC {
        return Err(fail(
            "not a BVEC test-vector file (bad magic or too short)".into(),
        ));
    }
    let word = |i: usize| u32::from_le_bytes(bytes[4 * i..4 * i + 4].try_into().unwrap()) as usize;
    if word(1) != VERSION as usize {
        return Err(fail(format!("BVEC version {} is not supported", word(1))));
    }
    let (n, len) = (word(2), word(3));
    let body = &bytes[16..];
    if n.checked_mul(len) != Some(body.len()) {
        return Err(fail(format!(
            "header says {n} vectors of {len} bytes but {} bytes follow",
            body.len()
        )));
    }
    if len == 0 {
        return Ok(vec![Vec::new(); n]);
    }
    Ok(body
        .chunks_exact(len)
        .map(|c| c.iter().map(|&b| b as i8).collect())
        .collect())
}

pub fn write<V: AsRef<[i8]>>(
    path: &Path,
    input_len: usize,
    inputs: &[V],
) -> Result<(), VectorError> {
    let bytes = encode(input_len, inputs)?;
    crate::util::write_atomic(path, &bytes).map_err(|e| VectorError::File {
        path: path.display().to_string(),
        msg: e.to_string(),
    })
}

pub fn read(path: &Path) -> Result<Vec<Vec<i8>>, VectorError> {
    let bytes = std::fs::read(path).map_err(|e| VectorError::File {
        path: path.display().to_string(),
        msg: e.to_string(),
    })?;
    decode(&bytes, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let v = vec![vec![1i8, -2, 127], vec![-128, 0, 5]];
        let bytes = encode(3, &v).unwrap();
        // the exact layout fw-common's build script parses
        assert_eq!(&bytes[..16], b"BVEC\x01\0\0\0\x02\0\0\0\x03\0\0\0");
        assert_eq!(&bytes[16..], &[1, 254, 127, 128, 0, 5]);
        assert_eq!(decode(&bytes, Path::new("x")).unwrap(), v);
    }

    #[test]
    fn corrupt_files_are_errors() {
        let bytes = encode(3, &[vec![1i8, 2, 3]]).unwrap();
        let err = decode(&bytes[..bytes.len() - 1], Path::new("v.bin")).unwrap_err();
        assert!(
            err.to_string()
                .contains("v.bin: header says 1 vectors of 3 bytes but 2"),
            "{err}"
        );
        assert!(decode(b"nope", Path::new("v.bin")).is_err());
        assert!(matches!(
            encode(2, &[vec![1i8]]),
            Err(VectorError::Length { .. })
        ));
    }
}
