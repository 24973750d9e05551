//! ReLU, ReLU6 and general clamping on int8 data.

/// In-place ReLU: `x = max(x, zero_point)`.
///
/// Real zero is `zero_point` in the quantized domain, so clamping there is exactly
/// `max(real, 0)` with input and output sharing one scale and zero point.
pub fn relu_s8(data: &mut [i8], zero_point: i8) {
    for x in data {
        *x = (*x).max(zero_point);
    }
}

/// In-place clamp: `x = min(max(x, min), max)`. `min ≤ max` is expected; otherwise every
/// element becomes `max`.
///
/// ReLU6 (and ReLU-N) on data with scale `s` and zero point `zp`, as TFLite's
/// `CalculateActivationRangeQuantized` computes it: `min = zp`,
/// `max = min(127, zp + round(6 / s))`. Also usable as a standalone fused-activation step.
pub fn clamp_s8(data: &mut [i8], min: i8, max: i8) {
    for x in data {
        // max-then-min rather than `clamp`, which panics when min > max.
        *x = (*x).max(min).min(max);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clamp_is_relu6_with_the_computed_bounds() {
        // scale 0.05, zp −10: q(6) = −10 + 120 = 110.
        let mut d = [-128, -11, -10, 0, 109, 110, 111, 127];
        clamp_s8(&mut d, -10, 110);
        assert_eq!(d, [-10, -10, -10, 0, 109, 110, 110, 110]);
        // Inverted bounds do not panic: everything becomes max.
        let mut d = [-5, 0, 5];
        clamp_s8(&mut d, 3, -3);
        assert_eq!(d, [-3, -3, -3]);
    }

    #[test]
    fn clamps_below_zero_point_only() {
        let mut d = [-128, -6, -5, -4, 0, 127];
        relu_s8(&mut d, -5);
        assert_eq!(d, [-5, -5, -5, -4, 0, 127]);
    }

    #[test]
    fn extreme_zero_points() {
        let mut d = [-128, 0, 127];
        relu_s8(&mut d, -128);
        assert_eq!(d, [-128, 0, 127]);
        relu_s8(&mut d, 127);
        assert_eq!(d, [127, 127, 127]);
    }

    #[test]
    fn empty_is_fine() {
        let mut d: [i8; 0] = [];
        relu_s8(&mut d, 0);
        assert!(d.is_empty());
    }
}
