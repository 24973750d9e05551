//! IMU window features: the one implementation shared by the compiler (which turns recorded
//! windows into training and test inputs) and the firmware (which turns live sensor samples
//! into the model's input).
//!
//! Everything here is integer arithmetic, so a window gives the same `i8` features on the host
//! and on any Cortex-M core, bit for bit; there is no floating point whose rounding could differ.
//!
//! ## Input contract
//!
//! A window is [`WINDOW`] samples taken at [`RATE_HZ`]; each [`Sample`] holds six axes in this
//! order: accelerometer x, y, z in units of 0.01 m/s² ([`ACCEL_UNITS_PER_MS2`] per m/s²), then
//! gyroscope x, y, z in units of 0.01 rad/s ([`GYRO_UNITS_PER_RADS`] per rad/s). A sensor
//! driver converts its raw counts with [`scale_counts`]; the compiler converts recorded values
//! by rounding `value × 100`.
//!
//! ## Features
//!
//! Per axis, three statistics of the window, each independent of a constant offset. Gravity
//! (about 981 units on the accelerometer axes while the wrist is still) therefore does not move
//! them, which matters because the training data (BasicMotions) recorded gravity-free linear
//! acceleration while an IMU reports gravity too:
//!
//! | index `3·axis + k` | statistic |
//! |---|---|
//! | k = 0 | standard deviation |
//! | k = 1 | mean absolute difference between consecutive samples |
//! | k = 2 | range (max − min) |
//!
//! Each is coded on a logarithmic scale, 16 codes per doubling (one code ≈ 4.4 %): the
//! activities span more than two decades (a still wrist moves by hundredths of a unit, running by
//! tens), and a log scale resolves both ends with 8 bits. A statistic of zero (or below the
//! scale's floor) is −128; the scales' floors are 0.0128 m/s² (or rad/s) for the standard
//! deviation, 0.0065 for the mean absolute difference and 0.04 for the range.

/// Axes per sample: accelerometer x, y, z, then gyroscope x, y, z.
pub const AXES: usize = 6;
/// Samples per window.
pub const WINDOW: usize = 100;
/// Sample rate the model was trained at.
pub const RATE_HZ: u32 = 10;
/// Statistics per axis.
pub const FEATURES_PER_AXIS: usize = 3;
/// Length of the feature vector (the model's `INPUT_LEN`).
pub const N_FEATURES: usize = AXES * FEATURES_PER_AXIS;
/// Accelerometer units per m/s² (a unit is 0.01 m/s²).
pub const ACCEL_UNITS_PER_MS2: i32 = 100;
/// Gyroscope units per rad/s (a unit is 0.01 rad/s).
pub const GYRO_UNITS_PER_RADS: i32 = 100;

/// One time step: `[ax, ay, az, gx, gy, gz]` in the units above.
pub type Sample = [i16; AXES];

// Offsets that place each statistic's floor at code −128, in 1/16-octave steps of the
// statistic as the accumulator holds it (see `Accumulator::finish`).
const STD_OFFSET: i32 = 240;
const MAD_OFFSET: i32 = 224;
const RANGE_OFFSET: i32 = 160;

/// Converts a raw sensor count to feature units: `round(raw × num / den)`, halves away from
/// zero, saturated to `i16`. `num / den` is the sensor's sensitivity in units per count.
/// `den` must be positive; a zero `den` gives 0 rather than a division fault.
pub fn scale_counts(raw: i16, num: i32, den: i32) -> i16 {
    if den <= 0 {
        return 0;
    }
    let p = raw as i64 * num as i64;
    let half = den as i64 / 2;
    let q = if p >= 0 {
        (p + half) / den as i64
    } else {
        (p - half) / den as i64
    };
    q.clamp(i16::MIN as i64, i16::MAX as i64) as i16
}

/// `floor(2^frac_bits · log2(v))` for `v ≥ 1`, up to the truncation of a 31-bit mantissa (it
/// can read one step low right at a step boundary, the same way on every target). `v = 0` gives
/// `None`. `frac_bits` is at most 8.
pub fn log2_fixed(v: u64, frac_bits: u32) -> Option<i32> {
    if v == 0 {
        return None;
    }
    let int = 63 - v.leading_zeros();
    // Mantissa in [1, 2) as Q31, so that its square fits a u64.
    let mut x = if int <= 31 {
        v << (31 - int)
    } else {
        v >> (int - 31)
    };
    let mut frac = 0i32;
    for _ in 0..frac_bits.min(8) {
        x = (x * x) >> 31;
        frac <<= 1;
        if x >= 1 << 32 {
            x >>= 1;
            frac |= 1;
        }
    }
    Some(((int as i32) << frac_bits.min(8)) | frac)
}

fn code(log: Option<i32>, offset: i32) -> i8 {
    match log {
        None => i8::MIN,
        Some(l) => (l - offset).clamp(i8::MIN as i32, i8::MAX as i32) as i8,
    }
}

/// Single-pass statistics of a window, fed one sample at a time (a ring buffer's contents in
/// time order, or a recorded series). Holds no samples itself.
#[derive(Clone, Debug)]
pub struct Accumulator {
    n: u32,
    sum: [i32; AXES],
    sum_sq: [i64; AXES],
    min: [i16; AXES],
    max: [i16; AXES],
    abs_diff: [u32; AXES],
    prev: Sample,
}

impl Default for Accumulator {
    fn default() -> Self {
        Self::new()
    }
}

impl Accumulator {
    /// The longest window the integer sums are exact for; later samples are ignored.
    /// (`n · Σx²` must fit an `i64`: 4096 · 4096 · 32768² < 2^63.)
    pub const MAX_SAMPLES: u32 = 4096;

    /// An empty window.
    pub const fn new() -> Self {
        Accumulator {
            n: 0,
            sum: [0; AXES],
            sum_sq: [0; AXES],
            min: [i16::MAX; AXES],
            max: [i16::MIN; AXES],
            abs_diff: [0; AXES],
            prev: [0; AXES],
        }
    }

    /// Samples taken so far.
    pub fn len(&self) -> u32 {
        self.n
    }

    /// True before the first sample.
    pub fn is_empty(&self) -> bool {
        self.n == 0
    }

    /// Adds the next sample in time order.
    pub fn push(&mut self, s: Sample) {
        if self.n >= Self::MAX_SAMPLES {
            return;
        }
        for (a, &x) in s.iter().enumerate() {
            self.sum[a] += x as i32;
            self.sum_sq[a] += (x as i64) * (x as i64);
            self.min[a] = self.min[a].min(x);
            self.max[a] = self.max[a].max(x);
            if self.n > 0 {
                self.abs_diff[a] += (x as i32 - self.prev[a] as i32).unsigned_abs();
            }
        }
        self.prev = s;
        self.n += 1;
    }

    /// The feature vector (layout in the module documentation). The codes assume a window of
    /// [`WINDOW`] samples: the standard deviation enters as `n² · variance`.
    pub fn finish(&self) -> [i8; N_FEATURES] {
        let mut out = [i8::MIN; N_FEATURES];
        if self.n == 0 {
            return out;
        }
        let n = self.n as i64;
        for a in 0..AXES {
            // n² · variance = n·Σx² − (Σx)², exact in integers and never negative.
            let d = (n * self.sum_sq[a] - (self.sum[a] as i64).pow(2)).max(0) as u64;
            // 16 codes per doubling of the deviation = 8 per doubling of its square.
            out[a * FEATURES_PER_AXIS] = code(log2_fixed(d, 3), STD_OFFSET);
            out[a * FEATURES_PER_AXIS + 1] =
                code(log2_fixed(self.abs_diff[a] as u64, 4), MAD_OFFSET);
            let range = (self.max[a] as i32 - self.min[a] as i32) as u64;
            out[a * FEATURES_PER_AXIS + 2] = code(log2_fixed(range, 4), RANGE_OFFSET);
        }
        out
    }
}

/// Features of a window given in time order (see [`Accumulator`]).
pub fn extract<I: IntoIterator<Item = Sample>>(window: I) -> [i8; N_FEATURES] {
    let mut acc = Accumulator::new();
    for s in window {
        acc.push(s);
    }
    acc.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec::Vec;

    #[test]
    fn log2_matches_floating_point() {
        for frac in [0u32, 3, 4, 8] {
            let mut prev = i32::MIN;
            for v in (1u64..5000).chain([1 << 20, 12345678, u32::MAX as u64, u64::MAX]) {
                let got = log2_fixed(v, frac).unwrap();
                let exact = (v as f64).log2() * (1u64 << frac) as f64;
                // Floor of the exact value, or one below it when the truncated mantissa
                // lands just under a step.
                assert!(
                    got as f64 <= exact + 1e-9 && got as f64 > exact - 2.0,
                    "v={v} frac={frac}: {got} vs {exact}"
                );
                if v < 5000 {
                    assert!(got >= prev, "not monotone at v={v}");
                    prev = got;
                }
            }
            // Powers of two are exact.
            assert_eq!(log2_fixed(1 << 17, frac), Some(17 << frac));
        }
        assert_eq!(log2_fixed(0, 4), None);
        assert_eq!(log2_fixed(1, 4), Some(0));
    }

    #[test]
    fn scale_counts_rounds_half_away_and_saturates() {
        assert_eq!(scale_counts(3, 1, 2), 2); // 1.5 -> 2
        assert_eq!(scale_counts(-3, 1, 2), -2); // -1.5 -> -2
        assert_eq!(scale_counts(5, 1, 4), 1); // 1.25 -> 1
        assert_eq!(scale_counts(i16::MAX, 4, 1), i16::MAX);
        assert_eq!(scale_counts(i16::MIN, 4, 1), i16::MIN);
        assert_eq!(scale_counts(100, 1, 0), 0);
        // MPU-6050 at ±8 g: 4096 counts per g = 980.665 units.
        assert_eq!(scale_counts(4096, 980_665, 4_096_000), 981);
    }

    fn window(f: impl Fn(usize, usize) -> i16) -> Vec<Sample> {
        (0..WINDOW)
            .map(|t| core::array::from_fn(|a| f(t, a)))
            .collect()
    }

    #[test]
    fn constant_window_is_all_floor_codes() {
        let w = window(|_, a| 981 * (a == 2) as i16 + 7);
        assert_eq!(extract(w), [i8::MIN; N_FEATURES]);
        assert_eq!(extract(core::iter::empty()), [i8::MIN; N_FEATURES]);
    }

    #[test]
    fn features_ignore_a_constant_offset_such_as_gravity() {
        let moving = |t: usize, a: usize| ((t * 37 + a * 11) % 23) as i16 * 40 - 400;
        let f0 = extract(window(moving));
        let f1 = extract(window(|t, a| moving(t, a) + if a < 3 { 981 } else { -50 }));
        assert_eq!(f0, f1);
        assert!(f0.iter().all(|&c| c > i8::MIN), "{f0:?}");
    }

    #[test]
    fn codes_follow_the_statistics() {
        // A square wave of amplitude A on one axis: std = A, mean |Δ| = 2A, range = 2A.
        let amp = 100i16; // 1.00 m/s²
        let f = extract(window(|t, a| {
            if a == 0 {
                amp * (1 - 2 * (t % 2) as i16)
            } else {
                0
            }
        }));
        // std: 8·log2(n²·A²) − 240 = 16·log2(100·100) − 240 = 212.6 − 240 → −28.
        assert_eq!(f[0], -28);
        // mad: 16·log2(99 · 200) − 224 = 228.6 − 224 → 4.
        assert_eq!(f[1], 4);
        // range: 16·log2(200) − 160 = 122.3 − 160 → −38.
        assert_eq!(f[2], -38);
        assert!(f[3..].iter().all(|&c| c == i8::MIN));
        // Doubling the amplitude adds 16 codes to every statistic.
        let g = extract(window(|t, a| {
            if a == 0 {
                2 * amp * (1 - 2 * (t % 2) as i16)
            } else {
                0
            }
        }));
        assert_eq!([g[0], g[1], g[2]], [f[0] + 16, f[1] + 16, f[2] + 16]);
    }

    #[test]
    fn extreme_samples_do_not_overflow() {
        let f = extract(window(|t, _| if t % 2 == 0 { i16::MAX } else { i16::MIN }));
        // std: 8·log2(1.0737e13) − 240 = 106.3; mad saturates; range: 16·log2(65535) − 160.
        for a in 0..AXES {
            assert_eq!(&f[3 * a..3 * a + 3], &[106, 127, 95], "{f:?}");
        }
        let mut acc = Accumulator::new();
        for t in 0..(Accumulator::MAX_SAMPLES + 10) {
            acc.push([if t % 2 == 0 { i16::MAX } else { i16::MIN }; AXES]);
        }
        assert_eq!(acc.len(), Accumulator::MAX_SAMPLES);
        assert_eq!(&acc.finish()[..3], &[127, 127, 95]);
    }

    #[test]
    fn streaming_equals_batch() {
        let w = window(|t, a| ((t * t + 3 * a) % 97) as i16 - 48);
        let mut acc = Accumulator::new();
        for &s in &w {
            acc.push(s);
        }
        assert_eq!(acc.finish(), extract(w.iter().copied()));
        assert_eq!(acc.len() as usize, WINDOW);
    }
}
