//! Dense 2-D convolution, int8, TFLite / CMSIS-NN semantics (`CONV_2D`, one image, no
//! dilation, `groups = 1`).
//!
//! Layouts: input `[in_h][in_w][in_c]` (HWC), weights OHWI `[out_c][kernel_h][kernel_w][in_c]`
//! (TFLite's filter layout), output `[out_h][out_w][out_c]`. Geometry in [`Shape2d`]. Weights
//! are symmetric per output channel, the bias is `i32` with scale `input_scale · w_scale[o]`.
//! Per output position `(oy, ox)` and channel `o`, with `input_offset = −input_zero_point`:
//!
//! ```text
//! acc       = bias[o] + Σ_{ky, kx, c, (iy, ix) inside the input} (x[iy][ix][c] + input_offset) · w[o][ky][kx][c]
//!             iy = oy·stride_h − pad_top + ky,  ix = ox·stride_w − pad_left + kx
//! output[oy][ox][o] = requantize(acc, multiplier[o], shift[o]) + output zp, clamped
//! ```
//!
//! Padding is *real zero*, i.e. the input zero point: padded positions contribute nothing.
//!
//! ## How the input offset is folded
//!
//! Padding reads as the zero point `zp = −input_offset`, so padded taps can equally be written
//! as `x = zp`, which contributes `(zp + input_offset) · w = 0`. With that, every window has all
//! `kernel_h · kernel_w · in_c` taps and the offset folds into the bias exactly as for a dense
//! layer:
//!
//! ```text
//! acc = folded_bias[o] + Σ_{all taps} x' · w,     x' = the input value, or zp for a padded tap
//! folded_bias[o] = bias[o] + input_offset · Σ_{ky,kx,c} w[o][ky][kx][c]
//! ```
//!
//! `folded_bias` is [`fold_bias`](super::fully_connected::fold_bias) of the weights viewed as
//! `out_c` rows of `kernel_h · kernel_w · in_c` (the compiler computes it ahead of time). The
//! fast kernel splits output positions in two:
//!
//! * **interior** windows (entirely inside the input): dot products of the window with each
//!   filter, no bounds or padding tests. An HWC input row and an OHWI filter row line up, so the
//!   window is `kernel_h` runs of `kernel_w · in_c` bytes; how they reach the dot product is the
//!   shape's [`WindowLayout`]: already one run of `K` bytes in the input, gathered once per
//!   position into a `K`-byte stack buffer (so that each filter costs one long dot product
//!   instead of `kernel_h` short ones, whose set-up dominated for small `kernel_w · in_c`), or,
//!   for `K` > [`GATHER_MAX`], `kernel_h` dot products per filter;
//! * **border** windows: per tap, a dot product of `in_c` bytes when inside, `zp · Σ w` when
//!   padded.
//!
//! All arithmetic wraps modulo 2^32 (like the reference), so the fold is exact in every case.

use core::num::NonZeroUsize;

use super::shape::{Clip, Dims, Shape2d};
use crate::requant::requantize;

/// Longest filter `K = kernel_h · kernel_w · in_c` whose interior windows [`conv2d_s8`] gathers
/// into a stack buffer (3×3×64: the widest 3×3 convolution of the MLPerf Tiny models). The
/// buffer is this long whatever the layer, so it bounds the kernel's stack use.
pub const GATHER_MAX: usize = 576;

/// How [`conv2d_s8`] presents an interior window to its dot products (see the
/// [module docs](self)); [`window_layout`] says which a shape gets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WindowLayout {
    /// The window's rows are adjacent in the input (`kernel_h = 1`, or a window as wide as the
    /// input): one dot product of `K` bytes per filter, read in place.
    Contiguous,
    /// `K ≤` [`GATHER_MAX`]: the `kernel_h` rows are copied into a buffer once per position,
    /// then one dot product of `K` bytes per filter.
    Gathered,
    /// `kernel_h` dot products of `kernel_w · in_c` bytes per filter.
    Rows,
}

/// The [`WindowLayout`] of `s`'s interior windows.
pub fn window_layout(s: &Shape2d) -> WindowLayout {
    let seg = s.kernel_w.saturating_mul(s.in_c);
    if s.kernel_h <= 1 || s.kernel_w >= s.in_w {
        WindowLayout::Contiguous
    } else if s.kernel_h.saturating_mul(seg) <= GATHER_MAX {
        WindowLayout::Gathered
    } else {
        WindowLayout::Rows
    }
}

/// A convolution layer's constant data; the code generator emits one as a `static`.
///
/// Lengths, with `K = kernel_h · kernel_w · in_c`: `weights` `out_c · K`, `folded_bias`,
/// `multiplier` and `shift` `out_c` each. The kernel's `input` is `in_h · in_w · in_c` and
/// `output` `out_h · out_w · out_c` long.
#[derive(Clone, Copy, Debug)]
pub struct Conv2dParams<'a> {
    /// Input, output and window geometry.
    pub shape: Shape2d,
    /// OHWI `[out_c][kernel_h][kernel_w][in_c]`, per-channel symmetric, values in `[-127, 127]`.
    pub weights: &'a [i8],
    /// `bias[o] + input_offset · Σ w[o]` (see the [module docs](self)).
    pub folded_bias: &'a [i32],
    /// Per-channel Q31 requantization multiplier, in `[2^30, 2^31)` (or 0).
    pub multiplier: &'a [i32],
    /// Per-channel power-of-two shift, positive = left, in `-31..=30`.
    pub shift: &'a [i32],
    /// `−input_zero_point`, in `[-127, 128]`. Padded taps read the zero point.
    pub input_offset: i32,
    /// Output zero point.
    pub output_offset: i32,
    /// Lower clamp (output zero point for a fused ReLU, else -128).
    pub act_min: i8,
    /// Upper clamp (127, or q(6) for a fused ReLU6).
    pub act_max: i8,
}

/// Sizes the kernels need, after checking the slices against the shape. `NonZeroUsize` lets
/// the optimiser drop `chunks_exact`'s zero-size assertion, so the kernels have no panic path.
struct Checked {
    d: Dims,
    /// `kernel_w · in_c`: one window row.
    seg: NonZeroUsize,
    /// `kernel_h · kernel_w · in_c`: one filter.
    k_len: NonZeroUsize,
    in_c: NonZeroUsize,
    out_c: NonZeroUsize,
    layout: WindowLayout,
    /// The length of the runs an interior window is presented in: `k_len`, or `seg` for
    /// [`WindowLayout::Rows`].
    run: NonZeroUsize,
}

/// `Ok(None)`: a shape without taps (every output is the requantized bias); `Err`: bad lengths.
fn check(p: &Conv2dParams, input: &[i8], output: &[i8]) -> Result<Option<Checked>, ()> {
    let s = &p.shape;
    let d = s.dims().ok_or(())?;
    let seg = s.kernel_w * s.in_c;
    let k_len = s.kernel_h * seg;
    debug_assert_eq!(input.len(), d.input_len, "input length");
    debug_assert_eq!(output.len(), d.output_len, "output length");
    debug_assert_eq!(p.weights.len(), s.out_c * k_len, "weights length");
    debug_assert_eq!(p.folded_bias.len(), s.out_c, "folded_bias length");
    debug_assert_eq!(p.multiplier.len(), s.out_c, "multiplier length");
    debug_assert_eq!(p.shift.len(), s.out_c, "shift length");
    let enough = input.len() >= d.input_len
        && output.len() >= d.output_len
        && p.weights.len() >= s.out_c.checked_mul(k_len).ok_or(())?
        && p.folded_bias.len() >= s.out_c
        && p.multiplier.len() >= s.out_c
        && p.shift.len() >= s.out_c;
    if !enough {
        return Err(());
    }
    let nz = NonZeroUsize::new;
    Ok(match (nz(seg), nz(k_len), nz(s.in_c), nz(s.out_c)) {
        (Some(seg), Some(k_len), Some(in_c), Some(out_c)) => {
            let layout = window_layout(s);
            Some(Checked {
                d,
                seg,
                k_len,
                in_c,
                out_c,
                layout,
                run: if layout == WindowLayout::Rows {
                    seg
                } else {
                    k_len
                },
            })
        }
        _ => None,
    })
}

/// The convolution (formula in the [module docs](self)), writing `output`.
///
/// If a slice is shorter than its documented length or the shape's sizes overflow, nothing is
/// written (debug builds assert the exact lengths).
///
/// On targets with the DSP extension ([`DSP_FAST_PATHS`](super::DSP_FAST_PATHS): thumbv7em,
/// i.e. Cortex-M4/M7) interior windows run a `SXTB16`/`SMLAD` loop over two output channels at
/// a time; everywhere else this is [`conv2d_s8_portable`]. Both give identical outputs.
#[inline(never)]
pub fn conv2d_s8(p: &Conv2dParams, input: &[i8], output: &mut [i8]) {
    // One compiled copy for every layer (see the `kernels` module docs).
    let (p, input, output) = core::hint::black_box((p, input, output));
    #[cfg(bonsai_dsp)]
    conv2d_s8_dsp(p, input, output);
    #[cfg(not(bonsai_dsp))]
    conv2d_s8_portable(p, input, output);
}

/// The portable [`conv2d_s8`] (byte loads only): what hosts, Cortex-M0/M3 and M4 builds
/// without the DSP feature run. Public so that firmware can measure one against the other.
pub fn conv2d_s8_portable(p: &Conv2dParams, input: &[i8], output: &mut [i8]) {
    run(p, input, output, |ch, window, out| {
        for ((((o, &b), &m), &s), filter) in out
            .iter_mut()
            .zip(p.folded_bias)
            .zip(p.multiplier)
            .zip(p.shift)
            .zip(p.weights.chunks_exact(ch.k_len.get()))
        {
            let mut acc = b;
            for (rows, wrow) in window.clone().zip(filter.chunks_exact(ch.run.get())) {
                acc = acc.wrapping_add(dot_s8(rows, wrow));
            }
            *o = requantize(acc, m, s, p.output_offset, p.act_min, p.act_max);
        }
    });
}

/// The DSP-extension version of [`conv2d_s8`]. Compiled on hosts for tests, with the
/// instructions emulated.
#[cfg(any(test, bonsai_dsp))]
pub(crate) fn conv2d_s8_dsp(p: &Conv2dParams, input: &[i8], output: &mut [i8]) {
    use super::dsp::{dot1, dot2};
    run(p, input, output, |ch, window, out| {
        let mut filters = p.weights.chunks_exact(ch.k_len.get());
        let mut channels = out
            .iter_mut()
            .zip(p.folded_bias)
            .zip(p.multiplier)
            .zip(p.shift);
        let q =
            |acc: i32, m: i32, s: i32| requantize(acc, m, s, p.output_offset, p.act_min, p.act_max);
        while let (Some((((o0, &b0), &m0), &s0)), Some(f0)) = (channels.next(), filters.next()) {
            match (channels.next(), filters.next()) {
                (Some((((o1, &b1), &m1), &s1)), Some(f1)) => {
                    let (mut a0, mut a1) = (b0, b1);
                    let rows = window.clone().zip(f0.chunks_exact(ch.run.get()));
                    for ((x, w0), w1) in rows.zip(f1.chunks_exact(ch.run.get())) {
                        (a0, a1) = dot2(x, w0, w1, a0, a1);
                    }
                    *o0 = q(a0, m0, s0);
                    *o1 = q(a1, m1, s1);
                }
                _ => {
                    let mut a0 = b0;
                    for (x, w0) in window.clone().zip(f0.chunks_exact(ch.run.get())) {
                        a0 = dot1(x, w0, a0);
                    }
                    *o0 = q(a0, m0, s0);
                    return;
                }
            }
        }
    });
}

/// The runs of an interior window: `kernel_h` input rows of `kernel_w · in_c` bytes, or the
/// whole window as one run ([`WindowLayout`]).
#[derive(Clone)]
struct WindowRows<'a> {
    input: &'a [i8],
    next: usize,
    left: usize,
    seg: usize,
    in_row: usize,
}

impl<'a> Iterator for WindowRows<'a> {
    type Item = &'a [i8];

    #[inline(always)]
    fn next(&mut self) -> Option<&'a [i8]> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        let start = self.next;
        self.next += self.in_row;
        // Always in bounds for an interior window of a checked shape; `get` keeps it panic-free.
        self.input.get(start..start + self.seg)
    }
}

/// Walks the output positions: interior windows go to `interior` with their input rows and
/// the position's `out_c` outputs, border windows to [`border`].
#[inline(always)]
fn run(
    p: &Conv2dParams,
    input: &[i8],
    output: &mut [i8],
    interior: impl Fn(&Checked, WindowRows, &mut [i8]),
) {
    let s = &p.shape;
    let ch = match check(p, input, output) {
        Err(()) => return,
        Ok(Some(ch)) => ch,
        Ok(None) => {
            // No taps (or no channels): every output is the requantized bias.
            let Some(out_c) = NonZeroUsize::new(s.out_c) else {
                return;
            };
            let n = s.out_h * s.out_w * s.out_c;
            for pixel in output
                .get_mut(..n)
                .unwrap_or(&mut [])
                .chunks_exact_mut(out_c.get())
            {
                for (((o, &b), &m), &sh) in pixel
                    .iter_mut()
                    .zip(p.folded_bias)
                    .zip(p.multiplier)
                    .zip(p.shift)
                {
                    *o = requantize(b, m, sh, p.output_offset, p.act_min, p.act_max);
                }
            }
            return;
        }
    };
    let Some(output) = output.get_mut(..ch.d.output_len) else {
        return;
    };
    // Only the `Gathered` layout writes it; one buffer for every layer bounds the stack use.
    let mut gathered = [0i8; GATHER_MAX];
    let mut pixels = output.chunks_exact_mut(ch.out_c.get());
    for oy in 0..s.out_h {
        for ox in 0..s.out_w {
            let Some(out) = pixels.next() else {
                return;
            };
            let clip = s.clip(oy, ox);
            if !clip.is_interior(s) {
                border(p, &ch, &clip, input, out);
                continue;
            }
            let rows = WindowRows {
                input,
                next: clip.input_index(s, 0, 0),
                left: s.kernel_h,
                seg: ch.seg.get(),
                in_row: ch.d.in_row,
            };
            let whole = |input, next| WindowRows {
                input,
                next,
                left: 1,
                seg: ch.k_len.get(),
                in_row: 0,
            };
            match ch.layout {
                WindowLayout::Rows => interior(&ch, rows, out),
                WindowLayout::Contiguous => interior(&ch, whole(input, rows.next), out),
                WindowLayout::Gathered => {
                    let dst = gathered.get_mut(..ch.k_len.get()).unwrap_or(&mut []);
                    // Row after row into the buffer. Not `chunks_exact_mut(seg)`: fat LTO did
                    // not always prove its zero-size assert away (the panic-never link caught
                    // it after an unrelated change to the crate), and a flat byte loop costs
                    // 1.5% more instructions on LeNet-5.
                    let mut rest = dst;
                    for row in rows {
                        let Some((d, tail)) = rest.split_at_mut_checked(row.len()) else {
                            break;
                        };
                        for (d, &x) in d.iter_mut().zip(row) {
                            *d = x;
                        }
                        rest = tail;
                    }
                    interior(&ch, whole(&gathered[..], 0), out);
                }
            }
        }
    }
}

/// A window that overlaps the padding: inside taps are dot products over `in_c`, padded taps
/// add `zp · Σ w` (see the module docs).
fn border(p: &Conv2dParams, ch: &Checked, clip: &Clip, input: &[i8], out: &mut [i8]) {
    let s = &p.shape;
    let zp = p.input_offset.wrapping_neg();
    for ((((o, &b), &m), &sh), filter) in out
        .iter_mut()
        .zip(p.folded_bias)
        .zip(p.multiplier)
        .zip(p.shift)
        .zip(p.weights.chunks_exact(ch.k_len.get()))
    {
        let mut acc = b;
        for (ky, wrow) in filter.chunks_exact(ch.seg.get()).enumerate() {
            let row_inside = (clip.y0..clip.y1).contains(&ky);
            for (kx, wtap) in wrow.chunks_exact(ch.in_c.get()).enumerate() {
                let x = if row_inside && (clip.x0..clip.x1).contains(&kx) {
                    let start = clip.input_index(s, ky, kx);
                    input.get(start..start + s.in_c)
                } else {
                    None
                };
                acc = acc.wrapping_add(match x {
                    Some(x) => dot_s8(x, wtap),
                    None => zp.wrapping_mul(wtap.iter().map(|&w| i32::from(w)).sum::<i32>()),
                });
            }
        }
        *o = requantize(acc, m, sh, p.output_offset, p.act_min, p.act_max);
    }
}

/// `Σ a[j]·b[j]` over the common prefix, wrapping.
#[inline(always)]
pub(crate) fn dot_s8(a: &[i8], b: &[i8]) -> i32 {
    a.iter().zip(b).fold(0i32, |acc, (&x, &w)| {
        acc.wrapping_add(i32::from(x) * i32::from(w))
    })
}

/// Textbook convolution, for checking [`conv2d_s8`]: the formula of the [module docs](self)
/// with the unfolded `bias` (`p.folded_bias` is not used), skipping padded taps. Indexes directly, so it panics on slices
/// shorter than documented. Not for the hot path.
pub fn conv2d_s8_reference(p: &Conv2dParams, bias: &[i32], input: &[i8], output: &mut [i8]) {
    let s = &p.shape;
    for oy in 0..s.out_h {
        for ox in 0..s.out_w {
            for o in 0..s.out_c {
                let mut acc = bias[o];
                for ky in 0..s.kernel_h {
                    for kx in 0..s.kernel_w {
                        let iy = (oy * s.stride_h + ky) as isize - s.pad_top as isize;
                        let ix = (ox * s.stride_w + kx) as isize - s.pad_left as isize;
                        if iy < 0 || ix < 0 || iy >= s.in_h as isize || ix >= s.in_w as isize {
                            continue;
                        }
                        let (iy, ix) = (iy as usize, ix as usize);
                        for c in 0..s.in_c {
                            let x = i32::from(input[(iy * s.in_w + ix) * s.in_c + c]);
                            let w = i32::from(
                                p.weights[((o * s.kernel_h + ky) * s.kernel_w + kx) * s.in_c + c],
                            );
                            acc = acc.wrapping_add((x + p.input_offset).wrapping_mul(w));
                        }
                    }
                }
                output[(oy * s.out_w + ox) * s.out_c + o] = requantize(
                    acc,
                    p.multiplier[o],
                    p.shift[o],
                    p.output_offset,
                    p.act_min,
                    p.act_max,
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testgen::{check_conv2d, Scratch};
    use proptest::prelude::*;
    use std::boxed::Box;
    use std::vec;
    use std::vec::Vec;

    const ONE: (i32, i32) = (1 << 30, 1); // ×1.0

    fn hand_params(weights: &[i8], folded: &[i32]) -> Conv2dParams<'static> {
        // 3×3×1 input, 2×2 filter, stride 1, one row/column of padding top and left: 3×3 out.
        Conv2dParams {
            shape: Shape2d {
                in_h: 3,
                in_w: 3,
                in_c: 1,
                out_h: 3,
                out_w: 3,
                out_c: 1,
                kernel_h: 2,
                kernel_w: 2,
                stride_h: 1,
                stride_w: 1,
                pad_top: 1,
                pad_left: 1,
            },
            weights: weights.to_vec().leak(),
            folded_bias: folded.to_vec().leak(),
            multiplier: &[ONE.0],
            shift: &[ONE.1],
            input_offset: -1,
            output_offset: 0,
            act_min: -128,
            act_max: 127,
        }
    }

    #[test]
    fn by_hand_with_padding() {
        // Input 1..=9, zero point 1, so x + offset = 0..=8 on the grid. Filter [[1, 0], [0, −1]]:
        // out(oy, ox) = x'(oy − 1, ox − 1) − x'(oy, ox), padded taps 0:
        //   row 0: 0 − 0, 0 − 1, 0 − 2;  row 1: 0 − 3, 0 − 4, 1 − 5;  row 2: 0 − 6, 3 − 7, 4 − 8.
        // Folded bias: 0 + (−1)·(1 + 0 + 0 − 1) = 0.
        let input: [i8; 9] = [1, 2, 3, 4, 5, 6, 7, 8, 9];
        let p = hand_params(&[1, 0, 0, -1], &[0]);
        let expected = [0, -1, -2, -3, -4, -4, -6, -4, -4];
        let mut out = [0i8; 9];
        conv2d_s8_reference(&p, &[0], &input, &mut out);
        assert_eq!(out, expected);
        let mut out = [0i8; 9];
        conv2d_s8_portable(&p, &input, &mut out);
        assert_eq!(out, expected);
        let mut out = [0i8; 9];
        conv2d_s8_dsp(&p, &input, &mut out);
        assert_eq!(out, expected);
    }

    #[test]
    fn padding_reads_the_zero_point() {
        // All-ones filter, input all equal to the zero point (5): every tap, padded or not,
        // contributes 0, so the output is the requantized bias everywhere. Folded bias:
        // 7 + (−5)·4 = −13; interior: −13 + 4·5 = 7; a corner: −13 + 5 + 3·5 (zp) = 7.
        let mut p = hand_params(&[1, 1, 1, 1], &[-13]);
        p.input_offset = -5;
        let mut out = [0i8; 9];
        conv2d_s8_portable(&p, &[5; 9], &mut out);
        assert_eq!(out, [7; 9]);
    }

    #[test]
    #[cfg_attr(debug_assertions, should_panic(expected = "input length"))]
    fn short_input_writes_nothing() {
        let p = hand_params(&[1, 0, 0, -1], &[0]);
        let mut out = [99i8; 9];
        conv2d_s8(&p, &[1; 8], &mut out);
        assert_eq!(out, [99; 9]);
    }

    /// The generated cases (`testgen`) have `K ≤ 512`; this covers every [`WindowLayout`],
    /// including `Rows` (`K >` [`GATHER_MAX`]), with and without padding.
    #[test]
    fn every_window_layout_equals_reference() {
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (seed >> 33) as u32
        };
        // (in_h, in_w, in_c, kernel, stride, pad, out_c, layout)
        let cases = [
            (6, 6, 3, 1, 1, 0, 5, WindowLayout::Contiguous),
            (5, 4, 6, 3, 1, 0, 3, WindowLayout::Gathered),
            (4, 3, 7, 3, 1, 1, 4, WindowLayout::Contiguous),
            (9, 9, 2, 5, 2, 2, 7, WindowLayout::Gathered),
            (8, 8, 64, 3, 1, 1, 3, WindowLayout::Gathered),
            (7, 7, 65, 3, 1, 1, 3, WindowLayout::Rows),
            (6, 7, 30, 5, 1, 0, 5, WindowLayout::Rows),
            (5, 5, 50, 4, 1, 2, 2, WindowLayout::Rows),
        ];
        for (in_h, in_w, in_c, k, st, pad, out_c, layout) in cases {
            let out = |n: usize| (n + 2 * pad - k) / st + 1;
            let shape = Shape2d {
                in_h,
                in_w,
                in_c,
                out_h: out(in_h),
                out_w: out(in_w),
                out_c,
                kernel_h: k,
                kernel_w: k,
                stride_h: st,
                stride_w: st,
                pad_top: pad,
                pad_left: pad,
            };
            assert_eq!(window_layout(&shape), layout, "{shape:?}");
            let k_len = k * k * in_c;
            let mut byte = || (next() % 255) as i8 - 127 + 1;
            let input: Vec<i8> = (0..in_h * in_w * in_c).map(|_| byte()).collect();
            let weights: Vec<i8> = (0..out_c * k_len).map(|_| byte().max(-127)).collect();
            let bias: Vec<i32> = (0..out_c).map(|o| o as i32 * 1000 - 1500).collect();
            let input_offset = 7;
            let mut folded = vec![0; out_c];
            crate::kernels::fully_connected::fold_bias(&weights, &bias, input_offset, &mut folded);
            let p = Conv2dParams {
                shape,
                weights: &weights,
                folded_bias: &folded,
                multiplier: &vec![1 << 30; out_c],
                shift: &vec![-6; out_c],
                input_offset,
                output_offset: -3,
                act_min: -128,
                act_max: 127,
            };
            let n = shape.out_h * shape.out_w * out_c;
            let mut expected = vec![0i8; n];
            conv2d_s8_reference(&p, &bias, &input, &mut expected);
            // The outputs must not all saturate, or the comparison would prove little.
            assert!(expected.iter().any(|&v| v != -128 && v != 127), "{shape:?}");
            for run in [conv2d_s8_portable, conv2d_s8_dsp, conv2d_s8] {
                let mut got = vec![0i8; n];
                run(&p, &input, &mut got);
                assert_eq!(got, expected, "{shape:?}");
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(10_000))]

        #[test]
        fn portable_equals_reference(seed in any::<u64>()) {
            let mut s = Box::new(Scratch::new());
            if let Err(m) = check_conv2d(seed, &mut s, conv2d_s8_portable) {
                prop_assert!(false, "{:?}", m);
            }
        }

        #[test]
        fn dsp_equals_reference(seed in any::<u64>()) {
            let mut s = Box::new(Scratch::new());
            if let Err(m) = check_conv2d(seed, &mut s, conv2d_s8_dsp) {
                prop_assert!(false, "{:?}", m);
            }
        }
    }
}
