//! The intermediate representation: the one contract between every stage of the compiler.
//!
//! A model is a DAG of tensors and nodes. Nodes are stored in topological order (checked by
//! [`Model::validate`]); a node may read any earlier tensor, so multi-input ops (Add, Concat) and
//! SCANN-style cross-layer connections are expressible. Shapes exclude the batch dimension and
//! images are channels-last (HWC), the layout CMSIS-NN and TFLite Micro use.
//!
//! On disk the IR is JSON (`serde`), versioned by [`IR_VERSION`]; a reader refuses any other version
//! rather than guessing.

mod mask;
mod stats;
mod validate;

pub use mask::Mask;
pub use stats::{ModelStats, NodeStats};
pub use validate::IrError;

use serde::{Deserialize, Serialize};
use std::path::Path;

/// Bumped whenever the meaning of a field changes; readers refuse other versions.
pub const IR_VERSION: u32 = 1;

/// Index into [`Model::tensors`].
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[serde(transparent)]
pub struct TensorId(pub usize);

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Model {
    pub ir_version: u32,
    pub name: String,
    pub tensors: Vec<Tensor>,
    /// Topologically ordered.
    pub nodes: Vec<Node>,
    pub inputs: Vec<TensorId>,
    pub outputs: Vec<TensorId>,
    /// How a raw sample (pixel values, sensor counts, CSV features) becomes the float input.
    pub preprocess: Preprocess,
    pub class_names: Vec<String>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Tensor {
    pub name: String,
    /// Without the batch dimension; channels-last for images.
    pub shape: Vec<usize>,
    /// Present once the model is quantized: int8, asymmetric, per tensor.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quant: Option<ActQuant>,
}

impl Tensor {
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// `real = scale * (q - zero_point)`, q in [-128, 127].
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq)]
pub struct ActQuant {
    pub scale: f32,
    pub zero_point: i32,
}

/// `x = raw * scale[i] + offset[i]`; a length-1 vector applies to every feature.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Preprocess {
    pub scale: Vec<f32>,
    pub offset: Vec<f32>,
}

impl Preprocess {
    pub fn identity() -> Self {
        Preprocess {
            scale: vec![1.0],
            offset: vec![0.0],
        }
    }
    pub fn apply(&self, raw: &[f32]) -> Vec<f32> {
        raw.iter()
            .enumerate()
            .map(|(i, &r)| r * pick(&self.scale, i) + pick(&self.offset, i))
            .collect()
    }
}

fn pick(v: &[f32], i: usize) -> f32 {
    if v.len() == 1 {
        v[0]
    } else {
        v[i]
    }
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Node {
    pub name: String,
    pub op: Op,
    pub inputs: Vec<TensorId>,
    pub output: TensorId,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(tag = "type")]
pub enum Op {
    /// Fully connected: `y[o] = act(b[o] + sum_i W[o][i] * x[i])`.
    Dense(Dense),
    /// Standalone ReLU (one input, same shape). Quantized, its output shares its input's parameters.
    Relu,
    /// Element-wise sum of two or more tensors of the same shape (residual connections).
    Add,
    /// Concatenation of flat tensors along their only axis (cross-layer connections).
    Concat,
}

impl Op {
    pub fn kind(&self) -> &'static str {
        match self {
            Op::Dense(_) => "Dense",
            Op::Relu => "Relu",
            Op::Add => "Add",
            Op::Concat => "Concat",
        }
    }
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Activation {
    #[default]
    None,
    Relu,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Dense {
    pub in_features: usize,
    pub out_features: usize,
    /// Row-major `[out_features][in_features]` (the layout CMSIS-NN's FC kernels read).
    pub weight: Vec<f32>,
    pub bias: Vec<f32>,
    /// Which connections exist. A dormant connection (false) has weight exactly 0.
    pub mask: Mask,
    /// Fused activation applied to the output.
    #[serde(default)]
    pub activation: Activation,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quant: Option<DenseQuant>,
}

impl Dense {
    /// A dense layer with every connection active.
    pub fn new(
        in_features: usize,
        out_features: usize,
        weight: Vec<f32>,
        bias: Vec<f32>,
        activation: Activation,
    ) -> Self {
        Dense {
            in_features,
            out_features,
            mask: Mask::full(weight.len()),
            weight,
            bias,
            activation,
            quant: None,
        }
    }
    pub fn nonzero_weights(&self) -> usize {
        self.mask.count_ones()
    }
}

/// Int8 weights symmetric per output channel, int32 bias with scale `s_in * s_w[o]`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct DenseQuant {
    /// One per output channel; 0 for a channel without any weight.
    pub weight_scale: Vec<f32>,
    /// Row-major like [`Dense::weight`], in [-127, 127].
    pub weight_q: Vec<i8>,
    pub bias_q: Vec<i32>,
}

impl Model {
    /// A model with one input tensor of `input_shape` and no nodes yet (the builder's start).
    pub fn with_input(
        name: impl Into<String>,
        input_shape: Vec<usize>,
        preprocess: Preprocess,
        class_names: Vec<String>,
    ) -> Model {
        let mut m = Model {
            ir_version: IR_VERSION,
            name: name.into(),
            tensors: vec![],
            nodes: vec![],
            inputs: vec![],
            outputs: vec![],
            preprocess,
            class_names,
        };
        let x = m.add_tensor("input", input_shape);
        m.inputs.push(x);
        m
    }

    pub fn tensor(&self, id: TensorId) -> &Tensor {
        &self.tensors[id.0]
    }

    pub fn input_len(&self) -> usize {
        self.tensor(self.inputs[0]).len()
    }

    pub fn output_len(&self) -> usize {
        self.tensor(self.outputs[0]).len()
    }

    /// True when every tensor and every weighted node carries quantization parameters.
    pub fn is_quantized(&self) -> bool {
        self.tensors.iter().all(|t| t.quant.is_some())
            && self.nodes.iter().all(|n| match &n.op {
                Op::Dense(d) => d.quant.is_some(),
                _ => true,
            })
    }

    /// Adds a tensor and returns its id.
    pub fn add_tensor(&mut self, name: impl Into<String>, shape: Vec<usize>) -> TensorId {
        self.tensors.push(Tensor {
            name: name.into(),
            shape,
            quant: None,
        });
        TensorId(self.tensors.len() - 1)
    }

    /// Adds a node producing a new tensor of `shape`; returns the new tensor.
    pub fn add_node(
        &mut self,
        name: impl Into<String>,
        op: Op,
        inputs: Vec<TensorId>,
        shape: Vec<usize>,
    ) -> TensorId {
        let name = name.into();
        let output = self.add_tensor(format!("{name}.out"), shape);
        self.nodes.push(Node {
            name,
            op,
            inputs,
            output,
        });
        output
    }

    /// Reads and validates a model file.
    pub fn load(path: &Path) -> Result<Model, IrError> {
        let text = std::fs::read_to_string(path).map_err(|e| IrError::Io {
            path: path.display().to_string(),
            msg: e.to_string(),
        })?;
        let model = Self::from_json(&text).map_err(|e| e.in_file(path))?;
        Ok(model)
    }

    pub fn from_json(text: &str) -> Result<Model, IrError> {
        // Look at the version first so an old or future file gets a version error,
        // not a confusing field error.
        let raw: serde_json::Value =
            serde_json::from_str(text).map_err(|e| IrError::Parse(e.to_string()))?;
        let version = raw.get("ir_version").and_then(|v| v.as_u64());
        if version != Some(IR_VERSION as u64) {
            return Err(IrError::Version {
                found: version.map(|v| v.to_string()).unwrap_or("none".into()),
                expected: IR_VERSION,
            });
        }
        let model: Model =
            serde_json::from_value(raw).map_err(|e| IrError::Parse(e.to_string()))?;
        model.validate()?;
        Ok(model)
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("IR serialization cannot fail")
    }

    /// Validates, then writes atomically (temp file + rename) so no partial file is left behind.
    pub fn save(&self, path: &Path) -> Result<(), IrError> {
        self.validate()?;
        crate::util::write_atomic(path, self.to_json().as_bytes()).map_err(|e| IrError::Io {
            path: path.display().to_string(),
            msg: e.to_string(),
        })
    }
}

#[cfg(test)]
pub(crate) mod tests;
