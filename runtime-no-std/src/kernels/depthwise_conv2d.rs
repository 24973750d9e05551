//! Depthwise 2-D convolution, int8, TFLite / CMSIS-NN semantics (`DEPTHWISE_CONV_2D`, one
//! image, no dilation): `groups = in_c`, channel multiplier `m = out_c / in_c`, output channel
//! `o` reads input channel `o / m` only.
//!
//! Layouts: input `[in_h][in_w][in_c]`, weights `[out_c][kernel_h][kernel_w]` (i.e.
//! `[out_c][kernel_h][kernel_w][1]`; note that TFLite stores depthwise filters as
//! `[1][kernel_h][kernel_w][out_c]`, so the compiler transposes), output `[out_h][out_w][out_c]`.
//! With `input_offset = −input_zero_point`:
//!
//! ```text
//! acc = bias[o] + Σ_{ky, kx, (iy, ix) inside the input} (x[iy][ix][o / m] + input_offset) · w[o][ky][kx]
//! output[oy][ox][o] = requantize(acc, multiplier[o], shift[o]) + output zp, clamped
//! ```
//!
//! The input offset folds into the bias exactly as for [`conv2d`](super::conv2d) (padded taps
//! read as the zero point): `folded_bias[o] = bias[o] + input_offset · Σ_{ky,kx} w[o][ky][kx]`,
//! which is [`fold_bias`](super::fully_connected::fold_bias) of the weights as `out_c` rows of
//! `kernel_h · kernel_w`. The fast kernel runs interior windows without padding tests.

use super::shape::Shape2d;
use crate::requant::requantize;

/// A depthwise layer's constant data; the code generator emits one as a `static`.
///
/// `shape.out_c` must be a multiple of `shape.in_c`. Lengths: `weights`
/// `out_c · kernel_h · kernel_w`; `folded_bias`, `multiplier`, `shift` `out_c` each; `input`
/// `in_h · in_w · in_c`; `output` `out_h · out_w · out_c`.
#[derive(Clone, Copy, Debug)]
pub struct DepthwiseConv2dParams<'a> {
    /// Input, output and window geometry.
    pub shape: Shape2d,
    /// `[out_c][kernel_h][kernel_w]`, per-channel symmetric, values in `[-127, 127]`.
    pub weights: &'a [i8],
    /// `bias[o] + input_offset · Σ w[o]`.
    pub folded_bias: &'a [i32],
    /// Per-channel Q31 requantization multiplier, in `[2^30, 2^31)` (or 0).
    pub multiplier: &'a [i32],
    /// Per-channel power-of-two shift, positive = left, in `-31..=30`.
    pub shift: &'a [i32],
    /// `−input_zero_point`, in `[-127, 128]`. Padded taps read the zero point.
    pub input_offset: i32,
    /// Output zero point.
    pub output_offset: i32,
    /// Lower clamp.
    pub act_min: i8,
    /// Upper clamp.
    pub act_max: i8,
}

/// The depthwise convolution (formula in the [module docs](self)), writing `output`.
///
/// If a slice is shorter than documented, `out_c` is not a multiple of `in_c`, or the shape's
/// sizes overflow, nothing is written (debug builds assert).
#[inline(never)]
pub fn depthwise_conv2d_s8(p: &DepthwiseConv2dParams, input: &[i8], output: &mut [i8]) {
    // One compiled copy for every layer (see the `kernels` module docs).
    let (p, input, output) = core::hint::black_box((p, input, output));
    let s = &p.shape;
    let Some(d) = s.dims() else {
        return;
    };
    let kk = s.kernel_h * s.kernel_w;
    debug_assert_eq!(input.len(), d.input_len, "input length");
    debug_assert_eq!(output.len(), d.output_len, "output length");
    debug_assert_eq!(p.weights.len(), s.out_c * kk, "weights length");
    debug_assert_eq!(p.folded_bias.len(), s.out_c, "folded_bias length");
    debug_assert_eq!(p.multiplier.len(), s.out_c, "multiplier length");
    debug_assert_eq!(p.shift.len(), s.out_c, "shift length");
    debug_assert!(
        s.in_c != 0 && s.out_c.is_multiple_of(s.in_c),
        "out_c not a multiple of in_c"
    );
    let ok = input.len() >= d.input_len
        && output.len() >= d.output_len
        && s.out_c
            .checked_mul(kk)
            .is_some_and(|n| p.weights.len() >= n)
        && p.folded_bias.len() >= s.out_c
        && p.multiplier.len() >= s.out_c
        && p.shift.len() >= s.out_c
        && s.in_c != 0
        && s.out_c.is_multiple_of(s.in_c);
    // NonZeroUsize lets the optimiser drop the zero-size assertions of `chunks_exact_mut`,
    // `chunks_exact` and `step_by`: no panic path.
    let nz = core::num::NonZeroUsize::new;
    let (Some(in_c), Some(out_c), true) = (nz(s.in_c), nz(s.out_c), ok) else {
        return;
    };
    let kernel_w = nz(s.kernel_w);
    let mult = s.out_c / s.in_c;
    let zp = p.input_offset.wrapping_neg();
    let Some(output) = output.get_mut(..d.output_len) else {
        return;
    };
    let mut pixels = output.chunks_exact_mut(out_c.get());
    for oy in 0..s.out_h {
        for ox in 0..s.out_w {
            let Some(out) = pixels.next() else {
                return;
            };
            let clip = s.clip(oy, ox);
            let interior = clip.is_interior(s);
            // Input channel of the current output channel, `o / mult`, counted rather than
            // divided (a division would bring a divide-by-zero panic path).
            let (mut c, mut j) = (0usize, 0usize);
            for ((((out, &b), &m), &sh), filter) in out
                .iter_mut()
                .zip(p.folded_bias)
                .zip(p.multiplier)
                .zip(p.shift)
                // Chunks of at least 1; with kk == 0 the filters are not read.
                .zip(
                    p.weights
                        .chunks(kk.max(1))
                        .chain(core::iter::repeat(&[][..])),
                )
            {
                if j == mult {
                    j = 0;
                    c += 1;
                }
                j += 1;
                let mut acc = b;
                if let (Some(kernel_w), true) = (kernel_w, kk != 0) {
                    for (ky, wrow) in filter.chunks_exact(kernel_w.get()).enumerate() {
                        if interior {
                            let start = clip.input_index(s, ky, 0) + c;
                            let xs = input.get(start..).unwrap_or(&[]).iter().step_by(in_c.get());
                            for (&x, &w) in xs.zip(wrow) {
                                acc = acc.wrapping_add(i32::from(x) * i32::from(w));
                            }
                            continue;
                        }
                        let row_inside = (clip.y0..clip.y1).contains(&ky);
                        for (kx, &w) in wrow.iter().enumerate() {
                            let x = if row_inside && (clip.x0..clip.x1).contains(&kx) {
                                input
                                    .get(clip.input_index(s, ky, kx) + c)
                                    .map_or(zp, |&x| i32::from(x))
                            } else {
                                zp
                            };
                            acc = acc.wrapping_add(x.wrapping_mul(i32::from(w)));
                        }
                    }
                }
                *out = requantize(acc, m, sh, p.output_offset, p.act_min, p.act_max);
            }
        }
    }
}

/// Textbook depthwise convolution, for checking [`depthwise_conv2d_s8`]: the formula of the
/// [module docs](self) with the unfolded `bias` (`p.folded_bias` is not used), skipping padded
/// taps. Indexes directly, so it panics on short slices. Not for the hot path.
pub fn depthwise_conv2d_s8_reference(
    p: &DepthwiseConv2dParams,
    bias: &[i32],
    input: &[i8],
    output: &mut [i8],
) {
    let s = &p.shape;
    let mult = s.out_c / s.in_c;
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
                        let x = i32::from(
                            input[(iy as usize * s.in_w + ix as usize) * s.in_c + o / mult],
                        );
                        let w = i32::from(p.weights[(o * s.kernel_h + ky) * s.kernel_w + kx]);
                        acc = acc.wrapping_add((x + p.input_offset).wrapping_mul(w));
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
    use crate::testgen::{check_depthwise_conv2d, Scratch};
    use proptest::prelude::*;
    use std::boxed::Box;

    fn shape(out_c: usize, pad: usize, out: usize) -> Shape2d {
        Shape2d {
            in_h: 2,
            in_w: 2,
            in_c: 2,
            out_h: out,
            out_w: out,
            out_c,
            kernel_h: 2,
            kernel_w: 2,
            stride_h: 1,
            stride_w: 1,
            pad_top: pad,
            pad_left: pad,
        }
    }

    // Channel 0 holds 1, 2, 3, 4 and channel 1 holds 10, 20, 30, 40 (HWC interleaved).
    const INPUT: [i8; 8] = [1, 10, 2, 20, 3, 30, 4, 40];

    #[test]
    fn by_hand_multiplier_one() {
        // Zero point 0. Channel 0 filter all ones: 1 + 2 + 3 + 4 = 10; channel 1 filter
        // [1, 0, 0, −1]: 10 − 40 = −30. ×1.0.
        let p = DepthwiseConv2dParams {
            shape: shape(2, 0, 1),
            weights: &[1, 1, 1, 1, 1, 0, 0, -1],
            folded_bias: &[0, 0],
            multiplier: &[1 << 30, 1 << 30],
            shift: &[1, 1],
            input_offset: 0,
            output_offset: 0,
            act_min: -128,
            act_max: 127,
        };
        let mut out = [0i8; 2];
        depthwise_conv2d_s8(&p, &INPUT, &mut out);
        assert_eq!(out, [10, -30]);
        let mut out = [0i8; 2];
        depthwise_conv2d_s8_reference(&p, &[0, 0], &INPUT, &mut out);
        assert_eq!(out, [10, -30]);
    }

    #[test]
    fn by_hand_multiplier_two_with_padding() {
        // m = 2: outputs 0, 1 read channel 0, outputs 2, 3 read channel 1. Padding 1 on every
        // side (out 3×3); look at output (0, 0), whose window has only input (0, 0) inside, at
        // filter tap (1, 1). Filters: o0 all 1, o1 tap (1, 1) = 2, o2 all 1, o3 tap (0, 0) = 1.
        // Zero point 1 (offset −1): o0: 1 − 1 = 0; o1: 2·(1 − 1) = 0; o2: 10 − 1 = 9; o3: padded 0.
        // Folded bias: −1·Σw = [−4, −2, −4, −1].
        let p = DepthwiseConv2dParams {
            shape: shape(4, 1, 3),
            weights: &[1, 1, 1, 1, 0, 0, 0, 2, 1, 1, 1, 1, 1, 0, 0, 0],
            folded_bias: &[-4, -2, -4, -1],
            multiplier: &[1 << 30; 4],
            shift: &[1; 4],
            input_offset: -1,
            output_offset: 0,
            act_min: -128,
            act_max: 127,
        };
        let mut out = [0i8; 36];
        depthwise_conv2d_s8(&p, &INPUT, &mut out);
        assert_eq!(out[..4], [0, 0, 9, 0]);
        let mut reference = [0i8; 36];
        depthwise_conv2d_s8_reference(&p, &[0; 4], &INPUT, &mut reference);
        assert_eq!(out, reference);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(10_000))]

        #[test]
        fn fast_equals_reference(seed in any::<u64>()) {
            let mut s = Box::new(Scratch::new());
            if let Err(m) = check_depthwise_conv2d(seed, &mut s) {
                prop_assert!(false, "{:?}", m);
            }
        }
    }
}
