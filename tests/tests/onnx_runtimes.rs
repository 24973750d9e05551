//! Issue #6: the ONNX exports of the digits models — the default MLP and a small trained CNN
//! (conv/maxpool/conv/avgpool/flatten/dense, [`bench_onnx::DIGITS_CNN_SEED`]) — checked by
//! independent runtimes on the whole test split. The float graph, the QDQ graph with float IO
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
