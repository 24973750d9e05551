//! Sparse (pruned) 2-D convolution, int8: the same layer as [`conv2d`](super::conv2d) (same
//! formula, layouts and folded bias), with the filters stored like the rows of a sparse dense
//! layer.
//!
//! ## Storage format
//!
//! Filter `o` is the OHWI weights of output channel `o` flattened to one row of
//! `K = kernel_h · kernel_w · in_c` columns, column `j = (ky · kernel_w + kx) · in_c + c`. The
//! `out_c` rows are stored as a [`SparseMatrix`] with `in_len = K`: exactly the delta-CSR format
//! of [`fully_connected_sparse`](super::fully_connected_sparse) (entries `(i8 weight, u8
//! delta)` with the column steps, `(0, 255)` fillers for gaps of 256 columns or more, per-row
//! entry counts as `u8` or `u16`). So the compiler's encoder for sparse dense layers encodes a
//! filter bank unchanged once the weights are viewed as `[out_c][K]`, and an empty filter is a
//! row of length 0.
//!
//! Flash: `2·E + out_c` bytes (`2·E + 2·out_c` with `u16` row lengths), `E` = entries (nonzero
//! weights plus fillers), against `out_c · K` bytes dense; the per-channel arrays (folded bias,
//! multiplier, shift) are the same as for the dense layer. `folded_bias` is the dense one.
//!
//! ## Inner loop
//!
//! The columns of one window row (`kernel_w · in_c` of them, `L` below) are contiguous in both
//! the filter row and the HWC input, so the loop keeps the column `col` and the start of the
//! current window row in the input, `base`: the input index of column `col` is `base + col`.
//! When `col` passes the end of the window row (`seg_end`, a multiple of `L`), `base` moves on
//! by `in_w · in_c − L` per row crossed, which is rare (at most `kernel_h − 1` times per filter).
//! Nothing is precomputed and no per-entry table is needed. Interior windows read the input
//! with no further test; border windows also keep the window row `ky` and test
//! `y0 ≤ ky < y1` and `x0 · in_c ≤ col − row start < x1 · in_c` per entry, reading the zero
//! point for padded taps (the fold of the [`conv2d`](super::conv2d) module docs).

use super::area::Area;
use super::fully_connected_sparse::{RowLens, SparseMatrix};
use super::shape::{Clip, Shape2d};
use crate::requant::requantize;

/// A sparse convolution's constant data; the code generator emits one as a `static`.
///
/// `weights.in_len()` must be `K = kernel_h · kernel_w · in_c` and `weights.out_len()`,
/// `folded_bias`, `multiplier`, `shift` `out_c`; `input` is `in_h · in_w · in_c` and `output`
/// `out_h · out_w · out_c` long.
#[derive(Clone, Copy, Debug)]
pub struct SparseConv2dParams<'a> {
    /// Input, output and window geometry.
    pub shape: Shape2d,
    /// The filters, one row of `K` columns each (format in the [module docs](self)).
    pub weights: SparseMatrix<'a>,
    /// `bias[o] + input_offset · Σ w[o]`, as for the dense convolution.
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

/// The sparse convolution, writing `output`; same result as
/// [`conv2d_s8`](super::conv2d::conv2d_s8) on the decoded weights.
///
/// Nothing is written if `weights.in_len() != K`, if `input` or `output` is shorter than
/// documented, or if the shape's sizes overflow. Channels are computed for
/// `o < min(out_c, weights.out_len(), folded_bias.len(), multiplier.len(), shift.len())`.
/// Debug builds assert all documented lengths.
#[inline(never)]
pub fn conv2d_sparse_s8(p: &SparseConv2dParams, input: &[i8], output: &mut [i8]) {
    // One compiled copy for every layer (see the `kernels` module docs).
    let (p, input, output) = core::hint::black_box((p, input, output));
    run(p, &[], input, output);
}

/// [`conv2d_sparse_s8`] for a partial-area convolution ([`area`](super::area)): output channel
/// `o` computes only the positions inside `areas[o]` and writes the output zero point
/// (`output_offset`) elsewhere, skipping its filter there. Empty `areas`: every position, as
/// [`conv2d_sparse_s8`]. Nothing is written if `areas` is neither empty nor `out_c` long.
#[inline(never)]
pub fn conv2d_sparse_s8_in_areas(
    p: &SparseConv2dParams,
    areas: &[Area],
    input: &[i8],
    output: &mut [i8],
) {
    let (p, areas, input, output) = core::hint::black_box((p, areas, input, output));
    debug_assert!(
        areas.is_empty() || areas.len() == p.shape.out_c,
        "areas length"
    );
    if !areas.is_empty() && areas.len() != p.shape.out_c {
        return;
    }
    run(p, areas, input, output);
}

#[inline(always)]
fn run(p: &SparseConv2dParams, areas: &[Area], input: &[i8], output: &mut [i8]) {
    let s = &p.shape;
    let Some(d) = s.dims() else {
        return;
    };
    let seg = s.kernel_w * s.in_c;
    let k_len = s.kernel_h * seg;
    debug_assert_eq!(p.weights.in_len(), k_len, "weights.in_len() != K");
    debug_assert_eq!(p.weights.out_len(), s.out_c, "weights rows");
    debug_assert_eq!(input.len(), d.input_len, "input length");
    debug_assert_eq!(output.len(), d.output_len, "output length");
    debug_assert_eq!(p.folded_bias.len(), s.out_c, "folded_bias length");
    debug_assert_eq!(p.multiplier.len(), s.out_c, "multiplier length");
    debug_assert_eq!(p.shift.len(), s.out_c, "shift length");
    // These three checks are what make the unchecked input reads in `interior_dot` sound.
    if p.weights.in_len() != k_len || input.len() < d.input_len || output.len() < d.output_len {
        return;
    }
    let Some(out_c) = core::num::NonZeroUsize::new(s.out_c) else {
        return;
    };
    let geo = Geo {
        seg,
        in_row: d.in_row,
        zp: p.input_offset.wrapping_neg(),
    };
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
            let at = Pixel {
                clip: &clip,
                areas,
                oy,
                ox,
            };
            match p.weights.row_lens() {
                RowLens::U8(l) => {
                    pixel(p, &geo, &at, l.iter().map(|&n| usize::from(n)), input, out)
                }
                RowLens::U16(l) => {
                    pixel(p, &geo, &at, l.iter().map(|&n| usize::from(n)), input, out)
                }
            }
        }
    }
}

struct Geo {
    /// `kernel_w · in_c`, the columns of one window row (`L` in the module docs).
    seg: usize,
    /// `in_w · in_c`, the input elements of one input row.
    in_row: usize,
    /// The input zero point, read for padded taps.
    zp: i32,
}

/// One output position: its window and, for a partial-area convolution, where it is.
struct Pixel<'a> {
    clip: &'a Clip,
    /// Empty: every channel computes every position.
    areas: &'a [Area],
    oy: usize,
    ox: usize,
}

#[inline(always)]
fn pixel(
    p: &SparseConv2dParams,
    g: &Geo,
    at: &Pixel,
    lens: impl Iterator<Item = usize>,
    input: &[i8],
    out: &mut [i8],
) {
    let s = &p.shape;
    let clip = at.clip;
    let interior = clip.is_interior(s);
    let mut entries = p.weights.entries();
    let channels = out
        .iter_mut()
        .zip(p.folded_bias)
        .zip(p.multiplier)
        .zip(p.shift)
        .zip(lens)
        .enumerate();
    for (c, ((((o, &b), &m), &sh), n)) in channels {
        // Never fails for a validated matrix (its row lengths add up to the entries).
        let Some((row, rest)) = entries.split_at_checked(n) else {
            return;
        };
        entries = rest;
        if at.areas.get(c).is_some_and(|a| !a.contains(at.oy, at.ox)) {
            // Real 0: the output zero point (an int8 value for any validated layer).
            *o = p.output_offset as i8;
            continue;
        }
        let acc = if interior {
            interior_dot(row, input, clip.input_index(s, 0, 0), g)
        } else {
            border_dot(row, input, clip, s, g)
        };
        *o = requantize(
            b.wrapping_add(acc),
            m,
            sh,
            p.output_offset,
            p.act_min,
            p.act_max,
        );
    }
}

/// `Σ w · x` over one filter row at an interior window whose `(0, 0, 0)` is `input[origin]`:
/// the hot loop.
#[inline(always)]
fn interior_dot(row: &[(i8, u8)], input: &[i8], origin: usize, g: &Geo) -> i32 {
    let mut col = 0usize;
    let mut seg_end = g.seg;
    let mut base = origin;
    // Interior windows only exist when kernel_w ≤ in_w, so this does not underflow.
    let skip = g.in_row - g.seg;
    let mut sum = 0i32;
    for &(w, d) in row {
        col += usize::from(d);
        // Ends because col < K = kernel_h · seg (validated matrix) and seg > 0 (K > 0 whenever
        // a row has entries).
        while col >= seg_end {
            seg_end += g.seg;
            base += skip;
        }
        // SAFETY: the matrix was validated with in_len = K (checked by `conv2d_sparse_s8`), so
        // col < K and the loop above has advanced ky = ⌊col / seg⌋ < kernel_h rows:
        // base + col = origin + ky · in_row + (col − ky · seg) with col − ky · seg < seg =
        // kernel_w · in_c. The window is interior: origin = ((iy · in_w) + ix) · in_c with
        // iy + kernel_h ≤ in_h and ix + kernel_w ≤ in_w, so base + col <
        // ((iy + kernel_h − 1) · in_w + ix + kernel_w) · in_c ≤ in_h · in_w · in_c ≤ input.len()
        // (checked by `conv2d_sparse_s8`).
        let x = unsafe { *input.get_unchecked(base + col) };
        sum = sum.wrapping_add(i32::from(x) * i32::from(w));
    }
    sum
}

/// [`interior_dot`] for a window that overlaps the padding: padded taps read the zero point.
fn border_dot(row: &[(i8, u8)], input: &[i8], clip: &Clip, s: &Shape2d, g: &Geo) -> i32 {
    let (lo, hi) = (clip.x0 * s.in_c, clip.x1 * s.in_c);
    let mut col = 0usize;
    let mut seg_start = 0usize;
    let mut ky = 0usize;
    // Input index of the window's (ky, 0, 0), possibly outside the input.
    let mut base = clip.iy * g.in_row as isize + clip.ix * s.in_c as isize;
    let mut sum = 0i32;
    for &(w, d) in row {
        col += usize::from(d);
        while col >= seg_start + g.seg && g.seg > 0 {
            seg_start += g.seg;
            ky += 1;
            base += g.in_row as isize;
        }
        let pos = col - seg_start;
        let inside = (clip.y0..clip.y1).contains(&ky) && (lo..hi).contains(&pos);
        let x = if inside {
            input
                .get((base + pos as isize) as usize)
                .map_or(g.zp, |&x| i32::from(x))
        } else {
            g.zp
        };
        sum = sum.wrapping_add(x.wrapping_mul(i32::from(w)));
    }
    sum
}

/// Textbook sparse convolution, for checking [`conv2d_sparse_s8`]: decodes every filter to
/// dense OHWI weights in `scratch` (at least `out_c · K` bytes) and runs
/// [`conv2d_s8_reference`](super::conv2d::conv2d_s8_reference) with the unfolded `bias`.
/// Panics on short slices. Not for the hot path.
pub fn conv2d_sparse_s8_reference(
    p: &SparseConv2dParams,
    bias: &[i32],
    input: &[i8],
    scratch: &mut [i8],
    output: &mut [i8],
) {
    let s = &p.shape;
    let k_len = s.kernel_h * s.kernel_w * s.in_c;
    let dense = &mut scratch[..s.out_c * k_len];
    dense.fill(0);
    let entries = p.weights.entries();
    let mut k = 0;
    for o in 0..s.out_c {
        let mut col = 0;
        for _ in 0..p.weights.row_lens().get(o) {
            let (w, d) = entries[k];
            col += d as usize;
            // `+=`: a non-canonical matrix may repeat a column (delta 0), and the kernel adds
            // both products. (Canonical matrices never do, and fillers land on zeros.)
            dense[o * k_len + col] = dense[o * k_len + col].wrapping_add(w);
            k += 1;
        }
    }
    let dp = super::conv2d::Conv2dParams {
        shape: p.shape,
        weights: dense,
        folded_bias: p.folded_bias,
        multiplier: p.multiplier,
        shift: p.shift,
        input_offset: p.input_offset,
        output_offset: p.output_offset,
        act_min: p.act_min,
        act_max: p.act_max,
    };
    super::conv2d::conv2d_s8_reference(&dp, bias, input, output);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testgen::{check_conv2d_sparse, Scratch};
    use proptest::prelude::*;
    use std::boxed::Box;

    #[test]
    fn by_hand_matches_the_dense_example() {
        // The dense module's example: filter [[1, 0], [0, −1]] (K = 4) is entries (1, 0) at
        // column 0 and (−1, 3) at column 3; same outputs.
        let m = SparseMatrix::new(4, &[(1, 0), (-1, 3)], RowLens::U8(&[2]));
        let p = SparseConv2dParams {
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
            weights: m,
            folded_bias: &[0],
            multiplier: &[1 << 30],
            shift: &[1],
            input_offset: -1,
            output_offset: 0,
            act_min: -128,
            act_max: 127,
        };
        let input: [i8; 9] = [1, 2, 3, 4, 5, 6, 7, 8, 9];
        let expected = [0, -1, -2, -3, -4, -4, -6, -4, -4];
        let mut out = [0i8; 9];
        conv2d_sparse_s8(&p, &input, &mut out);
        assert_eq!(out, expected);
        let (mut scratch, mut out) = ([0i8; 4], [0i8; 9]);
        conv2d_sparse_s8_reference(&p, &[0], &input, &mut scratch, &mut out);
        assert_eq!(out, expected);
    }

    #[test]
    fn wrong_in_len_writes_nothing() {
        if cfg!(debug_assertions) {
            return; // the debug_assert fires instead
        }
        let m = SparseMatrix::new(5, &[(1, 0)], RowLens::U8(&[1]));
        let p = SparseConv2dParams {
            shape: Shape2d {
                in_h: 2,
                in_w: 2,
                in_c: 1,
                out_h: 1,
                out_w: 1,
                out_c: 1,
                kernel_h: 2,
                kernel_w: 2,
                stride_h: 1,
                stride_w: 1,
                pad_top: 0,
                pad_left: 0,
            },
            weights: m,
            folded_bias: &[0],
            multiplier: &[1 << 30],
            shift: &[1],
            input_offset: 0,
            output_offset: 0,
            act_min: -128,
            act_max: 127,
        };
        let mut out = [99i8];
        conv2d_sparse_s8(&p, &[1; 4], &mut out);
        assert_eq!(out, [99]);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(10_000))]

        #[test]
        fn fast_equals_reference(seed in any::<u64>()) {
            let mut s = Box::new(Scratch::new());
            if let Err(m) = check_conv2d_sparse(seed, &mut s) {
                prop_assert!(false, "{:?}", m);
            }
        }
    }
}
