//! The compiler's own integer requantization, written from TFLite's reference semantics in
//! plain i64 arithmetic. It is deliberately independent of `bonsai-rt`: the two implementations
//! are checked against each other, so neither may call the other.

/// gemmlowp's SaturatingRoundingDoublingHighMul: a·b / 2^31 rounded to nearest with ties toward
/// +infinity (the negative nudge `1 - 2^30` plus truncation makes -0.5 -> 0, -1.5 -> -1), with the
/// single overflowing case saturated.
pub fn srdhm(a: i32, b: i32) -> i32 {
    if a == i32::MIN && b == i32::MIN {
        return i32::MAX;
    }
    let ab = a as i64 * b as i64;
    let nudge = if ab >= 0 {
        1i64 << 30
    } else {
        1 - (1i64 << 30)
    };
    // Rust's `/` truncates toward zero, like C's: that is what the nudge assumes.
    ((ab + nudge) / (1i64 << 31)) as i32
}

/// gemmlowp's RoundingDivideByPOT: x / 2^exponent rounded to nearest, ties away from zero.
pub fn rdbpot(x: i32, exponent: u32) -> i32 {
    debug_assert!(exponent <= 31);
    let x = x as i64;
    let mask = (1i64 << exponent) - 1;
    let remainder = x & mask;
    let threshold = (mask >> 1) + i64::from(x < 0);
    ((x >> exponent) + i64::from(remainder > threshold)) as i32
}

/// TFLite's MultiplyByQuantizedMultiplier (two roundings: high-mul, then shift).
/// Errors if the left shift would overflow, which the lowering must rule out.
pub fn multiply_by_quantized_multiplier(x: i32, multiplier: i32, shift: i32) -> Option<i32> {
    let left = shift.max(0) as u32;
    let right = (-shift).max(0) as u32;
    let shifted = (x as i64) << left;
    let shifted = i32::try_from(shifted).ok()?;
    Some(rdbpot(srdhm(shifted, multiplier), right))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn high_mul_rounds_ties_toward_plus_infinity() {
        // 3 · 2^30 / 2^31 = 1.5 -> 2; -1.5: (-3·2^30 + 1 - 2^30) / 2^31 truncates to -1.
        assert_eq!(srdhm(3, 1 << 30), 2);
        assert_eq!(srdhm(-3, 1 << 30), -1);
        // 0.5 -> 1; -0.5: (-2^31 + 1) / 2^31 truncates to 0.
        assert_eq!(srdhm(1, 1 << 30), 1);
        assert_eq!(srdhm(-1, 1 << 30), 0);
        // non-ties round to nearest: -1.25 -> -1, -1.75 -> -2
        assert_eq!(srdhm(-5, 1 << 29), -1);
        assert_eq!(srdhm(-7, 1 << 29), -2);
        assert_eq!(srdhm(i32::MIN, i32::MIN), i32::MAX);
        assert_eq!(srdhm(i32::MAX, i32::MAX), i32::MAX - 1);
    }

    #[test]
    fn divide_by_pot_rounds_ties_away_from_zero() {
        assert_eq!(rdbpot(5, 1), 3); // 2.5 -> 3
        assert_eq!(rdbpot(-5, 1), -3); // -2.5 -> -3
        assert_eq!(rdbpot(-3, 1), -2); // -1.5 -> -2
        assert_eq!(rdbpot(-6, 2), -2); // -1.5 -> -2
        assert_eq!(rdbpot(-5, 2), -1); // -1.25 -> -1
        assert_eq!(rdbpot(7, 0), 7);
        assert_eq!(rdbpot(i32::MIN, 31), -1);
        assert_eq!(rdbpot(i32::MAX, 31), 1);
        assert_eq!(rdbpot(1 << 30, 31), 1); // 0.5 -> 1
        assert_eq!(rdbpot(-(1 << 30), 31), -1); // -0.5 -> -1
    }

    #[test]
    fn left_shift_overflow_is_reported() {
        assert_eq!(multiply_by_quantized_multiplier(1 << 30, 1 << 30, 2), None);
        assert_eq!(multiply_by_quantized_multiplier(100, 1 << 30, 2), Some(200));
        // Two roundings: 0.5·5 = 2.5 -> 3 (high-mul), then /2 = 1.5 -> 2 (ties away from zero).
        assert_eq!(multiply_by_quantized_multiplier(5, 1 << 30, -1), Some(2));
    }
}
