//! Elementwise addition of two int8 tensors of the same shape, bit-exact with TFLite's
//! reference `AddElementwise` for int8 (`reference_integer_ops::Add`) and CMSIS-NN's
//! `arm_elementwise_add_s8`.
//!
//! ```text
//! a  = (x1 + input1_offset) · 2^left_shift          b  = (x2 + input2_offset) · 2^left_shift
//! a' = MBQM_smaller_than_one(a, input1_multiplier, input1_shift)
//! b' = MBQM_smaller_than_one(b, input2_multiplier, input2_shift)
//! y  = MBQM_smaller_than_one(a' + b', output_multiplier, output_shift) + output_offset
//! output = clamp(y, act_min, act_max)
//! ```
//!
//! with `MBQM_smaller_than_one(x, m, s) = rounding_divide_by_pot(
//! saturating_rounding_doubling_high_mul(x, m), −s)` (TFLite's
//! `MultiplyByQuantizedMultiplierSmallerThanOneExp`; `s ≤ 0`).
//!
//! ## Computing the parameters (what TFLite's `PrepareGeneralSubOp`/`Prepare` does)
//!
//! With input scales `s1`, `s2`, output scale `s_out` and zero points `z1`, `z2`, `z_out`:
//!
//! ```text
//! left_shift        = 20                                   (int8)
//! twice_max         = 2 · max(s1, s2)
//! real_input1_mult  = s1 / twice_max                       (≤ 0.5)
//! real_input2_mult  = s2 / twice_max
//! real_output_mult  = twice_max / (2^left_shift · s_out)
//! (inputN_multiplier, inputN_shift) = QuantizeMultiplierSmallerThanOneExp(real_inputN_mult)
//! (output_multiplier, output_shift) = QuantizeMultiplierSmallerThanOneExp(real_output_mult)
//! input1_offset = −z1,  input2_offset = −z2,  output_offset = z_out
//! ```
//!
//! `QuantizeMultiplierSmallerThanOneExp(r)` (for `0 < r < 1`) is TFLite's `QuantizeMultiplier`:
//! `r = q · 2^e` with `q ∈ [0.5, 1)`, multiplier `round(q · 2^31)` (if that is `2^31`, halve it to
//! `2^30` and add 1 to `e`), shift `e` (≤ 0 here). The activation range is `[-128, 127]`
//! intersected with the fused activation's (`[z_out, 127]` for ReLU).

use crate::requant::{rounding_divide_by_pot, saturating_rounding_doubling_high_mul};

/// An addition layer's constants (see the [module docs](self) for how to compute them).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AddParams {
    /// `−z1`.
    pub input1_offset: i32,
    /// Q31 multiplier of `s1 / (2 · max(s1, s2))`.
    pub input1_multiplier: i32,
    /// Its shift, in `-31..=0`.
    pub input1_shift: i32,
    /// `−z2`.
    pub input2_offset: i32,
    /// Q31 multiplier of `s2 / (2 · max(s1, s2))`.
    pub input2_multiplier: i32,
    /// Its shift, in `-31..=0`.
    pub input2_shift: i32,
    /// Headroom shift applied to both inputs first: 20 for int8 (in `0..=30`).
    pub left_shift: i32,
    /// Q31 multiplier of `2 · max(s1, s2) / (2^left_shift · s_out)`.
    pub output_multiplier: i32,
    /// Its shift, in `-31..=0`.
    pub output_shift: i32,
    /// `z_out`.
    pub output_offset: i32,
    /// Lower clamp.
    pub act_min: i8,
    /// Upper clamp.
    pub act_max: i8,
}

/// TFLite's `MultiplyByQuantizedMultiplierSmallerThanOneExp`: `shift` must be `≤ 0` (a
/// positive one is treated as 0).
#[inline(always)]
fn mul_smaller_than_one(x: i32, multiplier: i32, shift: i32) -> i32 {
    rounding_divide_by_pot(
        saturating_rounding_doubling_high_mul(x, multiplier),
        shift.saturating_neg(),
    )
}

/// `output[i] = input1[i] ⊕ input2[i]` (formula in the [module docs](self)) over the common
/// length of the three slices (debug builds assert they are equal).
pub fn add_s8(p: &AddParams, input1: &[i8], input2: &[i8], output: &mut [i8]) {
    debug_assert_eq!(input1.len(), output.len(), "input1 length");
    debug_assert_eq!(input2.len(), output.len(), "input2 length");
    // Clamped so that the shift can neither panic nor wrap its amount.
    let ls = p.left_shift.clamp(0, 30) as u32;
    let (lo, hi) = (i32::from(p.act_min), i32::from(p.act_max));
    for ((o, &x1), &x2) in output.iter_mut().zip(input1).zip(input2) {
        let a = (i32::from(x1) + p.input1_offset).wrapping_shl(ls);
        let b = (i32::from(x2) + p.input2_offset).wrapping_shl(ls);
        let a = mul_smaller_than_one(a, p.input1_multiplier, p.input1_shift);
        let b = mul_smaller_than_one(b, p.input2_multiplier, p.input2_shift);
        let y = mul_smaller_than_one(a.wrapping_add(b), p.output_multiplier, p.output_shift)
            .saturating_add(p.output_offset);
        *o = y.max(lo).min(hi) as i8;
    }
}

/// The TFLite reference loop transcribed literally (indexing, `i64` for the sums so that the
/// clamp sees exact values), for checking [`add_s8`]. Panics if `input1` or `input2` is
/// shorter than `output`. Not for the hot path.
pub fn add_s8_reference(p: &AddParams, input1: &[i8], input2: &[i8], output: &mut [i8]) {
    for i in 0..output.len() {
        let input1_val = i64::from(p.input1_offset) + i64::from(input1[i]);
        let input2_val = i64::from(p.input2_offset) + i64::from(input2[i]);
        let shifted1 = (input1_val << p.left_shift) as i32;
        let shifted2 = (input2_val << p.left_shift) as i32;
        let scaled1 = rounding_divide_by_pot(
            saturating_rounding_doubling_high_mul(shifted1, p.input1_multiplier),
            -p.input1_shift,
        );
        let scaled2 = rounding_divide_by_pot(
            saturating_rounding_doubling_high_mul(shifted2, p.input2_multiplier),
            -p.input2_shift,
        );
        let raw_sum = (i64::from(scaled1) + i64::from(scaled2)) as i32;
        let raw_output = i64::from(rounding_divide_by_pot(
            saturating_rounding_doubling_high_mul(raw_sum, p.output_multiplier),
            -p.output_shift,
        )) + i64::from(p.output_offset);
        let clamped = raw_output
            .max(i64::from(p.act_min))
            .min(i64::from(p.act_max));
        output[i] = clamped as i8;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testgen::{check_add, Scratch};
    use proptest::prelude::*;
    use std::boxed::Box;

    fn params(m1: (i32, i32), m2: (i32, i32), out: (i32, i32), zp_out: i32) -> AddParams {
        AddParams {
            input1_offset: 0,
            input1_multiplier: m1.0,
            input1_shift: m1.1,
            input2_offset: 0,
            input2_multiplier: m2.0,
            input2_shift: m2.1,
            left_shift: 20,
            output_multiplier: out.0,
            output_shift: out.1,
            output_offset: zp_out,
            act_min: -128,
            act_max: 127,
        }
    }

    fn run(p: &AddParams, a: &[i8], b: &[i8]) -> std::vec::Vec<i8> {
        let mut fast = std::vec![0i8; a.len()];
        add_s8(p, a, b, &mut fast);
        let mut reference = std::vec![0i8; a.len()];
        add_s8_reference(p, a, b, &mut reference);
        assert_eq!(fast, reference);
        fast
    }

    #[test]
    fn by_hand_equal_scales() {
        // s1 = s2 = s_out = 1: inputs ×0.5 = (2^30, 0); output 2/2^20 = 2^−19 = 0.5·2^−18.
        // 3 + 4: 3·2^20·0.5 + 4·2^20·0.5 = 7·2^19; ·0.5 = 7·2^18; / 2^18 = 7 (+ zp 5 = 12).
        // 3 − 4: −2^19 → −2^18 → −1 (+ 5 = 4).
        let p = params((1 << 30, 0), (1 << 30, 0), (1 << 30, -18), 5);
        assert_eq!(run(&p, &[3, 3], &[4, -4]), [12, 4]);
    }

    #[test]
    fn by_hand_different_scales_and_offsets() {
        // s1 = 2, s2 = 1, s_out = 1: twice_max = 4, m1 = 0.5, m2 = 0.25 = (2^30, −1),
        // out = 4/2^20 = 2^−18 = (2^30, −17). Zero points z1 = 1, z2 = −1 (offsets −1, 1):
        // x1 = 2 → 1 (real 2), x2 = 0 → 1 (real 1): 2^19 + 2^18 = 3·2^18 → 3·2^17 → 3.
        let mut p = params((1 << 30, 0), (1 << 30, -1), (1 << 30, -17), 0);
        p.input1_offset = -1;
        p.input2_offset = 1;
        assert_eq!(run(&p, &[2], &[0]), [3]);
        // Clamped: 120 + 120 → 3·120 = 360 → 127; act range [0, 100] → 100.
        p.act_max = 100;
        assert_eq!(run(&p, &[121], &[119]), [100]);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(10_000))]

        #[test]
        fn fast_equals_reference(seed in any::<u64>()) {
            let mut s = Box::new(Scratch::new());
            if let Err(m) = check_add(seed, &mut s, add_s8) {
                prop_assert!(false, "{:?}", m);
            }
        }
    }
}
