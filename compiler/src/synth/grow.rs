//! NeST neuron growth for Dense layers (and the gradient call growth uses).
//!
//! The bridging gradient of hidden layer `l` is `B = (1/N)·X_lᵀ·δ_{l+1}`, `X_l` the tensor layer
//! `l` reads and `δ_{l+1}` the loss gradient at the pre-activation of each reader of layer `l`.
//! That is exactly the weight gradient a direct connection `X_l → reader` would have, so it is
//! computed without any new training API: a copy of the model gets, for every reader, extra
//! dormant (zero, masked) input columns fed by `X_l` through a Concat, and the ordinary dense
//! weight gradient of those columns is `B`. The copy computes the same function as the model.
//!
//! Choices the record leaves open (documented here, measured in the schedule's trajectory):
//! - **Pairs → one neuron.** The pairs `(i, o)` with |B| at or above the ⌈β·C_in·C_out⌉-th
//!   largest value are kept; each new neuron connects only their endpoints. Its weights are the
//!   best rank-one fit `w_out·w_inᵀ ≈ −B` over the kept pairs (power iteration; the k-th neuron
//!   of a step takes the k-th component after deflation). For a single pair this is the
//!   record's `w_in = ε·sgn(B)·√|B|`, `w_out = ε·√|B|` up to the sign: the record's literal
//!   product is `+B`, which raises the loss to first order, so the descent direction `−B` is
//!   used here.
//! - **ε (the free sign).** `(u, v)` and `(−u, −v)` have the same first-order effect through a
//!   ReLU but fire on different samples; the one active on more training samples is kept.
//! - **Birth strength.** Both weight vectors are then scaled so their mean |w| is `α_birth` times
//!   the mean |w| of the active weights of the layer they join.

use super::surgery::{self, NewNeuron, Reader};
use crate::interp;
use crate::ir::{Activation, Model, Node, Op};
use crate::train::Samples;

/// Mean ∂L/∂W of every weighted node (Dense, Conv2d), IR layout, dormant positions included.
pub use crate::train::weight_gradients;

#[derive(Clone, Debug, serde::Serialize)]
pub struct NeuronGrowth {
    /// Fraction of (input, output) pairs around a layer that the new neurons connect.
    pub beta: f64,
    /// New weights' mean |w| relative to the layer's.
    pub alpha_birth: f64,
    /// Neurons added to each hidden layer per growth step.
    pub per_layer: usize,
    /// Training batches the gradients are averaged over.
    pub batches: usize,
    pub batch_size: usize,
}

impl Default for NeuronGrowth {
    fn default() -> Self {
        NeuronGrowth {
            beta: 0.02,
            alpha_birth: 0.5,
            per_layer: 8,
            batches: 50,
            batch_size: 64,
        }
    }
}

/// Bridging gradients of Dense node `k` (hidden layer l): per reader of its output,
/// `[reader_out][C_in]` row-major, in the order of `readers`.
pub fn bridging_gradients(
    model: &Model,
    k: usize,
    readers: &[Reader],
    samples: &Samples,
    g: &NeuronGrowth,
) -> Vec<Vec<f32>> {
    let x = model.nodes[k].inputs[0];
    let cx = model.tensor(x).len();
    let mut aug = model.clone();
    let mut nodes: Vec<usize> = readers.iter().map(|r| r.node).collect();
    nodes.sort_unstable();
    nodes.dedup();
    // Insert from the back so earlier node indices stay valid.
    for &r in nodes.iter().rev() {
        let t_r = aug.nodes[r].inputs[0];
        let len_r = aug.tensor(t_r).len();
        let u = aug.add_tensor(format!("{}.bridge", aug.nodes[r].name), vec![len_r + cx]);
        let bridge = Node {
            name: format!("{}.bridge", aug.nodes[r].name),
            op: Op::Concat,
            inputs: vec![t_r, x],
            output: u,
        };
        aug.nodes.insert(r, bridge);
        aug.nodes[r + 1].inputs[0] = u;
        let d = surgery::dense_mut(&mut aug, r + 1);
        for _ in 0..cx {
            let at = d.in_features;
            insert_dormant(d, at);
        }
    }
    let grads = weight_gradients(&aug, samples, g.batch_size, g.batches);
    let weighted = surgery::weighted_nodes(&aug);
    readers
        .iter()
        .map(|r| {
            // Node r.node moved down by the bridges inserted at or before it.
            let shifted = r.node + nodes.iter().filter(|&&n| n <= r.node).count();
            let gi = weighted
                .iter()
                .position(|&w| w == shifted)
                .expect("a reader is weighted");
            let d = surgery::dense(&aug, shifted);
            let base = d.in_features - cx;
            let mut b = Vec::with_capacity(d.out_features * cx);
            for o in 0..d.out_features {
                let row = o * d.in_features + base;
                b.extend_from_slice(&grads[gi][row..row + cx]);
            }
            b
        })
        .collect()
}

fn insert_dormant(d: &mut crate::ir::Dense, at: usize) {
    let o = d.out_features;
    surgery::insert_column(d, at, &vec![0.0; o], &vec![false; o]);
}

/// Grows `g.per_layer` neurons in every hidden ReLU Dense layer. Returns the number grown.
pub fn grow_neurons(model: &mut Model, samples: &Samples, g: &NeuronGrowth) -> usize {
    let mut grown = 0;
    let layers: Vec<usize> = surgery::growable_layers(model)
        .into_iter()
        .filter(|&k| surgery::dense(model, k).activation == Activation::Relu)
        .collect();
    for k in layers {
        let readers = surgery::dense_readers(model, model.nodes[k].output)
            .expect("growable layers have Dense readers");
        let b = bridging_gradients(model, k, &readers, samples, g);
        grown += grow_layer(model, k, &readers, &b, samples, g);
    }
    grown
}

fn grow_layer(
    model: &mut Model,
    k: usize,
    readers: &[Reader],
    b: &[Vec<f32>],
    samples: &Samples,
    g: &NeuronGrowth,
) -> usize {
    let cin = model.tensor(model.nodes[k].inputs[0]).len();
    let outs: Vec<usize> = b.iter().map(|m| m.len() / cin.max(1)).collect();
    let cout: usize = outs.iter().sum();
    // -B over all readers stacked: rows = reader outputs, cols = inputs.
    let mut m: Vec<f32> = b.iter().flatten().map(|v| -v).collect();
    let keep = ((g.beta * (cin * cout) as f64).ceil() as usize).clamp(1, m.len());
    let mut mags: Vec<f32> = m.iter().map(|v| v.abs()).collect();
    let (_, &mut thr, _) = mags.select_nth_unstable_by(keep - 1, |a, b| b.total_cmp(a));
    if thr <= 0.0 {
        return 0;
    }
    let sel: Vec<bool> = m.iter().map(|v| v.abs() >= thr).collect();
    for (v, &s) in m.iter_mut().zip(&sel) {
        if !s {
            *v = 0.0;
        }
    }
    // Mean input over a sample of the training set (for the liveness sign).
    let xs = sample_inputs(model, k, samples, 256);
    let layer_scale = surgery::mean_abs_active(surgery::dense(model, k));
    let reader_scale: Vec<f32> = readers
        .iter()
        .map(|r| surgery::mean_abs_active(surgery::dense(model, r.node)))
        .collect();
    let mut grown = 0;
    for _ in 0..g.per_layer {
        let Some((mut u, mut v, sigma)) = rank_one(&m, cout, cin) else {
            break;
        };
        // Deflate so the next neuron fits what this one leaves.
        for o in 0..cout {
            for i in 0..cin {
                if sel[o * cin + i] {
                    m[o * cin + i] -= sigma * v[o] * u[i];
                }
            }
        }
        let fires = |u: &[f32]| {
            xs.iter()
                .filter(|x| x.iter().zip(u).map(|(a, b)| a * b).sum::<f32>() > 0.0)
                .count()
        };
        let neg: Vec<f32> = u.iter().map(|x| -x).collect();
        if fires(&neg) > fires(&u) {
            u = neg;
            v.iter_mut().for_each(|x| *x = -*x);
        }
        // Connect the component's support only: endpoints of kept pairs whose weight in this
        // component is not negligible (a deflated component may be ~0 on some of them).
        let support = |w: &[f32], on: &dyn Fn(usize) -> bool| -> Vec<bool> {
            let max = w.iter().fold(0.0f32, |a, b| a.max(b.abs()));
            (0..w.len())
                .map(|i| on(i) && w[i].abs() > 1e-3 * max)
                .collect()
        };
        let in_on = support(&u, &|i| (0..cout).any(|o| sel[o * cin + i]));
        let out_on = support(&v, &|o| (0..cin).any(|i| sel[o * cin + i]));
        if !in_on.iter().any(|&b| b) || !out_on.iter().any(|&b| b) {
            break;
        }
        scale_mean_abs(&mut u, &in_on, g.alpha_birth as f32 * layer_scale);
        let mut out_weight = Vec::new();
        let mut out_mask = Vec::new();
        let mut at = 0;
        for (r, &n) in outs.iter().enumerate() {
            let mut w = v[at..at + n].to_vec();
            let on = out_on[at..at + n].to_vec();
            scale_mean_abs(&mut w, &on, g.alpha_birth as f32 * reader_scale[r]);
            out_weight.push(w);
            out_mask.push(on);
            at += n;
        }
        surgery::add_neuron(
            model,
            k,
            readers,
            &NewNeuron {
                weight: u,
                mask: in_on,
                bias: 0.0,
                out_weight,
                out_mask,
            },
        );
        grown += 1;
    }
    grown
}

fn scale_mean_abs(w: &mut [f32], on: &[bool], target: f32) {
    let (s, n) = w
        .iter()
        .zip(on)
        .filter(|(_, &m)| m)
        .fold((0.0f32, 0usize), |(s, n), (v, _)| (s + v.abs(), n + 1));
    if n == 0 || s == 0.0 {
        return;
    }
    let f = target / (s / n as f32);
    if !f.is_finite() {
        return;
    }
    w.iter_mut().zip(on).for_each(|(v, &m)| {
        *v = if m { *v * f } else { 0.0 };
    });
}

/// Leading singular triple `(u, v, σ)` of the `rows × cols` matrix `m` (unit u, v).
fn rank_one(m: &[f32], rows: usize, cols: usize) -> Option<(Vec<f32>, Vec<f32>, f32)> {
    let mut u = vec![0.0f32; cols];
    // Start from the column sums of |m| so the iteration begins inside the support.
    for o in 0..rows {
        for i in 0..cols {
            u[i] += m[o * cols + i].abs();
        }
    }
    let mut v = vec![0.0f32; rows];
    let mut sigma = 0.0;
    for _ in 0..30 {
        let nu = norm(&u);
        if nu == 0.0 {
            return None;
        }
        u.iter_mut().for_each(|x| *x /= nu);
        for (o, vo) in v.iter_mut().enumerate() {
            *vo = (0..cols).map(|i| m[o * cols + i] * u[i]).sum();
        }
        sigma = norm(&v);
        if sigma == 0.0 {
            return None;
        }
        v.iter_mut().for_each(|x| *x /= sigma);
        u.iter_mut().for_each(|x| *x = 0.0);
        for o in 0..rows {
            for i in 0..cols {
                u[i] += m[o * cols + i] * v[o];
            }
        }
    }
    let nu = norm(&u);
    if nu == 0.0 {
        return None;
    }
    u.iter_mut().for_each(|x| *x /= nu);
    Some((u, v, sigma))
}

fn norm(v: &[f32]) -> f32 {
    v.iter().map(|x| x * x).sum::<f32>().sqrt()
}

/// Values of the tensor Dense node `k` reads, for up to `n` training samples.
fn sample_inputs(model: &Model, k: usize, samples: &Samples, n: usize) -> Vec<Vec<f32>> {
    let x = model.nodes[k].inputs[0];
    (0..samples.len().min(n))
        .filter_map(|i| {
            interp::float::run_all(model, samples.row(i))
                .ok()
                .map(|mut all| std::mem::take(&mut all[x.0]))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::{self, DataSpec};
    use crate::synth::seed::mlp;
    use crate::train::{self, TrainConfig};

    fn digits() -> (Model, Samples, Samples) {
        let s = data::load(&DataSpec::Digits, 1).unwrap();
        let pre = data::fit_preprocess(&DataSpec::Digits, &s.train);
        let m = mlp(
            "d",
            64,
            &[16, 12],
            s.train.class_names.clone(),
            pre.clone(),
            1,
        );
        (
            m,
            Samples::from_dataset(&s.train, &pre),
            Samples::from_dataset(&s.val, &pre),
        )
    }

    #[test]
    fn bridging_gradient_is_input_times_delta() {
        let (mut m, tr, va) = digits();
        let cfg = TrainConfig {
            max_epochs: 3,
            ..TrainConfig::default()
        };
        train::train(&mut m, &tr, &va, &cfg, |_| {}).unwrap();
        // Layer fc2 (node 1) reads fc1's output (16); its reader fc3 has 10 outputs.
        let readers = surgery::dense_readers(&m, m.nodes[1].output).unwrap();
        let g = NeuronGrowth {
            batches: 4,
            batch_size: 16,
            ..NeuronGrowth::default()
        };
        let b = bridging_gradients(&m, 1, &readers, &tr, &g);
        assert_eq!(b.len(), 1);
        assert_eq!(b[0].len(), 10 * 16);
        // Reference: δ of fc3's pre-activation is softmax − onehot; B = mean over the
        // batch of δ hᵀ with h = fc1's output, averaged over the batches.
        let mut want = vec![0.0f64; 160];
        for batch in 0..4 {
            let mut acc = vec![0.0f64; 160];
            for i in batch * 16..(batch + 1) * 16 {
                let all = interp::float::run_all(&m, tr.row(i)).unwrap();
                let h = &all[m.nodes[0].output.0];
                let z = &all[m.nodes[2].output.0];
                let mx = z.iter().cloned().fold(f32::MIN, f32::max);
                let e: Vec<f64> = z.iter().map(|v| ((v - mx) as f64).exp()).collect();
                let s: f64 = e.iter().sum();
                for o in 0..10 {
                    let d = e[o] / s - if tr.y[i] as usize == o { 1.0 } else { 0.0 };
                    for j in 0..16 {
                        acc[o * 16 + j] += d * h[j] as f64 / 16.0;
                    }
                }
            }
            for (w, a) in want.iter_mut().zip(acc) {
                *w += a / 4.0;
            }
        }
        for (got, want) in b[0].iter().zip(&want) {
            assert!((*got as f64 - want).abs() < 1e-4, "{got} vs {want}");
        }
    }

    #[test]
    fn grown_neurons_widen_layers_and_lower_the_loss_direction() {
        let (mut m, tr, va) = digits();
        let cfg = TrainConfig {
            max_epochs: 5,
            ..TrainConfig::default()
        };
        train::train(&mut m, &tr, &va, &cfg, |_| {}).unwrap();
        let g = NeuronGrowth {
            per_layer: 3,
            ..NeuronGrowth::default()
        };
        let grown = grow_neurons(&mut m, &tr, &g);
        assert_eq!(grown, 6);
        m.validate().unwrap();
        assert_eq!(surgery::dense(&m, 0).out_features, 19);
        assert_eq!(surgery::dense(&m, 1).in_features, 19);
        assert_eq!(surgery::dense(&m, 1).out_features, 15);
        assert_eq!(surgery::dense(&m, 2).in_features, 15);
        // New neurons are sparse (only the kept pairs' endpoints) and alive.
        let d0 = surgery::dense(&m, 0);
        let row = &d0.mask.as_slice()[16 * 64..17 * 64];
        let n_on = row.iter().filter(|&&b| b).count();
        assert!(n_on > 0 && n_on < 64, "{n_on}");
        // The model still trains afterwards.
        train::train(&mut m, &tr, &va, &cfg, |_| {}).unwrap();
        assert!(train::float_accuracy(&m, &va) > 0.8);
    }
}
