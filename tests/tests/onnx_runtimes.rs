//! Issue #6: the ONNX exports of the benchmark models checked by independent runtimes on a whole
//! test split: the digits MLP and a small trained CNN (conv/maxpool/conv/avgpool/flatten/dense,
//! [`bench_onnx::DIGITS_CNN_SEED`]); the BasicMotions IMU model of the boards; LeNet-5 (Caffe
//! variant) and the sparse LeNet-300-100 from their seed files, with seeded weights pruned to
//! the benchmark densities and the digits as 28×28 images; and the imported PyTorch MNIST CNN
//! pruned to 10 %, which needs the developer's shared data (`../shared/data` or
//! `$BONSAI_SHARED_DATA`) and is skipped where it is missing (CI, users' machines). The float graph, the QDQ graph with float IO
//! and the QDQ graph with int8 IO go through tract and through `onnx.checker` (full check) +
//! onnxruntime (graph optimizations off) in a venv under `target/onnx-venv`, created on first
//! use. Without Python 3 or pip these tests fail, saying what is missing: they are never skipped.
//!
//! The QDQ graphs must agree with the integer reference's top-1 end to end, and every layer,
//! exported alone and fed the reference's int8 input of that layer, must be within one LSB.
//!
//! The logic is shared with `cargo xtask bench onnx` (xtask/src/bench_onnx.rs); the pass
//! criteria are [`bench_onnx::problems`].

use bonsai::ir::Op;
use std::path::PathBuf;
use std::sync::OnceLock;
use xtask::bench_onnx::{self, Case, Variant};
use xtask::flow;

/// The venv's Python, made once: the tests run in parallel and must not both create the venv.
fn python() -> PathBuf {
    static PYTHON: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    PYTHON
        .get_or_init(|| bench_onnx::ensure_venv(&flow::root()).map_err(|e| format!("{e:#}")))
        .clone()
        .unwrap_or_else(|e| panic!("{e}"))
}

/// Exports `case` three ways, runs every test sample through both runtimes and asserts that
/// the criteria hold for every export.
fn check_exports(case: &Case, work: &std::path::Path) {
    let root = flow::root();
    let checks = bench_onnx::validate(&python(), &bench_onnx::script_path(&root), work, case)
        .unwrap_or_else(|e| panic!("{e:#}"));
    let variants: Vec<Variant> = checks.iter().map(|c| c.variant).collect();
    assert_eq!(variants, Variant::ALL);

    let mut problems = Vec::new();
    for c in &checks {
        eprintln!(
            "{} {}: checker_ok {}, onnxruntime {:?}, tract {:?}",
            c.model,
            c.variant.name(),
            c.checker_ok,
            c.onnxruntime,
            c.tract
        );
        // Every test sample went through both runtimes.
        assert_eq!(c.tract.n_samples, case.inputs.len());
        if let Some(m) = &c.onnxruntime {
            assert_eq!(m.n_samples, case.inputs.len());
            assert_eq!(m.n_outputs, case.inputs.len() * case.model.output_len());
        }
        // The metrics the criteria read are present for the variant.
        let m = c.onnxruntime.as_ref().unwrap_or(&c.tract);
        match c.variant {
            Variant::Float => assert!(m.tol_violations.is_some() && m.worse.is_none()),
            _ => assert!(m.worse.is_some() && m.tol_violations.is_none()),
        }
        // Layer by layer for the int8-IO graph: every node of these single-input chains.
        let expected_layers = match c.variant {
            Variant::Int8QdqInt8Io => case.model.nodes.len(),
            _ => 0,
        };
        assert_eq!(c.layers.len(), expected_layers);
        for l in &c.layers {
            eprintln!(
                "  layer {} ({}): checker_ok {}, max LSB onnxruntime {:?} / tract {}, \
                 exact/1 LSB/worse onnxruntime {:?}",
                l.node,
                l.op,
                l.checker_ok,
                l.onnxruntime.as_ref().map(|m| m.max_abs_diff),
                l.tract.max_abs_diff,
                l.onnxruntime
                    .as_ref()
                    .map(|m| (m.exact, m.one_lsb, m.worse)),
            );
            assert_eq!(l.tract.n_samples, case.inputs.len());
            if let Some(m) = &l.onnxruntime {
                assert_eq!(m.n_samples, case.inputs.len());
            }
        }
        problems.extend(bench_onnx::problems(c));
    }
    assert!(
        problems.is_empty(),
        "ONNX export checks failed:\n{}",
        problems.join("\n")
    );
}

#[test]
fn digits_mlp_exports_agree_with_references_in_onnxruntime_and_tract() {
    let dir = tempfile::tempdir().unwrap();
    let opts = bench_onnx::digits_options(&dir.path().join("synth"), false);
    let case = bench_onnx::synthesize_case(&opts).expect("synthesize the default");
    assert!(
        case.inputs.len() >= 300,
        "test split of {}",
        case.inputs.len()
    );
    check_exports(&case, &dir.path().join("onnx"));
}

#[test]
fn digits_cnn_exports_agree_with_references_in_onnxruntime_and_tract() {
    let dir = tempfile::tempdir().unwrap();
    let opts = bench_onnx::digits_cnn_options(&dir.path().join("synth"), false).unwrap();
    let case = bench_onnx::synthesize_case(&opts).expect("synthesize the digits CNN");
    assert!(
        case.inputs.len() >= 300,
        "test split of {}",
        case.inputs.len()
    );
    // The model really is the seed's CNN, so the exports hold Conv, MaxPool, AveragePool and the
    // NCHW → HWC flatten.
    let kinds: Vec<&str> = case.model.nodes.iter().map(|n| n.op.kind()).collect();
    let count = |f: fn(&Op) -> bool| case.model.nodes.iter().filter(|n| f(&n.op)).count();
    assert_eq!(count(|o| matches!(o, Op::Conv2d(_))), 2, "{kinds:?}");
    assert_eq!(count(|o| matches!(o, Op::MaxPool(_))), 1, "{kinds:?}");
    assert_eq!(count(|o| matches!(o, Op::AvgPool(_))), 1, "{kinds:?}");
    assert_eq!(case.model.tensor(case.model.inputs[0]).shape, [8, 8, 1]);
    assert_eq!(case.name, "digits cnn-8x8x1-c8-mp2-c16-ap2-10");
    // Trained, not a random network: the comparison is about outputs that mean something.
    let acc = bonsai::train::float_accuracy(&case.model, &case.inputs);
    eprintln!("{}: float test accuracy {:.2}%", case.name, 100.0 * acc);
    assert!(acc > 0.8, "digits CNN float test accuracy {acc:.3}");
    check_exports(&case, &dir.path().join("onnx"));
}

/// The digits CNN pruned with partial-area convolutions (each conv channel computes a rectangle
/// of its map): its exports carry a `Mul` by the 0/1 mask after each conv, which both runtimes
/// must run like the references.
#[test]
fn digits_cnn_with_partial_areas_exports_agree_with_references_in_onnxruntime_and_tract() {
    let dir = tempfile::tempdir().unwrap();
    let mut opts = bench_onnx::digits_cnn_options(&dir.path().join("synth"), false).unwrap();
    opts.schedule = bonsai::synth::schedule::Schedule {
        method: bonsai::synth::schedule::Method::Prune,
        target_density: 0.5,
        rounds: 2,
        retrain_epochs: 3,
        area_keep: 0.5,
        ..Default::default()
    };
    let case = bench_onnx::synthesize_case(&opts).expect("synthesize the digits CNN");
    let areas = bonsai::synth::area::area_fraction(&case.model);
    assert!(areas <= 0.5 && areas > 0.3, "conv positions kept: {areas}");
    check_exports(&case, &dir.path().join("onnx"));
}

/// Training epochs (before and again after pruning) of the seed-file models on the 28×28
/// digits: enough for outputs that mean something, few enough for CI.
const LENET5_EPOCHS: usize = 2;
const LENET_300_100_EPOCHS: usize = 3;

/// Common checks of a 28×28 digits case: the model is `kinds` in order, pruned to about
/// `density`, trained (well above chance), and its test split is the digits'.
fn check_seeded(case: &bench_onnx::Case, kinds: &[&str], density: f64) {
    let got: Vec<&str> = case.model.nodes.iter().map(|n| n.op.kind()).collect();
    assert_eq!(got, kinds);
    let d = bonsai::synth::prune::density(&case.model);
    let acc = bonsai::train::float_accuracy(&case.model, &case.inputs);
    eprintln!(
        "{}: density {d:.4}, float test accuracy {:.2}%",
        case.name,
        100.0 * acc
    );
    assert!((d - density).abs() < 0.1 * density, "density {d}");
    assert!(acc > 0.8, "float test accuracy {acc:.3}");
    assert!(
        case.inputs.len() >= 300,
        "test split of {}",
        case.inputs.len()
    );
}

#[test]
fn lenet5_sparse_exports_agree_with_references_in_onnxruntime_and_tract() {
    let dir = tempfile::tempdir().unwrap();
    let root = flow::root();
    let sets = bench_onnx::digits_28x28(1).unwrap();
    let case = bench_onnx::seeded_case(
        &bench_onnx::seed_path(&root, "lenet-5"),
        &sets,
        bench_onnx::LENET5_DENSITY,
        LENET5_EPOCHS,
        5,
    )
    .unwrap();
    check_seeded(
        &case,
        &[
            "Conv2d", "MaxPool", "Conv2d", "MaxPool", "Flatten", "Dense", "Dense",
        ],
        bench_onnx::LENET5_DENSITY,
    );
    assert_eq!(case.model.stats().params_total, 431_080);
    check_exports(&case, dir.path());
}

#[test]
fn lenet_300_100_sparse_exports_agree_with_references_in_onnxruntime_and_tract() {
    let dir = tempfile::tempdir().unwrap();
    let root = flow::root();
    let sets = bench_onnx::digits_28x28(1).unwrap();
    let case = bench_onnx::seeded_case(
        &bench_onnx::seed_path(&root, "lenet-300-100"),
        &sets,
        bench_onnx::LENET_300_100_DENSITY,
        LENET_300_100_EPOCHS,
        3,
    )
    .unwrap();
    check_seeded(
        &case,
        &["Dense", "Dense", "Dense"],
        bench_onnx::LENET_300_100_DENSITY,
    );
    assert_eq!(case.model.stats().params_total, 266_610);
    check_exports(&case, dir.path());
}

#[test]
fn basicmotions_exports_agree_with_references_in_onnxruntime_and_tract() {
    let dir = tempfile::tempdir().unwrap();
    let opts = xtask::bench_boards::imu_model_options(&dir.path().join("synth"));
    let case = bench_onnx::synthesize_case(&opts).expect("synthesize the BasicMotions model");
    // The official test file: 40 windows of 4 activities.
    assert_eq!(case.inputs.len(), 40);
    assert_eq!(case.model.output_len(), 4);
    check_exports(&case, &dir.path().join("onnx"));
}

/// `$BONSAI_SHARED_DATA/rel`, else `<workspace>/../shared/data/rel`, if it exists: the
/// developer's data beside the checkout, never part of the project.
fn shared_data(rel: &str) -> Option<PathBuf> {
    let base = std::env::var_os("BONSAI_SHARED_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| flow::root().join("../shared/data"));
    let p = base.join(rel);
    p.exists().then_some(p)
}

/// MNIST test images the imported CNN is checked on (the bench runs all 10,000).
const IMPORTED_TEST_IMAGES: usize = 1000;

#[test]
fn imported_pytorch_cnn_exports_agree_with_references_in_onnxruntime_and_tract() {
    let (Some(onnx), Some(mnist)) = (
        shared_data("onnx/pytorch-mnist-cnn.onnx"),
        shared_data("mnist"),
    ) else {
        // A developer check: the PyTorch model and MNIST are not in the repository, so CI and
        // users' checkouts skip it (`cargo xtask bench onnx --import` is where it is recorded).
        eprintln!(
            "skipped: onnx/pytorch-mnist-cnn.onnx or mnist/ not found under $BONSAI_SHARED_DATA \
             or ../shared/data (developer data, not part of the project)"
        );
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let case = bench_onnx::imported_case(&onnx, &mnist, 0.1, Some(IMPORTED_TEST_IMAGES)).unwrap();
    let kinds: Vec<&str> = case.model.nodes.iter().map(|n| n.op.kind()).collect();
    assert_eq!(
        kinds,
        ["Conv2d", "MaxPool", "Conv2d", "MaxPool", "Flatten", "Dense", "Dense"]
    );
    assert_eq!(case.model.stats().params_total, 421_642);
    assert_eq!(case.inputs.len(), IMPORTED_TEST_IMAGES);
    let d = bonsai::synth::prune::density(&case.model);
    assert!((d - 0.1).abs() < 0.01, "density {d}");
    check_exports(&case, dir.path());
}
