//! NeST's connection growth: activate the dormant connections with the largest accumulated
//! |∂L/∂w|. Grown weights start at zero (one of the two choices the record leaves open) and are
//! trained from there; the optimizer starts fresh each training phase, so no stale moments move
//! them.

use crate::ir::Model;

/// Activates, in each Dense and Conv2d layer, the top `fraction` of its dormant connections by
/// |gradient| (`grads[k]` in IR layout for the k-th weighted node, as
/// [`crate::train::weight_gradients`] returns them). Returns the number grown.
pub fn grow_connections(model: &mut Model, grads: &[Vec<f32>], fraction: f64) -> usize {
    let mut grown = 0;
    let layers = model.nodes.iter_mut().filter_map(|n| n.op.weights_mut());
    for (lw, g) in layers.zip(grads) {
        let mut dormant: Vec<usize> = (0..lw.weight.len()).filter(|&i| !lw.mask.get(i)).collect();
        let n = (fraction * dormant.len() as f64).round() as usize;
        dormant.sort_by(|&a, &b| g[b].abs().total_cmp(&g[a].abs()).then(a.cmp(&b)));
        for &i in &dormant[..n] {
            lw.mask.set(i, true);
            grown += 1;
        }
    }
    grown
}

/// A sparse seed: keeps a seeded random `density` of each Dense and Conv2d layer's connections.
pub fn random_sparse_seed(model: &mut Model, density: f64, seed: u64) {
    use rand::{Rng, SeedableRng};
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    for lw in model.nodes.iter_mut().filter_map(|n| n.op.weights_mut()) {
        for i in 0..lw.weight.len() {
            if rng.random::<f64>() >= density {
                lw.mask.set(i, false);
                lw.weight[i] = 0.0;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::tests::tiny_cnn;
    use crate::ir::Op;

    #[test]
    fn growth_activates_the_largest_conv_gradients() {
        let mut m = tiny_cnn();
        // conv1's dormant connections are 0, 5, 13 and 30; give 13 and 30 the largest |g|.
        let mut g0 = vec![0.0f32; 36];
        g0[13] = -2.0;
        g0[30] = 1.0;
        g0[5] = 0.5;
        g0[0] = 0.1;
        g0[1] = 9.0; // active already: never counts
        let grads = vec![g0, vec![0.0; 36], vec![0.0; 48]];
        let grown = grow_connections(&mut m, &grads, 0.5);
        assert_eq!(grown, 2);
        let Op::Conv2d(c) = &m.nodes[0].op else {
            panic!()
        };
        assert!(c.mask.get(13) && c.mask.get(30));
        assert!(!c.mask.get(5) && !c.mask.get(0));
        // Grown weights start at zero, which keeps the model valid.
        assert_eq!(c.weight[13], 0.0);
        m.validate().unwrap();
    }

    #[test]
    fn sparse_seed_thins_conv_layers_too() {
        let mut m = tiny_cnn();
        random_sparse_seed(&mut m, 0.25, 3);
        m.validate().unwrap();
        for k in [0, 2, 5] {
            let lw = m.nodes[k].op.weights().unwrap();
            let on = lw.mask.count_ones();
            assert!(on > 0 && on < lw.weight.len() / 2, "node {k}: {on} active");
        }
    }
}
