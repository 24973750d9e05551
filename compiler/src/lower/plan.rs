//! Checks that a model can be lowered, places every tensor (input, output, or one of two arena
//! regions) and computes the integer parameters the generated code stores.

use super::sparse::{self, Choice};
use super::{LayerInfo, LowerError, Storage, StoragePolicy};
use crate::ir::{ActQuant, Activation, Dense, Model, Op};
use crate::quant::{dense_requant, ActRange};

/// Where a tensor lives while `infer` runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Loc {
    /// The caller's `input` array (read-only).
    Input,
    /// Arena region A, at offset 0.
    A,
    /// Arena region B, right after region A.
    B,
    /// The caller's `output` array.
    Output,
}

/// A Dense layer's parameters exactly as the generated `FcParams` holds them.
#[derive(Clone, Debug)]
pub(super) struct DenseLayer {
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
}

impl DenseLayer {
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
    Dense(DenseLayer),
    /// `max(x, zero_point)`, in place on `dst` (after a copy when `src` is the read-only input).
    Relu {
        zero_point: i8,
    },
}

/// One node of the chain, with where it reads and writes.
#[derive(Clone, Debug)]
pub(super) struct Step {
    /// Index in `Model::nodes`; also names the layer's statics (`LAYER<index>`).
    pub index: usize,
    pub name: String,
    pub kind: StepKind,
    pub src: Loc,
    pub dst: Loc,
    pub in_len: usize,
    pub out_len: usize,
}

#[derive(Clone, Debug)]
pub(super) struct Plan {
    pub steps: Vec<Step>,
    /// Bytes of region A (largest tensor placed there; 0 if unused).
    pub region_a: usize,
    /// Bytes of region B.
    pub region_b: usize,
}

impl Plan {
    pub fn arena_bytes(&self) -> usize {
        self.region_a + self.region_b
    }

    pub fn weight_bytes(&self) -> usize {
        self.dense_layers().map(|(_, d)| d.param_bytes()).sum()
    }

    pub fn layer_infos(&self) -> Vec<LayerInfo> {
        self.dense_layers()
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
                dense_insns: d.choice.dense_insns,
                sparse_insns: d.choice.sparse_insns,
            })
            .collect()
    }

    pub fn any_storage(&self, storage: Storage) -> bool {
        self.dense_layers().any(|(_, d)| d.storage() == storage)
    }

    pub fn dense_layers(&self) -> impl Iterator<Item = (&Step, &DenseLayer)> {
        self.steps.iter().filter_map(|s| match &s.kind {
            StepKind::Dense(d) => Some((s, d)),
            StepKind::Relu { .. } => None,
        })
    }
}

/// Validates `model`, checks that it is a quantized chain of supported ops, places tensors and
/// chooses each Dense layer's weight storage under `storage`.
pub(super) fn plan(model: &Model, storage: StoragePolicy) -> Result<Plan, LowerError> {
    model.validate()?;
    check_chain(model)?;
    check_quantized(model)?;

    let mut steps = Vec::with_capacity(model.nodes.len());
    let mut loc = Loc::Input;
    for (k, node) in model.nodes.iter().enumerate() {
        let unsupported = |msg: String| LowerError::Unsupported {
            node: node.name.clone(),
            msg,
        };
        // A tensor goes straight into `output` when only in-place ReLUs follow it.
        let only_relus_follow = model.nodes[k + 1..]
            .iter()
            .all(|n| matches!(n.op, Op::Relu));
        let qin = model.tensor(node.inputs[0]).quant.expect("checked");
        let qout = model.tensor(node.output).quant.expect("checked");
        let in_len = model.tensor(node.inputs[0]).len();
        let out_len = model.tensor(node.output).len();
        let src = loc;
        let (kind, dst) = match &node.op {
            Op::Dense(d) => {
                let dst = if only_relus_follow {
                    Loc::Output
                } else {
                    match src {
                        Loc::Input | Loc::B => Loc::A,
                        Loc::A => Loc::B,
                        // Only ReLUs follow a tensor placed in `output`.
                        Loc::Output => unreachable!("a Dense node reads the output buffer"),
                    }
                };
                let layer = dense_layer(&node.name, d, qin, qout, storage)?;
                (StepKind::Dense(layer), dst)
            }
            Op::Relu => {
                if qin != qout {
                    return Err(unsupported(format!(
                        "int8 Relu needs equal input and output quantization, found {qin:?} and {qout:?}"
                    )));
                }
                let dst = match src {
                    Loc::Input if only_relus_follow => Loc::Output,
                    Loc::Input => Loc::A,
                    other => other,
                };
                let zero_point = qin.zero_point.clamp(-128, 127) as i8;
                (StepKind::Relu { zero_point }, dst)
            }
            _ => unreachable!("rejected by check_chain"),
        };
        steps.push(Step {
            index: k,
            name: node.name.clone(),
            kind,
            src,
            dst,
            in_len,
            out_len,
        });
        loc = dst;
    }
    let region = |r: Loc| {
        steps
            .iter()
            .filter(|s| s.dst == r)
            .map(|s| s.out_len)
            .max()
            .unwrap_or(0)
    };
    let (region_a, region_b) = (region(Loc::A), region(Loc::B));
    Ok(Plan {
        steps,
        region_a,
        region_b,
    })
}

/// Supported ops only, and each node reads the previous node's output (the first reads the
/// model input; the last produces the model output).
fn check_chain(model: &Model) -> Result<(), LowerError> {
    let Some(last) = model.nodes.last() else {
        return Err(LowerError::Empty(model.name.clone()));
    };
    // Unsupported ops first, so that a DAG with an Add or Concat names that node.
    for node in &model.nodes {
        if !matches!(node.op, Op::Dense(_) | Op::Relu) {
            return Err(LowerError::Unsupported {
                node: node.name.clone(),
                msg: format!(
                    "{} is not supported yet: only chains of Dense and Relu nodes can be lowered \
                     until the memory planner lands (issue #4)",
                    node.op.kind()
                ),
            });
        }
    }
    let mut prev = model.inputs[0];
    for node in &model.nodes {
        let unsupported = |msg: String| {
            Err(LowerError::Unsupported {
                node: node.name.clone(),
                msg,
            })
        };
        if node.inputs != [prev] {
            let names: Vec<&str> = node
                .inputs
                .iter()
                .map(|&t| model.tensor(t).name.as_str())
                .collect();
            return unsupported(format!(
                "it reads {names:?} instead of the previous tensor {:?}; only chains can be \
                 lowered until the memory planner lands (issue #4)",
                model.tensor(prev).name
            ));
        }
        prev = node.output;
    }
    if prev != model.outputs[0] {
        return Err(LowerError::Unsupported {
            node: last.name.clone(),
            msg: format!(
                "it is the last node but its output {:?} is not the model output {:?}; only \
                 chains can be lowered until the memory planner lands (issue #4)",
                model.tensor(prev).name,
                model.tensor(model.outputs[0]).name
            ),
        });
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
        if let Op::Dense(d) = &node.op {
            let Some(q) = &d.quant else {
                return not_quantized(format!("Dense node {:?} has no int8 weights", node.name));
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
fn dense_layer(
    name: &str,
    d: &Dense,
    qin: ActQuant,
    qout: ActQuant,
    storage: StoragePolicy,
) -> Result<DenseLayer, LowerError> {
    let q = d.quant.as_ref().expect("checked");
    let n_in = d.in_features;
    let rq = dense_requant(qin.scale, qout.scale, &q.weight_scale);
    let range = ActRange::for_output(qout, d.activation);
    let mut folded_bias = Vec::with_capacity(d.out_features);
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
    let choice = sparse::choose(name, &q.weight_q, n_in, d.out_features, storage)?;
    Ok(DenseLayer {
        in_len: n_in,
        out_len: d.out_features,
        relu: d.activation == Activation::Relu,
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
    })
}
