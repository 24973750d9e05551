//! Integer parameters of the ops that combine tensors with different scales: residual Add and
//! Concat. Computed here once and used by both the golden interpreter and the lowering, so the
//! two can only disagree in the arithmetic, which is what the bit-exact tests check.

use super::quantize_multiplier;
use crate::ir::ActQuant;

/// TFLite's int8 `ADD` (reference `AddElementwise`): both inputs are moved to a common fixed
/// point with 20 bits of headroom, scaled by `s_i / (2·max(s1, s2))`, summed, and rescaled to the
/// output by `2·max(s1, s2) / (2^20 · s_out)`. All multipliers are below one (shift ≤ 0).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AddParams {
    pub left_shift: i32,
    /// `-zero_point` of each input.
    pub input_offset: [i32; 2],
    pub input_multiplier: [i32; 2],
    pub input_shift: [i32; 2],
    pub output_multiplier: i32,
    pub output_shift: i32,
    pub output_offset: i32,
}

/// TFLite's `left_shift` for int8 ADD.
pub const ADD_LEFT_SHIFT: i32 = 20;

/// Parameters for `out = in1 + in2` (TFLite `PrepareGeneralSubOp`/`Add` for int8).
pub fn add_params(in1: ActQuant, in2: ActQuant, out: ActQuant) -> AddParams {
    let twice_max = 2.0 * (in1.scale as f64).max(in2.scale as f64);
    let m1 = quantize_multiplier(in1.scale as f64 / twice_max);
    let m2 = quantize_multiplier(in2.scale as f64 / twice_max);
    let mo = quantize_multiplier(twice_max / ((1i64 << ADD_LEFT_SHIFT) as f64 * out.scale as f64));
    AddParams {
        left_shift: ADD_LEFT_SHIFT,
        input_offset: [-in1.zero_point, -in2.zero_point],
        input_multiplier: [m1.0, m2.0],
        input_shift: [m1.1, m2.1],
        output_multiplier: mo.0,
        output_shift: mo.1,
        output_offset: out.zero_point,
    }
}

/// Moving one int8 tensor to another's quantization (a Concat input whose parameters differ
/// from the output's): `out = zp_out + round((x - zp_in) · s_in / s_out)` in fixed point.
/// TFLite does this step in float; fixed point keeps it exact on FPU-less cores and lets the
/// device match the reference bit for bit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RequantParams {
    pub input_offset: i32,
    pub multiplier: i32,
    pub shift: i32,
    pub output_offset: i32,
}

impl RequantParams {
    /// None when the two quantizations are equal: a plain copy is exact.
    pub fn between(input: ActQuant, output: ActQuant) -> Option<RequantParams> {
        if input == output {
            return None;
        }
        let (multiplier, shift) = quantize_multiplier(input.scale as f64 / output.scale as f64);
        Some(RequantParams {
            input_offset: -input.zero_point,
            multiplier,
            shift,
            output_offset: output.zero_point,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn add_multipliers_are_below_one() {
        let a = ActQuant {
            scale: 0.02,
            zero_point: -5,
        };
        let b = ActQuant {
            scale: 0.05,
            zero_point: 10,
        };
        let o = ActQuant {
            scale: 0.06,
            zero_point: 0,
        };
        let p = add_params(a, b, o);
        assert!(p.input_shift.iter().all(|&s| s <= 0));
        assert!(p.output_shift <= 0);
        // b has the larger scale: its real multiplier is exactly 0.5 = 2^30 / 2^31.
        assert_eq!((p.input_multiplier[1], p.input_shift[1]), (1 << 30, 0));
        assert_eq!(p.input_offset, [5, -10]);
    }

    #[test]
    fn equal_quantizations_copy() {
        let q = ActQuant {
            scale: 0.1,
            zero_point: 3,
        };
        assert_eq!(RequantParams::between(q, q), None);
        let r = RequantParams::between(
            q,
            ActQuant {
                scale: 0.2,
                zero_point: 0,
            },
        )
        .unwrap();
        assert_eq!((r.multiplier, r.shift), (1 << 30, 0));
    }
}
