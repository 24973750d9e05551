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

/// Regrowth after a pruning round (NeST's grow-prune iteration, as RigL does it during
/// training): in each Dense and Conv2d layer, activates the `ratio × active` dormant connections
/// with the largest |gradient|, at zero. Pruning slightly past the round's goal and regrowing
/// back to it lets the loss, not only the magnitudes, decide which connections survive a round.
pub fn regrow(model: &mut Model, grads: &[Vec<f32>], ratio: f64) -> usize {
    let mut grown = 0;
    let layers = model.nodes.iter_mut().filter_map(|n| n.op.weights_mut());
    for (lw, g) in layers.zip(grads) {
        let active = lw.mask.count_ones();
        let mut dormant: Vec<usize> = (0..lw.weight.len()).filter(|&i| !lw.mask.get(i)).collect();
        let n = ((ratio * active as f64).round() as usize).min(dormant.len());
        dormant.sort_by(|&a, &b| g[b].abs().total_cmp(&g[a].abs()).then(a.cmp(&b)));
        for &i in &dormant[..n] {
            lw.mask.set(i, true);
            grown += 1;
        }
    }
    grown
}

/// A seeded random sparse mask over every Dense and Conv2d layer but the input reduction (a
/// fitted projection, not a connection pattern to search).
pub fn sparse_seed(model: &mut Model, density: f64, seed: u64) {
    use rand::{Rng, SeedableRng};
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    for node in &mut model.nodes {
        if node.name == super::reduce::NODE_NAME {
            continue;
        }
        let Some(w) = node.op.weights_mut() else {
            continue;
        };
        for i in 0..w.weight.len() {
            if rng.random::<f64>() >= density {
                w.mask.set(i, false);
                w.weight[i] = 0.0;
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
    fn regrow_reactivates_the_largest_gradients_in_proportion_to_each_layer() {
        let mut m = tiny_cnn();
        // conv1: 32 active, dormant 0, 5, 13, 30. ratio 1/16 -> 2 regrown: the two largest |g|.
        let mut g0 = vec![0.0f32; 36];
        g0[5] = -3.0;
        g0[30] = 2.0;
        g0[13] = 1.0;
        g0[2] = 50.0; // active: never counts
        let grads = vec![g0, vec![0.0; 36], vec![0.0; 48]];
        let before: Vec<usize> = m
            .nodes
            .iter()
            .filter_map(|n| n.op.weights().map(|w| w.mask.count_ones()))
            .collect();
        let grown = regrow(&mut m, &grads, 1.0 / 16.0);
        let Op::Conv2d(c) = &m.nodes[0].op else {
            panic!()
        };
        assert!(c.mask.get(5) && c.mask.get(30));
        assert!(!c.mask.get(13) && !c.mask.get(0));
        assert_eq!((c.weight[5], c.weight[30]), (0.0, 0.0));
        // The other layers regrow their own share (ties broken by position), capped by dormancy.
        let after: Vec<usize> = m
            .nodes
            .iter()
            .filter_map(|n| n.op.weights().map(|w| w.mask.count_ones()))
            .collect();
        let want: Vec<usize> = m
            .nodes
            .iter()
            .filter_map(|n| n.op.weights())
            .zip(&before)
            .map(|(w, &b)| b + ((b as f64 / 16.0).round() as usize).min(w.weight.len() - b))
            .collect();
        assert_eq!(after, want);
        assert_eq!(
            grown,
            after.iter().sum::<usize>() - before.iter().sum::<usize>()
        );
        m.validate().unwrap();
    }

    #[test]
    fn sparse_seed_thins_conv_layers_too() {
        let mut m = tiny_cnn();
        sparse_seed(&mut m, 0.25, 3);
        m.validate().unwrap();
        for k in [0, 2, 5] {
            let lw = m.nodes[k].op.weights().unwrap();
            let on = lw.mask.count_ones();
            assert!(on > 0 && on < lw.weight.len() / 2, "node {k}: {on} active");
        }
    }
}
