//! Magnitude pruning with per-layer thresholds.
//!
//! A single global threshold wipes out small layers (the 100→10 classifier of LeNet-300-100 has
//! weights of a different scale than the 784→300 layer), so each layer gets its own target
//! density: `d_l = min(1, max(d', d' · (mean_size / size_l)^e))` with `e = 1/2` by default,
//! i.e. small layers stay denser than large ones (rule chosen here, not from the papers;
//! measured in BENCHMARKS.md; `e = 0` is a uniform density).
//! `d'` is solved so that the layers together keep exactly the overall target: with `d' = d`
//! the protected small layers pushed the total over it (LeNet-5 at a 1.75% target kept 1.86%,
//! NeST's grown maps 1.96%, which cost the 50x compression bar).

use crate::ir::Model;

/// Per-layer target densities for an overall target `density` (of all weights together), one
/// per weighted (Dense or Conv2d) node in node order.
pub fn layer_densities(model: &Model, density: f64) -> Vec<f64> {
    layer_densities_with(model, density, DEFAULT_LAYER_EXPONENT)
}

/// The exponent `e` of the per-layer rule that `layer_densities` uses.
pub const DEFAULT_LAYER_EXPONENT: f64 = 0.5;

/// [`layer_densities`] with the rule's exponent `e` given.
pub fn layer_densities_with(model: &Model, density: f64, exponent: f64) -> Vec<f64> {
    let sizes: Vec<f64> = layer_sizes(model).into_iter().map(|s| s as f64).collect();
    let total: f64 = sizes.iter().sum();
    let mean = total / sizes.len().max(1) as f64;
    let per_layer = |d: f64| -> Vec<f64> {
        sizes
            .iter()
            .map(|&s| (d * (mean / s).powf(exponent)).clamp(d, 1.0))
            .collect()
    };
    let kept = |d: f64| -> f64 { per_layer(d).iter().zip(&sizes).map(|(x, s)| x * s).sum() };
    let goal = density.clamp(0.0, 1.0) * total;
    if kept(density) <= goal {
        return per_layer(density);
    }
    // `kept` rises monotonically with d' (continuous, from 0): bisection finds the base
    // density whose layers keep the goal.
    let (mut lo, mut hi) = (0.0, density);
    for _ in 0..60 {
        let mid = 0.5 * (lo + hi);
        if kept(mid) > goal {
            hi = mid;
        } else {
            lo = mid;
        }
    }
    per_layer(lo)
}

fn layer_sizes(model: &Model) -> Vec<usize> {
    model
        .nodes
        .iter()
        .filter_map(|n| n.op.weights().map(|w| w.weight.len()))
        .collect()
}

/// Deactivates the smallest-magnitude active weights of each Dense and Conv2d layer until it
/// holds at most `densities[k]` of its connections (ties broken by position, so results
/// repeat). Returns the number of connections removed.
pub fn prune_to(model: &mut Model, densities: &[f64]) -> usize {
    let mut removed = 0;
    let layers = model.nodes.iter_mut().filter_map(|n| n.op.weights_mut());
    for (lw, &density) in layers.zip(densities) {
        let keep = (density * lw.weight.len() as f64).round() as usize;
        let mut active: Vec<usize> = (0..lw.weight.len()).filter(|&i| lw.mask.get(i)).collect();
        if active.len() <= keep {
            continue;
        }
        active.sort_by(|&a, &b| {
            lw.weight[a]
                .abs()
                .total_cmp(&lw.weight[b].abs())
                .then(a.cmp(&b))
        });
        for &i in &active[..active.len() - keep] {
            lw.mask.set(i, false);
            lw.weight[i] = 0.0;
            removed += 1;
        }
    }
    removed
}

/// Overall density of the Dense and Conv2d weights (active connections / all connections).
pub fn density(model: &Model) -> f64 {
    let (on, all) = model
        .nodes
        .iter()
        .filter_map(|n| n.op.weights())
        .fold((0, 0), |(on, all), w| {
            (on + w.mask.count_ones(), all + w.weight.len())
        });
    on as f64 / all.max(1) as f64
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::tests::{tiny_cnn, tiny_mlp};

    #[test]
    fn densities_cover_conv_and_dense_layers() {
        let m = tiny_cnn();
        // conv1 36, depthwise 36, fc 48 weights: the largest layer gets the lowest density.
        let d = layer_densities(&m, 0.3);
        assert_eq!(d.len(), 3);
        assert!(d[2] < d[0] && d[0] == d[1], "{d:?}");
        assert!(d.iter().all(|&x| (0.0..=1.0).contains(&x)));
        // Together the layers keep the target, not more.
        let kept = 36.0 * d[0] + 36.0 * d[1] + 48.0 * d[2];
        assert!((kept - 0.3 * 120.0).abs() < 1e-6, "{kept}");
        assert!((density(&m) - (32.0 + 36.0 + 48.0) / 120.0).abs() < 1e-12);
    }

    #[test]
    fn prune_to_removes_the_smallest_conv_weights_and_keeps_the_model_valid() {
        let mut m = tiny_cnn();
        let before = m.clone();
        let removed = prune_to(&mut m, &[0.5, 0.25, 1.0]);
        m.validate().unwrap();
        let active = |m: &Model, k: usize| m.nodes[k].op.weights().unwrap().mask.count_ones();
        assert_eq!(active(&m, 0), 18);
        assert_eq!(active(&m, 2), 9);
        assert_eq!(active(&m, 5), 48);
        assert_eq!(removed, (32 - 18) + (36 - 9));
        // Every surviving conv1 weight is at least as large as every removed one.
        let (w0, w1) = (
            before.nodes[0].op.weights().unwrap(),
            m.nodes[0].op.weights().unwrap(),
        );
        let smallest_kept = (0..36)
            .filter(|&i| w1.mask.get(i))
            .map(|i| w1.weight[i].abs())
            .fold(f32::MAX, f32::min);
        let largest_removed = (0..36)
            .filter(|&i| w0.mask.get(i) && !w1.mask.get(i))
            .map(|i| w0.weight[i].abs())
            .fold(0f32, f32::max);
        assert!(smallest_kept >= largest_removed);
        // Kept weights are untouched.
        assert!((0..36)
            .filter(|&i| w1.mask.get(i))
            .all(|i| w1.weight[i] == w0.weight[i]));
    }

    #[test]
    fn densities_keep_the_overall_target_and_saturate_small_layers() {
        let m = tiny_cnn();
        for target in [0.01, 0.1, 0.5, 0.9, 1.0] {
            let d = layer_densities(&m, target);
            let kept: f64 = d.iter().zip([36.0, 36.0, 48.0]).map(|(x, s)| x * s).sum();
            assert!((kept - target * 120.0).abs() < 1e-6, "{target}: {d:?}");
            assert!(d.iter().all(|&x| (0.0..=1.0).contains(&x)), "{d:?}");
        }
        let mut pruned = tiny_cnn();
        let target = 0.25;
        let d = layer_densities(&pruned, target);
        prune_to(&mut pruned, &d);
        // Rounding per layer: within one weight per layer of the goal.
        let kept = density(&pruned) * 120.0;
        assert!((kept - target * 120.0).abs() <= 3.0, "{kept}");
    }

    #[test]
    fn dense_only_models_prune_as_before() {
        let mut m = tiny_mlp();
        assert_eq!(layer_densities(&m, 0.5).len(), 2);
        let removed = prune_to(&mut m, &[0.5, 0.5]);
        m.validate().unwrap();
        assert_eq!(removed, (11 - 6) + (6 - 3));
    }
}
