//! From a lowered model to instructions, cycles, time and energy.
//!
//! 1. **Work** ([`model_work`]): for every node, the kernel the lowering chose and its loop trip
//!    counts, plus `infer`'s own frame:
//!    - `fc_dense`: rows and MACs; `fc_sparse`: rows and stored entries (fillers included, since
//!      a filler runs the same loop body);
//!    - `conv_dense` (`conv2d_s8`): positions, filters × positions; for interior windows the
//!      dot products per filter (`row_in`: one over the whole window, or `kh` over its rows when
//!      the filter is longer than the kernel's gather buffer, see
//!      `bonsai_rt::kernels::conv2d::WindowLayout`), split into 4-byte words (`quad_in`, SMLAD
//!      on thumbv7em) and the byte tail (`tail_in`), and the rows and bytes gathered per
//!      position (`gather_row`, `gather_byte`); for border windows taps and MACs (`tap_b`,
//!      `mac_b`);
//!    - `conv_sparse` (`conv2d_sparse_s8`): positions, filters × positions, entries × interior
//!      and × border positions, and the kernel-row crossings of the column walk (`cross`),
//!      with partial areas the channel-positions tested and those outside (`filt_area`,
//!      `filt_out`), and entries counted over each channel's rectangle only;
//!    - `zero_areas` (`zero_outside_areas_s8`, after a dense or depthwise partial-area conv):
//!      rows per channel, elements outside the channel's rectangle;
//!    - `dw_conv` (`depthwise_conv2d_s8`): positions, channels × positions, interior rows and
//!      taps, border taps;
//!    - `max_pool` / `avg_pool`: positions, channels × positions, the clipped windows' rows and
//!      taps;
//!    - `add`, `relu` (plus `copy`, `copy_elem` when the ReLU copies its input first): elements;
//!      `concat`: copied and requantized parts and elements; `flatten`: nothing (no code).
//!
//!    Every layer kernel is one out-of-line function whatever the model (bonsai-rt's `kernels`
//!    docs, *One compiled copy per kernel*), so one set of coefficients per kernel describes
//!    every call: a kernel called once is neither inlined nor specialised for its layer.
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
use crate::ir::{Conv2d, Model, Op};
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
    /// IR op (`Dense`, `Conv2d`, `MaxPool`, ...) or `infer`.
    pub op: String,
    /// Cost-model kernel (`fc_dense`, `conv_sparse`, `max_pool`, `flatten`, ... see the module
    /// docs) or `infer`.
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

/// The kernel work of every node of a lowered model, in order, then `infer`'s own frame.
pub fn model_work(model: &Model, lowered: &LoweredCrate) -> Result<Vec<LayerWork>, EnergyError> {
    let copied_relus = relu_copies(model, lowered);
    let mut out = Vec::with_capacity(model.nodes.len() + 1);
    for (index, node) in model.nodes.iter().enumerate() {
        let out_len = model.tensor(node.output).len();
        let info = || {
            lowered
                .layers
                .iter()
                .find(|l| l.index == index)
                .ok_or_else(|| EnergyError::Unsupported {
                    node: node.name.clone(),
                    msg: format!(
                        "the lowered crate records no layer for this {} node",
                        node.op.kind()
                    ),
                })
        };
        let base = LayerWork {
            index: Some(index),
            name: node.name.clone(),
            op: node.op.kind().into(),
            kernel: "",
            counts: Vec::new(),
            params: 0,
            nonzeros: 0,
            macs: 0,
            flash_bytes: 0,
            sram_read_bytes: 0,
            sram_write_bytes: 0,
            ram_bytes: out_len,
        };
        let w = match &node.op {
            Op::Dense(d) => {
                let info = info()?;
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
                    ..base
                }
            }
            Op::Conv2d(c) => {
                let info = info()?;
                let g = Windows::new(
                    &model.tensor(node.inputs[0]).shape,
                    &model.tensor(node.output).shape,
                    c.kernel,
                    c.stride,
                    c.padding,
                );
                let (kernel, counts, macs) = if c.is_depthwise() {
                    depthwise_counts(&g)
                } else {
                    match info.storage {
                        Storage::Dense => conv_dense_counts(&g),
                        Storage::Sparse => {
                            let q = c.quant.as_ref().ok_or_else(|| EnergyError::Unsupported {
                                node: node.name.clone(),
                                msg: "the Conv2d node has no int8 weights".into(),
                            })?;
                            conv_sparse_counts(&g, info.sparse_entries, &q.weight_q, c)
                        }
                    }
                };
                let zeroing = c.area.is_some() && kernel != "conv_sparse";
                let conv = LayerWork {
                    kernel,
                    counts,
                    params: c.weight.len() + c.bias.len(),
                    nonzeros: info.nonzeros,
                    macs,
                    flash_bytes: info.weight_bytes,
                    sram_read_bytes: macs,
                    sram_write_bytes: out_len,
                    ..base.clone()
                };
                if zeroing {
                    // A partial-area layer whose kernel computes whole maps: the generated code
                    // then runs `zero_outside_areas_s8` over the output.
                    out.push(conv);
                    LayerWork {
                        name: format!("{} (areas)", node.name),
                        kernel: "zero_areas",
                        counts: zero_areas_counts(&g, c),
                        sram_read_bytes: out_len,
                        sram_write_bytes: out_len,
                        ..base
                    }
                } else {
                    conv
                }
            }
            Op::MaxPool(p) | Op::AvgPool(p) => {
                let g = Windows::new(
                    &model.tensor(node.inputs[0]).shape,
                    &model.tensor(node.output).shape,
                    p.kernel,
                    p.stride,
                    p.padding,
                );
                let read = (g.sum_count * g.out_c as f64) as usize;
                LayerWork {
                    kernel: if matches!(node.op, Op::MaxPool(_)) {
                        "max_pool"
                    } else {
                        "avg_pool"
                    },
                    counts: pool_counts(&g),
                    sram_read_bytes: read,
                    sram_write_bytes: out_len,
                    ..base
                }
            }
            Op::Add => LayerWork {
                kernel: "add",
                counts: vec![("call", 1.0), ("elem", out_len as f64)],
                sram_read_bytes: 2 * out_len,
                sram_write_bytes: out_len,
                ..base
            },
            Op::Concat => {
                let qout = model.tensor(node.output).quant;
                let (mut copy, mut copy_elem, mut rq, mut rq_elem) = (0.0, 0.0, 0.0, 0.0);
                for &t in &node.inputs {
                    let tensor = model.tensor(t);
                    let n = tensor.len() as f64;
                    // The lowering copies a part whose quantization equals the output's and
                    // requantizes any other (`RequantParams::between`).
                    if tensor.quant == qout {
                        copy += 1.0;
                        copy_elem += n;
                    } else {
                        rq += 1.0;
                        rq_elem += n;
                    }
                }
                LayerWork {
                    kernel: "concat",
                    counts: [
                        ("copy", copy),
                        ("copy_elem", copy_elem),
                        ("requant", rq),
                        ("requant_elem", rq_elem),
                    ]
                    .into_iter()
                    .filter(|&(_, n)| n > 0.0)
                    .collect(),
                    sram_read_bytes: out_len,
                    sram_write_bytes: out_len,
                    ..base
                }
            }
            Op::Relu => {
                let mut counts = vec![("call", 1.0), ("elem", out_len as f64)];
                if copied_relus.contains(&index) {
                    counts.extend([("copy", 1.0), ("copy_elem", out_len as f64)]);
                }
                LayerWork {
                    kernel: "relu",
                    counts,
                    sram_read_bytes: out_len,
                    sram_write_bytes: out_len,
                    ..base
                }
            }
            // The output is the input's memory under another shape: no code at all.
            Op::Flatten => LayerWork {
                kernel: "flatten",
                ram_bytes: 0,
                ..base
            },
        };
        out.push(w);
    }
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

/// Indices of the ReLU nodes the generated `infer` runs out of place (`copy_s8` of the input,
/// then `relu_s8` on the copy): the memory planner decides, so this reads the generated code
/// rather than re-deriving the planner's rule. Each step of `infer` opens with one `    // `
/// comment line, in node order.
fn relu_copies(model: &Model, lowered: &LoweredCrate) -> Vec<usize> {
    let Some((_, lib)) = lowered
        .files
        .iter()
        .find(|(p, _)| p.ends_with("src/lib.rs"))
    else {
        return Vec::new();
    };
    let body = lib
        .split_once("pub fn infer(")
        .and_then(|(_, rest)| rest.split_once("\npub fn predict("))
        .map_or("", |(body, _)| body);
    let mut steps: Vec<String> = Vec::new();
    for line in body.lines() {
        if line.starts_with("    // ") {
            steps.push(String::new());
        } else if let Some(s) = steps.last_mut() {
            s.push_str(line);
            s.push('\n');
        }
    }
    if steps.len() != model.nodes.len() {
        // Not the layout this reader knows: fall back to the one case that always copies, a
        // ReLU of the caller's (read-only) input.
        return model
            .nodes
            .iter()
            .enumerate()
            .filter(|(_, n)| matches!(n.op, Op::Relu) && n.inputs[0] == model.inputs[0])
            .map(|(k, _)| k)
            .collect();
    }
    model
        .nodes
        .iter()
        .zip(&steps)
        .enumerate()
        .filter(|(_, (n, code))| matches!(n.op, Op::Relu) && code.contains("copy_s8("))
        .map(|(k, _)| k)
        .collect()
}

/// The sliding-window geometry of a convolution or pooling, summarised as the kernels' loops
/// see it: bonsai-rt's `Shape2d::clip` splits output positions into interior windows (every
/// tap inside the input, the fast path) and border windows (clipped by padding), and a pooling
/// visits only the clipped window's rows and taps.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Windows {
    /// The runtime's view of the geometry (what `conv2d_s8` chooses its window layout from).
    shape: bonsai_rt::kernels::shape::Shape2d,
    kh: usize,
    kw: usize,
    in_c: usize,
    out_c: usize,
    positions: f64,
    interior: f64,
    border: f64,
    /// Σ over positions of the clipped window's rows, and of its taps.
    sum_rows: f64,
    sum_count: f64,
}

impl Windows {
    fn new(
        in_shape: &[usize],
        out_shape: &[usize],
        kernel: [usize; 2],
        stride: [usize; 2],
        padding: [usize; 4],
    ) -> Windows {
        // `(lo, hi)` of the kernel taps inside the input, per output coordinate (`Shape2d::clip`).
        let clips = |out: usize, stride: usize, pad: usize, k: usize, size: usize| {
            (0..out)
                .map(|o| {
                    let start = (o * stride) as isize - pad as isize;
                    let lo = (-start).clamp(0, k as isize);
                    let hi = (size as isize - start).min(k as isize).max(lo);
                    (lo as usize, hi as usize)
                })
                .collect::<Vec<_>>()
        };
        let dim = |s: &[usize], i: usize| s.get(i).copied().unwrap_or(1);
        let (in_h, in_w, in_c) = (dim(in_shape, 0), dim(in_shape, 1), dim(in_shape, 2));
        let (out_h, out_w, out_c) = (dim(out_shape, 0), dim(out_shape, 1), dim(out_shape, 2));
        let ys = clips(out_h, stride[0], padding[0], kernel[0], in_h);
        let xs = clips(out_w, stride[1], padding[1], kernel[1], in_w);
        let full_y = ys
            .iter()
            .filter(|&&(a, b)| a == 0 && b == kernel[0])
            .count();
        let full_x = xs
            .iter()
            .filter(|&&(a, b)| a == 0 && b == kernel[1])
            .count();
        let rows_y: usize = ys.iter().map(|(a, b)| b - a).sum();
        let cols_x: usize = xs.iter().map(|(a, b)| b - a).sum();
        // An empty column clip makes the pooling skip the window entirely.
        let nonempty_x = xs.iter().filter(|(a, b)| b > a).count();
        let positions = (out_h * out_w) as f64;
        let interior = (full_y * full_x) as f64;
        Windows {
            shape: bonsai_rt::kernels::shape::Shape2d {
                in_h,
                in_w,
                in_c,
                out_h,
                out_w,
                out_c,
                kernel_h: kernel[0],
                kernel_w: kernel[1],
                stride_h: stride[0],
                stride_w: stride[1],
                pad_top: padding[0],
                pad_left: padding[1],
            },
            kh: kernel[0],
            kw: kernel[1],
            in_c,
            out_c,
            positions,
            interior,
            border: positions - interior,
            sum_rows: (rows_y * nonempty_x) as f64,
            sum_count: (rows_y * cols_x) as f64,
        }
    }
}

impl Windows {
    /// Interior and border windows among the positions of `area` (None: the whole map), split
    /// as in [`Windows::new`].
    fn interior_border(&self, area: Option<crate::ir::Area>) -> (f64, f64) {
        let Some(a) = area else {
            return (self.interior, self.border);
        };
        let s = &self.shape;
        // A window is interior when it lies wholly inside the input along both axes.
        let whole = |o: usize, stride: usize, pad: usize, k: usize, size: usize| {
            (o * stride)
                .checked_sub(pad)
                .is_some_and(|start| start + k <= size)
        };
        let rows = (a.y0..a.y1)
            .filter(|&y| whole(y, s.stride_h, s.pad_top, s.kernel_h, s.in_h))
            .count();
        let cols = (a.x0..a.x1)
            .filter(|&x| whole(x, s.stride_w, s.pad_left, s.kernel_w, s.in_w))
            .count();
        let interior = rows * cols;
        (interior as f64, (a.len() - interior) as f64)
    }
}

type Counts = Vec<(&'static str, f64)>;

/// `conv2d_s8`: interior windows run dot products per filter (on thumbv7em SMLAD over 4-byte
/// words, then a byte tail; filters in pairs) over runs of the window: the whole `kh·kw·in_c`
/// window, read in place or gathered once per position into a buffer, or its `kh` rows of
/// `kw·in_c` bytes when the filter is longer than the buffer (`WindowLayout`). Border windows
/// run a per-tap loop (a dot product over `in_c`, or the filter's sum times the zero point for
/// a tap in the padding).
fn conv_dense_counts(g: &Windows) -> (&'static str, Counts, usize) {
    use bonsai_rt::kernels::conv2d::{window_layout, WindowLayout};
    let f = g.out_c as f64;
    let seg = g.kw * g.in_c;
    let k_len = g.kh * seg;
    let layout = window_layout(&g.shape);
    let (runs, run) = match layout {
        WindowLayout::Rows => (g.kh, seg),
        WindowLayout::Contiguous | WindowLayout::Gathered => (1, k_len),
    };
    let runs_in = g.interior * f * runs as f64;
    let taps_b = g.border * f * (g.kh * g.kw) as f64;
    let mut counts = vec![
        ("call", 1.0),
        ("pos", g.positions),
        ("filt", g.positions * f),
        ("row_in", runs_in),
        ("quad_in", runs_in * (run / 4) as f64),
        ("tail_in", runs_in * (run % 4) as f64),
    ];
    if layout == WindowLayout::Gathered {
        counts.extend([
            ("gather_row", g.interior * g.kh as f64),
            ("gather_byte", g.interior * k_len as f64),
        ]);
    }
    counts.extend([("tap_b", taps_b), ("mac_b", taps_b * g.in_c as f64)]);
    (
        "conv_dense",
        counts,
        (g.positions * f * k_len as f64) as usize,
    )
}

/// `conv2d_sparse_s8`: every filter's delta-CSR entries once per output position, with the
/// interior or the border inner loop; `cross` counts the segment crossings (the `while` that
/// moves to the next kernel row), `⌊last column / segment⌋` per filter.
///
/// A partial-area layer (`conv2d_sparse_s8_in_areas`, same loops) runs a filter only at the
/// positions inside its channel's rectangle; every channel still costs its `filt` visit (the
/// rectangle test, or the zero point's store, in place of the requantization). Filler entries,
/// which the IR does not place in a row, are spread over the rows like the nonzeros.
fn conv_sparse_counts(
    g: &Windows,
    entries: usize,
    weight_q: &[i8],
    c: &Conv2d,
) -> (&'static str, Counts, usize) {
    let seg = (g.kw * g.in_c).max(1);
    let k_len = g.kh * seg;
    let rows: Vec<&[i8]> = if k_len == 0 {
        Vec::new()
    } else {
        weight_q.chunks(k_len).collect()
    };
    let nonzeros: usize = weight_q.iter().filter(|&&w| w != 0).count();
    let per_entry = entries as f64 / nonzeros.max(1) as f64;
    let (mut e_in, mut e_b, mut cross, mut macs) = (0.0, 0.0, 0.0, 0.0);
    for (o, row) in rows.iter().enumerate() {
        let (interior, border) = g.interior_border(c.area.as_ref().map(|a| a[o]));
        let e = row.iter().filter(|&&w| w != 0).count() as f64 * per_entry;
        let crossings = row.iter().rposition(|&w| w != 0).map_or(0, |c| c / seg) as f64;
        e_in += interior * e;
        e_b += border * e;
        cross += (interior + border) * crossings;
        macs += (interior + border) * e;
    }
    let mut counts = vec![
        ("call", 1.0),
        ("pos", g.positions),
        ("filt", g.positions * g.out_c as f64),
        ("entry_in", e_in),
        ("entry_b", e_b),
        ("cross", cross),
    ];
    if c.area.is_some() {
        // `conv2d_sparse_s8_in_areas` tests every channel of every position against its
        // rectangle (`filt_area`); one outside skips its dot product and requantization and
        // stores the zero point instead (`filt_out`, a negative coefficient).
        let inside = c.positions_inside(g.shape.out_h, g.shape.out_w);
        counts.push(("filt_area", g.positions * g.out_c as f64));
        counts.push(("filt_out", g.positions * g.out_c as f64 - inside as f64));
    }
    ("conv_sparse", counts, macs.round() as usize)
}

/// `zero_outside_areas_s8`: channel by channel, a few instructions per row (more for a row
/// that crosses the rectangle, which zeroes two runs and skips the inside; a channel's own
/// set-up is spread over its rows too), and a strided store per element outside the rectangle.
/// No per-call term: its few tens of instructions are lost in the noise of the twins'
/// differences (fit set), and finer features (per call, per channel, per crossing row) came out
/// with large opposite signs, a negative cost for a small layer.
fn zero_areas_counts(g: &Windows, c: &Conv2d) -> Counts {
    let elems = g.positions * g.out_c as f64;
    let inside = c.positions_inside(g.shape.out_h, g.shape.out_w);
    vec![
        ("row", (g.out_c * g.shape.out_h) as f64),
        ("outside", elems - inside as f64),
    ]
}

/// `depthwise_conv2d_s8`: per output channel, `kh` strided rows of `kw` taps in an interior
/// window, a clipped per-tap loop at the border.
fn depthwise_counts(g: &Windows) -> (&'static str, Counts, usize) {
    let f = g.out_c as f64;
    let taps = (g.kh * g.kw) as f64;
    let counts = vec![
        ("call", 1.0),
        ("pos", g.positions),
        ("chan", g.positions * f),
        ("row_in", g.interior * f * g.kh as f64),
        ("mac_in", g.interior * f * taps),
        ("tap_b", g.border * f * taps),
    ];
    ("dw_conv", counts, (g.positions * f * taps) as usize)
}

/// `max_pool_s8` / `avg_pool_s8`: per channel of each position, the clipped window's rows and
/// taps.
fn pool_counts(g: &Windows) -> Counts {
    let c = g.out_c as f64;
    vec![
        ("call", 1.0),
        ("pos", g.positions),
        ("chan", g.positions * c),
        ("wrow", g.sum_rows * c),
        ("welem", g.sum_count * c),
    ]
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
