use super::*;
use crate::ir::{Op, Preprocess};
use crate::synth::seed::mlp;

/// Two Gaussian-ish blobs per class in 6 dimensions, deterministic.
fn blobs(n: usize, seed: u64) -> Samples {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut x = Vec::new();
    let mut y = Vec::new();
    for i in 0..n {
        let c = (i % 3) as u32;
        for j in 0..6 {
            let centre = if j as u32 % 3 == c { 1.5 } else { -0.5 };
            x.push(centre + rand::Rng::random_range(&mut rng, -0.6..0.6));
        }
        y.push(c);
    }
    Samples { x, y, dim: 6 }
}

fn seed_model(seed: u64) -> Model {
    let names = vec!["a".into(), "b".into(), "c".into()];
    mlp("blobs", 6, &[8], names, Preprocess::identity(), seed)
}

fn quick() -> TrainConfig {
    TrainConfig {
        max_epochs: 15,
        batch_size: 16,
        learning_rate: 1e-2,
        patience: 5,
        seed: 3,
    }
}

#[test]
fn learns_a_separable_problem() {
    let mut m = seed_model(1);
    let before = float_accuracy(&m, &blobs(90, 2));
    let report = train(&mut m, &blobs(300, 1), &blobs(90, 2), &quick(), |_| {}).unwrap();
    let after = float_accuracy(&m, &blobs(90, 2));
    assert!(after >= 0.95, "accuracy {after} (before {before})");
    assert_eq!(report.best_val_accuracy, after);
    assert!(report.history[0].train_loss > report.history.last().unwrap().train_loss);
}

#[test]
fn same_seed_same_weights() {
    let mut a = seed_model(1);
    let mut b = seed_model(1);
    train(&mut a, &blobs(120, 1), &blobs(30, 2), &quick(), |_| {}).unwrap();
    train(&mut b, &blobs(120, 1), &blobs(30, 2), &quick(), |_| {}).unwrap();
    assert_eq!(a, b);
}

#[test]
fn dormant_connections_stay_zero_and_active_ones_train() {
    let mut m = seed_model(1);
    if let Op::Dense(d) = &mut m.nodes[0].op {
        for i in (0..d.weight.len()).step_by(2) {
            d.mask.set(i, false);
            d.weight[i] = 0.0;
        }
    }
    let before = m.clone();
    train(&mut m, &blobs(120, 1), &blobs(30, 2), &quick(), |_| {}).unwrap();
    m.validate().unwrap(); // validation rejects nonzero dormant weights
    let (Op::Dense(d0), Op::Dense(d1)) = (&before.nodes[0].op, &m.nodes[0].op) else {
        panic!()
    };
    let moved = (1..d0.weight.len())
        .step_by(2)
        .filter(|&i| d0.weight[i] != d1.weight[i])
        .count();
    assert!(
        moved > d0.weight.len() / 4,
        "only {moved} active weights moved"
    );
}

#[test]
fn bad_shapes_and_labels_are_errors() {
    let mut m = seed_model(1);
    let mut s = blobs(10, 1);
    s.y[3] = 7;
    let err = train(&mut m, &s, &blobs(5, 2), &quick(), |_| {}).unwrap_err();
    assert!(err.to_string().contains("label 7 is out of range"), "{err}");
    let s = Samples {
        x: vec![0.0; 8],
        y: vec![0, 1],
        dim: 4,
    };
    let err = train(&mut m, &s, &s, &quick(), |_| {}).unwrap_err();
    assert!(matches!(err, TrainError::Shape { .. }));
}

#[test]
fn dense_gradient_matches_finite_differences_at_dormant_positions() {
    let mut m = seed_model(4);
    if let Op::Dense(d) = &mut m.nodes[1].op {
        d.mask.set(5, false);
        d.weight[5] = 0.0;
    }
    let s = blobs(16, 9);
    let g = dense_weight_gradients(&m, &s, 16, 1);
    // mean cross-entropy loss in f64 through the float reference
    let loss = |m: &Model| -> f64 {
        (0..s.len())
            .map(|i| {
                let z = crate::interp::float::run(m, s.row(i)).unwrap();
                let mx = z.iter().cloned().fold(f32::MIN, f32::max) as f64;
                let lse = z.iter().map(|&v| (v as f64 - mx).exp()).sum::<f64>().ln() + mx;
                lse - z[s.y[i] as usize] as f64
            })
            .sum::<f64>()
            / s.len() as f64
    };
    let h = 1e-3;
    let mut plus = m.clone();
    if let Op::Dense(d) = &mut plus.nodes[1].op {
        d.weight[5] = h as f32; // probing the dormant connection directly
    }
    let mut minus = m.clone();
    if let Op::Dense(d) = &mut minus.nodes[1].op {
        d.weight[5] = -h as f32;
    }
    let fd = (loss(&plus) - loss(&minus)) / (2.0 * h);
    assert!(
        fd.abs() > 1e-4,
        "the test needs a nonzero gradient, got {fd}"
    );
    assert!(
        (g[1][5] as f64 - fd).abs() < 1e-3 + 1e-2 * fd.abs(),
        "{} vs {fd}",
        g[1][5]
    );
}
