use super::*;
use crate::data::{self, DataSpec};
use crate::ir::Op;
use crate::synth::seed::mlp;

fn digits() -> (Model, Samples, Samples) {
    let s = data::load(&DataSpec::Digits, 1).unwrap();
    let pre = data::fit_preprocess(&DataSpec::Digits, &s.train);
    let m = mlp(
        "d",
        64,
        &[64, 32],
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

fn cfg() -> TrainConfig {
    TrainConfig {
        max_epochs: 25,
        ..TrainConfig::default()
    }
}

#[test]
fn prune_only_reaches_density_and_keeps_accuracy() {
    let (mut dense, tr, va) = digits();
    let mut pruned = dense.clone();
    train::train(&mut dense, &tr, &va, &cfg(), |_| {}).unwrap();
    let schedule = Schedule {
        method: Method::Prune,
        target_density: 0.1,
        ..Schedule::default()
    };
    synthesize(&mut pruned, &tr, &va, &cfg(), &schedule, |_| {}, |_| {}).unwrap();
    pruned.validate().unwrap();
    let d = prune::density(&pruned);
    assert!(d <= 0.16, "density {d}");
    let (a, b) = (
        train::float_accuracy(&dense, &va),
        train::float_accuracy(&pruned, &va),
    );
    assert!(b >= a - 0.03, "pruned {b} vs dense {a}");
}

#[test]
fn nest_grows_then_prunes() {
    let (mut m, tr, va) = digits();
    let mut lines = Vec::new();
    let schedule = Schedule {
        method: Method::Nest,
        target_density: 0.1,
        ..Schedule::default()
    };
    synthesize(
        &mut m,
        &tr,
        &va,
        &cfg(),
        &schedule,
        |l| lines.push(l),
        |_| {},
    )
    .unwrap();
    assert!(lines[0].starts_with("grew "), "{lines:?}");
    let d = prune::density(&m);
    assert!(d <= 0.16, "density {d}");
    assert!(train::float_accuracy(&m, &va) >= 0.9);
}

#[test]
fn per_layer_densities_protect_small_layers() {
    let (m, _, _) = digits();
    let d = prune::layer_densities(&m, 0.05);
    // 64x64, 64x32, 32x10: the classifier keeps the most
    assert!(d[2] > d[1] && d[1] > d[0], "{d:?}");
    assert!(d.iter().all(|&x| (0.05..=1.0).contains(&x)));
}

#[test]
fn prune_removes_smallest_and_grow_adds_largest_gradient() {
    let (mut m, _, _) = digits();
    let removed = prune::prune_to(&mut m, &[0.5, 1.0, 1.0]);
    assert_eq!(removed, 64 * 64 / 2);
    let Op::Dense(d) = &m.nodes[0].op else {
        panic!()
    };
    let kept_min = (0..d.weight.len())
        .filter(|&i| d.mask.get(i))
        .map(|i| d.weight[i].abs())
        .fold(f32::MAX, f32::min);
    assert!(kept_min > 0.0);
    let mut grads: Vec<Vec<f32>> = vec![vec![0.0; 64 * 64], vec![0.0; 64 * 32], vec![0.0; 320]];
    let dormant: Vec<usize> = (0..d.weight.len()).filter(|&i| !d.mask.get(i)).collect();
    grads[0][dormant[7]] = -5.0;
    grads[0][dormant[3]] = 4.0;
    let grown = nest::grow_connections(&mut m, &grads, 2.0 / dormant.len() as f64);
    assert_eq!(grown, 2);
    let Op::Dense(d) = &m.nodes[0].op else {
        panic!()
    };
    assert!(d.mask.get(dormant[7]) && d.mask.get(dormant[3]));
    assert_eq!(d.weight[dormant[7]], 0.0, "grown weights start at zero");
}
