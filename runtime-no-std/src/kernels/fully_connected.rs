//! Dense (fully connected) int8 layer, TFLite / CMSIS-NN semantics.
//!
//! Weights are row-major `[out][in]`, symmetric per output channel. The input zero point is
//! pre-folded into the bias (see the crate docs), so the inner loop is a plain dot product.

use crate::requant::requantize;

/// Everything about a dense layer except its input and output buffers; the code generator
/// emits one of these per layer as a `static`.
///
/// With `out` output channels and `in` inputs: `weights.len() == out * in` (row-major
/// `[out][in]`), and `folded_bias`, `multiplier`, `shift` each have length `out`.
#[derive(Clone, Copy)]
pub struct FcParams<'a> {
    /// Row-major `[out][in]`, per-channel symmetric, values in `[-127, 127]`.
    pub weights: &'a [i8],
    /// `bias[o] + input_offset * Σ_j weights[o][j]`, from [`fold_bias`] or the compiler.
    pub folded_bias: &'a [i32],
    /// Per-channel Q31 requantization multiplier, in `[2^30, 2^31)` (or 0).
    pub multiplier: &'a [i32],
    /// Per-channel power-of-two shift, positive = left, in `-31..=30`.
    pub shift: &'a [i32],
    /// Output zero point.
    pub output_offset: i32,
    /// Lower clamp (output zero point for a fused ReLU, else -128).
    pub act_min: i8,
    /// Upper clamp (usually 127).
    pub act_max: i8,
}

/// `output[o] = requantize(folded_bias[o] + Σ_j input[j] · weights[o][j])`.
///
/// `in = input.len()` and `out = output.len()`; the slices in `p` must have the lengths
/// documented on [`FcParams`]. On a mismatch only complete, fully described channels are
/// written (debug builds assert instead). `input` and `output` must not overlap, which the
/// borrow checker already enforces.
///
/// On targets with the DSP extension ([`DSP_FAST_PATHS`](super::DSP_FAST_PATHS): thumbv7em,
/// i.e. Cortex-M4/M7) this runs a `SXTB16`/`SMLAD` loop that computes two output channels per
/// pass over the input; everywhere else it is [`fully_connected_s8_portable`]. Both give
/// identical outputs.
#[inline(never)]
pub fn fully_connected_s8(p: &FcParams, input: &[i8], output: &mut [i8]) {
    // One compiled copy for every layer (see the `kernels` module docs).
    let (p, input, output) = core::hint::black_box((p, input, output));
    #[cfg(bonsai_dsp)]
    fully_connected_s8_dsp(p, input, output);
    #[cfg(not(bonsai_dsp))]
    fully_connected_s8_portable(p, input, output);
}

/// The DSP-extension version of [`fully_connected_s8`]: the same checks and outputs, rows in
/// pairs through `dsp::dot2`. Compiled on hosts for tests, with the instructions emulated.
#[cfg(any(test, bonsai_dsp))]
pub(crate) fn fully_connected_s8_dsp(p: &FcParams, input: &[i8], output: &mut [i8]) {
    let in_len = input.len();
    debug_assert_eq!(p.weights.len(), in_len * output.len(), "weights length");
    debug_assert_eq!(p.folded_bias.len(), output.len(), "folded_bias length");
    debug_assert_eq!(p.multiplier.len(), output.len(), "multiplier length");
    debug_assert_eq!(p.shift.len(), output.len(), "shift length");

    // chunks_exact(0) panics; with no inputs there is nothing for the DSP loop to do.
    if in_len == 0 {
        fully_connected_s8_portable(p, input, output);
        return;
    }
    // Only fully described channels are written, as in the portable kernel.
    let mut rows = p.weights.chunks_exact(in_len);
    let mut channels = output
        .iter_mut()
        .zip(p.folded_bias)
        .zip(p.multiplier)
        .zip(p.shift);
    let q = |acc: i32, m: i32, s: i32| requantize(acc, m, s, p.output_offset, p.act_min, p.act_max);
    while let (Some((((out0, &b0), &m0), &s0)), Some(w0)) = (channels.next(), rows.next()) {
        match (channels.next(), rows.next()) {
            (Some((((out1, &b1), &m1), &s1)), Some(w1)) => {
                let (a0, a1) = super::dsp::dot2(input, w0, w1, b0, b1);
                *out0 = q(a0, m0, s0);
                *out1 = q(a1, m1, s1);
            }
            _ => {
                *out0 = q(super::dsp::dot1(input, w0, b0), m0, s0);
                return;
            }
        }
    }
}

/// The portable [`fully_connected_s8`] (plain `i8` loads, no DSP instructions): what hosts,
/// Cortex-M0/M3 and M4 builds without the DSP feature run. Public so that firmware can
/// measure one against the other.
pub fn fully_connected_s8_portable(p: &FcParams, input: &[i8], output: &mut [i8]) {
    let in_len = input.len();
    debug_assert_eq!(p.weights.len(), in_len * output.len(), "weights length");
    debug_assert_eq!(p.folded_bias.len(), output.len(), "folded_bias length");
    debug_assert_eq!(p.multiplier.len(), output.len(), "multiplier length");
    debug_assert_eq!(p.shift.len(), output.len(), "shift length");

    let channels = output
        .iter_mut()
        .zip(p.folded_bias)
        .zip(p.multiplier)
        .zip(p.shift);

    // chunks_exact(0) panics; with no inputs every dot product is zero anyway.
    if in_len == 0 {
        for (((out, &bias), &m), &s) in channels {
            *out = requantize(bias, m, s, p.output_offset, p.act_min, p.act_max);
        }
        return;
    }

    for ((((out, &bias), &m), &s), row) in channels.zip(p.weights.chunks_exact(in_len)) {
        let acc = bias.wrapping_add(dot_s8(input, row));
        *out = requantize(acc, m, s, p.output_offset, p.act_min, p.act_max);
    }
}

/// `Σ_j a[j] · b[j]` over the common prefix.
///
/// Each product fits easily in i32 (|x·w| ≤ 2^14); the running sum wraps like the C kernels
/// rather than carrying an overflow check, and the compiler proves real layers never wrap.
/// Kept as a plain loop: the portable hot loop (the DSP targets use `dsp::dot2` instead).
#[inline]
fn dot_s8(a: &[i8], b: &[i8]) -> i32 {
    let mut sum = 0i32;
    for (&x, &w) in a.iter().zip(b) {
        sum = sum.wrapping_add(i32::from(x) * i32::from(w));
    }
    sum
}

/// Fold the input zero point into the bias: `folded[o] = bias[o] + input_offset · Σ_j w[o][j]`,
/// with `input_offset = -input_zero_point`.
///
/// `out = folded.len() = bias.len()` and `in = weights.len() / out`, so `weights.len()` must be
/// a multiple of `out`. Arithmetic wraps, which keeps the fast kernel equal to
/// [`fully_connected_s8_reference`] modulo 2^32 in every case.
pub fn fold_bias(weights: &[i8], bias: &[i32], input_offset: i32, folded: &mut [i32]) {
    debug_assert_eq!(bias.len(), folded.len(), "bias / folded length");
    let out_len = bias.len().min(folded.len());
    let in_len = weights.len().checked_div(out_len).unwrap_or(0);
    debug_assert_eq!(
        in_len * out_len,
        weights.len(),
        "weights length not out * in"
    );

    // Zero-width rows: nothing to fold (and chunks_exact(0) would panic).
    if in_len == 0 {
        for (f, &b) in folded.iter_mut().zip(bias) {
            *f = b;
        }
        return;
    }

    for ((f, &b), row) in folded
        .iter_mut()
        .zip(bias)
        .zip(weights.chunks_exact(in_len))
    {
        let row_sum = row.iter().fold(0i32, |s, &w| s.wrapping_add(i32::from(w)));
        *f = b.wrapping_add(input_offset.wrapping_mul(row_sum));
    }
}

/// Textbook dense layer, for checking [`fully_connected_s8`]: with the unfolded `bias` and
/// `input_offset = -input_zero_point`,
/// `output[o] = requantize(bias[o] + Σ_j (input[j] + input_offset) · weights[o][j])`.
///
/// Not for the hot path: it indexes directly and so panics on lengths that are inconsistent
/// (`weights.len() != out * in` or a per-channel slice shorter than `out`).
#[expect(
    clippy::too_many_arguments,
    reason = "mirrors the formula term by term; a params struct would hide what is compared"
)]
pub fn fully_connected_s8_reference(
    input: &[i8],
    weights: &[i8],
    bias: &[i32],
    input_offset: i32,
    multiplier: &[i32],
    shift: &[i32],
    output_offset: i32,
    act_min: i8,
    act_max: i8,
    output: &mut [i8],
) {
    let in_len = input.len();
    let out_len = output.len();
    assert_eq!(weights.len(), out_len * in_len, "weights length");
    for o in 0..out_len {
        let mut acc = bias[o];
        for j in 0..in_len {
            let x = i32::from(input[j]) + input_offset;
            let w = i32::from(weights[o * in_len + j]);
            acc = acc.wrapping_add(x.wrapping_mul(w));
        }
        output[o] = requantize(
            acc,
            multiplier[o],
            shift[o],
            output_offset,
            act_min,
            act_max,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::vec;
    use std::vec::Vec;

    const HALF: i32 = 1 << 30;

    // input [1, −2, 3], input zp 1 (offset −1), weights [[1, 2, 3], [−1, 0, 1]], bias [10, −4].
    // Reference: x + offset = [0, −3, 2];
    //   row 0: 0·1 − 3·2 + 2·3 = 0, + 10 = 10;   row 1: 0·(−1) + 0 + 2·1 = 2, − 4 = −2.
    // Folded: row sums 6 and 0 → folded bias [10 − 6, −4 − 0] = [4, −4];
    //   row 0: 1·1 − 2·2 + 3·3 = 6, + 4 = 10;    row 1: −1 + 0 + 3 = 2, − 4 = −2.  Same.
    // Requantize: channel 0 ×1.0 (2^30, shift 1) → 10; channel 1 ×0.5 (2^30, shift 0):
    //   −2·0.5 = −1 exactly. Output offset 5 → [15, 4].
    const INPUT: [i8; 3] = [1, -2, 3];
    const WEIGHTS: [i8; 6] = [1, 2, 3, -1, 0, 1];
    const BIAS: [i32; 2] = [10, -4];
    const MULT: [i32; 2] = [HALF, HALF];
    const SHIFT: [i32; 2] = [1, 0];

    #[test]
    fn fold_bias_by_hand() {
        let mut folded = [0; 2];
        fold_bias(&WEIGHTS, &BIAS, -1, &mut folded);
        assert_eq!(folded, [4, -4]);
    }

    #[test]
    fn fast_kernel_by_hand() {
        let p = FcParams {
            weights: &WEIGHTS,
            folded_bias: &[4, -4],
            multiplier: &MULT,
            shift: &SHIFT,
            output_offset: 5,
            act_min: -128,
            act_max: 127,
        };
        let mut out = [0i8; 2];
        fully_connected_s8(&p, &INPUT, &mut out);
        assert_eq!(out, [15, 4]);
    }

    #[test]
    fn reference_by_hand() {
        let mut out = [0i8; 2];
        fully_connected_s8_reference(
            &INPUT, &WEIGHTS, &BIAS, -1, &MULT, &SHIFT, 5, -128, 127, &mut out,
        );
        assert_eq!(out, [15, 4]);
    }

    #[test]
    fn fused_relu_clamps_to_zero_point() {
        // Same layer, act_min = output zp 5: channel 1 gives −1 + 5 = 4 → 5.
        let p = FcParams {
            weights: &WEIGHTS,
            folded_bias: &[4, -4],
            multiplier: &MULT,
            shift: &SHIFT,
            output_offset: 5,
            act_min: 5,
            act_max: 127,
        };
        let mut out = [0i8; 2];
        fully_connected_s8(&p, &INPUT, &mut out);
        assert_eq!(out, [15, 5]);
    }

    #[test]
    fn zero_inputs_output_requantized_bias() {
        // 20·0.5 = 10, −7·0.5 = −3.5 → −3 (tie toward +∞); offset 1 → [11, −2].
        let p = FcParams {
            weights: &[],
            folded_bias: &[20, -7],
            multiplier: &[HALF, HALF],
            shift: &[0, 0],
            output_offset: 1,
            act_min: -128,
            act_max: 127,
        };
        let mut out = [0i8; 2];
        fully_connected_s8(&p, &[], &mut out);
        assert_eq!(out, [11, -2]);

        let mut folded = [0; 2];
        fold_bias(&[], &[20, -7], 3, &mut folded);
        assert_eq!(folded, [20, -7]);
    }

    #[test]
    #[cfg_attr(debug_assertions, should_panic(expected = "folded_bias length"))]
    fn short_params_write_a_prefix_without_panicking() {
        // Release builds (no debug_assert): only channel 0 is fully described, so only it is
        // written and the rest keeps its sentinel.
        let p = FcParams {
            weights: &WEIGHTS,
            folded_bias: &[4],
            multiplier: &MULT,
            shift: &SHIFT,
            output_offset: 5,
            act_min: -128,
            act_max: 127,
        };
        let mut out = [99i8; 2];
        fully_connected_s8(&p, &INPUT, &mut out);
        assert_eq!(out, [15, 99]);
    }

    #[derive(Debug)]
    struct Case {
        input: Vec<i8>,
        weights: Vec<i8>,
        bias: Vec<i32>,
        input_offset: i32,
        multiplier: Vec<i32>,
        shift: Vec<i32>,
        output_offset: i32,
        act_min: i8,
        act_max: i8,
    }

    fn case() -> impl Strategy<Value = Case> {
        (1usize..64, 1usize..64).prop_flat_map(|(n_in, n_out)| {
            (
                prop::collection::vec(any::<i8>(), n_in),
                prop::collection::vec(-127i8..=127, n_in * n_out),
                prop::collection::vec(-(1i32 << 20)..(1 << 20), n_out),
                any::<i8>(),
                prop::collection::vec((1i32 << 30)..=i32::MAX, n_out),
                prop::collection::vec(-20i32..=2, n_out),
                any::<i8>(),
                any::<i8>(),
                any::<i8>(),
            )
                .prop_map(
                    |(input, weights, bias, input_zp, multiplier, shift, output_zp, a, b)| Case {
                        input,
                        weights,
                        bias,
                        input_offset: -i32::from(input_zp),
                        multiplier,
                        shift,
                        output_offset: i32::from(output_zp),
                        act_min: a.min(b),
                        act_max: a.max(b),
                    },
                )
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(10_000))]

        #[test]
        fn fast_equals_reference(c in case()) {
            let n_out = c.bias.len();
            let mut expected = vec![0i8; n_out];
            fully_connected_s8_reference(
                &c.input, &c.weights, &c.bias, c.input_offset, &c.multiplier, &c.shift,
                c.output_offset, c.act_min, c.act_max, &mut expected,
            );

            let mut folded = vec![0i32; n_out];
            fold_bias(&c.weights, &c.bias, c.input_offset, &mut folded);
            let p = FcParams {
                weights: &c.weights,
                folded_bias: &folded,
                multiplier: &c.multiplier,
                shift: &c.shift,
                output_offset: c.output_offset,
                act_min: c.act_min,
                act_max: c.act_max,
            };
            let mut actual = vec![0i8; n_out];
            fully_connected_s8(&p, &c.input, &mut actual);
            prop_assert_eq!(&actual, &expected);
            let mut dsp = vec![0i8; n_out];
            fully_connected_s8_dsp(&p, &c.input, &mut dsp);
            prop_assert_eq!(dsp, expected);
        }

        #[test]
        fn generated_cases_portable_and_dsp_equal_reference(seed in any::<u64>()) {
            use crate::testgen::{check_fc, Scratch};
            let mut s = std::boxed::Box::new(Scratch::new());
            for f in [fully_connected_s8_portable, fully_connected_s8_dsp] {
                if let Err(m) = check_fc(seed, &mut s, f) {
                    prop_assert!(false, "{:?}", m);
                }
            }
        }
    }
}
