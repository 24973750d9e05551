use super::SparseInt8;
use crate::interp::{int8, InterpError};
use crate::ir::{Activation, Conv2d, Dense, Model, Op, Pool, Preprocess};
use crate::quant::quantize;
use proptest::prelude::*;

/// splitmix64: deterministic test data without another dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn uniform(&mut self) -> f32 {
        (self.next() >> 40) as f32 / (1u64 << 24) as f32
    }
    fn signed(&mut self, scale: f32) -> f32 {
        (self.uniform() * 2.0 - 1.0) * scale
    }
}

fn samples(m: &Model, n: usize, rng: &mut Rng) -> Vec<Vec<f32>> {
    (0..n)
        .map(|_| (0..m.input_len()).map(|_| rng.signed(1.0)).collect())
        .collect()
}

/// Prunes each weight with probability `1 - density` (mask off, weight exactly 0), the way a
/// synthesis leaves them.
fn prune(weight: &mut [f32], mask: &mut crate::ir::Mask, density: f64, rng: &mut Rng) {
    for (i, w) in weight.iter_mut().enumerate() {
        if (rng.uniform() as f64) >= density {
            *w = 0.0;
            mask.set(i, false);
        }
    }
}

/// Conv (random kernel, stride, padding, ordinary or depthwise) -> max pool -> flatten ->
/// dense -> dense, every weighted layer pruned to about `density`.
fn random_cnn(seed: u64, density: f64) -> Model {
    let mut rng = Rng(seed);
    let (h, w, cin) = (3 + rng.below(6), 3 + rng.below(6), 1 + rng.below(3));
    let mut m = Model::with_input("random", vec![h, w, cin], Preprocess::identity(), vec![]);
    let kernel = [1 + rng.below(3), 1 + rng.below(3)];
    let stride = [1 + rng.below(2), 1 + rng.below(2)];
    let padding = [
        rng.below(kernel[0]),
        rng.below(kernel[1]),
        rng.below(kernel[0]),
        rng.below(kernel[1]),
    ];
    let depthwise = rng.below(3) == 0;
    let (groups, cout) = if depthwise {
        (cin, cin * (1 + rng.below(2)))
    } else {
        (1, 1 + rng.below(6))
    };
    let n_w = cout * kernel[0] * kernel[1] * (cin / groups);
    let weight = (0..n_w).map(|_| rng.signed(1.0)).collect();
    let bias = (0..cout).map(|_| rng.signed(0.3)).collect();
    let mut c = Conv2d::new(
        cin,
        cout,
        kernel,
        stride,
        padding,
        groups,
        weight,
        bias,
        Activation::Relu,
    );
    prune(&mut c.weight, &mut c.mask, density, &mut rng);
    let conv_shape = c.output_shape(h, w).expect("kernel fits the padded input");
    let x = m.add_node("conv", Op::Conv2d(c), vec![m.inputs[0]], conv_shape.clone());
    let fits_2x2 = conv_shape[0] >= 2 && conv_shape[1] >= 2;
    let pool = Pool::square(if fits_2x2 { 1 + rng.below(2) } else { 1 });
    let pool_shape = pool.output_shape(&conv_shape).expect("pool fits");
    let x = m.add_node("pool", Op::MaxPool(pool), vec![x], pool_shape.clone());
    let flat: usize = pool_shape.iter().product();
    let x = m.add_node("flat", Op::Flatten, vec![x], vec![flat]);
    let mut x = x;
    let mut in_features = flat;
    for (k, out_features) in [2 + rng.below(8), 2 + rng.below(4)].into_iter().enumerate() {
        let weight = (0..in_features * out_features)
            .map(|_| rng.signed(1.0))
            .collect();
        let bias = (0..out_features).map(|_| rng.signed(0.3)).collect();
        let mut d = Dense::new(in_features, out_features, weight, bias, Activation::None);
        prune(&mut d.weight, &mut d.mask, density, &mut rng);
        x = m.add_node(format!("fc{k}"), Op::Dense(d), vec![x], vec![out_features]);
        in_features = out_features;
    }
    m.outputs.push(x);
    m.validate().expect("random model is valid");
    m
}

fn assert_same_on_inputs(q: &Model, n: usize, seed: u64) {
    let sparse = SparseInt8::new(q);
    let mut rng = Rng(seed);
    for _ in 0..n {
        let input: Vec<i8> = (0..q.input_len())
            .map(|_| (rng.below(256) as i32 - 128) as i8)
            .collect();
        assert_eq!(
            sparse.run_all(&input),
            int8::run_all(q, &input),
            "model {}",
            q.name
        );
    }
}

#[test]
fn equals_the_golden_model_on_the_test_models() {
    for m in [
        crate::ir::tests::tiny_mlp(),
        crate::ir::tests::tiny_cnn(),
        crate::ir::tests::tiny_dag(),
    ] {
        let mut rng = Rng(7);
        let q = quantize(&m, &samples(&m, 16, &mut rng)).unwrap();
        assert_same_on_inputs(&q, 50, 11);
    }
}

#[test]
fn overflowing_accumulators_fail_as_in_the_golden_model() {
    let m = crate::ir::tests::tiny_mlp();
    let mut rng = Rng(3);
    let mut q = quantize(&m, &samples(&m, 16, &mut rng)).unwrap();
    let Op::Dense(d) = &mut q.nodes[0].op else {
        panic!("tiny_mlp starts with a dense layer")
    };
    d.quant.as_mut().unwrap().bias_q[0] = i32::MAX;
    let input = vec![127i8; q.input_len()];
    let golden = int8::run(&q, &input);
    assert!(
        matches!(golden, Err(InterpError::Node { .. })),
        "the input drives the accumulator past i32: {golden:?}"
    );
    assert_eq!(SparseInt8::new(&q).run(&input), golden);
}

#[test]
fn wrong_input_length_is_the_golden_error() {
    let m = crate::ir::tests::tiny_mlp();
    let mut rng = Rng(5);
    let q = quantize(&m, &samples(&m, 8, &mut rng)).unwrap();
    let short = vec![0i8; q.input_len() - 1];
    assert_eq!(
        SparseInt8::new(&q).run(&short),
        Err(InterpError::InputLength {
            expected: q.input_len(),
            found: q.input_len() - 1
        })
    );
    assert_eq!(
        SparseInt8::new(&m).run(&vec![0; m.input_len()]),
        Err(InterpError::NotQuantized)
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Any geometry, any density (including layers or channels with no weight left).
    #[test]
    fn equals_the_golden_model_on_random_pruned_cnns(seed in any::<u64>(), density in 0.0f64..1.0) {
        let m = random_cnn(seed, density);
        let mut rng = Rng(seed ^ 0x5eed);
        let q = quantize(&m, &samples(&m, 8, &mut rng)).unwrap();
        assert_same_on_inputs(&q, 8, seed);
    }
}
