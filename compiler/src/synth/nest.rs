//! NeST's connection growth: activate the dormant connections with the largest accumulated
//! |∂L/∂w|. Grown weights start at zero (one of the two choices the record leaves open) and are
//! trained from there; the optimizer starts fresh each training phase, so no stale moments move
//! them.

use crate::ir::{Model, Op};

/// Activates, in each Dense layer, the top `fraction` of its dormant connections by |gradient|
/// (`grads[k]` in IR layout for the k-th Dense layer). Returns the number grown.
pub fn grow_connections(model: &mut Model, grads: &[Vec<f32>], fraction: f64) -> usize {
    let mut grown = 0;
    let mut k = 0;
    for node in &mut model.nodes {
        let Op::Dense(d) = &mut node.op else { continue };
        let g = &grads[k];
        k += 1;
        let mut dormant: Vec<usize> = (0..d.weight.len()).filter(|&i| !d.mask.get(i)).collect();
        let n = (fraction * dormant.len() as f64).round() as usize;
        dormant.sort_by(|&a, &b| g[b].abs().total_cmp(&g[a].abs()).then(a.cmp(&b)));
        for &i in &dormant[..n] {
            d.mask.set(i, true);
            grown += 1;
        }
    }
    grown
}

/// A sparse seed: keeps a seeded random `density` of each Dense layer's connections.
pub fn random_sparse_seed(model: &mut Model, density: f64, seed: u64) {
    use rand::{Rng, SeedableRng};
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    for node in &mut model.nodes {
        let Op::Dense(d) = &mut node.op else { continue };
        for i in 0..d.weight.len() {
            if rng.random::<f64>() >= density {
                d.mask.set(i, false);
                d.weight[i] = 0.0;
            }
        }
    }
}
