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

/// Bumped whenever the meaning of a field changes or a field is added that an older reader
/// would ignore to wrong effect; readers refuse versions they do not know.
/// Version 2 added [`Conv2d::area`] (partial-area convolution).
pub const IR_VERSION: u32 = 2;

/// Older versions this build still reads: each is a subset of the current one (version 1
/// has no conv areas), so such a file loads unchanged and is written back as the current version.
const IR_VERSIONS_READ: [u32; 1] = [1];

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
    /// 2-D convolution over an `[H, W, C]` tensor (grouped: 1 group or depthwise).
    Conv2d(Conv2d),
    /// Max over each window. Quantized, the output shares the input's parameters.
    MaxPool(Pool),
    /// Mean over the valid (non-padding) elements of each window, rounded half away from zero
    /// when quantized (TFLite's integer average pool); the output shares the input's parameters.
    AvgPool(Pool),
    /// `[H, W, C]` to `[H*W*C]` in memory order (channels fastest): a relabelling, no data moves.
    /// Quantized, the output shares the input's parameters.
    Flatten,
}

impl Op {
    pub fn kind(&self) -> &'static str {
        match self {
            Op::Dense(_) => "Dense",
            Op::Relu => "Relu",
            Op::Add => "Add",
            Op::Concat => "Concat",
            Op::Conv2d(c) if c.is_depthwise() => "DWConv2d",
            Op::Conv2d(_) => "Conv2d",
            Op::MaxPool(_) => "MaxPool",
            Op::AvgPool(_) => "AvgPool",
            Op::Flatten => "Flatten",
        }
    }

    /// The trainable, prunable weights of a Dense or Conv2d node.
    pub fn weights(&self) -> Option<LayerWeights<'_>> {
        match self {
            Op::Dense(d) => Some(LayerWeights {
                weight: &d.weight,
                bias: &d.bias,
                mask: &d.mask,
                out_channels: d.out_features,
            }),
            Op::Conv2d(c) => Some(LayerWeights {
                weight: &c.weight,
                bias: &c.bias,
                mask: &c.mask,
                out_channels: c.out_channels,
            }),
            _ => None,
        }
    }

    /// Mutable view of [`Op::weights`]. Callers keep the invariant that a dormant connection
    /// (mask off) has weight exactly 0.
    pub fn weights_mut(&mut self) -> Option<LayerWeightsMut<'_>> {
        match self {
            Op::Dense(d) => Some(LayerWeightsMut {
                weight: &mut d.weight,
                bias: &mut d.bias,
                mask: &mut d.mask,
                out_channels: d.out_features,
            }),
            Op::Conv2d(c) => Some(LayerWeightsMut {
                weight: &mut c.weight,
                bias: &mut c.bias,
                mask: &mut c.mask,
                out_channels: c.out_channels,
            }),
            _ => None,
        }
    }

    /// Per-output-channel int8 parameters of a quantized Dense or Conv2d node.
    pub fn weight_quant(&self) -> Option<&WeightQuant> {
        match self {
            Op::Dense(d) => d.quant.as_ref(),
            Op::Conv2d(c) => c.quant.as_ref(),
            _ => None,
        }
    }

    /// The fused activation of a Dense or Conv2d node.
    pub fn activation(&self) -> Activation {
        match self {
            Op::Dense(d) => d.activation,
            Op::Conv2d(c) => c.activation,
            _ => Activation::None,
        }
    }
}

/// Weights of a Dense or Conv2d layer seen uniformly: `weight` is `[out_channels][fan]`
/// row-major in both (a conv filter is `[kh][kw][in/groups]`), so pruning and growth treat
/// a filter exactly like a neuron's row.
pub struct LayerWeights<'a> {
    pub weight: &'a [f32],
    pub bias: &'a [f32],
    pub mask: &'a Mask,
    pub out_channels: usize,
}

/// Mutable [`LayerWeights`].
pub struct LayerWeightsMut<'a> {
    pub weight: &'a mut Vec<f32>,
    pub bias: &'a mut Vec<f32>,
    pub mask: &'a mut Mask,
    pub out_channels: usize,
}

impl LayerWeights<'_> {
    /// Weights per output channel.
    pub fn fan(&self) -> usize {
        self.weight.len() / self.out_channels.max(1)
    }
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Activation {
    #[default]
    None,
    Relu,
    /// `min(max(x, 0), 6)` (MobileNet's activation); quantized, a clamp to `[q(0), q(6)]`.
    Relu6,
}

impl Activation {
    /// The float function.
    pub fn apply(self, x: f32) -> f32 {
        match self {
            Activation::None => x,
            Activation::Relu => x.max(0.0),
            Activation::Relu6 => x.clamp(0.0, 6.0),
        }
    }
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
    pub quant: Option<WeightQuant>,
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

/// 2-D convolution, TFLite/CMSIS-NN layout: input `[H, W, in_channels]`, output
/// `[OH, OW, out_channels]` with `OH = (H + pad_top + pad_bottom - kh) / stride_h + 1`
/// (see [`conv_out_len`]); padding reads as real 0.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Conv2d {
    pub in_channels: usize,
    pub out_channels: usize,
    /// `[kh, kw]`.
    pub kernel: [usize; 2],
    /// `[stride_h, stride_w]`.
    pub stride: [usize; 2],
    /// `[top, left, bottom, right]`.
    pub padding: [usize; 4],
    /// 1 (ordinary convolution) or `in_channels` (depthwise: output channel `o` reads input
    /// channel `o / (out_channels / in_channels)`).
    #[serde(default = "one")]
    pub groups: usize,
    /// `[out_channels][kh][kw][in_channels / groups]` row-major (OHWI, TFLite's filter layout).
    pub weight: Vec<f32>,
    pub bias: Vec<f32>,
    /// Which connections exist. A dormant connection (false) has weight exactly 0.
    pub mask: Mask,
    #[serde(default)]
    pub activation: Activation,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quant: Option<WeightQuant>,
    /// NeST's partial-area convolution: per output channel, the rectangle of output positions
    /// it computes; elsewhere that channel's output is exactly 0 (after the activation, so a
    /// quantized model writes the output zero point and does no arithmetic there). None: every
    /// channel computes its whole map.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub area: Option<Vec<Area>>,
}

/// Output rows `y0..y1` and columns `x0..x1` (half-open) of one channel of a convolution.
/// The default is an empty rectangle.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Area {
    pub y0: usize,
    pub x0: usize,
    pub y1: usize,
    pub x1: usize,
}

impl Area {
    /// The whole `h x w` map.
    pub fn full(h: usize, w: usize) -> Area {
        Area {
            y0: 0,
            x0: 0,
            y1: h,
            x1: w,
        }
    }
    pub fn contains(&self, y: usize, x: usize) -> bool {
        (self.y0..self.y1).contains(&y) && (self.x0..self.x1).contains(&x)
    }
    /// Positions inside (0 when empty).
    pub fn len(&self) -> usize {
        self.y1.saturating_sub(self.y0) * self.x1.saturating_sub(self.x0)
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn one() -> usize {
    1
}

impl Conv2d {
    /// A convolution with every connection active.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        in_channels: usize,
        out_channels: usize,
        kernel: [usize; 2],
        stride: [usize; 2],
        padding: [usize; 4],
        groups: usize,
        weight: Vec<f32>,
        bias: Vec<f32>,
        activation: Activation,
    ) -> Self {
        Conv2d {
            in_channels,
            out_channels,
            kernel,
            stride,
            padding,
            groups,
            mask: Mask::full(weight.len()),
            weight,
            bias,
            activation,
            quant: None,
            area: None,
        }
    }
    /// The area output channel `o` computes on an `h x w` output map.
    pub fn area_of(&self, o: usize, h: usize, w: usize) -> Area {
        match &self.area {
            Some(a) => a[o],
            None => Area::full(h, w),
        }
    }
    /// Output positions computed over all channels of an `h x w` map (`C·h·w` without areas).
    pub fn positions_inside(&self, h: usize, w: usize) -> usize {
        (0..self.out_channels)
            .map(|o| self.area_of(o, h, w).len())
            .sum()
    }
    /// The areas as a channel-major `[C][OH][OW]` 0/1 mask (the NCHW layout burn and ONNX
    /// use), or None when every channel computes its whole map.
    pub fn area_mask_chw(&self, h: usize, w: usize) -> Option<Vec<f32>> {
        self.area.as_ref()?;
        let mut mask = vec![0f32; self.out_channels * h * w];
        for o in 0..self.out_channels {
            let a = self.area_of(o, h, w);
            for y in a.y0..a.y1 {
                mask[(o * h + y) * w + a.x0..(o * h + y) * w + a.x1].fill(1.0);
            }
        }
        Some(mask)
    }
    pub fn is_depthwise(&self) -> bool {
        self.groups > 1
    }
    /// Input channels each filter reads.
    pub fn channels_per_group(&self) -> usize {
        self.in_channels / self.groups.max(1)
    }
    /// Weights per filter: `kh * kw * in_channels / groups`.
    pub fn fan_in(&self) -> usize {
        self.kernel[0] * self.kernel[1] * self.channels_per_group()
    }
    /// Output `[OH, OW, out_channels]` for an input `[H, W, in_channels]`, or None when the
    /// window does not fit.
    pub fn output_shape(&self, in_h: usize, in_w: usize) -> Option<Vec<usize>> {
        let oh = conv_out_len(
            in_h,
            self.kernel[0],
            self.stride[0],
            self.padding[0],
            self.padding[2],
        )?;
        let ow = conv_out_len(
            in_w,
            self.kernel[1],
            self.stride[1],
            self.padding[1],
            self.padding[3],
        )?;
        Some(vec![oh, ow, self.out_channels])
    }
    pub fn nonzero_weights(&self) -> usize {
        self.mask.count_ones()
    }
}

/// A pooling window: no weights.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq)]
pub struct Pool {
    /// `[kh, kw]`.
    pub kernel: [usize; 2],
    /// `[stride_h, stride_w]`.
    pub stride: [usize; 2],
    /// `[top, left, bottom, right]`; padded positions are skipped (not counted by AvgPool).
    #[serde(default)]
    pub padding: [usize; 4],
}

impl Pool {
    /// A `k x k` window with stride `k` and no padding (LeNet's pooling).
    pub fn square(k: usize) -> Self {
        Pool {
            kernel: [k, k],
            stride: [k, k],
            padding: [0; 4],
        }
    }
    /// Output `[OH, OW, C]` for an input `[H, W, C]`.
    pub fn output_shape(&self, in_shape: &[usize]) -> Option<Vec<usize>> {
        let [h, w, c] = *in_shape else { return None };
        let oh = conv_out_len(
            h,
            self.kernel[0],
            self.stride[0],
            self.padding[0],
            self.padding[2],
        )?;
        let ow = conv_out_len(
            w,
            self.kernel[1],
            self.stride[1],
            self.padding[1],
            self.padding[3],
        )?;
        Some(vec![oh, ow, c])
    }
}

/// Output length of a sliding window: `(len + pad_before + pad_after - k) / stride + 1`, or
/// None when the window is larger than the padded input or a size is zero.
pub fn conv_out_len(
    len: usize,
    k: usize,
    stride: usize,
    pad_before: usize,
    pad_after: usize,
) -> Option<usize> {
    let padded = len + pad_before + pad_after;
    if k == 0 || stride == 0 || len == 0 || padded < k || pad_before >= k || pad_after >= k {
        return None;
    }
    Some((padded - k) / stride + 1)
}

/// Int8 weights symmetric per output channel, int32 bias with scale `s_in * s_w[o]`
/// (Dense and Conv2d alike).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct WeightQuant {
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
            && self
                .nodes
                .iter()
                .all(|n| n.op.weights().is_none() || n.op.weight_quant().is_some())
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
        let known = version.is_some_and(|v| {
            v == IR_VERSION as u64 || IR_VERSIONS_READ.iter().any(|&old| v == old as u64)
        });
        if !known {
            return Err(IrError::Version {
                found: version.map(|v| v.to_string()).unwrap_or("none".into()),
                expected: IR_VERSION,
            });
        }
        let mut model: Model =
            serde_json::from_value(raw).map_err(|e| IrError::Parse(e.to_string()))?;
        model.ir_version = IR_VERSION;
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
