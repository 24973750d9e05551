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

/// A digits-sized DAG cell (8×8×1 images): two nodes, five edges.
const CELL: &str = r#"
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
  { from = 1, to = 2, op = "conv3x3" },
  { from = 1, to = 2, op = "identity" },
  { from = 0, to = 2, op = "identity" },
]
[head]
pool = "max"
"#;

#[test]
fn autoshrink_writes_its_trajectory_and_resumes_after_a_stop() {
    let dir = tempfile::tempdir().unwrap();
    let space = dir.path().join("cell.toml");
    std::fs::write(&space, CELL).unwrap();
    let out = dir.path().join("out");
    let shrink = |extra: &[&str]| {
        let mut args = vec!["--target-edges", "3", "--warmup-epochs", "2"];
        args.extend(extra);
        search_with("autoshrink", "8", &space, &out, &args)
    };
    let (code, _, err) = shrink(&["--max-batches", "2"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("stopped before batch 2"), "{err}");
    let (code, stdout, err) = shrink(&[]);
    assert_eq!(code, 0, "{err}");
    assert!(stdout.contains("autoshrink search: "), "{stdout}");
    let report = json(&out.join("search.json"));
    let steps = report["outcome"]["shrink"].as_array().unwrap();
    // --top-k 2 moves per step, 5 edges down to 3 (a removal may strand another edge).
    assert!(steps.len() >= 2 && steps.len() <= 3, "{steps:?}");
    assert_eq!(steps[0]["edges"], 5);
    assert!(steps.last().unwrap()["edges"].as_u64().unwrap() <= 3);
    assert_eq!(
        report["outcome"]["best"]["metrics"]["key"],
        steps.last().unwrap()["key"]
    );
    let evaluated: u64 = steps.iter().map(|s| s["evaluated"].as_u64().unwrap()).sum();
    assert!(
        stdout.contains(&format!(
            "{} candidates trained now ({evaluated} in all)",
            evaluated - 3
        )),
        "only the steps after the stop are trained: {stdout}"
    );
    // The front's candidates are every trained cell within the limits: the steps among them.
    let pareto = json(&out.join("pareto.json"));
    let points = pareto.as_array().unwrap();
    assert!(points.len() >= steps.len() && points.len() as u64 <= evaluated);
    for step in steps {
        assert!(
            points.iter().any(|p| p["key"] == step["key"]),
            "step {} missing from the front's points",
            step["key"]
        );
    }
    assert!(out.join("pareto.svg").exists() && out.join("model.json").exists());
    let summary = json(&out.join("summary.json"));
    assert!(summary["weight_bytes"].as_u64().unwrap() <= 8 * 1024);
    assert!(summary["arena_bytes"].as_u64().unwrap() <= 1024);
    // A search method that needs a cell space says so.
    let mlp = dir.path().join("tiny.toml");
    std::fs::write(&mlp, SPACE).unwrap();
    let (code, _, err) = search_with("autoshrink", "8", &mlp, &dir.path().join("o2"), &[]);
    assert_eq!(code, 2);
    assert!(err.contains("tiny.toml is not a cell space"), "{err}");
}
