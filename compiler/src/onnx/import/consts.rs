//! Constant tensors of an ONNX graph (initializers, `Constant` nodes) and the folding of the
//! small shape computations exporters emit around `Reshape` (`Shape` → `Gather` → `Unsqueeze`
//! → `Concat`, plus the occasional `Slice`, `Cast` or arithmetic).
//!
//! The batch size is unknown at import time, so an integer element can be [`None`]: "the batch
//! size". It flows through gathers, slices and concatenations unchanged; arithmetic on it gives
//! `None` again, and a consumer that needs a concrete number reports it as unsupported.

use tract_onnx::pb::{tensor_proto::DataType, TensorProto};

#[derive(Clone, Debug, PartialEq)]
pub(super) enum Data {
    F(Vec<f32>),
    /// `None`: the (unknown) batch size, or a value computed from it.
    I(Vec<Option<i64>>),
}

#[derive(Clone, Debug, PartialEq)]
pub(super) struct Const {
    pub dims: Vec<usize>,
    pub data: Data,
}

/// Row-major strides of `dims`.
fn strides(dims: &[usize]) -> Vec<usize> {
    let mut s = vec![1; dims.len()];
    for i in (0..dims.len().saturating_sub(1)).rev() {
        s[i] = s[i + 1] * dims[i + 1];
    }
    s
}

/// Normalises a possibly negative `axis` of a rank-`rank` tensor (`extra` allows the one-past
/// position Unsqueeze uses).
pub(super) fn norm_axis(axis: i64, rank: usize) -> Result<usize, String> {
    let r = rank as i64;
    let a = if axis < 0 { axis + r } else { axis };
    if (0..r).contains(&a) {
        Ok(a as usize)
    } else {
        Err(format!("axis {axis} is out of range for rank {rank}"))
    }
}

fn le_chunks<const N: usize>(raw: &[u8], what: &str) -> Result<Vec<[u8; N]>, String> {
    if !raw.len().is_multiple_of(N) {
        return Err(format!(
            "raw_data of {} bytes is not a whole number of {what} values",
            raw.len()
        ));
    }
    Ok(raw
        .chunks_exact(N)
        .map(|c| c.try_into().expect("chunks_exact"))
        .collect())
}

impl Const {
    pub fn len(&self) -> usize {
        self.dims.iter().product()
    }

    pub fn scalar_f(v: f32) -> Const {
        Const {
            dims: vec![],
            data: Data::F(vec![v]),
        }
    }

    pub fn ints(dims: Vec<usize>, v: Vec<Option<i64>>) -> Const {
        Const {
            dims,
            data: Data::I(v),
        }
    }

    /// Decodes an initializer or a `Constant`'s tensor: float and double become f32, every
    /// integer type becomes i64. External data and other element types are refused.
    pub fn from_proto(t: &TensorProto) -> Result<Const, String> {
        if t.data_location == Some(1) || !t.external_data.is_empty() {
            return Err("tensor data stored in an external file is not supported".into());
        }
        let mut dims = Vec::with_capacity(t.dims.len());
        for &d in &t.dims {
            if d < 0 {
                return Err(format!("negative dimension {d}"));
            }
            dims.push(d as usize);
        }
        let n = dims
            .iter()
            .try_fold(1usize, |a, &d| a.checked_mul(d))
            .ok_or("dimensions overflow")?;
        let raw = &t.raw_data;
        let data = match DataType::try_from(t.data_type) {
            Ok(DataType::Float) => Data::F(if raw.is_empty() {
                t.float_data.clone()
            } else {
                le_chunks::<4>(raw, "f32")?
                    .into_iter()
                    .map(f32::from_le_bytes)
                    .collect()
            }),
            Ok(DataType::Double) => Data::F(if raw.is_empty() {
                t.double_data.iter().map(|&v| v as f32).collect()
            } else {
                le_chunks::<8>(raw, "f64")?
                    .into_iter()
                    .map(|b| f64::from_le_bytes(b) as f32)
                    .collect()
            }),
            Ok(DataType::Int64) => Data::I(if raw.is_empty() {
                t.int64_data.iter().map(|&v| Some(v)).collect()
            } else {
                le_chunks::<8>(raw, "i64")?
                    .into_iter()
                    .map(|b| Some(i64::from_le_bytes(b)))
                    .collect()
            }),
            Ok(DataType::Int32) => Data::I(if raw.is_empty() {
                t.int32_data.iter().map(|&v| Some(v as i64)).collect()
            } else {
                le_chunks::<4>(raw, "i32")?
                    .into_iter()
                    .map(|b| Some(i32::from_le_bytes(b) as i64))
                    .collect()
            }),
            Ok(other) => return Err(format!("{other:?} tensors are not supported")),
            Err(_) => return Err(format!("unknown tensor element type {}", t.data_type)),
        };
        let c = Const { dims, data };
        let found = match &c.data {
            Data::F(v) => v.len(),
            Data::I(v) => v.len(),
        };
        if found != n {
            return Err(format!(
                "tensor of shape {:?} holds {found} values, expected {n}",
                c.dims
            ));
        }
        Ok(c)
    }

    /// Float values (integers converted); the batch size cannot be converted.
    pub fn floats(&self) -> Result<Vec<f32>, String> {
        match &self.data {
            Data::F(v) => Ok(v.clone()),
            Data::I(v) => v
                .iter()
                .map(|x| x.map(|x| x as f32).ok_or_else(batch_dependent))
                .collect(),
        }
    }

    /// Integer values, `None` standing for the batch size.
    pub fn opt_ints(&self) -> Result<Vec<Option<i64>>, String> {
        match &self.data {
            Data::I(v) => Ok(v.clone()),
            Data::F(_) => Err("expected an integer tensor, found a float one".into()),
        }
    }

    /// Integer values that must not depend on the batch size.
    pub fn known_ints(&self) -> Result<Vec<i64>, String> {
        self.opt_ints()?
            .into_iter()
            .map(|x| x.ok_or_else(batch_dependent))
            .collect()
    }

    /// A new constant of `dims` whose element `k` is `self`'s element `src[k]`.
    fn pick(&self, dims: Vec<usize>, src: &[usize]) -> Const {
        let data = match &self.data {
            Data::F(v) => Data::F(src.iter().map(|&i| v[i]).collect()),
            Data::I(v) => Data::I(src.iter().map(|&i| v[i]).collect()),
        };
        Const { dims, data }
    }

    pub fn with_dims(&self, dims: Vec<usize>) -> Result<Const, String> {
        if dims.iter().product::<usize>() != self.len() {
            return Err(format!(
                "cannot reshape {:?} ({} values) to {dims:?}",
                self.dims,
                self.len()
            ));
        }
        Ok(Const {
            dims,
            data: self.data.clone(),
        })
    }

    pub fn gather(&self, indices: &Const, axis: i64) -> Result<Const, String> {
        let axis = norm_axis(axis, self.dims.len())?;
        let n = self.dims[axis] as i64;
        let idx: Vec<usize> = indices
            .known_ints()?
            .into_iter()
            .map(|k| {
                let k2 = if k < 0 { k + n } else { k };
                if (0..n).contains(&k2) {
                    Ok(k2 as usize)
                } else {
                    Err(format!(
                        "Gather index {k} out of range for a dimension of {n}"
                    ))
                }
            })
            .collect::<Result<_, String>>()?;
        let outer: usize = self.dims[..axis].iter().product();
        let inner: usize = self.dims[axis + 1..].iter().product();
        let mut src = Vec::with_capacity(outer * idx.len() * inner);
        for o in 0..outer {
            for &k in &idx {
                for i in 0..inner {
                    src.push((o * self.dims[axis] + k) * inner + i);
                }
            }
        }
        let mut dims = self.dims[..axis].to_vec();
        dims.extend(&indices.dims);
        dims.extend(&self.dims[axis + 1..]);
        Ok(self.pick(dims, &src))
    }

    pub fn transpose(&self, perm: &[usize]) -> Result<Const, String> {
        let rank = self.dims.len();
        let mut seen = vec![false; rank];
        if perm.len() != rank
            || perm
                .iter()
                .any(|&p| p >= rank || std::mem::replace(&mut seen[p], true))
        {
            return Err(format!("perm {perm:?} is not a permutation of rank {rank}"));
        }
        let dims: Vec<usize> = perm.iter().map(|&p| self.dims[p]).collect();
        let in_strides = strides(&self.dims);
        let out_strides = strides(&dims);
        let src: Vec<usize> = (0..self.len())
            .map(|k| {
                (0..rank)
                    .map(|i| (k / out_strides[i]) % dims[i] * in_strides[perm[i]])
                    .sum()
            })
            .collect();
        Ok(self.pick(dims, &src))
    }

    /// ONNX `Slice` with per-axis `starts`, `ends`, `steps` (clamped as the spec says).
    pub fn slice(
        &self,
        starts: &[i64],
        ends: &[i64],
        axes: &[usize],
        steps: &[i64],
    ) -> Result<Const, String> {
        let rank = self.dims.len();
        let mut range: Vec<(i64, i64, usize)> = self.dims.iter().map(|&d| (0, 1, d)).collect();
        for (k, &axis) in axes.iter().enumerate() {
            let d = self.dims[axis] as i64;
            let step = steps[k];
            if step == 0 {
                return Err("Slice step 0".into());
            }
            let fix = |v: i64| if v < 0 { v + d } else { v };
            let (s, e) = if step > 0 {
                (fix(starts[k]).clamp(0, d), fix(ends[k]).clamp(0, d))
            } else {
                (
                    fix(starts[k]).clamp(0, d - 1),
                    fix(ends[k]).clamp(-1, d - 1),
                )
            };
            let count = if step > 0 {
                ((e - s).max(0) + step - 1) / step
            } else {
                ((s - e).max(0) + (-step) - 1) / (-step)
            };
            range[axis] = (s, step, count as usize);
        }
        let dims: Vec<usize> = range.iter().map(|r| r.2).collect();
        let in_strides = strides(&self.dims);
        let out_strides = strides(&dims);
        let n: usize = dims.iter().product();
        let src: Vec<usize> = (0..n)
            .map(|k| {
                (0..rank)
                    .map(|i| {
                        let j = ((k / out_strides[i]) % dims[i]) as i64;
                        (range[i].0 + j * range[i].1) as usize * in_strides[i]
                    })
                    .sum()
            })
            .collect();
        Ok(self.pick(dims, &src))
    }

    pub fn concat(parts: &[Const], axis: i64) -> Result<Const, String> {
        let first = parts.first().ok_or("Concat of nothing")?;
        let rank = first.dims.len();
        let axis = norm_axis(axis, rank)?;
        for p in parts {
            let same =
                p.dims.len() == rank && (0..rank).all(|i| i == axis || p.dims[i] == first.dims[i]);
            if !same {
                return Err(format!(
                    "Concat of shapes {:?} and {:?} on axis {axis}",
                    first.dims, p.dims
                ));
            }
        }
        let outer: usize = first.dims[..axis].iter().product();
        let inner: usize = first.dims[axis + 1..].iter().product();
        let mut dims = first.dims.clone();
        dims[axis] = parts.iter().map(|p| p.dims[axis]).sum();
        let data = match &first.data {
            Data::F(_) => {
                let vs: Vec<Vec<f32>> =
                    parts.iter().map(|p| p.floats()).collect::<Result<_, _>>()?;
                let mut out = Vec::new();
                for o in 0..outer {
                    for (p, v) in parts.iter().zip(&vs) {
                        let chunk = p.dims[axis] * inner;
                        out.extend_from_slice(&v[o * chunk..(o + 1) * chunk]);
                    }
                }
                Data::F(out)
            }
            Data::I(_) => {
                let vs: Vec<Vec<Option<i64>>> = parts
                    .iter()
                    .map(|p| p.opt_ints())
                    .collect::<Result<_, _>>()?;
                let mut out = Vec::new();
                for o in 0..outer {
                    for (p, v) in parts.iter().zip(&vs) {
                        let chunk = p.dims[axis] * inner;
                        out.extend_from_slice(&v[o * chunk..(o + 1) * chunk]);
                    }
                }
                Data::I(out)
            }
        };
        Ok(Const { dims, data })
    }

    /// Element-wise `Add`/`Sub`/`Mul`/`Div` with NumPy broadcasting. Integer division
    /// truncates (ONNX); anything involving the batch size is the batch size's unknown again.
    pub fn binary(&self, other: &Const, op: &str) -> Result<Const, String> {
        let rank = self.dims.len().max(other.dims.len());
        let pad = |d: &[usize]| {
            let mut v = vec![1; rank - d.len()];
            v.extend_from_slice(d);
            v
        };
        let (a, b) = (pad(&self.dims), pad(&other.dims));
        let mut dims = Vec::with_capacity(rank);
        for i in 0..rank {
            dims.push(match (a[i], b[i]) {
                (x, y) if x == y => x,
                (1, y) => y,
                (x, 1) => x,
                _ => {
                    return Err(format!(
                        "{op} of shapes {:?} and {:?} does not broadcast",
                        self.dims, other.dims
                    ))
                }
            });
        }
        let (sa, sb, so) = (strides(&a), strides(&b), strides(&dims));
        let n: usize = dims.iter().product();
        let index = |k: usize, d: &[usize], s: &[usize]| -> usize {
            (0..rank)
                .map(|i| {
                    if d[i] == 1 {
                        0
                    } else {
                        (k / so[i]) % dims[i] * s[i]
                    }
                })
                .sum()
        };
        let data = match (&self.data, &other.data) {
            (Data::F(x), Data::F(y)) => {
                let f = |p: f32, q: f32| match op {
                    "Add" => p + q,
                    "Sub" => p - q,
                    "Mul" => p * q,
                    _ => p / q,
                };
                Data::F(
                    (0..n)
                        .map(|k| f(x[index(k, &a, &sa)], y[index(k, &b, &sb)]))
                        .collect(),
                )
            }
            (Data::I(x), Data::I(y)) => {
                let f = |p: Option<i64>, q: Option<i64>| -> Option<i64> {
                    let (p, q) = (p?, q?);
                    match op {
                        "Add" => p.checked_add(q),
                        "Sub" => p.checked_sub(q),
                        "Mul" => p.checked_mul(q),
                        _ => p.checked_div(q),
                    }
                };
                Data::I(
                    (0..n)
                        .map(|k| f(x[index(k, &a, &sa)], y[index(k, &b, &sb)]))
                        .collect(),
                )
            }
            _ => return Err(format!("{op} of a float and an integer tensor")),
        };
        Ok(Const { dims, data })
    }

    /// ONNX `Cast` to `to` (a `DataType` number): float types give f32, integer types i64.
    pub fn cast(&self, to: i64) -> Result<Const, String> {
        let to = DataType::try_from(to as i32).map_err(|_| format!("Cast to unknown type {to}"))?;
        let data = match to {
            DataType::Float | DataType::Double => Data::F(self.floats()?),
            DataType::Int64 | DataType::Int32 => Data::I(match &self.data {
                Data::I(v) => v.clone(),
                Data::F(v) => v.iter().map(|&x| Some(x.trunc() as i64)).collect(),
            }),
            other => return Err(format!("Cast to {other:?} is not supported")),
        };
        Ok(Const {
            dims: self.dims.clone(),
            data,
        })
    }
}

fn batch_dependent() -> String {
    "the value depends on the batch size, which is unknown at import".into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(dims: &[usize], v: &[f32]) -> Const {
        Const {
            dims: dims.to_vec(),
            data: Data::F(v.to_vec()),
        }
    }

    #[test]
    fn gather_transpose_slice_concat() {
        let t = f(&[2, 3], &[0., 1., 2., 3., 4., 5.]);
        let g = t
            .gather(&Const::ints(vec![2], vec![Some(2), Some(-3)]), 1)
            .unwrap();
        assert_eq!(g, f(&[2, 2], &[2., 0., 5., 3.]));
        let s = t.gather(&Const::ints(vec![], vec![Some(1)]), 0).unwrap();
        assert_eq!(s, f(&[3], &[3., 4., 5.]));
        assert_eq!(
            t.transpose(&[1, 0]).unwrap(),
            f(&[3, 2], &[0., 3., 1., 4., 2., 5.])
        );
        assert!(t.transpose(&[0, 0]).is_err());
        let sl = t.slice(&[1], &[i64::MAX], &[1], &[1]).unwrap();
        assert_eq!(sl, f(&[2, 2], &[1., 2., 4., 5.]));
        let rev = t.slice(&[-1], &[i64::MIN], &[1], &[-1]).unwrap();
        assert_eq!(rev, f(&[2, 3], &[2., 1., 0., 5., 4., 3.]));
        let c = Const::concat(&[t.clone(), f(&[2, 1], &[9., 8.])], 1).unwrap();
        assert_eq!(c, f(&[2, 4], &[0., 1., 2., 9., 3., 4., 5., 8.]));
    }

    #[test]
    fn batch_size_flows_through_shape_arithmetic() {
        let shape = Const::ints(vec![4], vec![None, Some(8), Some(3), Some(3)]);
        let n = shape
            .gather(&Const::ints(vec![], vec![Some(0)]), 0)
            .unwrap();
        assert_eq!(n.opt_ints().unwrap(), vec![None]);
        assert!(n.known_ints().is_err());
        let hw = shape.slice(&[2], &[4], &[0], &[1]).unwrap();
        let prod = hw
            .gather(&Const::ints(vec![], vec![Some(0)]), 0)
            .unwrap()
            .binary(
                &hw.gather(&Const::ints(vec![], vec![Some(1)]), 0).unwrap(),
                "Mul",
            )
            .unwrap();
        assert_eq!(prod.known_ints().unwrap(), vec![9]);
        let times_n = prod.binary(&n, "Mul").unwrap();
        assert_eq!(times_n.opt_ints().unwrap(), vec![None]);
        let b = f(&[2, 1], &[1., 2.])
            .binary(&f(&[3], &[10., 20., 30.]), "Add")
            .unwrap();
        assert_eq!(b, f(&[2, 3], &[11., 21., 31., 12., 22., 32.]));
    }

    #[test]
    fn from_proto_checks_lengths_and_types() {
        let t = TensorProto {
            dims: vec![2],
            data_type: DataType::Float as i32,
            raw_data: [1.5f32, -2.0]
                .iter()
                .flat_map(|v| v.to_le_bytes())
                .collect(),
            ..Default::default()
        };
        assert_eq!(Const::from_proto(&t).unwrap(), f(&[2], &[1.5, -2.0]));
        let short = TensorProto {
            raw_data: vec![0; 6],
            ..t.clone()
        };
        assert!(Const::from_proto(&short).is_err());
        let wrong = TensorProto {
            dims: vec![3],
            ..t.clone()
        };
        assert!(Const::from_proto(&wrong)
            .unwrap_err()
            .contains("expected 3"));
        let strings = TensorProto {
            data_type: DataType::String as i32,
            ..t
        };
        assert!(Const::from_proto(&strings).is_err());
    }
}
