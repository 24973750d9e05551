//! Max and average pooling, int8, TFLite semantics (`MAX_POOL_2D`, `AVERAGE_POOL_2D`).
//!
//! Input `[in_h][in_w][c]`, output `[out_h][out_w][c]` (HWC, `shape.out_c == shape.in_c`);
//! output and input share scale and zero point, so no requantization. Padded window positions
//! are *skipped* (not read as zero):
//!
//! ```text
//! max:  output = clamp(max over the valid positions of x, act_min, act_max)
//! avg:  sum = Σ over the n valid positions of x (raw int8 values)
//!       avg = (sum + n/2) / n  if sum ≥ 0,   (sum − n/2) / n  if sum < 0   (`/` truncates)
//!       output = clamp(avg, act_min, act_max)
//! ```
//!
//! i.e. the average rounds half away from zero, as TFLite's reference `AveragePool` does. A
//! window with no valid position (only possible with more padding than TFLite ever produces)
//! gives `clamp(-128)` for max (TFLite's starting value) and `clamp(0)` for average.

use core::num::NonZeroUsize;

use super::shape::{Clip, Shape2d};

/// A pooling layer; the code generator emits one as a `static`.
#[derive(Clone, Copy, Debug)]
pub struct PoolParams {
    /// Geometry; `out_c` must equal `in_c`.
    pub shape: Shape2d,
    /// Lower clamp (-128, or the zero point for a fused ReLU).
    pub act_min: i8,
    /// Upper clamp.
    pub act_max: i8,
}

/// Checks lengths; `Some(channels)` if the kernel can run. (`NonZeroUsize` lets the optimiser
/// drop the zero-size assertions of `chunks_exact_mut` and `step_by`: no panic path.)
fn check(p: &PoolParams, input: &[i8], output: &[i8]) -> Option<NonZeroUsize> {
    let s = &p.shape;
    let d = s.dims()?;
    debug_assert_eq!(s.out_c, s.in_c, "out_c != in_c");
    debug_assert_eq!(input.len(), d.input_len, "input length");
    debug_assert_eq!(output.len(), d.output_len, "output length");
    let ok = s.out_c == s.in_c && input.len() >= d.input_len && output.len() >= d.output_len;
    NonZeroUsize::new(s.in_c).filter(|_| ok)
}

#[inline(always)]
fn clamp(v: i32, p: &PoolParams) -> i8 {
    // max-then-min: never panics, even for act_min > act_max (gives act_max).
    v.max(i32::from(p.act_min)).min(i32::from(p.act_max)) as i8
}

/// Visits the valid window positions of channel `c` in `clip`.
#[inline(always)]
fn fold_window(
    s: &Shape2d,
    in_c: NonZeroUsize,
    clip: &Clip,
    c: usize,
    input: &[i8],
    init: i32,
    f: impl Fn(i32, i32) -> i32,
) -> i32 {
    let mut acc = init;
    if clip.x0 == clip.x1 {
        // No valid column; x0 may then lie outside the input, where `input_index` is invalid.
        return acc;
    }
    for wy in clip.y0..clip.y1 {
        let start = clip.input_index(s, wy, clip.x0) + c;
        let row = input.get(start..).unwrap_or(&[]).iter().step_by(in_c.get());
        for &x in row.take(clip.x1 - clip.x0) {
            acc = f(acc, i32::from(x));
        }
    }
    acc
}

#[inline(always)]
fn run(
    p: &PoolParams,
    input: &[i8],
    output: &mut [i8],
    per: impl Fn(NonZeroUsize, &Clip, usize) -> i8,
) {
    let Some(ch) = check(p, input, output) else {
        return;
    };
    let s = &p.shape;
    let mut pixels = output.chunks_exact_mut(ch.get());
    for oy in 0..s.out_h {
        for ox in 0..s.out_w {
            let Some(out) = pixels.next() else {
                return;
            };
            let clip = s.clip(oy, ox);
            for (c, o) in out.iter_mut().enumerate() {
                *o = per(ch, &clip, c);
            }
        }
    }
}

/// Max pooling (formula in the [module docs](self)). Writes nothing if a slice is shorter
/// than documented, `out_c != in_c`, or the shape's sizes overflow.
#[inline(never)]
pub fn max_pool_s8(p: &PoolParams, input: &[i8], output: &mut [i8]) {
    // One compiled copy for every layer (see the `kernels` module docs).
    let (p, input, output) = core::hint::black_box((p, input, output));
    let s = &p.shape;
    run(p, input, output, |in_c, clip, c| {
        clamp(fold_window(s, in_c, clip, c, input, -128, i32::max), p)
    });
}

/// Average pooling (formula and rounding in the [module docs](self)). Writes nothing if a
/// slice is shorter than documented, `out_c != in_c`, or the shape's sizes overflow.
#[inline(never)]
pub fn avg_pool_s8(p: &PoolParams, input: &[i8], output: &mut [i8]) {
    // One compiled copy for every layer (see the `kernels` module docs).
    let (p, input, output) = core::hint::black_box((p, input, output));
    let s = &p.shape;
    run(p, input, output, |in_c, clip, c| {
        let sum = fold_window(s, in_c, clip, c, input, 0, |a, x| a + x);
        // At most 2^31 / 128 positions keep the sum in i32: far beyond any real window.
        clamp(rounded_average(sum, clip.count() as u32), p)
    });
}

/// TFLite's rounding division of a window sum by its count, `(sum ± n/2) / n` truncated, i.e.
/// half away from zero; 0 for an empty window. Done on the magnitude in `u32` by a
/// `NonZeroU32`, which has no division panic path (TFLite's signed form equals it).
#[inline(always)]
fn rounded_average(sum: i32, n: u32) -> i32 {
    let Some(n) = core::num::NonZeroU32::new(n) else {
        return 0;
    };
    let magnitude = (sum.unsigned_abs() + n.get() / 2) / n;
    if sum < 0 {
        (magnitude as i32).wrapping_neg()
    } else {
        magnitude as i32
    }
}

/// Textbook max pooling, for checking [`max_pool_s8`]: every window position with an explicit
/// bounds test. Panics on short slices. Not for the hot path.
pub fn max_pool_s8_reference(p: &PoolParams, input: &[i8], output: &mut [i8]) {
    pool_reference(p, input, output, false);
}

/// Textbook average pooling, for checking [`avg_pool_s8`]. Panics on short slices.
pub fn avg_pool_s8_reference(p: &PoolParams, input: &[i8], output: &mut [i8]) {
    pool_reference(p, input, output, true);
}

fn pool_reference(p: &PoolParams, input: &[i8], output: &mut [i8], average: bool) {
    let s = &p.shape;
    for oy in 0..s.out_h {
        for ox in 0..s.out_w {
            for c in 0..s.in_c {
                let (mut max, mut sum, mut n) = (-128i32, 0i64, 0i64);
                for ky in 0..s.kernel_h {
                    for kx in 0..s.kernel_w {
                        let iy = (oy * s.stride_h + ky) as isize - s.pad_top as isize;
                        let ix = (ox * s.stride_w + kx) as isize - s.pad_left as isize;
                        if iy < 0 || ix < 0 || iy >= s.in_h as isize || ix >= s.in_w as isize {
                            continue;
                        }
                        let x = input[(iy as usize * s.in_w + ix as usize) * s.in_c + c];
                        max = max.max(i32::from(x));
                        sum += i64::from(x);
                        n += 1;
                    }
                }
                let v = if !average {
                    i64::from(max)
                } else if n == 0 {
                    0
                } else {
                    // Round half away from zero on the magnitude, independent of the fast
                    // kernel's formula.
                    let mag = (sum.abs() * 2 + n) / (2 * n);
                    if sum < 0 {
                        -mag
                    } else {
                        mag
                    }
                };
                let v = v.max(i64::from(p.act_min)).min(i64::from(p.act_max));
                output[(oy * s.out_w + ox) * s.out_c + c] = v as i8;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testgen::{check_avg_pool, check_max_pool, Scratch};
    use proptest::prelude::*;
    use std::boxed::Box;

    fn row(in_w: usize, out_w: usize, k: usize, stride: usize, pad: usize) -> PoolParams {
        PoolParams {
            shape: Shape2d {
                in_h: 1,
                in_w,
                in_c: 1,
                out_h: 1,
                out_w,
                out_c: 1,
                kernel_h: 1,
                kernel_w: k,
                stride_h: 1,
                stride_w: stride,
                pad_top: 0,
                pad_left: pad,
            },
            act_min: -128,
            act_max: 127,
        }
    }

    fn both(p: &PoolParams, input: &[i8], n: usize) -> ([i8; 4], [i8; 4]) {
        let (mut avg, mut max) = ([0i8; 4], [0i8; 4]);
        avg_pool_s8(p, input, &mut avg[..n]);
        max_pool_s8(p, input, &mut max[..n]);
        let (mut ra, mut rm) = ([0i8; 4], [0i8; 4]);
        avg_pool_s8_reference(p, input, &mut ra[..n]);
        max_pool_s8_reference(p, input, &mut rm[..n]);
        assert_eq!((avg, max), (ra, rm));
        (avg, max)
    }

    #[test]
    fn by_hand_rounding_half_away_from_zero() {
        // Windows [1, 2] → 3/2 = 1.5 → 2, max 2; [4, −3] → 1/2 = 0.5 → 1, max 4.
        let (avg, max) = both(&row(4, 2, 2, 2, 0), &[1, 2, 4, -3], 2);
        assert_eq!((&avg[..2], &max[..2]), (&[2, 1][..], &[2, 4][..]));
        // [−3, −2] → −5/2 = −2.5 → −3; [−1, 0] → −0.5 → −1.
        let (avg, _) = both(&row(4, 2, 2, 2, 0), &[-3, -2, -1, 0], 2);
        assert_eq!(&avg[..2], &[-3, -1]);
    }

    #[test]
    fn by_hand_padding_is_skipped() {
        // Width-3 windows, padding 1 on both sides: [pad, 1, 2] → 3/2 → 2; [1, 2, 4] → 7/3 →
        // 2.33 → 2; [2, 4, −3] → 3/3 = 1; [4, −3, pad] → 1/2 → 1. Max: 2, 4, 4, 4.
        let (avg, max) = both(&row(4, 4, 3, 1, 1), &[1, 2, 4, -3], 4);
        assert_eq!((avg, max), ([2, 2, 1, 1], [2, 4, 4, 4]));
    }

    #[test]
    fn clamps_and_empty_windows() {
        // Window entirely in the padding (padding 3, kernel 2): max → clamp(−128), avg → 0;
        // act range [−5, 5] clamps both.
        let mut p = row(1, 1, 2, 1, 3);
        p.act_min = -5;
        p.act_max = 5;
        let (avg, max) = both(&p, &[100], 1);
        assert_eq!((avg[0], max[0]), (0, -5));
        let (avg, max) = both(&row(1, 1, 1, 1, 0), &[100], 1);
        assert_eq!((avg[0], max[0]), (100, 100));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(10_000))]

        #[test]
        fn max_equals_reference(seed in any::<u64>()) {
            let mut s = Box::new(Scratch::new());
            if let Err(m) = check_max_pool(seed, &mut s) {
                prop_assert!(false, "{:?}", m);
            }
        }

        #[test]
        fn avg_equals_reference(seed in any::<u64>()) {
            let mut s = Box::new(Scratch::new());
            if let Err(m) = check_avg_pool(seed, &mut s) {
                prop_assert!(false, "{:?}", m);
            }
        }
    }
}
