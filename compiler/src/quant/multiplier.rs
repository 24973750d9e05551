//! Real-valued scales as fixed-point multipliers, exactly as TFLite's `QuantizeMultiplier`.

/// `real ≈ multiplier · 2^shift / 2^31` with `multiplier` in [2^30, 2^31) (or 0 for 0).
/// A positive shift is a left shift. Computed in f64, as TFLite does, so results match it.
///
/// Panics only on a negative or non-finite scale, which calibration never produces.
pub fn quantize_multiplier(real: f64) -> (i32, i32) {
    assert!(
        real.is_finite() && real >= 0.0,
        "requantization scale must be finite and non-negative, got {real}"
    );
    if real == 0.0 {
        return (0, 0);
    }
    let (q, mut shift) = frexp(real);
    let mut q_fixed = (q * (1i64 << 31) as f64).round() as i64;
    // q just below 1.0 can round up to 2^31, which does not fit: halve it and bump the exponent.
    if q_fixed == 1i64 << 31 {
        q_fixed /= 2;
        shift += 1;
    }
    // Too small to represent: the product is zero anyway.
    if shift < -31 {
        return (0, 0);
    }
    // Too large: saturate, as TFLite does.
    if shift > 30 {
        return (i32::MAX, 30);
    }
    (q_fixed as i32, shift)
}

/// `x = q · 2^e` with `q` in [0.5, 1) for positive finite `x` (C's `frexp`; Rust's std has none).
fn frexp(x: f64) -> (f64, i32) {
    let bits = x.to_bits();
    let biased = ((bits >> 52) & 0x7ff) as i32;
    if biased == 0 {
        // Subnormal: scale into the normal range first.
        let (q, e) = frexp(x * 2f64.powi(64));
        return (q, e - 64);
    }
    let e = biased - 1022;
    let q = f64::from_bits((bits & !(0x7ffu64 << 52)) | (1022u64 << 52));
    (q, e)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frexp_matches_definition() {
        for x in [1.0, 0.5, 0.75, 3.0, 1e-10, 1234.5] {
            let (q, e) = frexp(x);
            assert!((0.5..1.0).contains(&q), "{x}: q {q}");
            assert_eq!(q * 2f64.powi(e), x);
        }
        // Subnormal: 2^-1077 = 0.5 · 2^-1076.
        let (q, e) = frexp(f64::MIN_POSITIVE / 32.0);
        assert_eq!((q, e), (0.5, -1026));
    }

    #[test]
    fn exact_powers_of_two() {
        assert_eq!(quantize_multiplier(0.5), (1 << 30, 0));
        assert_eq!(quantize_multiplier(1.0), (1 << 30, 1));
        assert_eq!(quantize_multiplier(0.25), (1 << 30, -1));
        assert_eq!(quantize_multiplier(0.0), (0, 0));
    }

    #[test]
    fn multiplier_that_rounds_up_to_2_pow_31_is_renormalised() {
        // Just below 1.0: q·2^31 rounds to exactly 2^31.
        let real = 1.0 - 2f64.powi(-40);
        assert_eq!(quantize_multiplier(real), (1 << 30, 1));
    }

    #[test]
    fn tiny_and_huge_scales_saturate() {
        assert_eq!(quantize_multiplier(1e-12), (0, 0));
        assert_eq!(quantize_multiplier(2f64.powi(40)), (i32::MAX, 30));
    }

    #[test]
    fn reconstructs_scale_to_31_bits() {
        for real in [0.0123, 0.9999, 1.5, 3.7e-4, 0.333333] {
            let (m, s) = quantize_multiplier(real);
            let back = m as f64 * 2f64.powi(s - 31);
            assert!(
                (back - real).abs() <= real * 2f64.powi(-30),
                "{real} -> {back}"
            );
            assert!(m >= 1 << 30);
        }
    }
}
