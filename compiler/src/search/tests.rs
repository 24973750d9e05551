use super::run::{Event, SearchConfig, SearchMethod};
use super::state::SearchState;
use super::*;
use crate::ir::Preprocess;
use crate::synth::seed_file::DataShape;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::path::{Path, PathBuf};

fn spaces_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../models/spaces")
}

fn shape(sample: Vec<usize>) -> DataShape {
    DataShape {
        sample_shape: sample,
        class_names: (0..10).map(|i| i.to_string()).collect(),
        preprocess: Preprocess::identity(),
    }
}

#[test]
fn shipped_spaces_load() {
    let mlp = Space::load(&spaces_dir().join("mlp.toml")).unwrap();
    assert!(matches!(mlp.kind, space::SpaceKind::Mlp(_)));
    let cnn = Space::load(&spaces_dir().join("cnn.toml")).unwrap();
    let space::SpaceKind::Cnn(c) = &cnn.kind else {
        panic!("cnn.toml is a cnn space")
    };
    assert!(c.pool.contains(&PoolKind::None) && c.kernel == vec![3, 5]);
}

#[test]
fn bad_space_files_name_the_file_and_the_problem() {
    let cases = [
        ("name='x'\nkind='rnn'\ndepth=[1]\nwidth=[2]", "unknown kind"),
        ("name='x'\nkind='mlp'\nwidth=[2]", "missing `depth`"),
        ("name='x'\nkind='mlp'\ndepth=[1]\nwidth=[]", "`width` has no choices"),
        ("name='x'\nkind='mlp'\ndepth=[1]\nwidth=[0, 4]", "below the minimum"),
        (
            "name='x'\nkind='mlp'\ndepth=[1]\nwidth=[4]\nkernel=[3]",
            "`kernel` does not apply",
        ),
        (
            "name='x'\nkind='cnn'\nstages=[1]\nchannels=[4]\nkernel=[3]\npool=['max','sum']\nfc_depth=[0]\nfc_width=[8]",
            "unknown pool",
        ),
        (
            "name='x'\nkind='cnn'\ninput=[64]\nstages=[1]\nchannels=[4]\nkernel=[3]\npool=['max']\nfc_depth=[0]\nfc_width=[8]",
            "[H, W, C]",
        ),
        ("name='x'\nkind='mlp'\ndepth=[1]\nwidth=[4]\ncolour=1", "colour"),
        ("name='x'\nkind='mlp'\ndepth=[1\n", "TOML"),
    ];
    for (text, needle) in cases {
        let msg = Space::parse(text, "spaces/bad.toml")
            .expect_err(text)
            .to_string();
        assert!(msg.starts_with("search space spaces/bad.toml: "), "{msg}");
        assert!(
            msg.contains(needle) || (needle == "TOML" && msg.contains("expected")),
            "{text:?}: {msg}"
        );
    }
    let msg = Space::load(Path::new("/nonexistent/space.toml"))
        .unwrap_err()
        .to_string();
    assert!(msg.contains("/nonexistent/space.toml"), "{msg}");
}

#[test]
fn every_candidate_lowers_to_a_valid_model() {
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let mlp = Space::load(&spaces_dir().join("mlp.toml")).unwrap();
    let cnn = Space::load(&spaces_dir().join("cnn.toml")).unwrap();
    let mnist = shape(vec![28, 28, 1]);
    for _ in 0..40 {
        for space in [&mlp, &cnn] {
            let c = space.sample(&mut rng);
            assert!(space.contains(&c), "{}", c.key());
            let m = c.to_model(&mnist, None, 3).unwrap();
            m.validate().unwrap();
            assert_eq!(m.output_len(), 10);
            assert_eq!(m.input_len(), 784);
            // The same seed gives the same model; the key survives JSON.
            assert_eq!(m, c.to_model(&mnist, None, 3).unwrap());
            let back: Candidate =
                serde_json::from_str(&serde_json::to_string(&c).unwrap()).unwrap();
            assert_eq!(back.key(), c.key());
            assert_eq!(back.hash64(), c.hash64());
            // Moves stay inside the space.
            let other = space.sample(&mut rng);
            assert!(space.contains(&space.mutate(&c, &mut rng)));
            assert!(space.contains(&space.crossover(&c, &other, &mut rng)));
        }
    }
    // The CNN's stage layout, checked on one candidate.
    let c = Candidate::Cnn {
        stages: vec![
            Stage {
                channels: 8,
                kernel: 5,
                pool: PoolKind::Max,
            },
            Stage {
                channels: 16,
                kernel: 3,
                pool: PoolKind::None,
            },
        ],
        fc: vec![32],
    };
    assert_eq!(c.key(), "cnn[c8k5max,c16k3none][32]");
    let m = c.to_model(&mnist, None, 1).unwrap();
    let shapes: Vec<Vec<usize>> = m
        .nodes
        .iter()
        .map(|n| m.tensor(n.output).shape.clone())
        .collect();
    assert_eq!(
        shapes,
        vec![
            vec![28, 28, 8],
            vec![14, 14, 8],
            vec![14, 14, 16],
            vec![3136],
            vec![32],
            vec![10]
        ]
    );
    // A flat dataset read as an image through the space's input.
    let digits = shape(vec![64]);
    c.to_model(&digits, Some(&[8, 8, 1]), 1)
        .unwrap()
        .validate()
        .unwrap();
    // Too many pools for the input: a clear error, not a panic.
    let deep = Candidate::Cnn {
        stages: vec![
            Stage {
                channels: 4,
                kernel: 3,
                pool: PoolKind::Max
            };
            4
        ],
        fc: vec![],
    };
    let e = deep.to_model(&digits, Some(&[8, 8, 1]), 1).unwrap_err();
    assert!(e.to_string().contains("does not fit"), "{e}");
}

/// A small MLP space for the digits data, and limits that rule out its widest candidates.
fn digits_setup() -> (Space, Evaluator) {
    let space = Space::parse(
        "name='tiny'\nkind='mlp'\ndepth=[1, 2]\nwidth=[4, 8, 12, 16, 24, 32, 48]",
        "tiny.toml",
    )
    .unwrap();
    let eval = Evaluator::new(EvalContext {
        data: "digits".into(),
        split_seed: 1,
        input: None,
        proxy: ProxyBudget {
            epochs: 4,
            max_train_samples: Some(800),
            batch_size: 32,
            learning_rate: 3e-3,
            repeats: 1,
        },
        limits: HwLimits {
            device: "stm32l4r5".into(),
            // 64 x 48 + 48 x 48 weights do not fit; 64 x 32 + 32 x 10 do.
            flash_kb: Some(3.0),
            ram_kb: Some(1.0),
            energy_uj: None,
        },
        val_fraction: None,
    })
    .unwrap();
    (space, eval)
}

#[test]
fn a_wider_validation_split_moves_training_samples_and_refuses_a_narrower_one() {
    let (_, eval) = digits_setup();
    let (n_train, n_val) = (eval.data().train.len(), eval.data().val.len());
    let total = n_train + n_val;
    let context = |f| EvalContext {
        val_fraction: Some(f),
        ..eval.context.clone()
    };
    let wide = Evaluator::new(context(0.3)).unwrap();
    let (train, val) = (&wide.data().train, &wide.data().val);
    assert_eq!(train.len() + val.len(), total);
    assert_eq!(val.len(), (0.3 * total as f64).round() as usize);
    assert_eq!(train.x.len(), train.len() * train.dim);
    assert_eq!(val.x.len(), val.len() * val.dim);
    // The old validation samples stay first; the moved ones are the first training samples.
    let old = eval.data();
    assert_eq!(val.y[..n_val], old.val.y[..]);
    assert_eq!(val.y[n_val..], old.train.y[..val.len() - n_val]);
    assert_eq!(train.y[..], old.train.y[val.len() - n_val..]);
    assert_eq!(
        wide.data().test.y,
        old.test.y,
        "the test split is untouched"
    );
    // Digits' own split holds 1/8 of train + validation: a smaller share is refused.
    let err = Evaluator::new(context(0.05)).err().expect("refused");
    assert!(err.to_string().contains("0.05"), "{err}");
    assert!(Evaluator::new(context(1.0)).is_err());
}

#[test]
fn evaluator_prechecks_limits_and_round_trips_as_json() {
    let (_, eval) = digits_setup();
    let wide = Candidate::Mlp {
        hidden: vec![48, 48],
    };
    let m = eval.evaluate(&wide, 1).unwrap();
    assert!(!m.feasible && !m.trained && m.train_seconds == 0.0, "{m:?}");
    assert!(m.flash_bytes > 3 * 1024);
    assert!(
        m.infeasible.as_deref().unwrap().contains("flash budget"),
        "{m:?}"
    );
    let small = Candidate::Mlp { hidden: vec![16] };
    let req = EvalRequest {
        context: eval.context.clone(),
        candidate: small.clone(),
        seed: 9,
    };
    let json = serde_json::to_string(&req).unwrap();
    let back: EvalRequest = serde_json::from_str(&json).unwrap();
    assert_eq!(back, req);
    let remote = evaluate(&back).unwrap();
    let local = eval.evaluate(&small, 9).unwrap();
    assert!(remote.same_result(&local), "{remote:?} vs {local:?}");
    assert!(
        local.feasible && local.trained && local.val_accuracy > 0.5,
        "{local:?}"
    );
    // Pre-check figures are the trained model's (a dense model's layout ignores its weights).
    let hw = eval.hardware(&small).unwrap();
    assert_eq!(
        (hw.flash_bytes, hw.ram_bytes, hw.params),
        (local.flash_bytes, local.ram_bytes, local.params)
    );
    let metrics_back: Metrics =
        serde_json::from_str(&serde_json::to_string(&local).unwrap()).unwrap();
    assert_eq!(metrics_back, local);
}

#[test]
fn repeats_average_independent_trainings_and_keep_the_first() {
    let (_, eval) = digits_setup();
    let twice = Evaluator::new(EvalContext {
        proxy: ProxyBudget {
            repeats: 2,
            ..eval.context.proxy.clone()
        },
        ..eval.context.clone()
    })
    .unwrap();
    let c = Candidate::Mlp { hidden: vec![16] };
    let once = eval.evaluate(&c, 5).unwrap();
    let m = twice.evaluate(&c, 5).unwrap();
    assert!(once.val_accuracy_runs.is_empty(), "{once:?}");
    assert_eq!(m.val_accuracy_runs.len(), 2, "{m:?}");
    // Repeat 0 is the single training; repeat 1 starts elsewhere and lands elsewhere.
    assert_eq!(m.val_accuracy_runs[0], once.val_accuracy);
    assert_ne!(m.val_accuracy_runs[1], m.val_accuracy_runs[0]);
    let mean = (m.val_accuracy_runs[0] + m.val_accuracy_runs[1]) / 2.0;
    assert!((m.val_accuracy - mean).abs() < 1e-9, "{m:?}");
    assert_eq!((m.flash_bytes, m.params), (once.flash_bytes, once.params));
    // An infeasible candidate is not trained at all, repeats or not.
    let wide = twice
        .evaluate(
            &Candidate::Mlp {
                hidden: vec![48, 48],
            },
            5,
        )
        .unwrap();
    assert!(
        !wide.trained && wide.val_accuracy_runs.is_empty(),
        "{wide:?}"
    );
    let back: Metrics = serde_json::from_str(&serde_json::to_string(&m).unwrap()).unwrap();
    assert_eq!(back, m);
}

#[test]
fn canonical_numbers_survive_the_state_file() {
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    for _ in 0..20_000 {
        use rand::Rng;
        let x: f64 = rng.random::<f64>() * 10f64.powi(rng.random_range(-6..9));
        let c = eval::canonical(x);
        assert!((c - x).abs() <= 1e-11 * x.abs(), "{x} {c}");
        let back: f64 = serde_json::from_str(&serde_json::to_string(&c).unwrap()).unwrap();
        assert_eq!(back.to_bits(), c.to_bits(), "{x} -> {c} -> {back}");
    }
}

#[test]
fn parallel_evaluation_does_not_depend_on_scheduling() {
    let (_, eval) = digits_setup();
    let cands: Vec<Candidate> = [vec![8], vec![16, 8], vec![24], vec![12, 12]]
        .into_iter()
        .map(|hidden| Candidate::Mlp { hidden })
        .collect();
    let with = |threads: usize| -> Vec<Metrics> {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        pool.install(|| {
            use rayon::prelude::*;
            cands
                .par_iter()
                .map(|c| eval.evaluate(c, run::candidate_seed(7, c)).unwrap())
                .collect()
        })
    };
    let one = with(1);
    let two = with(2);
    for (a, b) in one.iter().zip(&two) {
        assert!(a.trained && a.same_result(b), "{a:?} vs {b:?}");
    }
    // The candidates are told apart (the test would be void if every accuracy were equal).
    assert!(one.iter().any(|m| m.val_accuracy != one[0].val_accuracy));
}

fn config(method: SearchMethod) -> SearchConfig {
    SearchConfig {
        method,
        seed: 3,
        n_heldout: 5,
        n_init: 5,
        iterations: 2,
        top_k: 2,
        population: 12,
        generations: 3,
        shrink: None,
    }
}

#[test]
fn an_interrupted_search_resumes_to_the_uninterrupted_result() {
    let dir = tempfile::tempdir().unwrap();
    let (space, eval) = digits_setup();
    let cfg = config(SearchMethod::Steerage);
    let quiet = |_: Event| {};
    let whole_state = dir.path().join("whole.json");
    let whole = search(&space, &eval, &cfg, &whole_state, None, &quiet).unwrap();
    assert_eq!(whole.evaluations.len(), cfg.budget());
    assert_eq!(whole.heldout.len(), cfg.n_heldout);
    assert_eq!(whole.evaluated_now, cfg.budget() + cfg.n_heldout);
    let keys: std::collections::HashSet<String> = whole
        .evaluations
        .iter()
        .chain(&whole.heldout)
        .map(|e| e.candidate.key())
        .collect();
    assert_eq!(
        keys.len(),
        cfg.budget() + cfg.n_heldout,
        "no candidate twice"
    );
    assert!(whole
        .evaluations
        .iter()
        .all(|e| e.metrics.feasible && e.metrics.flash_bytes <= 3 * 1024));
    let q = whole.predictor.as_ref().unwrap();
    assert_eq!(q.n_heldout, cfg.n_heldout);
    assert_eq!((q.predicted.len(), q.measured.len()), (5, 5));

    // Killed after the held-out and initial batches, then rerun with the same arguments.
    let state = dir.path().join("state.json");
    let stopped = search(&space, &eval, &cfg, &state, Some(2), &quiet).unwrap_err();
    assert!(
        matches!(stopped, SearchError::Stopped { batches: 2, .. }),
        "{stopped}"
    );
    let partial = SearchState::open(&state, serde_json::Value::Null);
    assert!(partial.is_err(), "a state only resumes its own search");
    let resumed = search(&space, &eval, &cfg, &state, None, &quiet).unwrap();
    assert_eq!(
        resumed.evaluated_now,
        cfg.iterations * cfg.top_k,
        "only the rounds after the interruption are trained"
    );
    assert_eq!(resumed.best.candidate, whole.best.candidate);
    assert!(resumed.best.metrics.same_result(&whole.best.metrics));
    let same = |a: &[state::Evaluation], b: &[state::Evaluation]| {
        a.len() == b.len()
            && a.iter().zip(b).all(|(x, y)| {
                x.candidate == y.candidate && x.seed == y.seed && x.metrics.same_result(&y.metrics)
            })
    };
    assert!(same(&resumed.evaluations, &whole.evaluations));
    assert!(same(&resumed.heldout, &whole.heldout));
    assert_eq!(resumed.predictor, whole.predictor);
    assert_eq!(resumed.pareto, whole.pareto);
    // A finished search reruns from its state without training anything.
    let again = search(&space, &eval, &cfg, &state, None, &quiet).unwrap();
    assert_eq!(again.evaluated_now, 0);
    // Other settings refuse the state.
    let other = SearchConfig {
        top_k: 3,
        ..cfg.clone()
    };
    let e = search(&space, &eval, &other, &state, None, &quiet).unwrap_err();
    assert!(
        e.to_string().contains("different search") && e.to_string().contains("search"),
        "{e}"
    );
}

#[test]
fn random_search_spends_the_same_budget_on_feasible_candidates() {
    let dir = tempfile::tempdir().unwrap();
    let (space, eval) = digits_setup();
    let cfg = config(SearchMethod::Random);
    let out = search(
        &space,
        &eval,
        &cfg,
        &dir.path().join("r.json"),
        None,
        &|_: Event| {},
    )
    .unwrap();
    assert_eq!(out.evaluations.len(), cfg.budget());
    assert!(out.heldout.is_empty() && out.predictor.is_none());
    assert!(out.evaluations.iter().all(|e| e.metrics.feasible));
    let best = out
        .evaluations
        .iter()
        .map(|e| e.metrics.val_accuracy)
        .fold(0.0, f64::max);
    assert_eq!(out.best.metrics.val_accuracy, best);
    assert!(out
        .pareto
        .iter()
        .any(|p| p.val_accuracy == best && p.on_flash_front && p.on_energy_front));
}
