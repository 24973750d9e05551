//! Magnitude pruning with per-layer thresholds.
//!
//! A single global threshold wipes out small layers (the 100→10 classifier of LeNet-300-100 has
//! weights of a different scale than the 784→300 layer), so each layer gets its own target
//! density: `d_l = max(d, min(1, d · sqrt(mean_size / size_l)))`, i.e. small layers stay denser
//! than the overall target (rule chosen here, not from the papers; measured in BENCHMARKS.md).

use crate::ir::{Model, Op};

/// Per-layer target densities for an overall target `density`, in Dense-node order.
pub fn layer_densities(model: &Model, density: f64) -> Vec<f64> {
    let sizes: Vec<f64> = dense_sizes(model).into_iter().map(|s| s as f64).collect();
    let mean = sizes.iter().sum::<f64>() / sizes.len().max(1) as f64;
    sizes
        .iter()
        .map(|&s| (density * (mean / s).sqrt()).clamp(density, 1.0))
        .collect()
}

fn dense_sizes(model: &Model) -> Vec<usize> {
    model
        .nodes
        .iter()
        .filter_map(|n| match &n.op {
            Op::Dense(d) => Some(d.weight.len()),
            _ => None,
        })
        .collect()
}

/// Deactivates the smallest-magnitude active weights of each Dense layer until it holds at most
/// `densities[k]` of its connections (ties broken by position, so results repeat). Returns the
/// number of connections removed.
pub fn prune_to(model: &mut Model, densities: &[f64]) -> usize {
    let mut removed = 0;
    let mut k = 0;
    for node in &mut model.nodes {
        let Op::Dense(d) = &mut node.op else { continue };
        let keep = (densities[k] * d.weight.len() as f64).round() as usize;
        k += 1;
        let mut active: Vec<usize> = (0..d.weight.len()).filter(|&i| d.mask.get(i)).collect();
        if active.len() <= keep {
            continue;
        }
        active.sort_by(|&a, &b| {
            d.weight[a]
                .abs()
                .total_cmp(&d.weight[b].abs())
                .then(a.cmp(&b))
        });
        for &i in &active[..active.len() - keep] {
            d.mask.set(i, false);
            d.weight[i] = 0.0;
            removed += 1;
        }
    }
    removed
}

/// Overall density of the Dense weights (nonzero connections / all connections).
pub fn density(model: &Model) -> f64 {
    let (on, all) = model.nodes.iter().fold((0, 0), |(on, all), n| match &n.op {
        Op::Dense(d) => (on + d.nonzero_weights(), all + d.weight.len()),
        _ => (on, all),
    });
    on as f64 / all.max(1) as f64
}
