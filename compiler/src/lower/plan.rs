//! Checks that a model can be lowered, places every tensor (the caller's input or output, or a
//! planned offset in the arena) and computes the integer parameters the generated code stores.

use super::memory::{self, Buffer, MemoryPlan};
use super::sparse::{self, Choice};
use super::{LayerInfo, LowerError, Storage, StoragePolicy};
use crate::ir::{ActQuant, Activation, Model, Op, TensorId};
use crate::quant::elementwise::{add_params, AddParams, RequantParams};
use crate::quant::{dense_requant, ActRange};

/// Where a tensor lives while `infer` runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Place {
    /// The caller's `input` array (read-only).
    Input,
    /// The caller's `output` array.
    Output,
    /// `arena[offset..offset + len]`, offset fixed by the memory planner.
    Arena(usize),
}

/// `len` int8 values at `place`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Slot {
    pub place: Place,
    pub len: usize,
}

/// Geometry of a convolution or pooling layer, field for field bonsai-rt's `Shape2d`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Geom {
    pub in_h: usize,
    pub in_w: usize,
    pub in_c: usize,
    pub out_h: usize,
    pub out_w: usize,
    pub out_c: usize,
    pub kernel_h: usize,
    pub kernel_w: usize,
    pub stride_h: usize,
    pub stride_w: usize,
    pub pad_top: usize,
    pub pad_left: usize,
}

impl Geom {
    fn new(
        in_shape: &[usize],
        out_shape: &[usize],
        kernel: [usize; 2],
        stride: [usize; 2],
        padding: [usize; 4],
    ) -> Geom {
        Geom {
            in_h: in_shape[0],
            in_w: in_shape[1],
            in_c: in_shape[2],
            out_h: out_shape[0],
            out_w: out_shape[1],
            out_c: out_shape[2],
            kernel_h: kernel[0],
            kernel_w: kernel[1],
            stride_h: stride[0],
            stride_w: stride[1],
            pad_top: padding[0],
            pad_left: padding[1],
        }
    }

    pub fn positions(&self) -> usize {
        self.out_h * self.out_w
    }
}

/// Which kernel a weighted layer runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum LayerKind {
    /// `fully_connected_s8` / `fully_connected_sparse_s8`.
    Dense,
    /// `conv2d_s8` / `conv2d_sparse_s8` (filters are rows of `kh·kw·in_c`).
    Conv(Geom),
    /// `depthwise_conv2d_s8` (always dense storage).
    Depthwise(Geom),
}

/// A Dense or Conv2d layer's parameters exactly as the generated params struct holds them. A
/// convolution's filters are its rows: `in_len` is the filter size `kh·kw·in_c/groups`.
#[derive(Clone, Debug)]
pub(super) struct WeightedLayer {
    pub kind: LayerKind,
    pub in_len: usize,
    pub out_len: usize,
    pub relu: bool,
    /// Row-major `[out][in]`.
    pub weights: Vec<i8>,
    /// `bias_q[o] - input_zero_point * sum_j w[o][j]`.
    pub folded_bias: Vec<i32>,
    pub multiplier: Vec<i32>,
    pub shift: Vec<i32>,
    pub output_offset: i32,
    pub act_min: i8,
    pub act_max: i8,
    pub qin: ActQuant,
    pub qout: ActQuant,
    /// The storage chosen for `weights`, its sparse encoding and the figures behind the choice
    /// (boxed: it is large next to the other step kinds).
    pub choice: Box<Choice>,
    /// A partial-area convolution's per-channel output rectangles (None: whole maps).
    pub areas: Option<Vec<crate::ir::Area>>,
}

impl WeightedLayer {
    /// Output positions the filters slide over (1 for a Dense layer).
    pub fn positions(&self) -> usize {
        match self.kind {
            LayerKind::Dense => 1,
            LayerKind::Conv(g) | LayerKind::Depthwise(g) => g.positions(),
        }
    }

    pub fn storage(&self) -> Storage {
        self.choice.storage
    }

    /// Flash of the weight table in the chosen storage.
    pub fn stored_weight_bytes(&self) -> usize {
        match self.storage() {
            Storage::Dense => self.choice.dense_bytes,
            Storage::Sparse => self.choice.sparse_bytes,
        }
    }

    /// Flash of all parameter arrays as generated.
    pub fn param_bytes(&self) -> usize {
        self.stored_weight_bytes()
            + 4 * (self.folded_bias.len() + self.multiplier.len() + self.shift.len())
    }
}

#[derive(Clone, Debug)]
pub(super) enum StepKind {
    Dense(WeightedLayer),
    /// `max(x, zero_point)` on `output`, after copying `inputs[0]` there unless they coincide
    /// (in place).
    Relu {
        zero_point: i8,
    },
    /// Each input copied (None) or requantized into consecutive parts of the output.
    Concat(Vec<Option<RequantParams>>),
    /// Flatten: the output is the input's memory under another shape; no code.
    Alias,
    /// Max (`max == true`) or average pooling; output shares the input's quantization.
    Pool {
        max: bool,
        geom: Geom,
    },
    /// TFLite's int8 ADD of `inputs[0]` and `inputs[1]`.
    Add(AddParams),
}

/// One node, with where it reads and writes.
#[derive(Clone, Debug)]
pub(super) struct Step {
    /// Index in `Model::nodes`; also names the layer's statics (`LAYER<index>`).
    pub index: usize,
    pub name: String,
    pub kind: StepKind,
    pub inputs: Vec<Slot>,
    pub output: Slot,
}

#[derive(Clone, Debug)]
pub(super) struct Plan {
    pub steps: Vec<Step>,
    pub memory: MemoryPlan,
}

impl Plan {
    pub fn arena_bytes(&self) -> usize {
        self.memory.arena_bytes
    }

    pub fn weight_bytes(&self) -> usize {
        self.weighted_layers().map(|(_, d)| d.param_bytes()).sum()
    }

    pub fn layer_infos(&self) -> Vec<LayerInfo> {
        self.weighted_layers()
            .map(|(step, d)| LayerInfo {
                index: step.index,
                name: step.name.clone(),
                in_len: d.in_len,
                out_len: d.out_len,
                storage: d.storage(),
                nonzeros: d.choice.sparse.nonzeros,
                sparse_entries: d.choice.sparse.entries.len(),
                dense_weight_bytes: d.choice.dense_bytes,
                sparse_weight_bytes: d.choice.sparse_bytes,
                weight_bytes: d.param_bytes(),
                dense_insns: d.choice.dense_insns.times(d.positions()),
                sparse_insns: d.choice.sparse_insns.times(d.positions()),
            })
            .collect()
    }

    /// True when some step has a `static` in `weights.rs`.
    pub fn has_params(&self) -> bool {
        self.steps.iter().any(|s| {
            matches!(
                s.kind,
                StepKind::Dense(_) | StepKind::Pool { .. } | StepKind::Add(_)
            )
        })
    }

    pub fn weighted_layers(&self) -> impl Iterator<Item = (&Step, &WeightedLayer)> {
        self.steps.iter().filter_map(|s| match &s.kind {
            StepKind::Dense(d) => Some((s, d)),
            _ => None,
        })
    }
}

/// Validates `model`, checks that every op can be lowered and is quantized, chooses each Dense
/// layer's weight storage under `storage`, and places every tensor: the model input and output
/// in the caller's arrays, Flatten outputs and last-use ReLUs on their input's memory, and the
/// rest at offsets in one arena chosen by the memory planner (`memory.rs`).
pub(super) fn plan(model: &Model, storage: StoragePolicy) -> Result<Plan, LowerError> {
    model.validate()?;
    check_ops(model)?;
    check_quantized(model)?;
    let n_t = model.tensors.len();
    let input = model.inputs[0];

    // 1. Aliases: a tensor shares its root's memory.
    let mut root: Vec<usize> = (0..n_t).collect();
    let mut producer: Vec<Option<usize>> = vec![None; n_t];
    for (k, node) in model.nodes.iter().enumerate() {
        producer[node.output.0] = Some(k);
        let r = root[node.inputs[0].0];
        let alias = match node.op {
            Op::Flatten => true,
            // In place when this is the last read of the input's memory and that memory is ours
            // to overwrite (not the caller's input, nor an already computed model output).
            Op::Relu => {
                let output = model.outputs[0];
                let clobbers_output =
                    producer[output.0].is_some_and(|p| p <= k) && root[output.0] == r;
                r != input.0
                    && !clobbers_output
                    && !model.nodes[k + 1..].iter().any(|later| {
                        later
                            .inputs
                            .iter()
                            .any(|t| producer[t.0].is_none_or(|p| p <= k) && root[t.0] == r)
                    })
            }
            _ => false,
        };
        if alias {
            root[node.output.0] = r;
        }
    }

    // 2. Places: the output's memory is the caller's `output`; every other root produced by a
    //    node is an arena buffer, live from its producer to its last reader.
    let out_root = root[model.outputs[0].0];
    let mut buffer_of: Vec<Option<usize>> = vec![None; n_t];
    let mut buffers: Vec<Buffer> = Vec::new();
    for (k, node) in model.nodes.iter().enumerate() {
        let r = root[node.output.0];
        if r == node.output.0 && r != out_root && r != input.0 {
            buffer_of[r] = Some(buffers.len());
            buffers.push(Buffer {
                size: model.tensor(node.output).len(),
                first: k,
                last: k,
            });
        }
        for t in &node.inputs {
            if let Some(b) = buffer_of[root[t.0]] {
                buffers[b].last = buffers[b].last.max(k);
            }
        }
    }
    let memory = memory::plan(&buffers);
    let slot = |t: TensorId| {
        let r = root[t.0];
        let place = if r == input.0 {
            Place::Input
        } else if r == out_root {
            Place::Output
        } else {
            Place::Arena(memory.offsets[buffer_of[r].expect("every other root is a buffer")])
        };
        Slot {
            place,
            len: model.tensor(t).len(),
        }
    };

    // 3. Steps.
    let mut steps = Vec::with_capacity(model.nodes.len());
    for (k, node) in model.nodes.iter().enumerate() {
        let q = |t: TensorId| model.tensor(t).quant.expect("checked");
        let (qin, qout) = (q(node.inputs[0]), q(node.output));
        let kind = match &node.op {
            Op::Dense(_) | Op::Conv2d(_) => {
                let in_shape = &model.tensor(node.inputs[0]).shape;
                let out_shape = &model.tensor(node.output).shape;
                let kind = match &node.op {
                    Op::Conv2d(c) => {
                        let g = Geom::new(in_shape, out_shape, c.kernel, c.stride, c.padding);
                        if c.is_depthwise() {
                            LayerKind::Depthwise(g)
                        } else {
                            LayerKind::Conv(g)
                        }
                    }
                    _ => LayerKind::Dense,
                };
                let storage = match kind {
                    LayerKind::Depthwise(_) => StoragePolicy::Dense,
                    _ => storage,
                };
                StepKind::Dense(weighted_layer(
                    &node.name, &node.op, kind, qin, qout, storage,
                )?)
            }
            Op::MaxPool(p) | Op::AvgPool(p) => StepKind::Pool {
                max: matches!(node.op, Op::MaxPool(_)),
                geom: Geom::new(
                    &model.tensor(node.inputs[0]).shape,
                    &model.tensor(node.output).shape,
                    p.kernel,
                    p.stride,
                    p.padding,
                ),
            },
            Op::Add => {
                let p = add_params(qin, q(node.inputs[1]), qout);
                // bonsai-rt's ADD, like TFLite's, takes multipliers below one only.
                if p.output_shift > 0 {
                    return Err(LowerError::BadQuant(format!(
                        "node {:?}: Add output scale {} is too small for its inputs' scales",
                        node.name, qout.scale
                    )));
                }
                StepKind::Add(p)
            }
            Op::Relu => StepKind::Relu {
                zero_point: qin.zero_point.clamp(-128, 127) as i8,
            },
            Op::Concat => StepKind::Concat(
                node.inputs
                    .iter()
                    .map(|&t| RequantParams::between(q(t), qout))
                    .collect(),
            ),
            Op::Flatten => StepKind::Alias,
        };
        steps.push(Step {
            index: k,
            name: node.name.clone(),
            kind,
            inputs: node.inputs.iter().map(|&t| slot(t)).collect(),
            output: slot(node.output),
        });
    }
    // A model whose output is its input's memory (only Flatten nodes) needs one copy.
    if out_root == input.0 {
        return Err(LowerError::Unsupported {
            node: model
                .nodes
                .last()
                .map(|n| n.name.clone())
                .unwrap_or_default(),
            msg: "the model output is the input itself (the model computes nothing)".into(),
        });
    }
    Ok(Plan { steps, memory })
}

/// Every op has a lowering, with the arities the kernels take and the quantization sharing
/// they assume.
fn check_ops(model: &Model) -> Result<(), LowerError> {
    if model.nodes.is_empty() {
        return Err(LowerError::Empty(model.name.clone()));
    }
    for node in &model.nodes {
        let unsupported = |msg: String| {
            Err(LowerError::Unsupported {
                node: node.name.clone(),
                msg,
            })
        };
        match &node.op {
            Op::Conv2d(c) => {
                // bonsai-rt keeps area corners as u16 (maps are far smaller on a device).
                let shape = &model.tensor(node.output).shape;
                if c.area.is_some() && shape[0].max(shape[1]) > u16::MAX as usize {
                    return unsupported(format!(
                        "a partial-area convolution's output map ({}x{}) must be at most {} on a side",
                        shape[0],
                        shape[1],
                        u16::MAX
                    ));
                }
            }
            Op::Dense(_) | Op::Concat => {}
            Op::Add if node.inputs.len() != 2 => {
                return unsupported(format!(
                    "int8 Add takes two inputs, this one has {}",
                    node.inputs.len()
                ))
            }
            Op::Add => {}
            Op::Relu | Op::Flatten | Op::MaxPool(_) | Op::AvgPool(_) => {
                let (a, b) = (
                    model.tensor(node.inputs[0]).quant,
                    model.tensor(node.output).quant,
                );
                if a != b {
                    return unsupported(format!(
                        "int8 {} needs equal input and output quantization, found {a:?} and {b:?}",
                        node.op.kind()
                    ));
                }
            }
        }
    }
    Ok(())
}

fn check_quantized(model: &Model) -> Result<(), LowerError> {
    let not_quantized = |what: String| {
        Err(LowerError::NotQuantized {
            model: model.name.clone(),
            what,
        })
    };
    if let Some(t) = model.tensors.iter().find(|t| t.quant.is_none()) {
        return not_quantized(format!(
            "tensor {:?} has no quantization parameters",
            t.name
        ));
    }
    for t in &model.tensors {
        let q = t.quant.expect("checked above");
        let usable = q.scale.is_finite() && q.scale > 0.0 && (-128..=127).contains(&q.zero_point);
        if !usable {
            return Err(LowerError::BadQuant(format!(
                "tensor {:?} has scale {} and zero point {} (need a finite scale > 0 and a zero \
                 point in [-128, 127])",
                t.name, q.scale, q.zero_point
            )));
        }
    }
    for node in &model.nodes {
        if node.op.weights().is_some() {
            let Some(q) = node.op.weight_quant() else {
                return not_quantized(format!(
                    "{} node {:?} has no int8 weights",
                    node.op.kind(),
                    node.name
                ));
            };
            if let Some(s) = q
                .weight_scale
                .iter()
                .find(|s| !(s.is_finite() && **s >= 0.0))
            {
                return Err(LowerError::BadQuant(format!(
                    "node {:?} has weight scale {s} (need a finite scale >= 0)",
                    node.name
                )));
            }
        }
    }
    Ok(())
}

/// Folds the input zero point into the bias (i64, checked) and computes the requantization
/// parameters with the functions the golden interpreter uses. Also rules out int32 accumulator
/// overflow and left-shift overflow in requantization for every possible int8 input, so that
/// the kernels' wrapping arithmetic is exact.
fn weighted_layer(
    name: &str,
    op: &Op,
    kind: LayerKind,
    qin: ActQuant,
    qout: ActQuant,
    storage: StoragePolicy,
) -> Result<WeightedLayer, LowerError> {
    let w = op.weights().expect("Dense or Conv2d");
    let q = op.weight_quant().expect("checked");
    let n_in = w.fan();
    let out_channels = w.out_channels;
    let activation = op.activation();
    let rq = dense_requant(qin.scale, qout.scale, &q.weight_scale);
    let range = ActRange::for_output(qout, activation);
    let mut folded_bias = Vec::with_capacity(out_channels);
    for (o, (&bias, &(_, shift))) in q.bias_q.iter().zip(&rq).enumerate() {
        let row = &q.weight_q[o * n_in..(o + 1) * n_in];
        let sum: i64 = row.iter().map(|&w| w as i64).sum();
        let folded = bias as i64 - qin.zero_point as i64 * sum;
        let folded32 = i32::try_from(folded).map_err(|_| LowerError::BiasOverflow {
            node: name.into(),
            channel: o,
            value: folded,
        })?;
        // The exact accumulator range over all int8 inputs: each term x·w is extreme at x = -128
        // or x = 127.
        let (mut lo, mut hi) = (folded, folded);
        for &w in row {
            let (a, b) = (-128 * w as i64, 127 * w as i64);
            lo += a.min(b);
            hi += a.max(b);
        }
        let overflow = |value: i64| LowerError::AccumulatorOverflow {
            node: name.into(),
            channel: o,
            value,
        };
        for v in [lo, hi] {
            i32::try_from(v).map_err(|_| overflow(v))?;
        }
        if shift > 0 {
            for v in [lo, hi] {
                let shifted = v << shift;
                if i32::try_from(shifted).is_err() {
                    return Err(LowerError::ShiftOverflow {
                        node: name.into(),
                        channel: o,
                        value: v,
                        shift,
                    });
                }
            }
        }
        folded_bias.push(folded32);
    }
    let choice = sparse::choose(name, &q.weight_q, n_in, out_channels, storage)?;
    Ok(WeightedLayer {
        kind,
        in_len: n_in,
        out_len: out_channels,
        relu: activation == Activation::Relu,
        weights: q.weight_q.clone(),
        folded_bias,
        multiplier: rq.iter().map(|&(m, _)| m).collect(),
        shift: rq.iter().map(|&(_, s)| s).collect(),
        output_offset: qout.zero_point,
        act_min: range.min,
        act_max: range.max,
        qin,
        qout,
        choice: Box::new(choice),
        areas: match op {
            Op::Conv2d(c) => c.area.clone(),
            _ => None,
        },
    })
}
