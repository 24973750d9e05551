//! Issue #6: the ONNX exports of the default digits model, checked by independent runtimes on the
//! whole test split. The float graph, the QDQ graph with float IO and the QDQ graph with int8 IO
//! go through tract and through `onnx.checker` (full check) + onnxruntime (graph optimizations
//! off) in a venv under `target/onnx-venv`, created on first use. Without Python 3 or pip this
//! test fails, saying what is missing: it is never skipped.
//!
//! The logic is shared with `cargo xtask bench onnx` (xtask/src/bench_onnx.rs); the pass
//! criteria are [`bench_onnx::problems`].

use xtask::bench_onnx::{self, Variant};
use xtask::flow;

#[test]
fn digits_exports_agree_with_references_in_onnxruntime_and_tract() {
    let root = flow::root();
    let python = bench_onnx::ensure_venv(&root).unwrap_or_else(|e| panic!("{e:#}"));

    let dir = tempfile::tempdir().unwrap();
    let opts = bench_onnx::digits_options(&dir.path().join("synth"), false);
    let case = bench_onnx::synthesize_case(&opts).expect("synthesize the default");
    assert!(
        case.inputs.len() >= 300,
        "test split of {}",
        case.inputs.len()
    );

    let checks = bench_onnx::validate(
        &python,
        &bench_onnx::script_path(&root),
        &dir.path().join("onnx"),
        &case,
    )
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
        problems.extend(bench_onnx::problems(c));
    }
    assert!(
        problems.is_empty(),
        "ONNX export checks failed:\n{}",
        problems.join("\n")
    );
}
