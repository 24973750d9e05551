//! Seed architectures, initialised from a seeded RNG (never a global one) so runs repeat.

use crate::ir::{Activation, Dense, Model, Op, Preprocess};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// A ReLU MLP `input -> hidden[0] -> … -> classes`, He-uniform weights, zero biases.
pub fn mlp(
    name: &str,
    input_len: usize,
    hidden: &[usize],
    class_names: Vec<String>,
    preprocess: Preprocess,
    seed: u64,
) -> Model {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut m = Model::with_input(name, vec![input_len], preprocess, class_names.clone());
    let mut x = m.inputs[0];
    let widths: Vec<usize> = hidden
        .iter()
        .copied()
        .chain(std::iter::once(class_names.len()))
        .collect();
    let mut fan_in = input_len;
    for (k, &width) in widths.iter().enumerate() {
        let last = k + 1 == widths.len();
        // He-uniform: Var(w) = 2 / fan_in keeps ReLU activations at a steady scale.
        let bound = (6.0 / fan_in as f64).sqrt() as f32;
        let weight = (0..width * fan_in)
            .map(|_| rng.random_range(-bound..bound))
            .collect();
        let act = if last {
            Activation::None
        } else {
            Activation::Relu
        };
        let d = Dense::new(fan_in, width, weight, vec![0.0; width], act);
        x = m.add_node(format!("fc{}", k + 1), Op::Dense(d), vec![x], vec![width]);
        fan_in = width;
    }
    m.outputs.push(x);
    m
}
