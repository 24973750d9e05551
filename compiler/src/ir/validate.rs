//! Structural checks every stage can rely on after `Model::validate` returns Ok.

use super::{Model, Op, TensorId, IR_VERSION};
use std::path::Path;

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum IrError {
    #[error("{path}: {msg}")]
    Io { path: String, msg: String },
    #[error("not a Bonsai IR file: {0}")]
    Parse(String),
    #[error("IR version {found} is not supported (this build reads version {expected})")]
    Version { found: String, expected: u32 },
    #[error("invalid model: {0}")]
    Invalid(String),
    #[error("{path}: {inner}")]
    InFile { path: String, inner: Box<IrError> },
}

impl IrError {
    pub(crate) fn in_file(self, path: &Path) -> IrError {
        IrError::InFile {
            path: path.display().to_string(),
            inner: Box::new(self),
        }
    }
}

fn invalid(msg: String) -> Result<(), IrError> {
    Err(IrError::Invalid(msg))
}

impl Model {
    /// Checks version, ids, topological order, shapes, parameter lengths and masks.
    pub fn validate(&self) -> Result<(), IrError> {
        if self.ir_version != IR_VERSION {
            return Err(IrError::Version {
                found: self.ir_version.to_string(),
                expected: IR_VERSION,
            });
        }
        if self.inputs.len() != 1 || self.outputs.len() != 1 {
            return invalid(format!(
                "exactly one input and one output are supported, found {} and {}",
                self.inputs.len(),
                self.outputs.len()
            ));
        }
        let n_tensors = self.tensors.len();
        let check_id = |id: TensorId, what: &str| {
            if id.0 >= n_tensors {
                invalid(format!(
                    "{what} refers to tensor {} but there are {n_tensors}",
                    id.0
                ))
            } else {
                Ok(())
            }
        };
        check_id(self.inputs[0], "the model input")?;
        check_id(self.outputs[0], "the model output")?;
        let mut defined = vec![false; n_tensors];
        defined[self.inputs[0].0] = true;
        for node in &self.nodes {
            check_id(node.output, &format!("node {:?}'s output", node.name))?;
            for &i in &node.inputs {
                check_id(i, &format!("node {:?}'s input", node.name))?;
                if !defined[i.0] {
                    return invalid(format!(
                        "node {:?} reads tensor {:?} before it is produced (nodes must be in topological order)",
                        node.name, self.tensors[i.0].name
                    ));
                }
            }
            if defined[node.output.0] {
                return invalid(format!(
                    "tensor {:?} is produced twice (by node {:?})",
                    self.tensors[node.output.0].name, node.name
                ));
            }
            defined[node.output.0] = true;
            self.validate_node_shapes(node)?;
        }
        if !defined[self.outputs[0].0] {
            return invalid("the model output is never produced".into());
        }
        if !self.class_names.is_empty() && self.class_names.len() != self.output_len() {
            return invalid(format!(
                "{} class names for an output of {} values",
                self.class_names.len(),
                self.output_len()
            ));
        }
        let n_in = self.input_len();
        for (what, v) in [
            ("scale", &self.preprocess.scale),
            ("offset", &self.preprocess.offset),
        ] {
            if v.len() != 1 && v.len() != n_in {
                return invalid(format!(
                    "preprocess {what} has {} values; need 1 or {n_in}",
                    v.len()
                ));
            }
        }
        Ok(())
    }

    fn validate_node_shapes(&self, node: &super::Node) -> Result<(), IrError> {
        let shape_of = |id: TensorId| self.tensors[id.0].shape.clone();
        let out = shape_of(node.output);
        let name = &node.name;
        let arity = |n: usize| {
            if node.inputs.len() != n {
                invalid(format!(
                    "node {name:?} ({}) takes {n} input(s), has {}",
                    node.op.kind(),
                    node.inputs.len()
                ))
            } else {
                Ok(())
            }
        };
        match &node.op {
            Op::Dense(d) => {
                arity(1)?;
                let in_len: usize = shape_of(node.inputs[0]).iter().product();
                if in_len != d.in_features || out != vec![d.out_features] {
                    return invalid(format!(
                        "node {name:?}: Dense {}->{} applied to an input of {in_len} values producing {out:?}",
                        d.in_features, d.out_features
                    ));
                }
                check_weights(name, &node.op)?;
            }
            Op::Conv2d(c) => {
                arity(1)?;
                let in_shape = shape_of(node.inputs[0]);
                if c.groups == 0
                    || c.in_channels % c.groups != 0
                    || c.out_channels % c.groups != 0
                    || (c.groups != 1 && c.groups != c.in_channels)
                {
                    return invalid(format!(
                        "node {name:?}: Conv2d groups {} must be 1 or in_channels ({}) and divide out_channels ({})",
                        c.groups, c.in_channels, c.out_channels
                    ));
                }
                let expected = match in_shape[..] {
                    [h, w, ch] if ch == c.in_channels => c.output_shape(h, w),
                    _ => None,
                };
                if expected.as_ref() != Some(&out) {
                    return invalid(format!(
                        "node {name:?}: Conv2d {}->{} kernel {:?} stride {:?} padding {:?} applied to {in_shape:?} cannot produce {out:?}",
                        c.in_channels, c.out_channels, c.kernel, c.stride, c.padding
                    ));
                }
                check_weights(name, &node.op)?;
                check_area(name, c, &out)?;
            }
            Op::MaxPool(p) | Op::AvgPool(p) => {
                arity(1)?;
                let in_shape = shape_of(node.inputs[0]);
                if p.output_shape(&in_shape).as_ref() != Some(&out) {
                    return invalid(format!(
                        "node {name:?}: {} kernel {:?} stride {:?} padding {:?} applied to {in_shape:?} cannot produce {out:?}",
                        node.op.kind(), p.kernel, p.stride, p.padding
                    ));
                }
            }
            Op::Flatten => {
                arity(1)?;
                let in_len: usize = shape_of(node.inputs[0]).iter().product();
                if out != vec![in_len] {
                    return invalid(format!(
                        "node {name:?}: Flatten of {in_len} values cannot produce {out:?}"
                    ));
                }
            }
            Op::Relu => {
                arity(1)?;
                if shape_of(node.inputs[0]) != out {
                    return invalid(format!("node {name:?}: Relu changes shape"));
                }
            }
            Op::Add => {
                if node.inputs.len() < 2 {
                    return invalid(format!("node {name:?}: Add needs at least two inputs"));
                }
                if node.inputs.iter().any(|&i| shape_of(i) != out) {
                    return invalid(format!(
                        "node {name:?}: Add inputs must all have shape {out:?}"
                    ));
                }
            }
            Op::Concat => {
                if node.inputs.is_empty() {
                    return invalid(format!("node {name:?}: Concat needs inputs"));
                }
                let total: usize = node
                    .inputs
                    .iter()
                    .map(|&i| shape_of(i).iter().product::<usize>())
                    .sum();
                if out != vec![total] {
                    return invalid(format!(
                        "node {name:?}: Concat of {total} values cannot produce {out:?}"
                    ));
                }
            }
        }
        Ok(())
    }
}

/// One area per output channel, each inside the `[OH, OW, C]` output map.
fn check_area(name: &str, c: &super::Conv2d, out: &[usize]) -> Result<(), IrError> {
    let Some(areas) = &c.area else {
        return Ok(());
    };
    if areas.len() != c.out_channels {
        return invalid(format!(
            "node {name:?}: {} conv areas for {} output channels",
            areas.len(),
            c.out_channels
        ));
    }
    let (h, w) = (out[0], out[1]);
    if let Some((o, a)) = areas
        .iter()
        .enumerate()
        .find(|(_, a)| a.y0 > a.y1 || a.x0 > a.x1 || a.y1 > h || a.x1 > w)
    {
        return invalid(format!(
            "node {name:?}: channel {o}'s area rows {}..{} columns {}..{} is not inside its {h}x{w} output",
            a.y0, a.y1, a.x0, a.x1
        ));
    }
    Ok(())
}

/// Parameter lengths, the dormant-is-zero invariant and the int8 range of a weighted node.
fn check_weights(name: &str, op: &Op) -> Result<(), IrError> {
    let Some(w) = op.weights() else {
        return Ok(());
    };
    let fan = match op {
        Op::Dense(d) => d.in_features,
        Op::Conv2d(c) => c.fan_in(),
        _ => unreachable!("weights() is Some only for Dense and Conv2d"),
    };
    let n_w = fan * w.out_channels;
    if w.weight.len() != n_w || w.mask.len() != n_w || w.bias.len() != w.out_channels {
        return invalid(format!(
            "node {name:?}: weight/mask/bias lengths {}/{}/{} do not match {} channels x {fan}",
            w.weight.len(),
            w.mask.len(),
            w.bias.len(),
            w.out_channels,
        ));
    }
    if let Some(i) = (0..n_w).find(|&i| !w.mask.get(i) && w.weight[i] != 0.0) {
        return invalid(format!(
            "node {name:?}: dormant connection {i} has nonzero weight {}",
            w.weight[i]
        ));
    }
    if let Some(q) = op.weight_quant() {
        if q.weight_q.len() != n_w
            || q.bias_q.len() != w.out_channels
            || q.weight_scale.len() != w.out_channels
        {
            return invalid(format!(
                "node {name:?}: quantized parameter lengths are wrong"
            ));
        }
        if q.weight_q.contains(&i8::MIN) {
            return invalid(format!(
                "node {name:?}: int8 weights must lie in [-127, 127] (symmetric)"
            ));
        }
    }
    Ok(())
}
