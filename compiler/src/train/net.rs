//! The IR as a burn module: one trainable weight and bias per Dense and Conv2d node, evaluated
//! by walking the IR's nodes, so any DAG the IR can express (skip connections, concatenations,
//! convolutions, pools) trains as is.
//!
//! Layouts: burn's convolutions and pools work on NCHW, the IR on HWC. An `[H, W, C]` tensor is
//! kept as NCHW inside the net (one permute where a flat input becomes an image) and permuted
//! back to NHWC wherever it is flattened (Flatten, a Dense reading an image, Concat, the model
//! output), so a Dense after Flatten reads the HWC order its IR weights assume.

use crate::ir::{Activation, Conv2d, Model, Op, Pool, TensorId};
use burn::module::{Module, Param};
use burn::tensor::activation::relu;
use burn::tensor::module::{avg_pool2d, conv2d, max_pool2d};
use burn::tensor::ops::{AvgPoolOptions, ConvOptions, MaxPoolOptions};
use burn::tensor::{Device, Tensor, TensorData};

#[derive(Module, Debug)]
pub struct Net {
    /// One per Dense node in node order, burn's layout `[in, out]` (the IR's `[out][in]`
    /// transposed).
    pub dense: Vec<Param<Tensor<2>>>,
    /// One per Conv2d node in node order, burn's layout `[out, in/groups, kh, kw]` (OIHW; the
    /// IR stores OHWI).
    pub conv: Vec<Param<Tensor<4>>>,
    /// One per weighted (Dense or Conv2d) node in node order.
    pub biases: Vec<Param<Tensor<1>>>,
}

/// A per-layer tensor in the net's weight layout: masks and gradient probes.
#[derive(Clone, Debug)]
pub enum LayerTensor {
    /// `[in, out]`.
    Dense(Tensor<2>),
    /// `[out, in/groups, kh, kw]`.
    Conv(Tensor<4>),
}

/// Constant masks (not parameters), one per weighted node (None when every connection is
/// active): the effective weight is `W ⊙ M`, so dormant connections get a zero gradient.
///
/// This is also what keeps the optimizer off dormant weights: [`super::train`] starts a fresh
/// Adam for every call, whose moments at a position that only ever saw a zero gradient stay
/// zero, so its update there is exactly zero. Growth and pruning change masks only between
/// `train` calls, so every grown or pruned position starts the next call with reset moments.
///
/// `areas` holds, per weighted node, the partial-area gate of a convolution that has areas
/// (`[1, C, OH, OW]`, 1 inside a channel's area, 0 outside), multiplied into its activated
/// output: the IR's "0 outside the area", with no gradient reaching the weights from there.
pub struct Masks {
    pub weights: Vec<Option<LayerTensor>>,
    pub areas: Vec<Option<Tensor<4>>>,
}

/// The `[1, C, OH, OW]` 0/1 gate of a convolution's areas (None when it has none).
fn area_gate(c: &Conv2d, out_shape: &[usize], device: &Device) -> Option<Tensor<4>> {
    let (oh, ow) = (out_shape[0], out_shape[1]);
    let g = c.area_mask_chw(oh, ow)?;
    Some(Tensor::from_data(
        TensorData::new(g, [1, c.out_channels, oh, ow]),
        device,
    ))
}

/// An activation inside the net: flat `[n, len]` or an image `[n, C, H, W]`.
#[derive(Clone)]
enum Value {
    Flat(Tensor<2>),
    Image(Tensor<4>),
}

impl Value {
    /// `[n, len]` with images in the IR's HWC order.
    fn flat(self) -> Tensor<2> {
        match self {
            Value::Flat(t) => t,
            Value::Image(t) => {
                let [n, c, h, w] = t.dims();
                t.permute([0, 2, 3, 1]).reshape([n, h * w * c])
            }
        }
    }

    /// `[n, C, H, W]` of an IR tensor of shape `[H, W, C]`.
    fn image(self, shape: &[usize]) -> Tensor<4> {
        match self {
            Value::Image(t) => t,
            Value::Flat(t) => {
                let n = t.dims()[0];
                t.reshape([n, shape[0], shape[1], shape[2]])
                    .permute([0, 3, 1, 2])
            }
        }
    }

    fn map(
        self,
        f2: impl FnOnce(Tensor<2>) -> Tensor<2>,
        f4: impl FnOnce(Tensor<4>) -> Tensor<4>,
    ) -> Value {
        match self {
            Value::Flat(t) => Value::Flat(f2(t)),
            Value::Image(t) => Value::Image(f4(t)),
        }
    }
}

fn activate<const D: usize>(y: Tensor<D>, act: Activation) -> Tensor<D> {
    match act {
        Activation::Relu => relu(y),
        Activation::Relu6 => y.clamp(0.0, 6.0),
        Activation::None => y,
    }
}

/// `[out][in]` row-major -> `[in][out]` row-major (and back, with the sizes swapped).
fn transpose(v: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    let mut t = vec![0.0; v.len()];
    for r in 0..rows {
        for c in 0..cols {
            t[c * rows + r] = v[r * cols + c];
        }
    }
    t
}

/// IR filter layout OHWI -> burn's OIHW.
pub(crate) fn ohwi_to_oihw(v: &[f32], c: &Conv2d) -> Vec<f32> {
    let ([kh, kw], cpg) = (c.kernel, c.channels_per_group());
    let mut t = vec![0.0; v.len()];
    for o in 0..c.out_channels {
        for y in 0..kh {
            for x in 0..kw {
                for i in 0..cpg {
                    t[((o * cpg + i) * kh + y) * kw + x] = v[((o * kh + y) * kw + x) * cpg + i];
                }
            }
        }
    }
    t
}

/// burn's OIHW -> the IR's OHWI.
pub(crate) fn oihw_to_ohwi(v: &[f32], c: &Conv2d) -> Vec<f32> {
    let ([kh, kw], cpg) = (c.kernel, c.channels_per_group());
    let mut t = vec![0.0; v.len()];
    for o in 0..c.out_channels {
        for y in 0..kh {
            for x in 0..kw {
                for i in 0..cpg {
                    t[((o * kh + y) * kw + x) * cpg + i] = v[((o * cpg + i) * kh + y) * kw + x];
                }
            }
        }
    }
    t
}

fn conv_dims(c: &Conv2d) -> [usize; 4] {
    [
        c.out_channels,
        c.channels_per_group(),
        c.kernel[0],
        c.kernel[1],
    ]
}

/// IR-layout weights (or mask values) of a weighted op in the net's layout.
fn to_net_layout(op: &Op, v: &[f32], device: &Device) -> LayerTensor {
    match op {
        Op::Dense(d) => {
            let (i, o) = (d.in_features, d.out_features);
            LayerTensor::Dense(Tensor::from_data(
                TensorData::new(transpose(v, o, i), [i, o]),
                device,
            ))
        }
        Op::Conv2d(c) => LayerTensor::Conv(Tensor::from_data(
            TensorData::new(ohwi_to_oihw(v, c), conv_dims(c)),
            device,
        )),
        other => unreachable!("{} has no weights", other.kind()),
    }
}

/// Net-layout values of a weighted op back in the IR's layout.
pub(crate) fn to_ir_layout(op: &Op, v: &[f32]) -> Vec<f32> {
    match op {
        Op::Dense(d) => transpose(v, d.in_features, d.out_features),
        Op::Conv2d(c) => oihw_to_ohwi(v, c),
        other => unreachable!("{} has no weights", other.kind()),
    }
}

fn f32s<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data().try_to_vec::<f32>().expect("f32 tensor")
}

/// `[(top, bottom), (left, right)]` of the IR's `[top, left, bottom, right]`.
fn pad_pairs(p: [usize; 4]) -> [(usize, usize); 2] {
    [(p[0], p[2]), (p[1], p[3])]
}

fn max_pool(x: Tensor<4>, p: &Pool) -> Tensor<4> {
    // burn pads max pooling with -inf, so padded positions never win: the IR's "skipped".
    let opts = MaxPoolOptions::new(p.kernel)
        .with_stride(p.stride)
        .with_padding_pairs(pad_pairs(p.padding));
    max_pool2d(x, opts)
}

fn avg_pool(x: Tensor<4>, p: &Pool) -> Tensor<4> {
    let opts = AvgPoolOptions::new(p.kernel)
        .with_stride(p.stride)
        .with_padding_pairs(pad_pairs(p.padding))
        .with_count_include_pad(false);
    avg_pool2d(x, opts)
}

impl Net {
    pub fn from_model(model: &Model, device: &Device) -> (Net, Masks) {
        let mut dense = Vec::new();
        let mut conv = Vec::new();
        let mut biases = Vec::new();
        let mut masks = Vec::new();
        let mut areas = Vec::new();
        for node in &model.nodes {
            let Some(lw) = node.op.weights() else {
                continue;
            };
            match to_net_layout(&node.op, lw.weight, device) {
                LayerTensor::Dense(t) => dense.push(Param::from_tensor(t)),
                LayerTensor::Conv(t) => conv.push(Param::from_tensor(t)),
            }
            let b = TensorData::new(lw.bias.to_vec(), [lw.out_channels]);
            biases.push(Param::from_tensor(Tensor::from_data(b, device)));
            let full = lw.mask.count_ones() == lw.mask.len();
            masks.push((!full).then(|| {
                let m: Vec<f32> = lw.mask.as_slice().iter().map(|&b| b as u8 as f32).collect();
                to_net_layout(&node.op, &m, device)
            }));
            areas.push(match &node.op {
                Op::Conv2d(c) => area_gate(c, &model.tensor(node.output).shape, device),
                _ => None,
            });
        }
        (
            Net {
                dense,
                conv,
                biases,
            },
            Masks {
                weights: masks,
                areas,
            },
        )
    }

    /// Writes the trained parameters back into the IR in its layouts (dormant weights stay
    /// exactly zero).
    pub fn write_back(&self, model: &mut Model) {
        let (mut kd, mut kc, mut k) = (0, 0, 0);
        for node in &mut model.nodes {
            let w = match &node.op {
                Op::Dense(_) => {
                    kd += 1;
                    f32s(self.dense[kd - 1].val())
                }
                Op::Conv2d(_) => {
                    kc += 1;
                    f32s(self.conv[kc - 1].val())
                }
                _ => continue,
            };
            let w = to_ir_layout(&node.op, &w);
            let bias = f32s(self.biases[k].val());
            k += 1;
            let lw = node.op.weights_mut().expect("weighted op");
            *lw.weight = w;
            for (j, wv) in lw.weight.iter_mut().enumerate() {
                if !lw.mask.get(j) {
                    *wv = 0.0;
                }
            }
            *lw.bias = bias;
        }
    }

    /// Logits for a batch `[n, input_len]` (inputs flat in the IR's memory order).
    pub fn forward(&self, model: &Model, masks: &Masks, x: Tensor<2>) -> Tensor<2> {
        self.forward_probed(model, masks, x, None)
    }

    /// As [`Net::forward`], with `probes[k]` (zeros in the net's layout that require a
    /// gradient) added to the k-th weighted node's effective weight: the gradient at a probe
    /// is the dense ∂L/∂W, dormant positions included, which is what connection growth ranks
    /// (the masked weights' own gradient is zero there).
    pub fn forward_probed(
        &self,
        model: &Model,
        masks: &Masks,
        x: Tensor<2>,
        probes: Option<&[LayerTensor]>,
    ) -> Tensor<2> {
        self.forward_gated(model, masks, x, probes, None)
    }

    /// As [`Net::forward_probed`], with `gates[k]` (ones of the k-th weighted node's conv
    /// output shape, `[1, C, OH, OW]`, requiring a gradient) multiplied into that conv's
    /// output: the gradient at a gate is `Σ_batch y·∂L/∂y` per position, the first-order loss
    /// change of zeroing it, which partial-area pruning ranks positions by.
    pub fn forward_gated(
        &self,
        model: &Model,
        masks: &Masks,
        x: Tensor<2>,
        probes: Option<&[LayerTensor]>,
        gates: Option<&[Option<Tensor<4>>]>,
    ) -> Tensor<2> {
        let mut values: Vec<Option<Value>> = vec![None; model.tensors.len()];
        values[model.inputs[0].0] = Some(Value::Flat(x));
        let get = |values: &Vec<Option<Value>>, id: TensorId| {
            values[id.0]
                .clone()
                .expect("IR is validated: inputs precede use")
        };
        let (mut kd, mut kc, mut k) = (0, 0, 0);
        for node in &model.nodes {
            let input = get(&values, node.inputs[0]);
            let out = match &node.op {
                Op::Dense(d) => {
                    let mut w = self.dense[kd].val();
                    kd += 1;
                    if let Some(LayerTensor::Dense(m)) = &masks.weights[k] {
                        w = w * m.clone();
                    }
                    if let Some(LayerTensor::Dense(p)) = probes.map(|p| &p[k]) {
                        w = w + p.clone();
                    }
                    let y = input.flat().matmul(w) + self.biases[k].val().unsqueeze::<2>();
                    k += 1;
                    Value::Flat(activate(y, d.activation))
                }
                Op::Conv2d(c) => {
                    let mut w = self.conv[kc].val();
                    kc += 1;
                    if let Some(LayerTensor::Conv(m)) = &masks.weights[k] {
                        w = w * m.clone();
                    }
                    if let Some(LayerTensor::Conv(p)) = probes.map(|p| &p[k]) {
                        w = w + p.clone();
                    }
                    let x = input.image(&model.tensor(node.inputs[0]).shape);
                    let opts = ConvOptions::new_with_padding(
                        c.stride,
                        pad_pairs(c.padding),
                        [1, 1],
                        c.groups,
                    );
                    let mut y =
                        activate(conv2d(x, w, Some(self.biases[k].val()), opts), c.activation);
                    if let Some(a) = &masks.areas[k] {
                        y = y * a.clone();
                    }
                    if let Some(Some(g)) = gates.map(|g| &g[k]) {
                        y = y * g.clone();
                    }
                    k += 1;
                    Value::Image(y)
                }
                Op::MaxPool(p) => {
                    let x = input.image(&model.tensor(node.inputs[0]).shape);
                    Value::Image(max_pool(x, p))
                }
                Op::AvgPool(p) => {
                    let x = input.image(&model.tensor(node.inputs[0]).shape);
                    Value::Image(avg_pool(x, p))
                }
                Op::Flatten => Value::Flat(input.flat()),
                Op::Relu => input.map(relu, relu),
                Op::Add => node.inputs[1..].iter().fold(input, |acc, &id| {
                    match (acc, get(&values, id)) {
                        (Value::Image(a), Value::Image(b)) => Value::Image(a + b),
                        // Same IR shape, so flattening both gives the same HWC order.
                        (a, b) => Value::Flat(a.flat() + b.flat()),
                    }
                }),
                Op::Concat => Value::Flat(Tensor::cat(
                    node.inputs
                        .iter()
                        .map(|&id| get(&values, id).flat())
                        .collect(),
                    1,
                )),
            };
            values[node.output.0] = Some(out);
        }
        get(&values, model.outputs[0]).flat()
    }
}
