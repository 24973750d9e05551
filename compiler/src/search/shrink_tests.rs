//! DAG-cell spaces and AutoShrink on the embedded digits (as 8×8×1 images).

use super::cell::{self, CellArch, CellSpec};
use super::run::{Event, SearchConfig, SearchMethod};
use super::shrink::{self, ShrinkConfig};
use super::space::SpaceKind;
use super::*;
use crate::ir::Preprocess;
use crate::synth::seed_file::DataShape;
use std::collections::{BTreeSet, HashSet};
use std::path::{Path, PathBuf};

fn spaces_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../models/spaces")
}

/// Two nodes, seven edges: every node keeps two ways in and out after any one removal, and the
/// cell can shrink down to the lone identity 0→2.
const TINY: &str = r#"
name = "tiny"
kind = "cell"
input = [8, 8, 1]
[stem]
channels = 4
kernel = 3
[cell]
nodes = 2
edges = [
  { from = 0, to = 1, op = "conv3x3" },
  { from = 0, to = 1, op = "sep3x3" },
  { from = 0, to = 1, op = "maxpool3x3" },
  { from = 1, to = 2, op = "conv3x3" },
  { from = 1, to = 2, op = "identity" },
  { from = 0, to = 2, op = "conv1x1" },
  { from = 0, to = 2, op = "identity" },
]
[head]
pool = "max"
"#;

fn tiny() -> (Space, CellSpec) {
    let space = Space::parse(TINY, "tiny.toml").unwrap();
    let SpaceKind::Cell(spec) = space.kind.clone() else {
        panic!("a cell space")
    };
    (space, spec)
}

fn digits(limits: HwLimits) -> Evaluator {
    Evaluator::new(EvalContext {
        data: "digits".into(),
        split_seed: 1,
        input: Some(vec![8, 8, 1]),
        proxy: ProxyBudget {
            epochs: 1,
            max_train_samples: Some(300),
            batch_size: 32,
            learning_rate: 3e-3,
            repeats: 1,
        },
        limits,
        val_fraction: None,
    })
    .unwrap()
}

fn free() -> HwLimits {
    HwLimits {
        device: "stm32l4r5".into(),
        ..HwLimits::default()
    }
}

fn config(k: usize, target: Option<usize>) -> SearchConfig {
    SearchConfig {
        method: SearchMethod::Autoshrink,
        seed: 5,
        top_k: k,
        shrink: Some(ShrinkConfig {
            lambda: 0.05,
            target_edges: target,
            warmup_epochs: 2,
        }),
        ..SearchConfig::default()
    }
}

fn quiet(_: Event) {}

#[test]
fn cell_spaces_load_and_bad_files_name_the_file_and_the_problem() {
    let shipped = Space::load(&spaces_dir().join("cell.toml")).unwrap();
    let SpaceKind::Cell(spec) = &shipped.kind else {
        panic!("cell.toml is a cell space")
    };
    assert_eq!((spec.nodes, spec.edges.len()), (4, 15));
    let full = spec.full();
    assert_eq!(full.edges.len(), 15, "every shipped edge is live");
    // MNIST-shaped: the full cell lowers and has the shapes the file's comment states.
    let mnist = DataShape {
        sample_shape: vec![28, 28, 1],
        class_names: (0..10).map(|i| i.to_string()).collect(),
        preprocess: Preprocess::identity(),
    };
    let m = full.to_model(&mnist, None, 1).unwrap();
    assert_eq!(m.tensor(m.nodes.last().unwrap().inputs[0]).shape, vec![392]);

    let base = |edges: &str, extra: &str| {
        format!(
            "name='x'\nkind='cell'\n{extra}\n[stem]\nchannels=4\nkernel=3\n[cell]\nnodes=2\n\
             edges=[{edges}]\n[head]\npool='max'\n"
        )
    };
    let ok = "{from=0,to=1,op='conv3x3'},{from=1,to=2,op='identity'}";
    assert!(Space::parse(&base(ok, ""), "ok.toml").is_ok());
    let cases = [
        (
            base("{from=0,to=2,op='conv7x7'}", ""),
            "unknown op \"conv7x7\"",
        ),
        (base("{from=1,to=0,op='identity'}", ""), "edges run forward"),
        (base("{from=0,to=3,op='identity'}", ""), "edges run forward"),
        (
            base(&format!("{ok},{{from=0,to=1,op='conv3x3'}}"), ""),
            "listed twice",
        ),
        (
            base("{from=0,to=1,op='conv3x3'}", ""),
            "no path of edges leads from node 0 to node 2",
        ),
        (base(ok, "input=[64]"), "[H, W, C]"),
        (base(ok, "colour=1"), "colour"),
        (
            base(ok, "").replace("pool='max'", "pool='sum'"),
            "[head] unknown pool",
        ),
        (
            "name='x'\nkind='cell'\n[cell]\nnodes=1\nedges=[]\n[head]\n".into(),
            "stem",
        ),
    ];
    for (text, needle) in cases {
        let msg = Space::parse(&text, "spaces/bad.toml")
            .expect_err(&text)
            .to_string();
        assert!(msg.starts_with("search space spaces/bad.toml: "), "{msg}");
        assert!(msg.contains(needle), "{msg} should mention {needle}");
    }
    let missing = Space::load(Path::new("no/such/cell.toml")).unwrap_err();
    assert!(
        missing.to_string().contains("no/such/cell.toml"),
        "{missing}"
    );
}

/// Every cell the shrink can reach from the full one (all removal orders).
fn reachable(spec: &CellSpec) -> Vec<CellArch> {
    let mut seen = HashSet::new();
    let mut queue = vec![spec.full()];
    let mut out = vec![];
    while let Some(a) = queue.pop() {
        if !seen.insert(a.key()) {
            continue;
        }
        for (_, child) in a.shrink_moves() {
            queue.push(child);
        }
        out.push(a);
    }
    out
}

#[test]
fn every_cell_the_shrink_reaches_is_connected_and_lowers() {
    let (_, spec) = tiny();
    let eval = digits(free());
    let all = reachable(&spec);
    // Via node 1: a non-empty subset of its 3 in-edges and 2 out-edges, with any of the 2
    // direct edges (7 × 3 × 4); or only direct edges (3).
    assert_eq!(all.len(), 87);
    let mut sizes = BTreeSet::new();
    for a in &all {
        assert!(a.connected(), "{}", a.key());
        // Canonical: reducing to live edges changes nothing (no dead edge is kept).
        assert_eq!(CellArch::new(spec.clone(), a.edges.clone()), *a);
        let model = eval.model(&Candidate::Cell(a.clone()), 3).unwrap();
        model.validate().unwrap();
        let hw = eval.check(&model);
        assert!(
            hw.feasible(),
            "{} does not lower: {:?}",
            a.key(),
            hw.infeasible
        );
        sizes.insert(a.edges.len());
        for (e, child) in a.shrink_moves() {
            assert!(a.edges.contains(&e) && !child.edges.contains(&e));
            let rest: Vec<usize> = a.edges.iter().copied().filter(|&x| x != e).collect();
            assert!(child.edges.iter().all(|x| rest.contains(x)));
            // What else went was dead without `e`.
            assert_eq!(child, CellArch::new(spec.clone(), rest));
        }
    }
    // Down to the lone identity edge (stem and head only).
    assert_eq!(sizes.first(), Some(&1));
    assert_eq!(sizes.last(), Some(&7));
    // The shipped MNIST cell: a few shrink paths to the end all lower.
    let shipped = Space::load(&spaces_dir().join("cell.toml")).unwrap();
    let SpaceKind::Cell(big) = &shipped.kind else {
        unreachable!()
    };
    let mnist = DataShape {
        sample_shape: vec![28, 28, 1],
        class_names: (0..10).map(|i| i.to_string()).collect(),
        preprocess: Preprocess::identity(),
    };
    for pick in [0usize, 3, 7] {
        let mut a = big.full();
        loop {
            let m = a.to_model(&mnist, None, 1).unwrap();
            let q = crate::quant::quantize(&m, &[vec![0.5; 784], vec![0.1; 784]]).unwrap();
            crate::lower::lower(&q, &Default::default())
                .unwrap_or_else(|e| panic!("{}: {e}", a.key()));
            let moves = a.shrink_moves();
            if moves.is_empty() {
                break;
            }
            a = moves[pick % moves.len()].1.clone();
        }
        assert!(a.connected() && !a.edges.is_empty());
    }
}

#[test]
fn children_inherit_their_parents_weights() {
    let (_, spec) = tiny();
    let eval = digits(free());
    let parent = eval.model(&Candidate::Cell(spec.full()), 1).unwrap();
    let child_arch = spec.full().shrink_moves()[0].1.clone();
    let mut child = eval.model(&Candidate::Cell(child_arch), 2).unwrap();
    let weighted = child
        .nodes
        .iter()
        .filter(|n| n.op.weights().is_some())
        .count();
    assert_eq!(cell::inherit(&mut child, &parent), weighted);
    for n in &child.nodes {
        if let Some(w) = n.op.weights() {
            let p = parent.nodes.iter().find(|p| p.name == n.name).unwrap();
            assert_eq!(w.weight, p.op.weights().unwrap().weight, "{}", n.name);
        }
    }
    // The state's weight text is exact.
    let hex = cell::weights_hex(&parent);
    let mut back = eval.model(&Candidate::Cell(spec.full()), 9).unwrap();
    cell::set_weights_hex(&mut back, &hex).unwrap();
    assert_eq!(back, parent);
    assert!(cell::set_weights_hex(&mut back, &hex[1..]).is_err());
}

#[test]
fn one_step_removes_one_edge_and_keeps_the_best_scoring_child() {
    let (space, spec) = tiny();
    let eval = digits(free());
    let dir = tempfile::tempdir().unwrap();
    // K = 7 covers the whole shrink space; one step to 6 edges.
    let cfg = config(7, Some(6));
    let out = search(
        &space,
        &eval,
        &cfg,
        &dir.path().join("s.json"),
        None,
        &quiet,
    )
    .unwrap();
    let traj = out.shrink.as_ref().unwrap();
    assert_eq!(traj.len(), 2);
    assert_eq!((traj[0].edges, traj[1].edges), (7, 6));
    assert_eq!((traj[1].moves, traj[1].evaluated), (7, 7));
    assert_eq!(out.evaluations.len(), 1 + 7);
    let Candidate::Cell(chosen) = &out.best.candidate else {
        panic!("a cell")
    };
    let removed: Vec<usize> = (0..7).filter(|e| !chosen.edges.contains(e)).collect();
    assert_eq!(removed.len(), 1, "exactly one edge removed");
    let d = spec.edges[removed[0]];
    assert_eq!(
        traj[1].removed.as_deref(),
        Some(format!("{}-{}:{}", d.from, d.to, d.op.name()).as_str())
    );
    // The kept child has the best score of the step.
    let e0 = traj[0].metrics.energy_mid();
    let scores: Vec<f64> = out.evaluations[1..]
        .iter()
        .map(|e| shrink::score(&e.metrics, e0, 0.05, &eval.context.limits))
        .collect();
    let best = scores.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    assert_eq!(traj[1].score, best);
    assert!(
        scores.iter().any(|&s| s < best),
        "the children are told apart"
    );
    // The front's candidates are every cell trained: the full cell and each child.
    assert_eq!(
        out.pareto.len(),
        out.evaluations.len(),
        "one point per trained cell"
    );
    assert!(out.pareto.iter().any(|p| p.key == traj[1].metrics.key));
    assert!(out.trained_best.is_some());
}

#[test]
fn the_shrink_does_not_depend_on_the_thread_count() {
    let (space, _) = tiny();
    let eval = digits(free());
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(3, Some(4));
    let run = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        let path = dir.path().join(format!("t{threads}.json"));
        pool.install(|| search(&space, &eval, &cfg, &path, None, &quiet).unwrap())
    };
    let (one, two) = (run(1), run(2));
    let keys = |o: &SearchOutcome| -> Vec<String> {
        o.shrink
            .as_ref()
            .unwrap()
            .iter()
            .map(|s| s.key.clone())
            .collect()
    };
    assert_eq!(keys(&one), keys(&two));
    let traj = one.shrink.as_ref().unwrap();
    assert!(
        traj.len() >= 2 && traj.last().unwrap().edges <= 4,
        "{traj:?}"
    );
    assert_eq!(one.evaluations.len(), two.evaluations.len());
    for (a, b) in one.evaluations.iter().zip(&two.evaluations) {
        assert!(a.metrics.same_result(&b.metrics), "{a:?} vs {b:?}");
    }
    assert_eq!(one.trained_best, two.trained_best);
}

#[test]
fn an_interrupted_shrink_resumes_to_the_uninterrupted_result() {
    let (space, _) = tiny();
    let eval = digits(free());
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(3, Some(4));
    let whole = search(
        &space,
        &eval,
        &cfg,
        &dir.path().join("w.json"),
        None,
        &quiet,
    )
    .unwrap();
    assert_eq!(whole.evaluated_now, whole.evaluations.len());
    let keys: HashSet<String> = whole
        .evaluations
        .iter()
        .map(|e| e.metrics.key.clone())
        .collect();
    assert_eq!(keys.len(), whole.evaluations.len(), "no cell trained twice");

    // Killed after the full cell and the first step.
    let state = dir.path().join("r.json");
    let e = search(&space, &eval, &cfg, &state, Some(2), &quiet).unwrap_err();
    assert!(matches!(e, SearchError::Stopped { batches: 2, .. }), "{e}");
    let resumed = search(&space, &eval, &cfg, &state, None, &quiet).unwrap();
    let first_two = 1 + whole.shrink.as_ref().unwrap()[1].evaluated;
    assert_eq!(resumed.evaluated_now, whole.evaluations.len() - first_two);
    assert_eq!(
        resumed.shrink.as_ref().unwrap().len(),
        whole.shrink.as_ref().unwrap().len()
    );
    for (a, b) in resumed
        .shrink
        .as_ref()
        .unwrap()
        .iter()
        .zip(whole.shrink.as_ref().unwrap())
    {
        assert_eq!((&a.key, a.score), (&b.key, b.score));
        assert!(a.metrics.same_result(&b.metrics));
    }
    assert_eq!(resumed.best.candidate, whole.best.candidate);
    assert_eq!(resumed.trained_best, whole.trained_best, "the same weights");
    assert_eq!(resumed.pareto, whole.pareto);
    // Finished: a rerun trains nothing and rebuilds the winner's weights from the state.
    let again = search(&space, &eval, &cfg, &state, None, &quiet).unwrap();
    assert_eq!(again.evaluated_now, 0);
    assert_eq!(again.trained_best, whole.trained_best);
    // Other settings refuse the state.
    let other = config(2, Some(4));
    let e = search(&space, &eval, &other, &state, None, &quiet).unwrap_err();
    assert!(e.to_string().contains("different search"), "{e}");
}

#[test]
fn the_shrink_ends_within_the_limits_or_names_the_limit_it_missed() {
    let (space, spec) = tiny();
    let dir = tempfile::tempdir().unwrap();
    let full_flash = digits(free())
        .check(
            &digits(free())
                .model(&Candidate::Cell(spec.full()), 1)
                .unwrap(),
        )
        .flash_bytes;
    // A flash limit the full cell misses: the shrink goes on until a cell fits.
    let kb = (full_flash as f64 - 200.0) / 1024.0;
    let eval = digits(HwLimits {
        flash_kb: Some(kb),
        ..free()
    });
    let out = search(
        &space,
        &eval,
        &config(2, None),
        &dir.path().join("a.json"),
        None,
        &quiet,
    )
    .unwrap();
    let traj = out.shrink.as_ref().unwrap();
    assert!(!traj[0].metrics.feasible && traj.len() >= 2);
    assert!(out.best.metrics.feasible && out.best.metrics.flash_bytes as f64 <= kb * 1024.0);
    assert_eq!(out.best.metrics.key, traj.last().unwrap().key);

    // A limit no cell meets: a clear error naming it and the best figure reached.
    let eval = digits(HwLimits {
        flash_kb: Some(0.05),
        ..free()
    });
    let e = search(
        &space,
        &eval,
        &config(1, None),
        &dir.path().join("b.json"),
        None,
        &quiet,
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("flash budget 0.05 KB"), "{e}");
    assert!(e.contains("best figure reached"), "{e}");
    assert!(e.contains("cannot lose another edge"), "{e}");
    // Another space kind is refused by name.
    let mlp = Space::load(&spaces_dir().join("mlp.toml")).unwrap();
    let e = search(
        &mlp,
        &eval,
        &config(1, None),
        &dir.path().join("c.json"),
        None,
        &quiet,
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("mlp.toml is not a cell space"), "{e}");
}
