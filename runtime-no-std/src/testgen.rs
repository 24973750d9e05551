//! Seeded random kernel cases and their check against the `*_reference` kernels, shared by the
//! host proptests and the QEMU harness (`firmware-examples/qemu-kernel-harness`), so that both
//! platforms run the very same cases: case `seed` is fully determined by the seed.
//!
//! `no_std` and allocation-free: a case lives in a caller-provided [`Scratch`] (a `static` on
//! the target). Compiled for tests and with the `testgen` feature; not part of the runtime
//! API.
//!
//! Each `check_*` generates one case, runs the kernel under test and the reference, and
//! compares the outputs byte for byte. Shapes cover 1×1 kernels, kernels as large as the
//! (padded) input, strides 1–3, paddings 0–3 on each side (windows entirely in the padding
//! included), densities from empty filters to dense, extreme zero points, inputs, biases and
//! multipliers.
// `Mismatch` carries the whole shape so that a failure on the target can be printed and
// replayed; there is no `Box` in no_std, and the error path runs once.
#![allow(clippy::result_large_err)]

use crate::kernels::add::{add_s8_reference, AddParams};
use crate::kernels::area::{zero_outside_areas_s8_reference, Area};
use crate::kernels::conv2d::{conv2d_s8_reference, Conv2dParams};
use crate::kernels::conv2d_sparse::{
    conv2d_sparse_s8, conv2d_sparse_s8_in_areas, conv2d_sparse_s8_reference, SparseConv2dParams,
};
use crate::kernels::depthwise_conv2d::{
    depthwise_conv2d_s8, depthwise_conv2d_s8_reference, DepthwiseConv2dParams,
};
use crate::kernels::fully_connected::{fold_bias, fully_connected_s8_reference, FcParams};
use crate::kernels::fully_connected_sparse::{
    fully_connected_sparse_s8_reference, ChannelQuant, RowLens, SparseFcParams, SparseMatrix,
};
use crate::kernels::pooling::{
    avg_pool_s8, avg_pool_s8_reference, max_pool_s8, max_pool_s8_reference, PoolParams,
};
use crate::kernels::shape::Shape2d;

/// Largest input of a case, elements (8 × 8 × 16 for pooling; the sparse fully connected
/// layer's widest).
pub const MAX_IN: usize = 1024;
/// Largest weight tensor, elements (8 filters of 8 × 8 × 16).
pub const MAX_W: usize = 8192;
/// Largest output, elements (14 × 14 × 24).
pub const MAX_OUT: usize = 4704;
/// Most output channels.
pub const MAX_C: usize = 48;

/// SplitMix64.
#[derive(Clone, Debug)]
pub struct Rng(pub u64);

impl Rng {
    /// Next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `lo..=hi` (`lo ≤ hi`), up to a negligible modulo bias.
    pub fn range(&mut self, lo: i32, hi: i32) -> i32 {
        let span = (i64::from(hi) - i64::from(lo) + 1) as u64;
        // 32-bit halves: a u64 `%` would pull in a libcall on Cortex-M.
        let r = ((self.next_u64() >> 32) * span) >> 32;
        (i64::from(lo) + r as i64) as i32
    }

    /// `usize` in `lo..=hi`.
    pub fn urange(&mut self, lo: usize, hi: usize) -> usize {
        self.range(lo as i32, hi as i32) as usize
    }

    /// True with probability `num / den`.
    pub fn chance(&mut self, num: i32, den: i32) -> bool {
        self.range(0, den - 1) < num
    }

    fn i8(&mut self) -> i8 {
        self.range(-128, 127) as i8
    }
}

/// The buffers of one case.
pub struct Scratch {
    input: [i8; MAX_IN],
    input2: [i8; MAX_IN],
    weights: [i8; MAX_W],
    dense: [i8; MAX_W],
    entries: [(i8, u8); MAX_W],
    lens8: [u8; MAX_C],
    lens16: [u16; MAX_C],
    bias: [i32; MAX_C],
    folded: [i32; MAX_C],
    multiplier: [i32; MAX_C],
    shift: [i32; MAX_C],
    channels: [ChannelQuant; MAX_C],
    areas: [Area; MAX_C],
    fast: [i8; MAX_OUT],
    reference: [i8; MAX_OUT],
}

impl Scratch {
    /// All zero (a `static` of it goes to `.bss`).
    pub const fn new() -> Scratch {
        Scratch {
            input: [0; MAX_IN],
            input2: [0; MAX_IN],
            weights: [0; MAX_W],
            dense: [0; MAX_W],
            entries: [(0, 0); MAX_W],
            lens8: [0; MAX_C],
            lens16: [0; MAX_C],
            bias: [0; MAX_C],
            folded: [0; MAX_C],
            multiplier: [0; MAX_C],
            shift: [0; MAX_C],
            channels: [ChannelQuant::new(0, 0, 0); MAX_C],
            areas: [Area {
                y0: 0,
                x0: 0,
                y1: 0,
                x1: 0,
            }; MAX_C],
            fast: [0; MAX_OUT],
            reference: [0; MAX_OUT],
        }
    }
}

impl Default for Scratch {
    fn default() -> Self {
        Self::new()
    }
}

/// The first differing output of a failed case. Rerun `check_*(seed, ..)` to reproduce it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mismatch {
    /// Which check.
    pub kernel: &'static str,
    /// The case's seed.
    pub seed: u64,
    /// Geometry, for the sliding-window kernels.
    pub shape: Option<Shape2d>,
    /// Output length.
    pub len: usize,
    /// First differing output index.
    pub index: usize,
    /// The reference's value there.
    pub expected: i8,
    /// The kernel under test's value.
    pub actual: i8,
}

/// What a passing case covered (for tests of the generator itself).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CaseInfo {
    /// Geometry, for the sliding-window kernels.
    pub shape: Option<Shape2d>,
    /// Output elements compared.
    pub outputs: usize,
    /// Some output window was entirely inside the input.
    pub interior: bool,
    /// Some output window overlapped the padding.
    pub border: bool,
    /// Filters (rows) without a nonzero weight.
    pub empty_rows: usize,
    /// Sparse filler entries `(0, 255)`.
    pub fillers: usize,
    /// Some sparse row has more than 255 entries (only `u16` row lengths hold it).
    pub long_rows: bool,
}

fn compare(
    kernel: &'static str,
    seed: u64,
    shape: Option<Shape2d>,
    fast: &[i8],
    reference: &[i8],
) -> Result<(), Mismatch> {
    match fast.iter().zip(reference).position(|(a, b)| a != b) {
        None => Ok(()),
        Some(index) => Err(Mismatch {
            kernel,
            seed,
            shape,
            len: fast.len(),
            index,
            expected: reference[index],
            actual: fast[index],
        }),
    }
}

fn fill_i8(r: &mut Rng, buf: &mut [i8]) {
    // Mostly uniform; sometimes saturated, to push accumulators to their extremes.
    match r.range(0, 9) {
        0 => buf.fill(127),
        1 => buf.fill(-128),
        2 => buf
            .iter_mut()
            .for_each(|x| *x = if r.chance(1, 2) { 127 } else { -128 }),
        _ => buf.iter_mut().for_each(|x| *x = r.i8()),
    }
}

/// Weights in `[-127, 127]`, `rows` rows; some rows empty, densities from 0 to 1.
fn fill_weights(r: &mut Rng, buf: &mut [i8], rows: usize) -> usize {
    let row_len = buf.len().checked_div(rows).unwrap_or(0);
    // Long-gap mode: only the first and last column of a row, so that sparse encodings
    // need one filler per 255 columns in between.
    let ends = r.chance(1, 7);
    let density = match r.range(0, 5) {
        0 => 1000,
        1 => 0,
        2 => r.range(1, 30),
        _ => r.range(0, 1000),
    };
    let extreme = r.chance(1, 8);
    let mut empty = 0;
    for row in buf.chunks_mut(row_len.max(1)) {
        let keep_row = !r.chance(1, 6);
        let last = row.len().saturating_sub(1);
        for (j, w) in row.iter_mut().enumerate() {
            let pick = if ends {
                j == 0 || j == last
            } else {
                r.range(0, 999) < density
            };
            *w = if keep_row && pick {
                if extreme {
                    if r.chance(1, 2) {
                        127
                    } else {
                        -127
                    }
                } else {
                    r.range(-127, 127) as i8
                }
            } else {
                0
            };
        }
        empty += usize::from(row.iter().all(|&w| w == 0));
    }
    empty
}

/// Per-channel requantization: realistic multipliers and shifts, with extremes.
fn fill_requant(r: &mut Rng, s: &mut Scratch, n: usize) {
    for o in 0..n {
        s.bias[o] = match r.range(0, 9) {
            0 => r.range(i32::MIN, i32::MAX),
            1 => 0,
            _ => r.range(-(1 << 20), 1 << 20),
        };
        s.multiplier[o] = match r.range(0, 9) {
            0 => i32::MAX,
            1 => 1 << 30,
            2 => 0,
            _ => r.range(1 << 30, i32::MAX),
        };
        s.shift[o] = match r.range(0, 9) {
            0 => -31,
            1 => r.range(0, 8),
            _ => r.range(-20, 0),
        };
    }
}

/// `(input_offset, output_offset, act_min, act_max)`.
fn fill_offsets(r: &mut Rng) -> (i32, i32, i8, i8) {
    let zp_in = match r.range(0, 5) {
        0 => -128,
        1 => 127,
        _ => r.i8(),
    };
    let (a, b) = if r.chance(1, 3) {
        (-128, 127)
    } else {
        (r.i8(), r.i8())
    };
    (-i32::from(zp_in), i32::from(r.i8()), a.min(b), a.max(b))
}

/// A random sliding-window geometry with `in_c ≤ max_c`; `out_c` is set by the caller.
fn gen_shape(r: &mut Rng, max_c: usize) -> Shape2d {
    let in_h = r.urange(1, 8);
    let in_w = r.urange(1, 8);
    let in_c = r.urange(1, max_c);
    let pad = |r: &mut Rng| match r.range(0, 9) {
        0..=3 => 0,
        4..=7 => r.urange(1, 2),
        _ => 3,
    };
    let (pt, pb, pl, pr) = (pad(r), pad(r), pad(r), pad(r));
    let mode = r.range(0, 5);
    let (kh, kw) = match mode {
        0 => (1, 1),
        1 => (in_h, in_w),
        _ => (
            r.urange(1, (in_h + pt + pb).min(8)),
            r.urange(1, (in_w + pl + pr).min(8)),
        ),
    };
    let stride_h = r.urange(1, 3);
    let stride_w = r.urange(1, 3);
    // Bottom/right padding only enters through the output size.
    let out = |inp: usize, a: usize, b: usize, k: usize, st: usize| {
        (inp + a + b).saturating_sub(k) / st + 1
    };
    Shape2d {
        in_h,
        in_w,
        in_c,
        out_h: out(in_h, pt, pb, kh, stride_h),
        out_w: out(in_w, pl, pr, kw, stride_w),
        out_c: 0,
        kernel_h: kh,
        kernel_w: kw,
        stride_h,
        stride_w,
        pad_top: pt,
        pad_left: pl,
    }
}

fn coverage(sh: &Shape2d) -> (bool, bool) {
    let (mut interior, mut border) = (false, false);
    for oy in 0..sh.out_h {
        for ox in 0..sh.out_w {
            if sh.clip(oy, ox).is_interior(sh) {
                interior = true;
            } else {
                border = true;
            }
        }
    }
    (interior, border)
}

/// A fully connected layer (1..=96 inputs, 1..=48 outputs): `fast` against
/// [`fully_connected_s8_reference`].
pub fn check_fc(
    seed: u64,
    s: &mut Scratch,
    fast: fn(&FcParams, &[i8], &mut [i8]),
) -> Result<CaseInfo, Mismatch> {
    let r = &mut Rng(seed);
    let n_in = if r.chance(1, 4) {
        r.urange(1, 8)
    } else {
        r.urange(1, 96)
    };
    let n_out = r.urange(1, MAX_C);
    fill_i8(r, &mut s.input[..n_in]);
    let empty_rows = fill_weights(r, &mut s.weights[..n_in * n_out], n_out);
    fill_requant(r, s, n_out);
    let (input_offset, output_offset, act_min, act_max) = fill_offsets(r);
    let w = &s.weights[..n_in * n_out];
    fold_bias(w, &s.bias[..n_out], input_offset, &mut s.folded[..n_out]);
    fully_connected_s8_reference(
        &s.input[..n_in],
        w,
        &s.bias[..n_out],
        input_offset,
        &s.multiplier[..n_out],
        &s.shift[..n_out],
        output_offset,
        act_min,
        act_max,
        &mut s.reference[..n_out],
    );
    let p = FcParams {
        weights: w,
        folded_bias: &s.folded[..n_out],
        multiplier: &s.multiplier[..n_out],
        shift: &s.shift[..n_out],
        output_offset,
        act_min,
        act_max,
    };
    s.fast[..n_out].fill(0x55);
    fast(&p, &s.input[..n_in], &mut s.fast[..n_out]);
    compare(
        "fully_connected_s8",
        seed,
        None,
        &s.fast[..n_out],
        &s.reference[..n_out],
    )?;
    Ok(CaseInfo {
        outputs: n_out,
        empty_rows,
        ..CaseInfo::default()
    })
}

/// Shared set-up of the convolution cases: shape, input, weights (`out_c` rows of `k` each),
/// requantization, folded bias.
struct ConvCase {
    sh: Shape2d,
    k: usize,
    input_offset: i32,
    output_offset: i32,
    act_min: i8,
    act_max: i8,
    empty_rows: usize,
}

fn gen_conv(r: &mut Rng, s: &mut Scratch, depthwise: bool, max_c: usize) -> ConvCase {
    let mut sh = gen_shape(r, max_c);
    sh.out_c = if depthwise {
        sh.in_c * r.urange(1, 3)
    } else {
        r.urange(1, 8)
    };
    let k = sh.kernel_h * sh.kernel_w * if depthwise { 1 } else { sh.in_c };
    fill_i8(r, &mut s.input[..sh.in_h * sh.in_w * sh.in_c]);
    let empty_rows = fill_weights(r, &mut s.weights[..sh.out_c * k], sh.out_c);
    fill_requant(r, s, sh.out_c);
    let (input_offset, output_offset, act_min, act_max) = fill_offsets(r);
    fold_bias(
        &s.weights[..sh.out_c * k],
        &s.bias[..sh.out_c],
        input_offset,
        &mut s.folded[..sh.out_c],
    );
    ConvCase {
        sh,
        k,
        input_offset,
        output_offset,
        act_min,
        act_max,
        empty_rows,
    }
}

fn info(c: &ConvCase, fillers: usize) -> CaseInfo {
    let (interior, border) = coverage(&c.sh);
    CaseInfo {
        shape: Some(c.sh),
        outputs: c.sh.out_h * c.sh.out_w * c.sh.out_c,
        interior,
        border,
        empty_rows: c.empty_rows,
        fillers,
        long_rows: false,
    }
}

/// A dense convolution: `fast` against [`conv2d_s8_reference`].
pub fn check_conv2d(
    seed: u64,
    s: &mut Scratch,
    fast: fn(&Conv2dParams, &[i8], &mut [i8]),
) -> Result<CaseInfo, Mismatch> {
    let r = &mut Rng(seed);
    let c = gen_conv(r, s, false, 8);
    let sh = c.sh;
    let (n_in, n_out) = (sh.in_h * sh.in_w * sh.in_c, sh.out_h * sh.out_w * sh.out_c);
    let p = Conv2dParams {
        shape: sh,
        weights: &s.weights[..sh.out_c * c.k],
        folded_bias: &s.folded[..sh.out_c],
        multiplier: &s.multiplier[..sh.out_c],
        shift: &s.shift[..sh.out_c],
        input_offset: c.input_offset,
        output_offset: c.output_offset,
        act_min: c.act_min,
        act_max: c.act_max,
    };
    conv2d_s8_reference(
        &p,
        &s.bias[..sh.out_c],
        &s.input[..n_in],
        &mut s.reference[..n_out],
    );
    s.fast[..n_out].fill(0x55);
    fast(&p, &s.input[..n_in], &mut s.fast[..n_out]);
    compare(
        "conv2d_s8",
        seed,
        Some(sh),
        &s.fast[..n_out],
        &s.reference[..n_out],
    )?;
    Ok(info(&c, 0))
}

/// A depthwise convolution (channel multiplier 1..=3): [`depthwise_conv2d_s8`] against its
/// reference.
pub fn check_depthwise_conv2d(seed: u64, s: &mut Scratch) -> Result<CaseInfo, Mismatch> {
    let r = &mut Rng(seed);
    let c = gen_conv(r, s, true, 8);
    let sh = c.sh;
    let (n_in, n_out) = (sh.in_h * sh.in_w * sh.in_c, sh.out_h * sh.out_w * sh.out_c);
    let p = DepthwiseConv2dParams {
        shape: sh,
        weights: &s.weights[..sh.out_c * c.k],
        folded_bias: &s.folded[..sh.out_c],
        multiplier: &s.multiplier[..sh.out_c],
        shift: &s.shift[..sh.out_c],
        input_offset: c.input_offset,
        output_offset: c.output_offset,
        act_min: c.act_min,
        act_max: c.act_max,
    };
    depthwise_conv2d_s8_reference(
        &p,
        &s.bias[..sh.out_c],
        &s.input[..n_in],
        &mut s.reference[..n_out],
    );
    s.fast[..n_out].fill(0x55);
    depthwise_conv2d_s8(&p, &s.input[..n_in], &mut s.fast[..n_out]);
    compare(
        "depthwise_conv2d_s8",
        seed,
        Some(sh),
        &s.fast[..n_out],
        &s.reference[..n_out],
    )?;
    Ok(info(&c, 0))
}

/// Encodes `out` rows of `k` dense weights into the canonical delta CSR (the format of
/// [`fully_connected_sparse`](crate::kernels::fully_connected_sparse)); returns the number of
/// entries and of fillers, or `None` if they do not fit `entries`.
pub fn encode_sparse(
    weights: &[i8],
    k: usize,
    entries: &mut [(i8, u8)],
    lens: &mut [u16],
) -> Option<(usize, usize)> {
    let (mut n, mut fillers) = (0usize, 0usize);
    for (row, len) in weights.chunks(k.max(1)).zip(lens.iter_mut()) {
        let before = n;
        let mut cursor = 0usize;
        for (j, &w) in row.iter().enumerate() {
            if w == 0 {
                continue;
            }
            while j - cursor > 255 {
                *entries.get_mut(n)? = (0, 255);
                n += 1;
                fillers += 1;
                cursor += 255;
            }
            *entries.get_mut(n)? = (w, (j - cursor) as u8);
            n += 1;
            cursor = j;
        }
        *len = u16::try_from(n - before).ok()?;
    }
    Some((n, fillers))
}

/// A sparse convolution (up to 16 input channels): [`conv2d_sparse_s8`] against its
/// reference, with `u8` and `u16` row lengths.
pub fn check_conv2d_sparse(seed: u64, s: &mut Scratch) -> Result<CaseInfo, Mismatch> {
    let r = &mut Rng(seed);
    // Up to 16 input channels: filters of up to 1024 columns, so gaps can need two fillers.
    let c = gen_conv(r, s, false, 16);
    let sh = c.sh;
    let (n_in, n_out) = (sh.in_h * sh.in_w * sh.in_c, sh.out_h * sh.out_w * sh.out_c);
    let Some((n_entries, fillers)) = encode_sparse(
        &s.weights[..sh.out_c * c.k],
        c.k,
        &mut s.entries,
        &mut s.lens16[..sh.out_c],
    ) else {
        return Err(Mismatch {
            kernel: "conv2d_sparse_s8 (case does not fit the scratch)",
            seed,
            shape: Some(sh),
            len: 0,
            index: 0,
            expected: 0,
            actual: 0,
        });
    };
    let fits_u8 = s.lens16[..sh.out_c].iter().all(|&n| n <= 255);
    for (l8, &l16) in s.lens8.iter_mut().zip(&s.lens16[..sh.out_c]) {
        *l8 = l16 as u8;
    }
    for wide in [true, false] {
        if !wide && !fits_u8 {
            continue;
        }
        let lens = if wide {
            RowLens::U16(&s.lens16[..sh.out_c])
        } else {
            RowLens::U8(&s.lens8[..sh.out_c])
        };
        let Ok(m) = SparseMatrix::try_new(c.k, &s.entries[..n_entries], lens) else {
            return Err(Mismatch {
                kernel: "conv2d_sparse_s8 (encoder produced an invalid matrix)",
                seed,
                shape: Some(sh),
                len: 0,
                index: 0,
                expected: 0,
                actual: 0,
            });
        };
        let p = SparseConv2dParams {
            shape: sh,
            weights: m,
            folded_bias: &s.folded[..sh.out_c],
            multiplier: &s.multiplier[..sh.out_c],
            shift: &s.shift[..sh.out_c],
            input_offset: c.input_offset,
            output_offset: c.output_offset,
            act_min: c.act_min,
            act_max: c.act_max,
        };
        conv2d_sparse_s8_reference(
            &p,
            &s.bias[..sh.out_c],
            &s.input[..n_in],
            &mut s.dense,
            &mut s.reference[..n_out],
        );
        s.fast[..n_out].fill(0x55);
        conv2d_sparse_s8(&p, &s.input[..n_in], &mut s.fast[..n_out]);
        compare(
            "conv2d_sparse_s8",
            seed,
            Some(sh),
            &s.fast[..n_out],
            &s.reference[..n_out],
        )?;
        // Partial areas (some empty, some whole): the reference output with everything
        // outside a channel's rectangle set to the output zero point.
        for a in &mut s.areas[..sh.out_c] {
            let (y0, y1) = (r.urange(0, sh.out_h), r.urange(0, sh.out_h));
            let (x0, x1) = (r.urange(0, sh.out_w), r.urange(0, sh.out_w));
            *a = Area {
                y0: y0.min(y1) as u16,
                x0: x0.min(x1) as u16,
                y1: y0.max(y1) as u16,
                x1: x0.max(x1) as u16,
            };
        }
        zero_outside_areas_s8_reference(
            &s.areas[..sh.out_c],
            sh.out_h,
            sh.out_w,
            c.output_offset as i8,
            &mut s.reference[..n_out],
        );
        s.fast[..n_out].fill(0x55);
        conv2d_sparse_s8_in_areas(
            &p,
            &s.areas[..sh.out_c],
            &s.input[..n_in],
            &mut s.fast[..n_out],
        );
        compare(
            "conv2d_sparse_s8_in_areas",
            seed,
            Some(sh),
            &s.fast[..n_out],
            &s.reference[..n_out],
        )?;
        // The decoded weights are the generated ones: the encoding lost nothing.
        compare(
            "conv2d_sparse_s8 (decode)",
            seed,
            Some(sh),
            &s.dense[..sh.out_c * c.k],
            &s.weights[..sh.out_c * c.k],
        )?;
    }
    Ok(info(&c, fillers))
}

/// A failure of the case set-up itself (not of a kernel), reported like a mismatch.
fn setup_error(kernel: &'static str, seed: u64) -> Mismatch {
    Mismatch {
        kernel,
        seed,
        shape: None,
        len: 0,
        index: 0,
        expected: 0,
        actual: 0,
    }
}

/// A sparse fully connected layer: `fast` (the kernel under test, e.g.
/// [`fully_connected_sparse_s8`](crate::kernels::fully_connected_sparse::fully_connected_sparse_s8),
/// whose inner loop is the SXTB16 two-entries path on the Cortex-M4) against
/// [`fully_connected_s8_reference`] on the dense weights and
/// [`fully_connected_sparse_s8_reference`] on the encoded ones, with `u16` row lengths and,
/// when every row fits, `u8` ones.
///
/// Shapes: 1..=96 inputs, or (a third of the cases) 256..=1024, where gaps need one to four
/// filler entries; as many outputs (up to 48) as fit [`MAX_W`] weights. Weights as
/// [`check_fc`]'s (densities from empty to dense, empty rows, first-and-last-column rows),
/// or (a quarter of the cases) rows with nonzeros only around the filler boundaries, columns
/// 0, 254..=256, 509..=511, 764..=766 and the last, so that gaps of exactly 255 and 256 columns
/// and runs of fillers come up all the time. Row lengths odd and even (the pair loop's tail).
pub fn check_fc_sparse(
    seed: u64,
    s: &mut Scratch,
    fast: fn(&SparseFcParams, &[i8], &mut [i8]),
) -> Result<CaseInfo, Mismatch> {
    let r = &mut Rng(seed);
    let n_in = match r.range(0, 5) {
        0 => r.urange(1, 8),
        1 | 2 => r.urange(256, MAX_IN),
        _ => r.urange(1, 96),
    };
    let n_out = r.urange(1, MAX_C.min(MAX_W / n_in));
    fill_i8(r, &mut s.input[..n_in]);
    let w = &mut s.weights[..n_in * n_out];
    let mut empty_rows = fill_weights(r, w, n_out);
    if r.chance(1, 4) {
        const COLS: [usize; 10] = [0, 254, 255, 256, 509, 510, 511, 764, 765, 766];
        w.fill(0);
        empty_rows = 0;
        for row in w.chunks_mut(n_in) {
            for (j, v) in row.iter_mut().enumerate() {
                if (COLS.contains(&j) || j + 1 == n_in) && r.chance(1, 3) {
                    *v = r.range(-127, 127) as i8;
                }
            }
            empty_rows += usize::from(row.iter().all(|&v| v == 0));
        }
    }
    fill_requant(r, s, n_out);
    let (input_offset, output_offset, act_min, act_max) = fill_offsets(r);
    let w = &s.weights[..n_in * n_out];
    fold_bias(w, &s.bias[..n_out], input_offset, &mut s.folded[..n_out]);
    fully_connected_s8_reference(
        &s.input[..n_in],
        w,
        &s.bias[..n_out],
        input_offset,
        &s.multiplier[..n_out],
        &s.shift[..n_out],
        output_offset,
        act_min,
        act_max,
        &mut s.reference[..n_out],
    );
    for o in 0..n_out {
        s.channels[o] = ChannelQuant::new(s.folded[o], s.multiplier[o], s.shift[o]);
    }
    let Some((n_entries, fillers)) = encode_sparse(w, n_in, &mut s.entries, &mut s.lens16[..n_out])
    else {
        return Err(setup_error(
            "fully_connected_sparse_s8 (case does not fit the scratch)",
            seed,
        ));
    };
    let fits_u8 = s.lens16[..n_out].iter().all(|&n| n <= 255);
    for (l8, &l16) in s.lens8.iter_mut().zip(&s.lens16[..n_out]) {
        *l8 = l16 as u8;
    }
    for wide in [true, false] {
        if !wide && !fits_u8 {
            continue;
        }
        let lens = if wide {
            RowLens::U16(&s.lens16[..n_out])
        } else {
            RowLens::U8(&s.lens8[..n_out])
        };
        let Ok(m) = SparseMatrix::try_new(n_in, &s.entries[..n_entries], lens) else {
            return Err(setup_error(
                "fully_connected_sparse_s8 (encoder produced an invalid matrix)",
                seed,
            ));
        };
        // The sparse reference reads the encoding the way the format defines it.
        s.fast[..n_out].fill(0x55);
        fully_connected_sparse_s8_reference(
            &s.input[..n_in],
            &m,
            &s.bias[..n_out],
            input_offset,
            &s.multiplier[..n_out],
            &s.shift[..n_out],
            output_offset,
            act_min,
            act_max,
            &mut s.fast[..n_out],
        );
        compare(
            "fully_connected_sparse_s8_reference",
            seed,
            None,
            &s.fast[..n_out],
            &s.reference[..n_out],
        )?;
        let p = SparseFcParams {
            weights: m,
            channels: &s.channels[..n_out],
            output_offset,
            act_min,
            act_max,
        };
        s.fast[..n_out].fill(0x55);
        fast(&p, &s.input[..n_in], &mut s.fast[..n_out]);
        compare(
            "fully_connected_sparse_s8",
            seed,
            None,
            &s.fast[..n_out],
            &s.reference[..n_out],
        )?;
    }
    Ok(CaseInfo {
        outputs: n_out,
        empty_rows,
        fillers,
        long_rows: !fits_u8,
        ..CaseInfo::default()
    })
}

fn gen_pool(r: &mut Rng, s: &mut Scratch) -> PoolParams {
    let mut sh = gen_shape(r, 16);
    sh.out_c = sh.in_c;
    fill_i8(r, &mut s.input[..sh.in_h * sh.in_w * sh.in_c]);
    let (_, _, act_min, act_max) = fill_offsets(r);
    PoolParams {
        shape: sh,
        act_min,
        act_max,
    }
}

fn check_pool(
    seed: u64,
    s: &mut Scratch,
    name: &'static str,
    fast: fn(&PoolParams, &[i8], &mut [i8]),
    reference: fn(&PoolParams, &[i8], &mut [i8]),
) -> Result<CaseInfo, Mismatch> {
    let r = &mut Rng(seed);
    let p = gen_pool(r, s);
    let sh = p.shape;
    let (n_in, n_out) = (sh.in_h * sh.in_w * sh.in_c, sh.out_h * sh.out_w * sh.out_c);
    reference(&p, &s.input[..n_in], &mut s.reference[..n_out]);
    s.fast[..n_out].fill(0x55);
    fast(&p, &s.input[..n_in], &mut s.fast[..n_out]);
    compare(
        name,
        seed,
        Some(sh),
        &s.fast[..n_out],
        &s.reference[..n_out],
    )?;
    let (interior, border) = coverage(&sh);
    Ok(CaseInfo {
        shape: Some(sh),
        outputs: n_out,
        interior,
        border,
        ..CaseInfo::default()
    })
}

/// Max pooling against its reference.
pub fn check_max_pool(seed: u64, s: &mut Scratch) -> Result<CaseInfo, Mismatch> {
    check_pool(seed, s, "max_pool_s8", max_pool_s8, max_pool_s8_reference)
}

/// Average pooling against its reference.
pub fn check_avg_pool(seed: u64, s: &mut Scratch) -> Result<CaseInfo, Mismatch> {
    check_pool(seed, s, "avg_pool_s8", avg_pool_s8, avg_pool_s8_reference)
}

/// Elementwise addition (1..=1024 elements, TFLite-style parameters from random scales):
/// `fast` against [`add_s8_reference`].
pub fn check_add(
    seed: u64,
    s: &mut Scratch,
    fast: fn(&AddParams, &[i8], &[i8], &mut [i8]),
) -> Result<CaseInfo, Mismatch> {
    let r = &mut Rng(seed);
    let n = r.urange(1, MAX_IN);
    fill_i8(r, &mut s.input[..n]);
    fill_i8(r, &mut s.input2[..n]);
    // Multipliers as QuantizeMultiplierSmallerThanOneExp gives them: [2^30, 2^31) with shifts
    // ≤ 0; the larger input's is exactly 0.5 (2^30, shift 0).
    let q = |r: &mut Rng| (r.range(1 << 30, i32::MAX), r.range(-12, 0));
    let (m1, s1) = if r.chance(1, 2) { (1 << 30, 0) } else { q(r) };
    let (m2, s2) = if r.chance(1, 2) { (1 << 30, 0) } else { q(r) };
    let (mo, so) = match r.range(0, 4) {
        0 => (i32::MAX, 0),
        _ => (r.range(1 << 30, i32::MAX), r.range(-31, -10)),
    };
    let (off1, off_out, act_min, act_max) = fill_offsets(r);
    let p = AddParams {
        input1_offset: off1,
        input1_multiplier: m1,
        input1_shift: s1,
        input2_offset: -i32::from(r.i8()),
        input2_multiplier: m2,
        input2_shift: s2,
        left_shift: 20,
        output_multiplier: mo,
        output_shift: so,
        output_offset: off_out,
        act_min,
        act_max,
    };
    add_s8_reference(&p, &s.input[..n], &s.input2[..n], &mut s.reference[..n]);
    s.fast[..n].fill(0x55);
    fast(&p, &s.input[..n], &s.input2[..n], &mut s.fast[..n]);
    compare("add_s8", seed, None, &s.fast[..n], &s.reference[..n])?;
    Ok(CaseInfo {
        outputs: n,
        ..CaseInfo::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::conv2d::conv2d_s8_portable;
    use std::boxed::Box;

    #[test]
    fn generator_covers_the_corner_cases() {
        // Guards the generator: over 2000 seeds, every feature the checks rely on shows up.
        let mut s = Box::new(Scratch::new());
        let (mut one_by_one, mut whole_input, mut strides3, mut interior_and_border) = (0, 0, 0, 0);
        let (mut all_padding, mut empty_rows, mut fillers, mut double_fillers) = (0, 0, 0, 0);
        for seed in 0..2000u64 {
            let c = check_conv2d(seed, &mut s, conv2d_s8_portable).unwrap();
            let sh = c.shape.unwrap();
            one_by_one += usize::from(sh.kernel_h == 1 && sh.kernel_w == 1);
            whole_input += usize::from(sh.kernel_h == sh.in_h && sh.kernel_w == sh.in_w);
            strides3 += usize::from(sh.stride_h == 3 || sh.stride_w == 3);
            interior_and_border += usize::from(c.interior && c.border);
            all_padding += usize::from(
                (0..sh.out_h).any(|oy| (0..sh.out_w).any(|ox| sh.clip(oy, ox).count() == 0)),
            );
            empty_rows += c.empty_rows;
            let c = check_conv2d_sparse(seed, &mut s).unwrap();
            fillers += c.fillers;
            double_fillers += usize::from(c.fillers >= 2 && c.fillers > c.shape.unwrap().out_c);
        }
        // (The last is a proxy for gaps of 510+ columns: more fillers than filters.)
        for (what, n, min) in [
            ("1x1", one_by_one, 20),
            ("kernel = input", whole_input, 20),
            ("stride 3", strides3, 20),
            ("interior and border", interior_and_border, 20),
            ("window all padding", all_padding, 20),
            ("empty filters", empty_rows, 20),
            ("fillers", fillers, 20),
            ("more fillers than filters", double_fillers, 5),
        ] {
            assert!(n >= min, "{what}: {n}");
        }
    }

    #[test]
    fn encoder_bridges_long_gaps() {
        let mut w = [0i8; 600];
        w[2] = 5;
        w[3] = -1;
        w[590] = 7;
        let (mut e, mut l) = ([(0i8, 0u8); 8], [0u16; 1]);
        assert_eq!(encode_sparse(&w, 600, &mut e, &mut l), Some((5, 2)));
        assert_eq!(e[..5], [(5, 2), (-1, 1), (0, 255), (0, 255), (7, 77)]);
        assert_eq!(l, [5]);
        assert_eq!(encode_sparse(&w, 600, &mut e[..4], &mut l), None);
    }
}
