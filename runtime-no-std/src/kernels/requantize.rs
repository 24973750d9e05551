//! Moving int8 values from one quantization to another (a Concat input whose scale or zero
//! point differs from the output's):
//!
//! ```text
//! out = clamp(output_offset + MultiplyByQuantizedMultiplier(x + input_offset, multiplier, shift), -128, 127)
//! ```
//!
//! with `multiplier · 2^shift / 2^31 ≈ s_in / s_out`, `input_offset = −zp_in`,
//! `output_offset = zp_out`. TFLite's concatenation does this step in float; integer
//! arithmetic keeps FPU-less cores exact and bit-identical with the compiler's reference.

use crate::requant::requantize;

/// Parameters of [`requantize_s8`], one set per input tensor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RequantParams {
    /// `−zero_point` of the input.
    pub input_offset: i32,
    /// Q31 multiplier of `s_in / s_out`, in `[2^30, 2^31)` (or 0).
    pub multiplier: i32,
    /// Power-of-two shift, positive = left, in `-31..=30`.
    pub shift: i32,
    /// Zero point of the output.
    pub output_offset: i32,
}

/// `output[i] = requantize(input[i])` over the common prefix of the two slices.
pub fn requantize_s8(p: &RequantParams, input: &[i8], output: &mut [i8]) {
    debug_assert_eq!(input.len(), output.len(), "lengths");
    for (o, &x) in output.iter_mut().zip(input) {
        // |x + input_offset| ≤ 255, so the sum cannot overflow.
        let v = i32::from(x) + p.input_offset;
        *o = requantize(v, p.multiplier, p.shift, p.output_offset, i8::MIN, i8::MAX);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn halving_the_scale_doubles_the_distance_from_zero_point() {
        // s_in / s_out = 2 (multiplier 0.5, shift 2): (x - 3) * 2 + (-10).
        let p = RequantParams {
            input_offset: -3,
            multiplier: 1 << 30,
            shift: 2,
            output_offset: -10,
        };
        let mut out = [0i8; 4];
        requantize_s8(&p, &[3, 4, -100, 127], &mut out);
        assert_eq!(out, [-10, -8, -128, 127]);
    }

    #[test]
    fn rounds_ties_away_from_zero_after_the_high_mul() {
        // s_in / s_out = 0.5: 1 * 0.5 = 0.5 -> srdhm rounds up to... exactly 2^30·1/2^31 = 0.5
        // -> 1 (ties up), then no shift.
        let p = RequantParams {
            input_offset: 0,
            multiplier: 1 << 30,
            shift: 0,
            output_offset: 0,
        };
        let mut out = [0i8; 3];
        requantize_s8(&p, &[1, -1, 5], &mut out);
        assert_eq!(out, [1, 0, 3]);
    }
}
