//! DR+SCANN's input dimension reduction, fitted on the training split and put in front of the
//! network as its first Dense layer (named `reduce`), so the device computes it like any other
//! layer and its weights count in parameters and MACs.
//!
//! - `pca:K`: `y = Qᵀ(x − μ)` with Q the top-K principal directions (subspace iteration on the
//!   training covariance); not whitened, so the components keep their natural scale.
//! - `rp:K`: Achlioptas' sparse random projection, entries `√(3/K)·{+1, 0, −1}` with
//!   probabilities 1/6, 2/3, 1/6; the zeros are dormant connections, so it costs a third of a
//!   dense projection.
//!
//! The layer is initialised from the fit and then trained with the rest (burn's training has no
//! frozen layers; fine-tuning a good start only helps), but never pruned by a random sparse seed.

use crate::ir::{Activation, Dense, Mask, Model, Node, Op, Preprocess};
use crate::train::Samples;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Name of the reduction node (the schedules leave its mask alone when seeding sparsity).
pub const NODE_NAME: &str = "reduce";

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Reduce {
    Pca(usize),
    RandomProjection(usize),
}

impl Reduce {
    pub fn dim(self) -> usize {
        match self {
            Reduce::Pca(k) | Reduce::RandomProjection(k) => k,
        }
    }
}

impl std::str::FromStr for Reduce {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("bad reduction {s:?}: use pca:K or rp:K with K >= 1");
        let (kind, k) = s.split_once(':').ok_or_else(bad)?;
        let k: usize = k.parse().map_err(|_| bad())?;
        if k == 0 {
            return Err(bad());
        }
        match kind {
            "pca" => Ok(Reduce::Pca(k)),
            "rp" => Ok(Reduce::RandomProjection(k)),
            _ => Err(bad()),
        }
    }
}

/// Fits the reduction on `train` and returns it as a Dense layer `[K][d]`.
pub fn fit(r: Reduce, train: &Samples, seed: u64) -> Result<Dense, String> {
    let d = train.dim;
    let k = r.dim();
    if k > d {
        return Err(format!(
            "cannot reduce {d} features to {k}: K must be at most {d}"
        ));
    }
    match r {
        Reduce::Pca(_) => {
            let (q, mean) = pca(train, k, seed);
            let mut weight = vec![0.0f32; k * d];
            let mut bias = vec![0.0f32; k];
            for c in 0..k {
                for j in 0..d {
                    weight[c * d + j] = q[c][j] as f32;
                }
                bias[c] = -(0..d).map(|j| q[c][j] * mean[j]).sum::<f64>() as f32;
            }
            Ok(Dense::new(d, k, weight, bias, Activation::None))
        }
        Reduce::RandomProjection(_) => {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            let s = (3.0 / k as f64).sqrt() as f32;
            let weight: Vec<f32> = (0..k * d)
                .map(|_| match rng.random_range(0..6) {
                    0 => s,
                    1 => -s,
                    _ => 0.0,
                })
                .collect();
            let mask = Mask::from_bools(weight.iter().map(|&w| w != 0.0).collect());
            Ok(Dense {
                mask,
                ..Dense::new(d, k, weight, vec![0.0; k], Activation::None)
            })
        }
    }
}

/// Top-`k` principal directions (rows, unit length, by decreasing variance) and the mean.
fn pca(train: &Samples, k: usize, seed: u64) -> (Vec<Vec<f64>>, Vec<f64>) {
    let (n, d) = (train.len().max(1), train.dim);
    let mut mean = vec![0.0f64; d];
    for i in 0..train.len() {
        for (m, &x) in mean.iter_mut().zip(train.row(i)) {
            *m += x as f64;
        }
    }
    mean.iter_mut().for_each(|m| *m /= n as f64);
    let mut cov = vec![0.0f64; d * d];
    let mut xc = vec![0.0f64; d];
    for i in 0..train.len() {
        for ((c, &x), m) in xc.iter_mut().zip(train.row(i)).zip(&mean) {
            *c = x as f64 - m;
        }
        for a in 0..d {
            if xc[a] == 0.0 {
                continue;
            }
            let row = &mut cov[a * d..a * d + d];
            for b in a..d {
                row[b] += xc[a] * xc[b];
            }
        }
    }
    for a in 0..d {
        for b in a..d {
            cov[a * d + b] /= n as f64;
            cov[b * d + a] = cov[a * d + b];
        }
    }
    // Subspace iteration: Q ← orth(C·Q), from a seeded random start.
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut q: Vec<Vec<f64>> = (0..k)
        .map(|_| (0..d).map(|_| rng.random_range(-1.0..1.0)).collect())
        .collect();
    orthonormalize(&mut q);
    for _ in 0..60 {
        q = q
            .iter()
            .map(|v| (0..d).map(|a| dot(&cov[a * d..a * d + d], v)).collect())
            .collect();
        orthonormalize(&mut q);
    }
    // Order by Rayleigh quotient (variance along each direction).
    let var = |v: &Vec<f64>| -> f64 { (0..d).map(|a| v[a] * dot(&cov[a * d..a * d + d], v)).sum() };
    q.sort_by(|a, b| var(b).total_cmp(&var(a)));
    (q, mean)
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

fn orthonormalize(q: &mut [Vec<f64>]) {
    for i in 0..q.len() {
        for j in 0..i {
            let p = dot(&q[i], &q[j]);
            let qj = q[j].clone();
            q[i].iter_mut().zip(&qj).for_each(|(x, y)| *x -= p * y);
        }
        let n = dot(&q[i], &q[i]).sqrt();
        if n > 0.0 {
            q[i].iter_mut().for_each(|x| *x /= n);
        }
    }
}

/// Puts `layer` (`[K][d]`) in front of `model` (whose input holds K values); the result reads
/// the original d features, scaled by `preprocess` (the one the reduction was fitted after).
pub fn prepend(model: &Model, layer: Dense, preprocess: Preprocess) -> Model {
    let d = layer.in_features;
    let k = layer.out_features;
    assert_eq!(model.input_len(), k, "the seed reads the reduced features");
    let mut m = Model::with_input(
        model.name.clone(),
        vec![d],
        preprocess,
        model.class_names.clone(),
    );
    let reduced = m.add_node(NODE_NAME, Op::Dense(layer), vec![m.inputs[0]], vec![k]);
    let old_in = model.inputs[0];
    let mut map = vec![reduced; model.tensors.len()];
    for (i, t) in model.tensors.iter().enumerate() {
        if i != old_in.0 {
            map[i] = m.add_tensor(t.name.clone(), t.shape.clone());
        }
    }
    for n in &model.nodes {
        m.nodes.push(Node {
            name: n.name.clone(),
            op: n.op.clone(),
            inputs: n.inputs.iter().map(|t| map[t.0]).collect(),
            output: map[n.output.0],
        });
    }
    m.outputs = model.outputs.iter().map(|t| map[t.0]).collect();
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    fn samples() -> Samples {
        // Points along (1, 2, 0) with small noise along (0, 0, 1): the top direction is (1,2,0)/√5.
        let mut rng = ChaCha8Rng::seed_from_u64(4);
        let mut x = Vec::new();
        for _ in 0..500 {
            let t: f32 = rng.random_range(-3.0..3.0);
            let e: f32 = rng.random_range(-0.1..0.1);
            x.extend([1.0 + t, 2.0 * t, 5.0 + e]);
        }
        Samples {
            x,
            y: vec![0; 500],
            dim: 3,
        }
    }

    #[test]
    fn pca_finds_the_main_direction_and_centres() {
        let s = samples();
        let l = fit(Reduce::Pca(1), &s, 1).unwrap();
        let w = &l.weight;
        let c = (w[0] as f64 * 1.0 + w[1] as f64 * 2.0) / 5f64.sqrt();
        assert!(c.abs() > 0.999, "{w:?}");
        // the mean maps to 0
        let mean: Vec<f32> = (0..3)
            .map(|j| (0..s.len()).map(|i| s.row(i)[j]).sum::<f32>() / s.len() as f32)
            .collect();
        let y: f32 = l.bias[0] + (0..3).map(|j| w[j] * mean[j]).sum::<f32>();
        assert!(y.abs() < 1e-4, "{y}");
        assert!(fit(Reduce::Pca(4), &s, 1).is_err());
    }

    #[test]
    fn random_projection_is_a_sparse_layer() {
        let s = Samples {
            x: vec![0.0; 300 * 2],
            y: vec![0, 0],
            dim: 300,
        };
        let l = fit(Reduce::RandomProjection(20), &s, 1).unwrap();
        let density = l.mask.density();
        assert!((density - 1.0 / 3.0).abs() < 0.03, "{density}");
        assert!("rp:0".parse::<Reduce>().is_err());
        assert_eq!("pca:12".parse::<Reduce>(), Ok(Reduce::Pca(12)));
    }

    #[test]
    fn prepend_reads_the_original_features() {
        let classes: Vec<String> = (0..2).map(|i| i.to_string()).collect();
        let seed =
            crate::synth::seed::mlp("t", 1, &[4], classes, crate::ir::Preprocess::identity(), 1);
        let s = samples();
        let m = prepend(
            &seed,
            fit(Reduce::Pca(1), &s, 1).unwrap(),
            Preprocess::identity(),
        );
        m.validate().unwrap();
        assert_eq!(m.input_len(), 3);
        assert_eq!(m.nodes[0].name, NODE_NAME);
        let y = crate::interp::float::run(&m, s.row(0)).unwrap();
        assert_eq!(y.len(), 2);
    }
}
