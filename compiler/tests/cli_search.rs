//! `bonsai search` end to end on the embedded digits: the outputs of a search job, resuming
//! after a stop, and bad input (one line naming the file and the problem, exit code 2).

use std::path::Path;
use std::process::Command;

fn bonsai(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_bonsai"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

const SPACE: &str = "name = 'tiny'\nkind = 'mlp'\ndepth = [1, 2]\nwidth = [8, 16, 24, 32, 48]\n";

/// A small search under a `flash_kb` flash / 1 KB RAM limit; extra arguments appended.
fn search_with(
    method: &str,
    flash_kb: &str,
    space: &Path,
    out: &Path,
    extra: &[&str],
) -> (i32, String, String) {
    let mut args = vec![
        "search",
        "--quiet",
        "--method",
        method,
        "--space",
        space.to_str().unwrap(),
        "--data",
        "digits",
        "--flash-budget-kb",
        flash_kb,
        "--ram-budget-kb",
        "1",
        "--heldout",
        "4",
        "--init",
        "4",
        "--iterations",
        "2",
        "--top-k",
        "2",
        "--population",
        "8",
        "--generations",
        "2",
        "--proxy-epochs",
        "2",
        "--epochs",
        "4",
        "--rounds",
        "1",
        "--retrain-epochs",
        "1",
        "--out",
        out.to_str().unwrap(),
    ];
    args.extend(extra);
    bonsai(&args)
}

/// STEERAGE under 3 KB of flash.
fn search(space: &Path, out: &Path, extra: &[&str]) -> (i32, String, String) {
    search_with("steerage", "3", space, out, extra)
}

fn json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn search_writes_a_model_within_the_limits_and_resumes_after_a_stop() {
    let dir = tempfile::tempdir().unwrap();
    let space = dir.path().join("tiny.toml");
    std::fs::write(&space, SPACE).unwrap();
    let out = dir.path().join("out");
    let (code, stdout, err) = search(&space, &out, &[]);
    assert_eq!(code, 0, "{err}");
    assert!(
        stdout.contains("steerage search: 12 candidates trained now"),
        "{stdout}"
    );
    for f in [
        "model.json",
        "model/Cargo.toml",
        "vectors.bin",
        "summary.json",
        "search.json",
        "search-state.json",
        "pareto.json",
        "pareto.svg",
    ] {
        assert!(out.join(f).exists(), "{f} missing");
    }
    let summary = json(&out.join("summary.json"));
    assert!(summary["weight_bytes"].as_u64().unwrap() <= 3 * 1024);
    assert!(summary["arena_bytes"].as_u64().unwrap() <= 1024);
    assert_eq!(summary["method"], "Prune");
    let report = json(&out.join("search.json"));
    let best = report["outcome"]["best"]["candidate"].clone();
    assert_eq!(
        summary["seed_arch"],
        report["outcome"]["best"]["metrics"]["key"]
    );
    let pareto = json(&out.join("pareto.json"));
    assert_eq!(
        pareto.as_array().unwrap().len(),
        8,
        "every feasible evaluation of the search proper"
    );

    // Stopped after the held-out batch, then rerun: the same winner, the rest trained.
    let out2 = dir.path().join("out2");
    let (code, _, err) = search(&space, &out2, &["--max-batches", "1"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("stopped before batch 1"), "{err}");
    assert!(out2.join("search-state.json").exists() && !out2.join("model.json").exists());
    let (code, stdout, err) = search(&space, &out2, &[]);
    assert_eq!(code, 0, "{err}");
    assert!(
        stdout.contains("8 candidates trained now (12 in all)"),
        "{stdout}"
    );
    assert_eq!(
        json(&out2.join("search.json"))["outcome"]["best"]["candidate"],
        best
    );
}

#[test]
fn bad_search_input_is_one_line_naming_the_problem() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "name = 'x'\nkind = 'mlp'\ndepth = [1]\n").unwrap();
    let out = dir.path().join("out");
    let (code, _, err) = search(&bad, &out, &[]);
    assert_eq!(code, 2, "{err}");
    assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
    assert!(
        err.contains("bad.toml") && err.contains("missing `width`"),
        "{err}"
    );
    assert!(!out.exists(), "no output directory may be left behind");

    let space = dir.path().join("tiny.toml");
    std::fs::write(&space, SPACE).unwrap();
    let (code, _, err) = search_with("grid", "3", &space, &out, &[]);
    assert_eq!(code, 2);
    assert!(err.contains("unknown search method \"grid\""), "{err}");
    // Limits nothing fits: a clear error, nothing but the state written.
    let (code, _, err) = search_with("random", "0.1", &space, &out, &[]);
    assert_eq!(code, 2);
    assert!(
        err.contains("no candidate of the space fits the limits"),
        "{err}"
    );
    assert!(!out.join("model.json").exists());
}
