//! Partial-area convolution (NeST): each output channel of a convolution computes only a
//! rectangle of its map, and its output elsewhere is real 0, i.e. the output zero point.
//!
//! [`conv2d_sparse_s8_in_areas`](super::conv2d_sparse::conv2d_sparse_s8_in_areas) skips the
//! channels outside their rectangle, which is where the savings are; the dense and depthwise
//! convolutions compute the whole map and then [`zero_outside_areas_s8`] overwrites what lies
//! outside, so every kernel gives the same int8 output.

/// Output rows `y0..y1` and columns `x0..x1` (half-open) of one channel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Area {
    /// First row inside.
    pub y0: u16,
    /// First column inside.
    pub x0: u16,
    /// One past the last row inside.
    pub y1: u16,
    /// One past the last column inside.
    pub x1: u16,
}

impl Area {
    /// Whether output position `(y, x)` is inside.
    #[inline(always)]
    pub fn contains(&self, y: usize, x: usize) -> bool {
        (usize::from(self.y0)..usize::from(self.y1)).contains(&y)
            && (usize::from(self.x0)..usize::from(self.x1)).contains(&x)
    }
}

/// Writes `zero` to every element of the HWC `output` (`out_h · out_w · areas.len()` long, rows
/// `out_w` positions wide) that lies outside its channel's area. Only whole rows are
/// touched: a trailing partial row is left as it is.
///
/// Channel by channel, it visits only what lies outside: whole rows above and below the
/// rectangle, and the columns left and right of it in the rows between, as strided runs.
/// Nothing is tested per element, so a channel costs a store loop over its outside elements
/// plus a few instructions a row; testing every element against its rectangle cost 13-14
/// instructions an element on the Cortex-M4.
#[inline(never)]
pub fn zero_outside_areas_s8(areas: &[Area], out_w: usize, zero: i8, output: &mut [i8]) {
    let (areas, output) = core::hint::black_box((areas, output));
    let c = areas.len();
    if c == 0 || out_w == 0 {
        return;
    }
    // Whole rows only; one division a call (a libcall on Cortex-M0, so not per row).
    let rows = output.len() / c / out_w;
    let end = rows * out_w * c;
    for (k, a) in areas.iter().enumerate() {
        let x0 = usize::from(a.x0).min(out_w);
        let x1 = usize::from(a.x1).clamp(x0, out_w);
        let (y0, y1) = (usize::from(a.y0), usize::from(a.y1));
        // Channel `k` of positions `from..to`: every `c`-th byte.
        let mut zero_run = |from: usize, to: usize| {
            let (mut i, stop) = (from * c + k, (to * c).min(end));
            while i < stop {
                if let Some(o) = output.get_mut(i) {
                    *o = zero;
                }
                i += c;
            }
        };
        for y in 0..rows {
            let row = y * out_w;
            if (y0..y1).contains(&y) && x0 < x1 {
                zero_run(row, row + x0);
                zero_run(row + x1, row + out_w);
            } else {
                zero_run(row, row + out_w);
            }
        }
    }
}

/// [`zero_outside_areas_s8`] as plain index loops over `out_h` rows, for the tests.
pub fn zero_outside_areas_s8_reference(
    areas: &[Area],
    out_h: usize,
    out_w: usize,
    zero: i8,
    output: &mut [i8],
) {
    let c = areas.len();
    for y in 0..out_h {
        for x in 0..out_w {
            for (o, a) in areas.iter().enumerate() {
                let inside = y >= a.y0 as usize
                    && y < a.y1 as usize
                    && x >= a.x0 as usize
                    && x < a.x1 as usize;
                if !inside {
                    output[(y * out_w + x) * c + o] = zero;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::vec::Vec;

    #[test]
    fn by_hand() {
        // 2x3 map, 2 channels: channel 0 keeps row 0 columns 1..3, channel 1 everything.
        let areas = [
            Area {
                y0: 0,
                x0: 1,
                y1: 1,
                x1: 3,
            },
            Area {
                y0: 0,
                x0: 0,
                y1: 2,
                x1: 3,
            },
        ];
        let mut out: Vec<i8> = (1..=12).collect();
        zero_outside_areas_s8(&areas, 3, -5, &mut out);
        assert_eq!(out, [-5, 2, 3, 4, 5, 6, -5, 8, -5, 10, -5, 12]);
    }

    proptest! {
        #[test]
        fn matches_the_reference(
            h in 1usize..6, w in 1usize..6, c in 1usize..5,
            corners in proptest::collection::vec((0u16..7, 0u16..7, 0u16..7, 0u16..7), 4),
            zero in any::<i8>(), seed in any::<u64>(),
        ) {
            let areas: Vec<Area> = corners[..c]
                .iter()
                .map(|&(a, b, d, e)| Area { y0: a.min(d), x0: b.min(e), y1: a.max(d), x1: b.max(e) })
                .collect();
            let out: Vec<i8> = (0..h * w * c).map(|i| (seed.wrapping_mul(i as u64 + 7) >> 7) as i8).collect();
            let (mut fast, mut slow) = (out.clone(), out);
            zero_outside_areas_s8(&areas, w, zero, &mut fast);
            zero_outside_areas_s8_reference(&areas, h, w, zero, &mut slow);
            prop_assert_eq!(fast, slow);
        }
    }
}
