//! ReLU on int8 data.

/// In-place ReLU: `x = max(x, zero_point)`.
///
/// Real zero is `zero_point` in the quantized domain, so clamping there is exactly
/// `max(real, 0)` with input and output sharing one scale and zero point.
pub fn relu_s8(data: &mut [i8], zero_point: i8) {
    for x in data {
        *x = (*x).max(zero_point);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
