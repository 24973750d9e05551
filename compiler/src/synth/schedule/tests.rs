use super::*;
use crate::data::{self, DataSpec};
use crate::interp;
use crate::ir::Op;
use crate::synth::reduce;
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

fn run(m: &mut Model, schedule: &Schedule, lines: &mut Vec<String>) -> SynthResult {
    let (_, tr, va) = digits();
    synthesize(m, &tr, &va, &cfg(), schedule, |l| lines.push(l), |_| {}).unwrap()
}

#[test]
fn prune_only_reaches_density_keeps_accuracy_and_records_a_curve() {
    let (mut dense, tr, va) = digits();
    let mut pruned = dense.clone();
    train::train(&mut dense, &tr, &va, &cfg(), |_| {}).unwrap();
    let schedule = Schedule {
        method: Method::Prune,
        target_density: 0.1,
        ..Schedule::default()
    };
    let r = run(&mut pruned, &schedule, &mut vec![]);
    pruned.validate().unwrap();
    let d = prune::density(&pruned);
    assert!(d <= 0.16, "density {d}");
    let (a, b) = (
        train::float_accuracy(&dense, &va),
        train::float_accuracy(&pruned, &va),
    );
    // 180 validation samples: one is 0.56 points.
    assert!(b >= a - 0.05, "pruned {b} vs dense {a}");
    // train + 5 rounds, nonzeros falling, the last round chosen
    assert_eq!(r.trajectory.len(), 6);
    assert!(r
        .trajectory
        .windows(2)
        .all(|w| w[1].params_nonzero < w[0].params_nonzero));
    assert_eq!(r.chosen, 5);
    assert_eq!(r.trajectory[5].model, pruned);
    assert_eq!(r.val_accuracy, r.trajectory[5].val_accuracy);
}

#[test]
fn accuracy_drop_target_keeps_the_last_round_within_it() {
    let (mut m, _, va) = digits();
    let schedule = Schedule {
        method: Method::Prune,
        target_density: 0.002,
        rounds: 6,
        retrain_epochs: 3,
        max_val_drop: Some(0.01),
        ..Schedule::default()
    };
    let mut lines = vec![];
    let r = run(&mut m, &schedule, &mut lines);
    let last = r.trajectory.last().unwrap();
    let best = r.trajectory[0].val_accuracy;
    assert!(last.val_accuracy < best - 0.01, "{lines:?}");
    assert!(r.chosen < r.trajectory.len() - 1);
    assert_eq!(m, r.trajectory[r.chosen].model);
    assert!(r.val_accuracy >= best - 0.01);
    assert_eq!(train::float_accuracy(&m, &va), r.val_accuracy);
}

#[test]
fn nest_grows_neurons_and_connections_then_prunes() {
    let (mut m, _, va) = digits();
    let mut lines = Vec::new();
    let schedule = Schedule {
        method: Method::Nest,
        target_density: 0.1,
        ..Schedule::default()
    };
    let r = run(&mut m, &schedule, &mut lines);
    let stage = &r.trajectory[1].stage;
    assert!(stage.starts_with("grow 1: +"), "{lines:?}");
    assert!(!stage.starts_with("grow 1: +0 neurons"), "{lines:?}");
    assert_eq!(
        surgery::dense(&r.trajectory[1].model, 0).out_features
            + surgery::dense(&r.trajectory[1].model, 1).out_features,
        96 + stage[9..]
            .split(' ')
            .next()
            .unwrap()
            .parse::<usize>()
            .unwrap()
    );
    let d = nonzero_weights(&m) as f64 / (64 * 64 + 64 * 32 + 32 * 10) as f64;
    assert!(d <= 0.16, "density {d}");
    assert!(train::float_accuracy(&m, &va) >= 0.9);
    m.validate().unwrap();
}

#[test]
fn nest_as_local_search_starts_dense_and_iterates_prune_and_regrow() {
    // The architecture search's local step: a dense start (seed density 1), no growth phase,
    // pruning rounds that prune past their goal and regrow by gradient.
    let (mut m, _, va) = digits();
    let weights = nonzero_weights(&m);
    let schedule = Schedule {
        method: Method::Nest,
        seed_density: 1.0,
        grow_rounds: 0,
        regrow_fraction: 0.1,
        target_density: 0.2,
        rounds: 3,
        ..Schedule::default()
    };
    let r = run(&mut m, &schedule, &mut vec![]);
    assert_eq!(r.trajectory[0].stage, "train");
    assert_eq!(
        nonzero_weights(&r.trajectory[0].model),
        weights,
        "trained dense"
    );
    assert_eq!(r.trajectory.len(), 4, "train + 3 rounds, no growth");
    assert!(r.trajectory[1..]
        .iter()
        .all(|p| p.stage.starts_with("prune")));
    let d = nonzero_weights(&m) as f64 / weights as f64;
    // Per-layer densities keep the 32->10 classifier denser than the goal (as in the
    // prune-only test above).
    assert!((0.15..=0.25).contains(&d), "density {d}");
    assert!(train::float_accuracy(&m, &va) >= 0.9);
    m.validate().unwrap();
}

#[test]
fn scann_schemes_run_and_produce_valid_models() {
    let (seed, tr, va) = digits();
    for (method, seed_model) in [
        (
            Method::ScannA,
            mlp(
                "a",
                64,
                &[16, 8],
                seed.class_names.clone(),
                seed.preprocess.clone(),
                1,
            ),
        ),
        (Method::ScannB, seed.clone()),
        (Method::ScannC, seed.clone()),
    ] {
        let mut m = seed_model;
        let schedule = Schedule {
            method,
            target_density: 0.1,
            rounds: 3,
            retrain_epochs: 4,
            neurons: NeuronGrowth {
                per_layer: 4,
                ..NeuronGrowth::default()
            },
            reference_weights: Some(weight_count(&seed)),
            ..Schedule::default()
        };
        let mut lines = vec![];
        let r = synthesize(
            &mut m,
            &tr,
            &va,
            &cfg(),
            &schedule,
            |l| lines.push(l),
            |_| {},
        )
        .unwrap();
        m.validate().unwrap();
        assert_eq!(
            r.trajectory.len(),
            if method == Method::ScannC { 4 } else { 5 }
        );
        let acc = train::float_accuracy(&m, &va);
        assert!(acc >= 0.85, "{method:?}: {acc} {lines:?}");
        assert!(
            nonzero_weights(&m) as f64 <= 0.16 * weight_count(&seed) as f64,
            "{method:?}"
        );
        // cross-layer connections survive as Concat nodes only where used
        for n in &m.nodes {
            if let Op::Concat = n.op {
                let reader = m
                    .nodes
                    .iter()
                    .find(|x| x.inputs.contains(&n.output))
                    .unwrap();
                assert!(matches!(reader.op, Op::Dense(_)));
            }
        }
        let x = va.row(0);
        assert_eq!(interp::float::run(&m, x).unwrap().len(), 10);
    }
}

#[test]
fn dr_layer_in_front_trains_and_is_counted() {
    let (_, tr, va) = digits();
    let seed = mlp(
        "r",
        16,
        &[32],
        (0..10).map(|i| i.to_string()).collect(),
        crate::ir::Preprocess::identity(),
        1,
    );
    let layer = reduce::fit(reduce::Reduce::Pca(16), &tr, 1).unwrap();
    let mut m = reduce::prepend(&seed, layer, crate::ir::Preprocess::identity());
    let schedule = Schedule {
        method: Method::ScannB,
        target_density: 0.3,
        rounds: 2,
        retrain_epochs: 4,
        seed_density: 0.5,
        ..Schedule::default()
    };
    synthesize(&mut m, &tr, &va, &cfg(), &schedule, |_| {}, |_| {}).unwrap();
    m.validate().unwrap();
    assert_eq!(m.nodes[0].name, reduce::NODE_NAME);
    assert!(m.stats().nodes[0].params_nonzero > 0);
    assert!(train::float_accuracy(&m, &va) >= 0.85);
}

#[test]
fn per_layer_densities_protect_small_layers() {
    let (m, _, _) = digits();
    let d = prune::layer_densities(&m, 0.05);
    // 64x64, 64x32, 32x10: the classifier keeps the most
    assert!(d[2] > d[1] && d[1] > d[0], "{d:?}");
    assert!(d.iter().all(|&x| (0.0..=1.0).contains(&x)));
    let kept = d[0] * 4096.0 + d[1] * 2048.0 + d[2] * 320.0;
    assert!((kept - 0.05 * 6464.0).abs() < 1e-6, "{kept}");
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

#[test]
fn fine_tuning_after_the_last_round_is_recorded_and_chosen_on_validation() {
    let (mut m, _, va) = digits();
    let schedule = Schedule {
        method: Method::Prune,
        target_density: 0.1,
        rounds: 2,
        retrain_epochs: 2,
        final_epochs: 6,
        ..Schedule::default()
    };
    let r = run(&mut m, &schedule, &mut vec![]);
    assert_eq!(r.trajectory.len(), 4);
    assert_eq!(r.trajectory[3].stage, "fine-tune");
    // The fine-tuned model ships only if validation says it is no worse than the last round.
    let (last, tuned) = (r.trajectory[2].val_accuracy, r.trajectory[3].val_accuracy);
    assert_eq!(r.chosen, if tuned >= last { 3 } else { 2 });
    // same connections as the last round, retrained
    assert_eq!(
        r.trajectory[3].params_nonzero,
        r.trajectory[2].params_nonzero
    );
    assert_eq!(train::float_accuracy(&m, &va), r.val_accuracy);
}

#[test]
fn pruning_methods_spend_the_epochs_they_plan_and_the_same_budget() {
    let (_, tr, va) = digits();
    let base = Schedule {
        target_density: 0.2,
        rounds: 2,
        retrain_epochs: 4,
        ..Schedule::default()
    };
    // (schedule, first-phase epochs): NeST's first phase and growth step share prune-only's
    // first phase; SCANN C's regrowth and retraining share a round.
    let runs = [
        (
            Schedule {
                method: Method::Prune,
                ..base.clone()
            },
            4,
        ),
        (
            Schedule {
                method: Method::Nest,
                grow_rounds: 1,
                grow_epochs: Some(2),
                ..base.clone()
            },
            2,
        ),
        (
            Schedule {
                method: Method::ScannC,
                ..base.clone()
            },
            4,
        ),
    ];
    for (schedule, first) in runs {
        let (mut m, ..) = digits();
        let cfg = TrainConfig {
            max_epochs: first,
            ..cfg()
        };
        let mut epochs = 0;
        synthesize(&mut m, &tr, &va, &cfg, &schedule, |_| {}, |_| epochs += 1).unwrap();
        assert_eq!(
            epochs,
            planned_epochs(&schedule, first),
            "{:?}",
            schedule.method
        );
        assert_eq!(epochs, 4 + 2 * 4, "{:?}", schedule.method);
    }
}

#[test]
fn regrowth_share_anneals_from_the_fraction_to_almost_nothing() {
    let s = Schedule {
        regrow_fraction: 0.2,
        regrow_anneal: true,
        ..Schedule::default()
    };
    let shares: Vec<f64> = (1..=16).map(|r| s.regrow_share(r, 16)).collect();
    assert_eq!(shares[0], 0.2);
    assert!(shares.windows(2).all(|w| w[1] < w[0]), "{shares:?}");
    assert!(shares[15] < 0.01 * 0.2, "{}", shares[15]);
    let constant = Schedule {
        regrow_anneal: false,
        ..s
    };
    assert!((1..=16).all(|r| constant.regrow_share(r, 16) == 0.2));
}

/// The repository's digits CNN seed (`models/seeds/digits-cnn.toml`) on the 8x8 digits.
fn digits_cnn() -> Model {
    let (m, _, _) = digits();
    let spec = crate::synth::seed_file::parse(
        include_str!("../../../../models/seeds/digits-cnn.toml"),
        "digits-cnn",
    )
    .unwrap();
    let shape = crate::synth::seed_file::DataShape {
        sample_shape: vec![64],
        class_names: m.class_names.clone(),
        preprocess: m.preprocess.clone(),
    };
    crate::synth::seed_file::build(&spec, "digits-cnn", &shape, 1).unwrap()
}

#[test]
fn partial_area_pruning_reaches_its_share_and_cuts_the_macs() {
    let schedule = |area_keep| Schedule {
        method: Method::Prune,
        target_density: 0.5,
        rounds: 2,
        retrain_epochs: 3,
        area_keep,
        ..Schedule::default()
    };
    let cfg = TrainConfig {
        max_epochs: 6,
        ..TrainConfig::default()
    };
    let (_, tr, va) = digits();
    let run = |keep| {
        let mut m = digits_cnn();
        synthesize(&mut m, &tr, &va, &cfg, &schedule(keep), |_| {}, |_| {}).unwrap();
        m.validate().unwrap();
        m
    };
    let (whole, part) = (run(1.0), run(0.5));
    assert_eq!(crate::synth::area::area_fraction(&whole), 1.0);
    let share = crate::synth::area::area_fraction(&part);
    assert!(share <= 0.5 + 1e-9 && share > 0.4, "{share}");
    assert!(part.stats().macs < whole.stats().macs);
    // Still a working classifier: the areas kept what the digits need.
    let acc = crate::train::float_accuracy(&part, &va);
    assert!(acc > 0.8, "validation accuracy {acc}");
}
