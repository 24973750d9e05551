//! Fast int8 evaluation for accuracy figures. The golden model ([`super::int8`]) visits every
//! weight position, pruned or not, so evaluating a 2%-dense LeNet-5 on the 10k test images costs
//! as much as the dense net (about 24 CPU-seconds), and a synthesis evaluates after every stage.
//! This evaluator lists each output channel's nonzero weights once and sums only those; the
//! sum is the same integer (a zero weight adds nothing), and everything after the accumulators
//! (the int32 check, requantization, pooling, Add, Concat) is the golden code itself, reached
//! through [`super::int8::run_all_with`]. Tests prove it equal to the golden model.

use super::int8::run_all_with;
use super::InterpError;
use crate::ir::{Conv2d, Model, Op, WeightQuant};

/// A quantized model with its weighted layers' nonzero weights listed, ready to run many inputs.
pub struct SparseInt8<'m> {
    model: &'m Model,
    /// One entry per node, `None` for nodes without weights (or unquantized ones, which the
    /// golden code rejects).
    layers: Vec<Option<Layer>>,
}

/// Compressed rows: row `r`'s nonzero weights are `entries[start[r]..start[r + 1]]`.
struct Rows<E> {
    start: Vec<usize>,
    entries: Vec<E>,
}

impl<E> Rows<E> {
    fn row(&self, r: usize) -> &[E] {
        &self.entries[self.start[r]..self.start[r + 1]]
    }
}

/// A filter tap with a nonzero weight: kernel position and absolute input channel, and its
/// input index relative to the window's top-left corner (`(ky * W + kx) * C + channel`).
#[derive(Clone, Copy)]
struct Tap {
    ky: usize,
    kx: usize,
    channel: usize,
    offset: usize,
    weight: i32,
}

enum Layer {
    Dense {
        zero_point: i32,
        bias: Vec<i32>,
        /// Per output: (input index, weight).
        rows: Rows<(usize, i32)>,
    },
    Conv {
        zero_point: i32,
        bias: Vec<i32>,
        /// Per output channel.
        taps: Rows<Tap>,
        in_shape: [usize; 3],
        out_shape: [usize; 3],
        kernel: [usize; 2],
        stride: [usize; 2],
        /// Top and left padding (bottom and right only limit the output size).
        pad: [usize; 2],
    },
}

impl<'m> SparseInt8<'m> {
    pub fn new(model: &'m Model) -> SparseInt8<'m> {
        let layers = model
            .nodes
            .iter()
            .map(|node| {
                let zero_point = model.tensor(*node.inputs.first()?).quant?.zero_point;
                match &node.op {
                    Op::Dense(d) => {
                        let q = d.quant.as_ref()?;
                        Some(dense_layer(d.in_features, d.out_features, q, zero_point))
                    }
                    Op::Conv2d(c) => {
                        let q = c.quant.as_ref()?;
                        let in_shape = shape3(&model.tensor(node.inputs[0]).shape)?;
                        let out_shape = shape3(&model.tensor(node.output).shape)?;
                        Some(conv_layer(c, q, zero_point, in_shape, out_shape))
                    }
                    _ => None,
                }
            })
            .collect();
        SparseInt8 { model, layers }
    }

    /// The int8 output, equal to [`super::int8::run`]'s.
    pub fn run(&self, input: &[i8]) -> Result<Vec<i8>, InterpError> {
        let mut all = self.run_all(input)?;
        Ok(std::mem::take(&mut all[self.model.outputs[0].0]))
    }

    /// Every tensor's int8 value, equal to [`super::int8::run_all`]'s.
    pub fn run_all(&self, input: &[i8]) -> Result<Vec<Vec<i8>>, InterpError> {
        run_all_with(self.model, input, &|node, x| {
            self.layers.get(node)?.as_ref().map(|l| l.accumulate(x))
        })
    }
}

fn shape3(shape: &[usize]) -> Option<[usize; 3]> {
    shape.try_into().ok()
}

fn dense_layer(in_features: usize, out_features: usize, q: &WeightQuant, zero_point: i32) -> Layer {
    let mut start = vec![0];
    let mut entries = vec![];
    for o in 0..out_features {
        let row = &q.weight_q[o * in_features..(o + 1) * in_features];
        entries.extend(
            row.iter()
                .enumerate()
                .filter(|(_, &w)| w != 0)
                .map(|(i, &w)| (i, w as i32)),
        );
        start.push(entries.len());
    }
    Layer::Dense {
        zero_point,
        bias: q.bias_q.clone(),
        rows: Rows { start, entries },
    }
}

fn conv_layer(
    c: &Conv2d,
    q: &WeightQuant,
    zero_point: i32,
    in_shape: [usize; 3],
    out_shape: [usize; 3],
) -> Layer {
    let [kh, kw] = c.kernel;
    let cpg = c.channels_per_group();
    let out_per_group = c.out_channels / c.groups.max(1);
    let mut start = vec![0];
    let mut entries = vec![];
    for o in 0..c.out_channels {
        let first_in_channel = (o / out_per_group) * cpg;
        for ky in 0..kh {
            for kx in 0..kw {
                for ci in 0..cpg {
                    let weight = q.weight_q[((o * kh + ky) * kw + kx) * cpg + ci];
                    if weight != 0 {
                        let channel = first_in_channel + ci;
                        entries.push(Tap {
                            ky,
                            kx,
                            channel,
                            offset: (ky * in_shape[1] + kx) * in_shape[2] + channel,
                            weight: weight as i32,
                        });
                    }
                }
            }
        }
        start.push(entries.len());
    }
    Layer::Conv {
        zero_point,
        bias: q.bias_q.clone(),
        taps: Rows { start, entries },
        in_shape,
        out_shape,
        kernel: c.kernel,
        stride: c.stride,
        pad: [c.padding[0], c.padding[1]],
    }
}

impl Layer {
    /// Bias plus the nonzero products, laid out as the golden accumulators (channel fastest).
    fn accumulate(&self, x: &[i8]) -> Vec<i64> {
        match self {
            Layer::Dense {
                zero_point,
                bias,
                rows,
            } => {
                let xz: Vec<i32> = x.iter().map(|&v| v as i32 - zero_point).collect();
                (0..bias.len())
                    .map(|o| {
                        rows.row(o)
                            .iter()
                            .fold(bias[o] as i64, |acc, &(i, w)| acc + (xz[i] * w) as i64)
                    })
                    .collect()
            }
            Layer::Conv {
                zero_point,
                bias,
                taps,
                in_shape: [h, w, cin],
                out_shape: [oh, ow, cout],
                kernel: [kh, kw],
                stride,
                pad,
            } => {
                let xz: Vec<i32> = x.iter().map(|&v| v as i32 - zero_point).collect();
                // A window wholly inside the image needs no per-tap bounds check.
                let inside = |o: usize, s: usize, p: usize, k: usize, len: usize| {
                    (o * s).checked_sub(p).filter(|&i| i + k <= len)
                };
                let mut acc = Vec::with_capacity(oh * ow * cout);
                for oy in 0..*oh {
                    for ox in 0..*ow {
                        let corner = inside(oy, stride[0], pad[0], *kh, *h)
                            .zip(inside(ox, stride[1], pad[1], *kw, *w))
                            .map(|(iy, ix)| (iy * w + ix) * cin);
                        for (o, &b) in bias.iter().enumerate().take(*cout) {
                            let mut a = b as i64;
                            match corner {
                                Some(base) => {
                                    for t in taps.row(o) {
                                        a += (xz[base + t.offset] * t.weight) as i64;
                                    }
                                }
                                None => {
                                    for t in taps.row(o) {
                                        // Padded positions read as real zero: skipping them
                                        // is exact.
                                        let iy = (oy * stride[0] + t.ky).checked_sub(pad[0]);
                                        let ix = (ox * stride[1] + t.kx).checked_sub(pad[1]);
                                        if let (Some(iy), Some(ix)) = (iy, ix) {
                                            if iy < *h && ix < *w {
                                                a += (xz[(iy * w + ix) * cin + t.channel]
                                                    * t.weight)
                                                    as i64;
                                            }
                                        }
                                    }
                                }
                            }
                            acc.push(a);
                        }
                    }
                }
                acc
            }
        }
    }
}

#[cfg(test)]
mod tests;
