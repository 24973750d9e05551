//! Sliding-window index arithmetic shared by the float and int8 references, so both read the
//! same (padding-skipping) taps and the int8 model differs from the float one only in numbers.

use crate::ir::{Conv2d, Pool};

/// Calls `tap(out_index, in_index, weight_index)` for every output element of a convolution
/// over an `[H, W, C]` input and every filter weight whose input position lies inside the
/// image. Padded positions read as real zero, so skipping them is exact.
pub(crate) fn conv_taps(
    c: &Conv2d,
    in_shape: &[usize],
    out_shape: &[usize],
    mut tap: impl FnMut(usize, usize, usize),
) {
    let (h, w, cin) = (in_shape[0], in_shape[1], in_shape[2]);
    let (oh, ow, cout) = (out_shape[0], out_shape[1], out_shape[2]);
    let [kh, kw] = c.kernel;
    let cpg = c.channels_per_group();
    let out_per_group = cout / c.groups.max(1);
    for oy in 0..oh {
        for ox in 0..ow {
            for o in 0..cout {
                let out_index = (oy * ow + ox) * cout + o;
                let first_in_channel = (o / out_per_group) * cpg;
                for ky in 0..kh {
                    let Some(iy) = inside(oy * c.stride[0] + ky, c.padding[0], h) else {
                        continue;
                    };
                    for kx in 0..kw {
                        let Some(ix) = inside(ox * c.stride[1] + kx, c.padding[1], w) else {
                            continue;
                        };
                        for ci in 0..cpg {
                            let in_index = (iy * w + ix) * cin + first_in_channel + ci;
                            let weight_index = ((o * kh + ky) * kw + kx) * cpg + ci;
                            tap(out_index, in_index, weight_index);
                        }
                    }
                }
            }
        }
    }
}

/// Calls `off(out_index)` for every output element of a convolution outside its channel's
/// partial area (none when the convolution has no areas): the elements that are 0.
pub(crate) fn outside_area(c: &Conv2d, out_shape: &[usize], mut off: impl FnMut(usize)) {
    let Some(areas) = &c.area else {
        return;
    };
    let (oh, ow, cout) = (out_shape[0], out_shape[1], out_shape[2]);
    for oy in 0..oh {
        for ox in 0..ow {
            for (o, a) in areas.iter().enumerate().take(cout) {
                if !a.contains(oy, ox) {
                    off((oy * ow + ox) * cout + o);
                }
            }
        }
    }
}

/// Calls `visit(out_index, in_index)` for every output element of a pooling window over an
/// `[H, W, C]` input and every input element of its window inside the image.
pub(crate) fn pool_taps(
    p: &Pool,
    in_shape: &[usize],
    out_shape: &[usize],
    mut visit: impl FnMut(usize, usize),
) {
    let (h, w, ch) = (in_shape[0], in_shape[1], in_shape[2]);
    let (oh, ow) = (out_shape[0], out_shape[1]);
    for oy in 0..oh {
        for ox in 0..ow {
            for c in 0..ch {
                let out_index = (oy * ow + ox) * ch + c;
                for ky in 0..p.kernel[0] {
                    let Some(iy) = inside(oy * p.stride[0] + ky, p.padding[0], h) else {
                        continue;
                    };
                    for kx in 0..p.kernel[1] {
                        let Some(ix) = inside(ox * p.stride[1] + kx, p.padding[1], w) else {
                            continue;
                        };
                        visit(out_index, (iy * w + ix) * ch + c);
                    }
                }
            }
        }
    }
}

/// The image coordinate of padded coordinate `padded`, if it is not padding.
fn inside(padded: usize, pad_before: usize, len: usize) -> Option<usize> {
    padded.checked_sub(pad_before).filter(|&i| i < len)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::{Activation, Conv2d};

    #[test]
    fn padded_3x3_conv_on_2x2_counts_taps() {
        // 2x2x1 input, 3x3 kernel, padding 1 all round, stride 1 -> 2x2 output; every output
        // sees all 4 input pixels (the rest is padding).
        let c = Conv2d::new(
            1,
            1,
            [3, 3],
            [1, 1],
            [1, 1, 1, 1],
            1,
            vec![0.0; 9],
            vec![0.0],
            Activation::None,
        );
        let out = c.output_shape(2, 2).unwrap();
        assert_eq!(out, vec![2, 2, 1]);
        let mut taps = vec![0; 4];
        let mut seen = vec![];
        conv_taps(&c, &[2, 2, 1], &out, |o, i, w| {
            taps[o] += 1;
            seen.push((o, i, w));
        });
        assert_eq!(taps, vec![4, 4, 4, 4]);
        // Output (0,0): input (0,0) is under kernel tap (1,1) = weight 4.
        assert!(seen.contains(&(0, 0, 4)));
        // Output (1,1): input (0,0) is under kernel tap (0,0) = weight 0.
        assert!(seen.contains(&(3, 0, 0)));
    }

    #[test]
    fn depthwise_reads_its_own_channel() {
        // 1x1x2 input, depthwise with multiplier 2 -> 4 output channels; channel o reads o/2.
        let c = Conv2d::new(
            2,
            4,
            [1, 1],
            [1, 1],
            [0; 4],
            2,
            vec![0.0; 4],
            vec![0.0; 4],
            Activation::None,
        );
        let mut reads = vec![];
        conv_taps(&c, &[1, 1, 2], &[1, 1, 4], |o, i, w| reads.push((o, i, w)));
        assert_eq!(reads, vec![(0, 0, 0), (1, 0, 1), (2, 1, 2), (3, 1, 3)]);
    }

    #[test]
    fn pool_skips_padding() {
        let p = Pool {
            kernel: [2, 2],
            stride: [2, 2],
            padding: [1, 1, 0, 0],
        };
        let out = p.output_shape(&[3, 3, 1]).unwrap();
        assert_eq!(out, vec![2, 2, 1]);
        let mut count = vec![0; 4];
        pool_taps(&p, &[3, 3, 1], &out, |o, _| count[o] += 1);
        assert_eq!(count, vec![1, 2, 2, 4]);
    }
}
