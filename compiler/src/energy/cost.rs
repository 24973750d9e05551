//! From a lowered model to instructions, cycles, time and energy.
//!
//! 1. **Work** ([`model_work`]): for every node, the kernel the lowering chose and its loop trip
//!    counts (`fc_dense`: rows and MACs; `fc_sparse`: rows and stored entries, fillers included,
//!    since a filler runs the same loop body; `relu`: elements), plus `infer`'s own frame. A
//!    kernel called from one place only is inlined by LTO and costs differently: it is counted
//!    as its `_inline` variant (see [`model_work`]).
//! 2. **Instructions**: Σ coefficient × trip count, with the fitted [`Coefficients`].
//! 3. **Cycles**: each unit's instructions split into classes by its [`Mix`], times the device's
//!    `[min, max]` cycles per class; plus flash wait states: on a part without an instruction
//!    cache every taken branch refetches (`ws` cycles, both bounds); the max bound also charges
//!    `ws` per flash line of parameters read (weights streamed once per inference, which no
//!    instruction cache or prefetcher is guaranteed to hide).
//! 4. **Latency** = cycles / f; **energy** = cycles × I_run/f × V = cycles × (µA/MHz) × V (pJ).
//!    No separate memory term: the vendors' run current already includes flash and SRAM at a
//!    CoreMark access rate; a weight stream reads flash more often, which is why the energy is a
//!    range and why the sanity check against MLPerf Tiny (BENCHMARKS.md) matters.

use super::device::{Device, Target};
use super::tables::{Coefficients, Mixes};
use super::EnergyError;
use crate::ir::{Model, Op};
use crate::lower::{LoweredCrate, Storage};
use serde::Serialize;

/// A `[min, max]` interval.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, serde::Deserialize)]
pub struct Range {
    pub min: f64,
    pub max: f64,
}

impl Range {
    pub fn point(v: f64) -> Range {
        Range { min: v, max: v }
    }
    pub fn scale(self, k: f64) -> Range {
        Range {
            min: self.min * k,
            max: self.max * k,
        }
    }
    fn add(self, o: Range) -> Range {
        Range {
            min: self.min + o.min,
            max: self.max + o.max,
        }
    }
}

/// What one node (or `infer`'s own frame) makes the MCU do.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct LayerWork {
    /// Index in `Model::nodes`; `None` for `infer`'s frame.
    pub index: Option<usize>,
    pub name: String,
    /// IR op (`Dense`, `Relu`) or `infer`.
    pub op: String,
    /// Runtime kernel: `fc_dense`, `fc_sparse`, `relu`, `infer`.
    pub kernel: &'static str,
    /// Trip counts, `(feature, count)`.
    pub counts: Vec<(&'static str, f64)>,
    /// Weights + biases as if dense.
    pub params: usize,
    /// Nonzero weights.
    pub nonzeros: usize,
    /// Multiply-accumulates the kernel executes (dense: all, zeros included; sparse: entries).
    pub macs: usize,
    /// Flash of the parameter arrays, all read once per inference.
    pub flash_bytes: usize,
    /// SRAM the layer reads (activations; the dense kernel re-reads its input once per row).
    pub sram_read_bytes: usize,
    pub sram_write_bytes: usize,
    /// Activation bytes the layer's output occupies.
    pub ram_bytes: usize,
}

/// The kernel work of every node of a lowered model, in order, then `infer`'s frame.
pub fn model_work(model: &Model, lowered: &LoweredCrate) -> Result<Vec<LayerWork>, EnergyError> {
    let mut out = Vec::with_capacity(model.nodes.len() + 1);
    for (index, node) in model.nodes.iter().enumerate() {
        let out_len = model.tensor(node.output).len();
        let w = match &node.op {
            Op::Dense(d) => {
                let info = lowered
                    .layers
                    .iter()
                    .find(|l| l.index == index)
                    .ok_or_else(|| EnergyError::Unsupported {
                        node: node.name.clone(),
                        msg: "the lowered crate records no layer for this Dense node".into(),
                    })?;
                let (rows, cols) = (info.out_len, info.in_len);
                let (kernel, inner, inner_name, macs) = match info.storage {
                    Storage::Dense => ("fc_dense", rows * cols, "mac", rows * cols),
                    Storage::Sparse => (
                        "fc_sparse",
                        info.sparse_entries,
                        "entry",
                        info.sparse_entries,
                    ),
                };
                LayerWork {
                    index: Some(index),
                    name: node.name.clone(),
                    op: node.op.kind().into(),
                    kernel,
                    counts: vec![
                        ("call", 1.0),
                        ("row", rows as f64),
                        (inner_name, inner as f64),
                    ],
                    params: d.weight.len() + d.bias.len(),
                    nonzeros: info.nonzeros,
                    macs,
                    flash_bytes: info.weight_bytes,
                    sram_read_bytes: macs,
                    sram_write_bytes: rows,
                    ram_bytes: rows,
                }
            }
            Op::Relu => LayerWork {
                index: Some(index),
                name: node.name.clone(),
                op: node.op.kind().into(),
                kernel: "relu",
                counts: vec![("call", 1.0), ("elem", out_len as f64)],
                params: 0,
                nonzeros: 0,
                macs: 0,
                flash_bytes: 0,
                sram_read_bytes: out_len,
                sram_write_bytes: out_len,
                ram_bytes: out_len,
            },
            // Ops the lowering has no kernel for yet (a conv kernel added to the runtime comes
            // with an arm here and its coefficients in the tables).
            other => {
                return Err(EnergyError::Unsupported {
                    node: node.name.clone(),
                    msg: format!("no cost model for op {}", other.kind()),
                })
            }
        };
        out.push(w);
    }
    inline_single_calls(&mut out);
    out.push(LayerWork {
        index: None,
        name: "infer".into(),
        op: "infer".into(),
        kernel: "infer",
        counts: vec![("call", 1.0)],
        params: 0,
        nonzeros: 0,
        macs: 0,
        flash_bytes: 0,
        sram_read_bytes: 0,
        sram_write_bytes: 0,
        ram_bytes: 0,
    });
    Ok(out)
}

/// A kernel the generated `infer` calls from one place only is inlined into it by LTO and
/// specialised for that layer's constant shapes (loops unrolled or not, different register
/// allocation): measured, its cost per MAC differs from the shared out-of-line copy by up to
/// ±20 %, and its call overhead disappears. Such layers use the `_inline` variant of the kernel,
/// with its own fitted coefficients and no `call` term.
fn inline_single_calls(work: &mut [LayerWork]) {
    for kernel in ["fc_dense", "fc_sparse"] {
        let calls = work.iter().filter(|w| w.kernel == kernel).count();
        if calls != 1 {
            continue;
        }
        let w = work
            .iter_mut()
            .find(|w| w.kernel == kernel)
            .expect("counted above");
        w.kernel = match kernel {
            "fc_dense" => "fc_dense_inline",
            _ => "fc_sparse_inline",
        };
        w.counts.retain(|(f, _)| *f != "call");
    }
}

/// Predicted instructions of one layer on `target`.
pub fn layer_insns(
    w: &LayerWork,
    coeffs: &Coefficients,
    target: Target,
) -> Result<f64, EnergyError> {
    w.counts.iter().try_fold(0.0, |acc, &(f, n)| {
        Ok(acc + coeffs.get(target, w.kernel, f)? * n)
    })
}

/// Predicted instructions per inference of a whole model (the figure QEMU measures).
pub fn predict_insns(
    work: &[LayerWork],
    coeffs: &Coefficients,
    target: Target,
) -> Result<f64, EnergyError> {
    work.iter()
        .try_fold(0.0, |acc, w| Ok(acc + layer_insns(w, coeffs, target)?))
}

/// One layer's estimate on one device.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct LayerEstimate {
    pub work: LayerWork,
    pub insns: f64,
    pub cycles: Range,
    pub latency_us: Range,
    pub energy_uj: Range,
}

/// A whole model on one device.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Estimate {
    pub device: String,
    pub target: Target,
    pub layers: Vec<LayerEstimate>,
    pub insns: f64,
    pub cycles: Range,
    pub latency_us: Range,
    pub energy_uj: Range,
    /// Parameter flash (all layers).
    pub flash_bytes: usize,
    /// Activation arena (the generated `ARENA_BYTES`).
    pub arena_bytes: usize,
}

/// Cycles of one layer on `dev` (see the module docs for the flash terms).
fn layer_cycles(
    w: &LayerWork,
    coeffs: &Coefficients,
    mixes: &Mixes,
    dev: &Device,
) -> Result<(f64, Range), EnergyError> {
    let t = dev.target;
    let c = &dev.cycles;
    let ws = f64::from(dev.flash_wait_states);
    let mut insns = 0.0;
    let mut cyc = Range::default();
    for &(feature, n) in &w.counts {
        let i = coeffs.get(t, w.kernel, feature)? * n;
        let m = mixes.get(t, w.kernel, feature)?.normalized();
        let per = |k: usize| {
            m.load * c.load[k]
                + m.store * c.store[k]
                + m.alu * c.alu[k]
                + m.mul * c.mul[k]
                + m.branch_taken * c.branch_taken[k]
                + m.branch_not_taken * c.branch_not_taken[k]
        };
        let refetch = if dev.icache { 0.0 } else { m.branch_taken * ws };
        insns += i;
        cyc = cyc.add(Range {
            min: i * (per(0) + refetch),
            max: i * (per(1) + refetch),
        });
    }
    let lines = w.flash_bytes.div_ceil(dev.flash_line_bytes as usize) as f64;
    cyc.max += lines * ws;
    Ok((insns, cyc))
}

/// Estimates `model` (as `lowered`) on `dev`.
pub fn estimate(
    model: &Model,
    lowered: &LoweredCrate,
    dev: &Device,
    coeffs: &Coefficients,
    mixes: &Mixes,
) -> Result<Estimate, EnergyError> {
    let work = model_work(model, lowered)?;
    let mut layers = Vec::with_capacity(work.len());
    for w in work {
        let (insns, cycles) = layer_cycles(&w, coeffs, mixes, dev)?;
        layers.push(LayerEstimate {
            insns,
            cycles,
            latency_us: cycles.scale(1.0 / dev.clock_mhz),
            energy_uj: cycles.scale(dev.pj_per_cycle() * 1e-6),
            work: w,
        });
    }
    let cycles = layers
        .iter()
        .fold(Range::default(), |acc, l| acc.add(l.cycles));
    Ok(Estimate {
        device: dev.name.clone(),
        target: dev.target,
        insns: layers.iter().map(|l| l.insns).sum(),
        latency_us: cycles.scale(1.0 / dev.clock_mhz),
        energy_uj: cycles.scale(dev.pj_per_cycle() * 1e-6),
        cycles,
        flash_bytes: lowered.weight_bytes,
        arena_bytes: lowered.arena_bytes,
        layers,
    })
}

/// [`estimate`] with the built-in coefficient and mix tables.
pub fn estimate_builtin(
    model: &Model,
    lowered: &LoweredCrate,
    dev: &Device,
) -> Result<Estimate, EnergyError> {
    estimate(
        model,
        lowered,
        dev,
        &Coefficients::builtin()?,
        &Mixes::builtin()?,
    )
}
