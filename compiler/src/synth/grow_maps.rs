//! NeST feature-map growth for Conv2d layers: random kernels as candidate new maps, the one that
//! lowers the training loss most is kept (Dai, Yin, Jha; see `../shared/notes/methods.md`).
//!
//! Choices the record leaves open (documented here, measured by the schedule's trajectory):
//! - **A candidate's kernel** is random with the layer's current density (a grown map should not
//!   be denser than the maps pruning left), Gaussian values scaled so their mean |w| is
//!   `alpha_birth` times the layer's, bias 0.
//! - **Its outgoing connections.** A map whose readers ignore it cannot change the loss, so
//!   candidates could not be compared. Each candidate is wired in dormant, the dense gradient of
//!   the readers' new inputs is taken, and the top `beta` of them by |∂L/∂w| are activated with a
//!   step along −∂L/∂w scaled to `alpha_birth` times the reader's mean |w| — connection growth
//!   for the new map only. The candidate's loss is then measured with those connections on.
//! - **Where.** Every non-depthwise conv whose channels reach only weighted layers (through
//!   pools, ReLU, Flatten); depthwise convs tie a channel to their input and are left alone.

use super::surgery::{self, ConvReader};
use crate::ir::{Model, Op};
use crate::train::{self, Samples};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

#[derive(Clone, Debug, serde::Serialize)]
pub struct MapGrowth {
    /// Maps added to each conv layer per growth step (0: none).
    pub per_layer: usize,
    /// Random candidate kernels tried per added map.
    pub candidates: usize,
    /// Fraction of the readers' inputs from a new map that are connected.
    pub beta: f64,
    /// New weights' mean |w| relative to the layer's.
    pub alpha_birth: f64,
    /// Gradient batches (and `batches × batch_size` samples for the loss).
    pub batches: usize,
    pub batch_size: usize,
    pub seed: u64,
}

impl Default for MapGrowth {
    fn default() -> Self {
        MapGrowth {
            per_layer: 2,
            candidates: 4,
            beta: 0.1,
            alpha_birth: 0.5,
            batches: 8,
            batch_size: 64,
            seed: 1,
        }
    }
}

/// Conv nodes whose output channels can grow.
fn growable_convs(model: &Model) -> Vec<usize> {
    (0..model.nodes.len())
        .filter(|&k| matches!(&model.nodes[k].op, Op::Conv2d(c) if !c.is_depthwise()))
        .filter(|&k| surgery::conv_readers(model, model.nodes[k].output).is_some())
        .collect()
}

fn mean_abs(w: &[f32], on: impl Fn(usize) -> bool) -> f32 {
    let (s, n) = w
        .iter()
        .enumerate()
        .filter(|(i, _)| on(*i))
        .fold((0.0f32, 0usize), |(s, n), (_, v)| (s + v.abs(), n + 1));
    if n == 0 {
        0.0
    } else {
        s / n as f32
    }
}

/// Box–Muller: one standard normal draw.
fn gaussian(rng: &mut ChaCha8Rng) -> f32 {
    let u1: f64 = rng.random::<f64>().max(1e-12);
    let u2: f64 = rng.random();
    ((-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()) as f32
}

/// One candidate: conv `k` of `model` with a random map appended and wired in by gradient.
fn candidate(
    model: &Model,
    k: usize,
    samples: &Samples,
    g: &MapGrowth,
    rng: &mut ChaCha8Rng,
) -> Model {
    let mut m = model.clone();
    let readers = surgery::conv_readers(&m, m.nodes[k].output)
        .expect("growable convs have readers")
        .readers;
    let c = surgery::conv(&m, k);
    let fan = c.fan_in();
    let density = (c.mask.count_ones() as f64 / c.mask.len().max(1) as f64).max(1.0 / fan as f64);
    let scale = g.alpha_birth as f32 * mean_abs(&c.weight, |i| c.mask.get(i));
    let mut mask: Vec<bool> = (0..fan).map(|_| rng.random::<f64>() < density).collect();
    if !mask.iter().any(|&b| b) {
        mask[rng.random_range(0..fan)] = true;
    }
    let mut weight: Vec<f32> = mask
        .iter()
        .map(|&on| if on { gaussian(rng) } else { 0.0 })
        .collect();
    let now = mean_abs(&weight, |i| mask[i]);
    if now > 0.0 && scale > 0.0 {
        weight.iter_mut().for_each(|w| *w *= scale / now);
    }
    surgery::add_filter(&mut m, k, &readers, &weight, &mask, 0.0);

    let ch = surgery::conv(&m, k).out_channels - 1;
    let inputs = surgery::channel_inputs(&m, &readers, ch, ch + 1);
    let grads = train::weight_gradients(&m, samples, g.batch_size, g.batches);
    let weighted = surgery::weighted_nodes(&m);
    for (r, idx) in readers.iter().zip(&inputs) {
        let node = match *r {
            ConvReader::Conv { node, .. } | ConvReader::Flat { node, .. } => node,
        };
        let gi = weighted
            .iter()
            .position(|&w| w == node)
            .expect("readers are weighted");
        let grad = &grads[gi];
        let mut order = idx.clone();
        order.sort_by(|&a, &b| grad[b].abs().total_cmp(&grad[a].abs()).then(a.cmp(&b)));
        let n = ((g.beta * idx.len() as f64).ceil() as usize).clamp(1, idx.len());
        let chosen = &order[..n];
        let w = m.nodes[node].op.weights_mut().expect("weighted");
        let reader_scale = g.alpha_birth as f32 * mean_abs(w.weight, |i| w.mask.get(i));
        let step = mean_abs(grad, |i| chosen.contains(&i));
        if step == 0.0 || reader_scale == 0.0 {
            continue;
        }
        for &i in chosen {
            w.mask.set(i, true);
            w.weight[i] = -grad[i] * reader_scale / step;
        }
    }
    m
}

/// Grows `g.per_layer` maps in every growable conv layer, each the best of `g.candidates`
/// random kernels by training loss. Returns the number grown.
pub fn grow_maps(model: &mut Model, samples: &Samples, g: &MapGrowth) -> usize {
    if g.per_layer == 0 || g.candidates == 0 {
        return 0;
    }
    let mut rng = ChaCha8Rng::seed_from_u64(g.seed);
    let mut grown = 0;
    // Node indices do not move: growth changes widths, not the graph.
    for k in growable_convs(model) {
        for _ in 0..g.per_layer {
            grow_map(model, k, samples, g, &mut rng);
            grown += 1;
        }
    }
    grown
}

/// Adds to conv `k` the lowest-loss of `g.candidates` random maps; returns its loss.
fn grow_map(
    model: &mut Model,
    k: usize,
    samples: &Samples,
    g: &MapGrowth,
    rng: &mut ChaCha8Rng,
) -> f64 {
    let n_loss = g.batches * g.batch_size;
    let (loss, best) = (0..g.candidates.max(1))
        .map(|_| {
            let m = candidate(model, k, samples, g, rng);
            (train::mean_loss(&m, samples, n_loss), m)
        })
        .min_by(|a, b| a.0.total_cmp(&b.0))
        .expect("at least one candidate");
    *model = best;
    loss
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::interp;
    use crate::synth::seed_file;

    /// A small LeNet: conv → pool → conv → pool → flatten → dense → dense, so one conv is read
    /// by a conv and the other by a Dense through Flatten.
    /// A small CNN (conv, pool, conv, flatten, two Dense layers) on 10 x 10 images, 3 classes.
    pub(crate) fn tiny_cnn() -> Model {
        let text = r#"
            name = "tiny-lenet"
            input = [10, 10, 1]
            [[layer]]
            type = "conv"
            filters = 3
            kernel = 3
            padding = "valid"
            activation = "relu"
            [[layer]]
            type = "maxpool"
            size = 2
            [[layer]]
            type = "conv"
            filters = 4
            kernel = 2
            padding = "valid"
            activation = "relu"
            [[layer]]
            type = "flatten"
            [[layer]]
            type = "dense"
            units = 6
            activation = "relu"
            [[layer]]
            type = "dense"
            units = "classes"
        "#;
        let spec = seed_file::parse(text, "tiny-lenet").unwrap();
        let shape = seed_file::DataShape {
            sample_shape: vec![10, 10, 1],
            class_names: vec!["a".into(), "b".into(), "c".into()],
            preprocess: crate::ir::Preprocess::identity(),
        };
        seed_file::build(&spec, "tiny-lenet", &shape, 4).unwrap()
    }

    fn samples(m: &Model, n: usize) -> Samples {
        let dim = m.input_len();
        let x: Vec<f32> = (0..n * dim)
            .map(|i| ((i * 7 + i / dim * 3) % 11) as f32 / 5.0 - 1.0)
            .collect();
        let classes = m.output_len() as u32;
        Samples {
            x,
            y: (0..n as u32).map(|i| i % classes).collect(),
            dim,
        }
    }

    #[test]
    fn a_dormant_filter_changes_nothing_and_keeps_the_model_valid() {
        let mut m = tiny_cnn();
        let s = samples(&m, 8);
        let before: Vec<Vec<f32>> = (0..s.len())
            .map(|i| interp::float::run(&m, s.row(i)).unwrap())
            .collect();
        let k = growable_convs(&m)[0];
        let readers = surgery::conv_readers(&m, m.nodes[k].output)
            .unwrap()
            .readers;
        let fan = surgery::conv(&m, k).fan_in();
        let (c0, r_len) = (
            surgery::conv(&m, k).out_channels,
            m.nodes
                .iter()
                .filter_map(|n| n.op.weights().map(|w| w.weight.len()))
                .collect::<Vec<_>>(),
        );
        surgery::add_filter(&mut m, k, &readers, &vec![0.3; fan], &vec![true; fan], 0.1);
        m.validate().unwrap();
        assert_eq!(surgery::conv(&m, k).out_channels, c0 + 1);
        // Every reader gained exactly one dormant input per (output, position).
        let after: Vec<usize> = m
            .nodes
            .iter()
            .filter_map(|n| n.op.weights().map(|w| w.weight.len()))
            .collect();
        assert!(after.iter().zip(&r_len).all(|(a, b)| a >= b));
        for (i, y) in before.iter().enumerate() {
            assert_eq!(&interp::float::run(&m, s.row(i)).unwrap(), y);
        }
        let inputs = surgery::channel_inputs(&m, &readers, c0, c0 + 1);
        for (r, idx) in readers.iter().zip(&inputs) {
            let node = match *r {
                ConvReader::Conv { node, .. } | ConvReader::Flat { node, .. } => node,
            };
            let w = m.nodes[node].op.weights().unwrap();
            assert!(!idx.is_empty());
            assert!(idx.iter().all(|&i| !w.mask.get(i) && w.weight[i] == 0.0));
        }
    }

    #[test]
    fn grown_maps_are_the_best_candidate_and_repeat_with_the_seed() {
        let m0 = tiny_cnn();
        let s = samples(&m0, 64);
        let g = MapGrowth {
            per_layer: 1,
            candidates: 3,
            batches: 2,
            batch_size: 32,
            ..MapGrowth::default()
        };
        let convs = growable_convs(&m0);
        assert_eq!(convs.len(), 2, "both convs can grow");
        let (mut a, mut b) = (m0.clone(), m0.clone());
        let grown = grow_maps(&mut a, &s, &g);
        grow_maps(&mut b, &s, &g);
        assert_eq!(grown, convs.len());
        assert_eq!(a, b, "same seed, same growth");
        a.validate().unwrap();
        for &k in &convs {
            assert_eq!(
                surgery::conv(&a, k).out_channels,
                surgery::conv(&m0, k).out_channels + 1
            );
        }
        // One step keeps the lowest-loss candidate of the same draws, wired to its readers.
        let k = convs[0];
        let mut rng = ChaCha8Rng::seed_from_u64(9);
        let losses: Vec<f64> = (0..g.candidates)
            .map(|_| train::mean_loss(&candidate(&m0, k, &s, &g, &mut rng), &s, 64))
            .collect();
        let mut one = m0.clone();
        let loss = grow_map(&mut one, k, &s, &g, &mut ChaCha8Rng::seed_from_u64(9));
        assert_eq!(loss, losses.iter().cloned().fold(f64::INFINITY, f64::min));
        assert_eq!(train::mean_loss(&one, &s, 64), loss);
        let ch = surgery::conv(&one, k).out_channels - 1;
        let readers = surgery::conv_readers(&one, one.nodes[k].output)
            .unwrap()
            .readers;
        let inputs = surgery::channel_inputs(&one, &readers, ch, ch + 1);
        let connected: usize = readers
            .iter()
            .zip(&inputs)
            .map(|(r, idx)| {
                let node = match *r {
                    ConvReader::Conv { node, .. } | ConvReader::Flat { node, .. } => node,
                };
                let w = one.nodes[node].op.weights().unwrap();
                idx.iter()
                    .filter(|&&i| w.mask.get(i) && w.weight[i] != 0.0)
                    .count()
            })
            .sum();
        assert!(connected > 0, "the new map feeds its readers");
    }
}
