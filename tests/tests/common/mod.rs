//! Seeded, untrained models shared by the end-to-end tests (bit-exactness and link checks do
//! not depend on accuracy, and building these takes milliseconds instead of a training run).
#![allow(dead_code)] // each test binary uses a different subset

use bonsai::ir::{Activation, Area, Conv2d, Dense, Model, Op, Pool, Preprocess};

/// SplitMix64 in [0, 1): seeded weights without a dependency.
pub struct Rng(pub u64);
impl Rng {
    pub fn unit(&mut self) -> f32 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        ((z ^ (z >> 31)) >> 40) as f32 / (1u64 << 24) as f32
    }
    /// `n` weights in ±sqrt(6 / fan_in), each kept with probability `density`.
    pub fn weights(&mut self, n: usize, fan_in: usize, density: f32) -> (Vec<f32>, Vec<bool>) {
        let limit = (6.0 / fan_in as f32).sqrt();
        (0..n)
            .map(|_| {
                let w = (self.unit() * 2.0 - 1.0) * limit;
                let keep = self.unit() < density;
                (if keep { w } else { 0.0 }, keep)
            })
            .unzip()
    }
}

pub fn dense(rng: &mut Rng, n_in: usize, n_out: usize, density: f32, act: Activation) -> Op {
    let (w, mask) = rng.weights(n_in * n_out, n_in, density);
    let mut d = Dense::new(n_in, n_out, w, vec![0.01; n_out], act);
    for (i, keep) in mask.into_iter().enumerate() {
        d.mask.set(i, keep);
    }
    Op::Dense(d)
}

pub fn conv(rng: &mut Rng, cin: usize, cout: usize, density: f32) -> Op {
    let (w, mask) = rng.weights(cout * 25 * cin, 25 * cin, density);
    let b = (0..cout).map(|_| rng.unit() * 0.1 - 0.05).collect();
    let mut c = Conv2d::new(cin, cout, [5, 5], [1, 1], [0; 4], 1, w, b, Activation::Relu);
    for (i, keep) in mask.into_iter().enumerate() {
        c.mask.set(i, keep);
    }
    Op::Conv2d(c)
}

/// LeNet-5 (Caffe variant), conv2 and fc1 pruned to 10 % and 5 % so that they lower sparse.
pub fn lenet5() -> Model {
    let mut rng = Rng(5);
    let mut m = Model::with_input("lenet5", vec![28, 28, 1], Preprocess::identity(), vec![]);
    let x = m.inputs[0];
    let x = m.add_node(
        "conv1",
        conv(&mut rng, 1, 20, 1.0),
        vec![x],
        vec![24, 24, 20],
    );
    let x = m.add_node(
        "pool1",
        Op::MaxPool(Pool::square(2)),
        vec![x],
        vec![12, 12, 20],
    );
    let x = m.add_node(
        "conv2",
        conv(&mut rng, 20, 50, 0.1),
        vec![x],
        vec![8, 8, 50],
    );
    let x = m.add_node(
        "pool2",
        Op::MaxPool(Pool::square(2)),
        vec![x],
        vec![4, 4, 50],
    );
    let x = m.add_node("flatten", Op::Flatten, vec![x], vec![800]);
    let op = dense(&mut rng, 800, 500, 0.05, Activation::Relu);
    let x = m.add_node("fc1", op, vec![x], vec![500]);
    let op = dense(&mut rng, 500, 10, 0.5, Activation::None);
    let y = m.add_node("fc2", op, vec![x], vec![10]);
    m.outputs.push(y);
    m
}

/// Per channel a different rectangle of the `h x w` map: shrunk from every side by varying
/// amounts, channel 0 empty and channel 1 whole.
pub fn areas(channels: usize, h: usize, w: usize) -> Vec<Area> {
    (0..channels)
        .map(|o| match o {
            0 => Area {
                y0: 2,
                x0: 3,
                y1: 2,
                x1: 3,
            },
            1 => Area::full(h, w),
            _ => Area {
                y0: o % 3,
                x0: (o * 2) % 4,
                y1: h - o % 4,
                x1: w - (o * 3) % 5,
            },
        })
        .collect()
}

/// `m` with partial areas on every convolution (see `areas`).
pub fn with_areas(mut m: Model) -> Model {
    for k in 0..m.nodes.len() {
        let shape = m.tensor(m.nodes[k].output).shape.clone();
        if let Op::Conv2d(c) = &mut m.nodes[k].op {
            c.area = Some(areas(c.out_channels, shape[0], shape[1]));
        }
    }
    m.validate().unwrap();
    m
}
