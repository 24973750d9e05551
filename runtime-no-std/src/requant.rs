//! Fixed-point requantization, bit-exact with gemmlowp / TFLite's reference code.
//!
//! The rounding rules are not symmetric, and being "nearly right" is not good enough: a single
//! off-by-one in the last bit changes argmax results between the firmware and the compiler's
//! integer interpreter. So these follow the reference formulas literally.
//!
//! Derived rounding behaviour (useful when checking test vectors by hand):
//! * [`saturating_rounding_doubling_high_mul`] is `floor((a·b + 2^30) / 2^31)`: round to
//!   nearest with ties toward **+∞** (−0.5 → 0, −1.5 → −1), because the negative nudge is
//!   `1 − 2^30` rather than `−2^30`.
//! * [`rounding_divide_by_pot`] rounds to nearest with ties **away from zero**
//!   (−1.5 → −2, 1.5 → 2), because the threshold is one higher for negative inputs.

/// `a · b / 2^31` rounded to nearest (ties toward +∞), saturating the one overflowing case
/// `i32::MIN · i32::MIN` to `i32::MAX`. gemmlowp's `SaturatingRoundingDoublingHighMul`.
#[inline]
pub fn saturating_rounding_doubling_high_mul(a: i32, b: i32) -> i32 {
    // (−2^31)·(−2^31) / 2^31 = 2^31 is the only product whose result does not fit in i32.
    if a == i32::MIN && b == i32::MIN {
        return i32::MAX;
    }
    let ab = i64::from(a) * i64::from(b);
    let nudge: i64 = if ab >= 0 { 1 << 30 } else { 1 - (1 << 30) };
    // `/` truncates toward zero, as C's does; the sign-dependent nudge is written for that,
    // so an arithmetic shift (which floors) would round negative values differently.
    // Cannot overflow i64 (|ab| ≤ 2^62) and the quotient fits i32 once MIN·MIN is excluded.
    ((ab + nudge) / (1i64 << 31)) as i32
}

/// `x / 2^exponent` rounded to nearest, ties away from zero. gemmlowp's `RoundingDivideByPOT`.
///
/// `exponent` must be in `0..=31`; values outside are clamped into that range.
#[inline]
pub fn rounding_divide_by_pot(x: i32, exponent: i32) -> i32 {
    debug_assert!(
        (0..=31).contains(&exponent),
        "exponent {exponent} out of 0..=31"
    );
    // Clamping keeps every shift below the bit width, so no shift can panic or be undefined.
    let exponent = exponent.clamp(0, 31) as u32;
    // Built in i64 because 2^31 − 1 is the mask for exponent 31 and 1 << 31 overflows i32.
    let mask = ((1i64 << exponent) - 1) as i32;
    // Two's-complement `&` gives the floor remainder, matching the floor of `>>` below.
    let remainder = x & mask;
    // One more for negatives makes a tie stay at the floor, i.e. round away from zero.
    let threshold = (mask >> 1) + i32::from(x < 0);
    // No overflow: the +1 only happens when remainder > 0, which needs exponent ≥ 1.
    (x >> exponent) + i32::from(remainder > threshold)
}

/// `x · multiplier · 2^shift / 2^31` with TFLite's two roundings
/// (`MultiplyByQuantizedMultiplier`): a left shift before the high multiply keeps precision,
/// a right shift after it rounds once more.
///
/// `shift` must be in `-31..=30` (it is clamped into that range). The caller guarantees
/// `x · 2^max(shift, 0)` fits in i32, as TFLite assumes; if it does not, the product wraps.
#[inline]
pub fn multiply_by_quantized_multiplier(x: i32, multiplier: i32, shift: i32) -> i32 {
    debug_assert!((-31..=30).contains(&shift), "shift {shift} out of -31..=30");
    let shift = shift.clamp(-31, 30);
    let left_shift = shift.max(0);
    let right_shift = (-shift).max(0);
    // wrapping_mul: TFLite multiplies plainly; wrapping keeps overflow free of a panic path.
    let shifted = x.wrapping_mul(1 << left_shift);
    rounding_divide_by_pot(
        saturating_rounding_doubling_high_mul(shifted, multiplier),
        right_shift,
    )
}

/// Rescale an `i32` accumulator to an `i8` output: multiply by the quantized multiplier, add
/// the output zero point (`output_offset`), clamp to `[act_min, act_max]`.
///
/// The zero-point add saturates, so the result equals exact (unbounded) arithmetic followed by
/// the clamp. `act_min ≤ act_max` is expected; if not, the result is `act_max`.
#[inline]
pub fn requantize(
    acc: i32,
    multiplier: i32,
    shift: i32,
    output_offset: i32,
    act_min: i8,
    act_max: i8,
) -> i8 {
    let scaled =
        multiply_by_quantized_multiplier(acc, multiplier, shift).saturating_add(output_offset);
    // max-then-min rather than `clamp`, which panics when act_min > act_max.
    scaled.max(i32::from(act_min)).min(i32::from(act_max)) as i8
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const HALF: i32 = 1 << 30; // Q31 0.5
    const THREE_QUARTERS: i32 = 3 << 29; // Q31 0.75

    #[test]
    fn high_mul_saturates_min_times_min() {
        // (−2^31)² / 2^31 = 2^31 does not fit: saturate.
        assert_eq!(
            saturating_rounding_doubling_high_mul(i32::MIN, i32::MIN),
            i32::MAX
        );
    }

    #[test]
    fn high_mul_by_one_half() {
        // 100·2^30 + 2^30 = 101·2^30; / 2^31 = 50.5 → truncates to 50 (exact 50).
        assert_eq!(saturating_rounding_doubling_high_mul(100, HALF), 50);
        // 101·2^30 + 2^30 = 102·2^30; / 2^31 = 51 (101 · 0.5 = 50.5, tie → 51).
        assert_eq!(saturating_rounding_doubling_high_mul(101, HALF), 51);
        // 3·2^30 + 2^30 = 2^32; / 2^31 = 2 (1.5 → 2).
        assert_eq!(saturating_rounding_doubling_high_mul(3, HALF), 2);
        // 1·2^30 + 2^30 = 2^31; / 2^31 = 1 (0.5 → 1).
        assert_eq!(saturating_rounding_doubling_high_mul(1, HALF), 1);
        // Negative ties go toward +∞, not away from zero:
        // −2^30 + (1 − 2^30) = −2^31 + 1; / 2^31 = −0.99… → truncates to 0 (−0.5 → 0).
        assert_eq!(saturating_rounding_doubling_high_mul(-1, HALF), 0);
        // −3·2^30 + (1 − 2^30) = −2^32 + 1; / 2^31 = −1.99… → −1 (−1.5 → −1).
        assert_eq!(saturating_rounding_doubling_high_mul(-3, HALF), -1);
        // Negative non-ties round to nearest: −5·0.75 = −3.75.
        // −5·3·2^29 = −15·2^29; + 1 − 2^30 = −17·2^29 + 1; / 2^31 = −4.24… → truncates to −4.
        assert_eq!(
            saturating_rounding_doubling_high_mul(-5, THREE_QUARTERS),
            -4
        );
        // −2^31 · 2^30 = −2^61; + 1 − 2^30; / 2^31 = −2^30 − 0.49… → −2^30.
        assert_eq!(
            saturating_rounding_doubling_high_mul(i32::MIN, HALF),
            -(1 << 30)
        );
    }

    #[test]
    fn high_mul_by_largest_multiplier() {
        // (2^31 − 1)² = 2^62 − 2^32 + 1; + 2^30; / 2^31 = 2^31 − 2 + (2^30 + 1)/2^31 → 2^31 − 2.
        assert_eq!(
            saturating_rounding_doubling_high_mul(i32::MAX, i32::MAX),
            i32::MAX - 1
        );
        // −2^31·(2^31 − 1) = −2^62 + 2^31; + 1 − 2^30; / 2^31 = −2^31 + 1 − (2^30 − 1)/2^31
        // → truncates to −2^31 + 1.
        assert_eq!(
            saturating_rounding_doubling_high_mul(i32::MIN, i32::MAX),
            i32::MIN + 1
        );
        assert_eq!(
            saturating_rounding_doubling_high_mul(i32::MAX, i32::MIN),
            i32::MIN + 1
        );
        // 1000·(2^31 − 1) + 2^30 = 1000·2^31 + (2^30 − 1000); / 2^31 → 1000.
        assert_eq!(saturating_rounding_doubling_high_mul(1000, i32::MAX), 1000);
        // −1000·2^31 + 1000 + 1 − 2^30; / 2^31 = −1000 − 0.49… → −1000.
        assert_eq!(
            saturating_rounding_doubling_high_mul(-1000, i32::MAX),
            -1000
        );
    }

    #[test]
    fn divide_by_pot_negative_ties_round_away_from_zero() {
        // x=−3, e=1: mask 1, rem −3&1 = 1, threshold 0+1 = 1, −3>>1 = −2, 1>1 no → −2 (−1.5).
        assert_eq!(rounding_divide_by_pot(-3, 1), -2);
        // x=−1, e=1: rem 1, threshold 1, −1>>1 = −1 → −1 (−0.5).
        assert_eq!(rounding_divide_by_pot(-1, 1), -1);
        // x=−6, e=2: mask 3, rem −6&3 = 2 (−6 = −8 + 2), threshold 1+1 = 2, −6>>2 = −2 → −2 (−1.5).
        assert_eq!(rounding_divide_by_pot(-6, 2), -2);
        // x=−2, e=2: rem 2, threshold 2, −2>>2 = −1 → −1 (−0.5).
        assert_eq!(rounding_divide_by_pot(-2, 2), -1);
        // x=−5, e=1: rem 1, threshold 1, −5>>1 = −3 → −3 (−2.5).
        assert_eq!(rounding_divide_by_pot(-5, 1), -3);
    }

    #[test]
    fn divide_by_pot_negative_non_ties_round_to_nearest() {
        // x=−5, e=2: mask 3, rem −5&3 = 3 (−5 = −8 + 3), threshold 2, −5>>2 = −2, 3>2 → −1 (−1.25).
        assert_eq!(rounding_divide_by_pot(-5, 2), -1);
        // x=−7, e=2: rem 1, threshold 2, −7>>2 = −2 → −2 (−1.75).
        assert_eq!(rounding_divide_by_pot(-7, 2), -2);
        // x=−1, e=4: mask 15, rem 15, threshold 7+1 = 8, −1>>4 = −1, 15>8 → 0 (−0.0625).
        assert_eq!(rounding_divide_by_pot(-1, 4), 0);
    }

    #[test]
    fn divide_by_pot_positive_ties_round_up() {
        // x=3, e=1: rem 1, threshold 0, 3>>1 = 1, 1>0 → 2 (1.5).
        assert_eq!(rounding_divide_by_pot(3, 1), 2);
        // x=1, e=1: → 0 + 1 = 1 (0.5).
        assert_eq!(rounding_divide_by_pot(1, 1), 1);
        // x=6, e=2: mask 3, rem 2, threshold 1, 6>>2 = 1 → 2 (1.5).
        assert_eq!(rounding_divide_by_pot(6, 2), 2);
        // x=5, e=2: rem 1, threshold 1 → 1 (1.25).
        assert_eq!(rounding_divide_by_pot(5, 2), 1);
        // x=7, e=2: rem 3 > 1 → 2 (1.75).
        assert_eq!(rounding_divide_by_pot(7, 2), 2);
    }

    #[test]
    fn divide_by_pot_exponent_zero_is_identity() {
        // mask 0, remainder 0, threshold ≥ 0: never rounds up.
        for x in [0, 1, -1, 7, -7, i32::MAX, i32::MIN] {
            assert_eq!(rounding_divide_by_pot(x, 0), x);
        }
    }

    #[test]
    fn divide_by_pot_exponent_31() {
        // mask 2^31 − 1, threshold 2^30 − 1 (+1 for negatives).
        // MAX: rem = 2^31 − 1 > 2^30 − 1, MAX>>31 = 0 → 1 (0.99…).
        assert_eq!(rounding_divide_by_pot(i32::MAX, 31), 1);
        // MIN: rem = 0, MIN>>31 = −1 → −1 (exactly −1).
        assert_eq!(rounding_divide_by_pot(i32::MIN, 31), -1);
        // 2^30: rem 2^30 > 2^30 − 1 → 1 (0.5 tie, up).
        assert_eq!(rounding_divide_by_pot(1 << 30, 31), 1);
        // 2^30 − 1: rem 2^30 − 1, not > → 0 (just under 0.5).
        assert_eq!(rounding_divide_by_pot((1 << 30) - 1, 31), 0);
        // −2^30 = −2^31 + 2^30: rem 2^30, threshold 2^30, not > → −1 (−0.5 tie, away from zero).
        assert_eq!(rounding_divide_by_pot(-(1 << 30), 31), -1);
        // −2^30 + 1: rem 2^30 + 1 > 2^30 → −1 + 1 = 0 (just above −0.5).
        assert_eq!(rounding_divide_by_pot(-(1 << 30) + 1, 31), 0);
        // −1: rem 2^31 − 1 > 2^30 → 0.
        assert_eq!(rounding_divide_by_pot(-1, 31), 0);
    }

    #[test]
    fn multiplier_one_half_with_right_shifts() {
        // 100·0.5 = 50; shift 0 → 50.
        assert_eq!(multiply_by_quantized_multiplier(100, HALF, 0), 50);
        // 50 / 2 = 25.
        assert_eq!(multiply_by_quantized_multiplier(100, HALF, -1), 25);
        // Two roundings: 5·0.5 = 2.5 → 3 (high mul), then 3/2 = 1.5 → 2.
        // (One exact rounding of 1.25 would give 1.)
        assert_eq!(multiply_by_quantized_multiplier(5, HALF, -1), 2);
        // −3·0.5 = −1.5 → −1 (high mul, tie toward +∞), then −1/2 = −0.5 → −1 (away from zero).
        assert_eq!(multiply_by_quantized_multiplier(-3, HALF, -1), -1);
        // −5·0.5 = −2.5 → −2, then −2/2 = −1.
        assert_eq!(multiply_by_quantized_multiplier(-5, HALF, -1), -1);
        // −2^31 · 0.5 = −2^30, then / 2^31 = −0.5 → −1.
        assert_eq!(multiply_by_quantized_multiplier(i32::MIN, HALF, -31), -1);
    }

    #[test]
    fn left_shift_happens_before_the_high_mul() {
        // 3·4 = 12, 12·0.5 = 6.
        assert_eq!(multiply_by_quantized_multiplier(3, HALF, 2), 6);
        // 7·2 = 14, ·0.5 = 7: the multiplier is exactly 1.0.
        assert_eq!(multiply_by_quantized_multiplier(7, HALF, 1), 7);
        // 1·2 = 2, 2·0.75 = 1.5 → 2.
        // 3·2 = 6, 6·0.75 = 4.5 → 5; shifting after the rounding would give round(2.25)·2 = 4.
        assert_eq!(multiply_by_quantized_multiplier(1, THREE_QUARTERS, 1), 2);
        assert_eq!(multiply_by_quantized_multiplier(3, THREE_QUARTERS, 1), 5);
        // Largest legal left shift: 1·2^30 = 2^30, ·0.5 = 2^29.
        assert_eq!(multiply_by_quantized_multiplier(1, HALF, 30), 1 << 29);
        // −1·2^30 · 0.5 = −2^29 exactly.
        assert_eq!(multiply_by_quantized_multiplier(-1, HALF, 30), -(1 << 29));
    }

    #[test]
    fn largest_multiplier() {
        // ×(1 − 2^−31) ≈ identity for small values.
        assert_eq!(multiply_by_quantized_multiplier(1000, i32::MAX, 0), 1000);
        assert_eq!(multiply_by_quantized_multiplier(-1000, i32::MAX, 0), -1000);
        assert_eq!(
            multiply_by_quantized_multiplier(i32::MAX, i32::MAX, 0),
            i32::MAX - 1
        );
        // 1000 then / 2^3 = 125.
        assert_eq!(multiply_by_quantized_multiplier(1000, i32::MAX, -3), 125);
        // Saturated MIN·MIN = 2^31 − 1, then / 2^31 = 0.99… → 1.
        assert_eq!(
            multiply_by_quantized_multiplier(i32::MIN, i32::MIN, 0),
            i32::MAX
        );
        assert_eq!(multiply_by_quantized_multiplier(i32::MIN, i32::MIN, -31), 1);
    }

    #[test]
    fn requantize_adds_offset_then_clamps() {
        // 1000·0.5 = 500, /4 = 125, −5 → 120.
        assert_eq!(requantize(1000, HALF, -2, -5, -128, 127), 120);
        // 500 → clamped to 127.
        assert_eq!(requantize(1000, HALF, 0, 0, -128, 127), 127);
        // −500 → clamped to −128.
        assert_eq!(requantize(-1000, HALF, 0, 0, -128, 127), -128);
        // Offset pushes into range: 300·0.5 = 150, −100 → 50.
        assert_eq!(requantize(300, HALF, 0, -100, -128, 127), 50);
        // Fused ReLU: act_min = output zero point 3; −10·0.5 = −5, +3 = −2 → 3.
        assert_eq!(requantize(-10, HALF, 0, 3, 3, 127), 3);
        // ReLU6-style upper bound: 100·0.5 = 50 → 20.
        assert_eq!(requantize(100, HALF, 0, 0, 0, 20), 20);
        // Exact boundaries pass through: 254·0.5 = 127; −256·0.5 = −128.
        assert_eq!(requantize(254, HALF, 0, 0, -128, 127), 127);
        assert_eq!(requantize(-256, HALF, 0, 0, -128, 127), -128);
    }

    #[test]
    fn requantize_offset_add_saturates_instead_of_wrapping() {
        // MIN·MIN saturates to MAX; + 1 would wrap to MIN (→ −128), exact arithmetic gives 127.
        assert_eq!(requantize(i32::MIN, i32::MIN, 0, 1, -128, 127), 127);
        // MIN·MAX → MIN + 1; adding −5 would wrap to a huge positive (→ 127), exact gives −128.
        assert_eq!(requantize(i32::MIN, i32::MAX, 0, -5, -128, 127), -128);
    }

    #[test]
    fn requantize_inverted_range_does_not_panic() {
        // Documented: act_min > act_max yields act_max.
        assert_eq!(requantize(0, HALF, 0, 0, 10, -10), -10);
    }

    // Independent oracle, written from the derived rounding rules rather than the bit tricks:
    // the high mul is floor((y·m + 2^30) / 2^31) (round half toward +∞) and the shift is
    // sign-magnitude round half away from zero. All in i128, so nothing can overflow.
    fn oracle(x: i32, multiplier: i32, shift: i32) -> i32 {
        let left = shift.max(0) as u32;
        let right = (-shift).max(0) as u32;
        let y = i128::from(x) << left;
        let y = i32::try_from(y).expect("test generates x so the left shift fits");
        let high: i128 = if y == i32::MIN && multiplier == i32::MIN {
            i128::from(i32::MAX)
        } else {
            (i128::from(y) * i128::from(multiplier) + (1 << 30)).div_euclid(1 << 31)
        };
        let d: i128 = 1 << right;
        let magnitude = (high.abs() + d / 2) / d;
        let result = if high < 0 { -magnitude } else { magnitude };
        i32::try_from(result).expect("result fits i32")
    }

    #[test]
    fn oracle_agrees_with_hand_vectors() {
        // Guards the oracle itself against sharing a mistake with the implementation.
        assert_eq!(oracle(-3, HALF, -1), -1);
        assert_eq!(oracle(5, HALF, -1), 2);
        assert_eq!(oracle(-1, HALF, 0), 0);
        assert_eq!(oracle(i32::MIN, i32::MIN, 0), i32::MAX);
        assert_eq!(oracle(3, THREE_QUARTERS, 1), 5);
    }

    fn in_range_x_for_shift() -> impl Strategy<Value = (i32, i32, i32)> {
        (any::<i32>(), any::<i32>(), -31i32..=30).prop_map(|(x, m, s)| {
            // Arithmetic-shifting a random i32 right by the left shift gives exactly the set of
            // x whose x·2^left still fits i32, sampled uniformly.
            (x >> s.max(0), m, s)
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(10_000))]

        #[test]
        fn mbqm_matches_i128_oracle((x, m, s) in in_range_x_for_shift()) {
            prop_assert_eq!(multiply_by_quantized_multiplier(x, m, s), oracle(x, m, s));
        }

        #[test]
        fn mbqm_matches_oracle_for_realistic_multipliers(
            x in any::<i32>(),
            m in (1i32 << 30)..=i32::MAX,
            s in -31i32..=0,
        ) {
            prop_assert_eq!(multiply_by_quantized_multiplier(x, m, s), oracle(x, m, s));
        }

        #[test]
        fn high_mul_matches_floor_formula(a in any::<i32>(), b in any::<i32>()) {
            prop_assert_eq!(saturating_rounding_doubling_high_mul(a, b), oracle(a, b, 0));
        }

        #[test]
        fn divide_by_pot_matches_round_half_away(x in any::<i32>(), e in 0i32..=31) {
            // Sign-magnitude rounding in i64, independent of the mask/threshold trick.
            let d = 1i64 << e;
            let magnitude = (i64::from(x).abs() + d / 2) / d;
            let expected = if x < 0 { -magnitude } else { magnitude };
            prop_assert_eq!(i64::from(rounding_divide_by_pot(x, e)), expected);
        }
    }
}
