//! `cargo xtask bench synth`: grow-and-prune against its baselines on MNIST LeNet-300-100 (issue
//! #3). Every method runs with the same seed architecture, epochs and retraining budget; each run
//! records its whole trajectory (`--curve`), so one run per seed gives a full error-vs-nonzeros
//! curve. The shipped model of each run is chosen on the validation split; the test split only
//! gives the reported errors.

use crate::bench::{git_commit, write_section};
use anyhow::{Context, Result};
use bonsai::pipeline::{synthesize, SynthArgs};
use bonsai::report::{error_vs_nonzeros_svg, Curve};
use clap::Parser;
use std::path::Path;
use std::time::Instant;

/// Lets the bench build `SynthArgs` exactly as the `bonsai synthesize` command line does.
#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    args: SynthArgs,
}

/// The schedule options of each method (same epochs and retraining budget for all).
fn method_args(method: &str) -> Vec<&'static str> {
    let common = ["--epochs", "15", "--rounds", "8", "--retrain-epochs", "8"];
    let mut v: Vec<&'static str> = common.to_vec();
    match method {
        "dense" => v.extend(["--method", "dense"]),
        "prune" => v.extend(["--method", "prune", "--target-density", "0.015"]),
        "nest" => v.extend([
            "--method",
            "nest",
            "--target-density",
            "0.015",
            "--seed-density",
            "0.3",
            "--grow-fraction",
            "0.2",
            "--grow-rounds",
            "2",
        ]),
        _ => unreachable!("methods are checked by the caller"),
    }
    v
}

#[derive(serde::Serialize)]
struct RunResult {
    seed: u64,
    test_error: f64,
    val_error: f64,
    params_nonzero: usize,
    macs: usize,
    wall_seconds: f64,
    /// (int8 nonzero parameters, int8 test error %) after every stage of the run.
    curve: Vec<(usize, f64)>,
}

#[derive(serde::Serialize)]
struct MethodResult {
    dataset: String,
    seed_arch: String,
    method: String,
    seeds: Vec<u64>,
    /// Mean int8 test error (%) of the shipped models.
    test_error: f64,
    test_error_runs: Vec<f64>,
    val_error: f64,
    params_dense: usize,
    params_nonzero: usize,
    /// FLOPs = 2 x multiply-accumulates, one inference.
    flops_dense: usize,
    flops_nonzero: usize,
    wall_seconds: f64,
    runs: Vec<RunResult>,
    git_commit: String,
    command: String,
}

pub fn bench(
    root: &Path,
    mnist: &Path,
    seeds: u64,
    methods: &[String],
    command: &str,
) -> Result<()> {
    for m in methods {
        anyhow::ensure!(
            ["dense", "prune", "nest"].contains(&m.as_str()),
            "unknown method {m:?}: use dense, prune or nest"
        );
    }
    let seed_file = root.join("models/seeds/lenet-300-100.toml");
    let data = format!("mnist:{}", mnist.display());
    let work = root.join("target/bench/synth");
    let commit = git_commit(root);
    // The dense seed's size, the reference of every reduction factor.
    let seed_model = bonsai::synth::seed_file::build(
        &bonsai::synth::seed_file::read(&seed_file)?,
        &seed_file.display().to_string(),
        &bonsai::synth::seed_file::DataShape {
            sample_shape: vec![28, 28, 1],
            class_names: (0..10).map(|d| d.to_string()).collect(),
            preprocess: bonsai::ir::Preprocess::identity(),
        },
        1,
    )?;
    let dense_stats = seed_model.stats();
    let mut curves = Vec::new();
    let mut rows = Vec::new();
    for method in methods {
        let mut runs = Vec::new();
        for seed in 1..=seeds {
            let out = work.join(format!("{method}-{seed}"));
            let seed_s = seed.to_string();
            let mut argv = vec![
                "synthesize",
                "--seed",
                seed_file.to_str().context("non-UTF-8 path")?,
                "--data",
                &data,
                "--rng-seed",
                &seed_s,
                "--curve",
                "--quiet",
                "--out",
                out.to_str().context("non-UTF-8 path")?,
            ];
            argv.extend(method_args(method));
            let opts = Cli::try_parse_from(&argv)?.args.to_options()?;
            let started = Instant::now();
            let s = synthesize(&opts).with_context(|| format!("{method}, seed {seed}"))?;
            let wall = started.elapsed().as_secs_f64();
            eprintln!(
                "{method} seed {seed}: int8 test error {:.2}%, {} nonzero params, {wall:.0} s",
                100.0 * (1.0 - s.int8_test_accuracy),
                s.params_nonzero
            );
            let curve: Vec<(usize, f64)> = s
                .trajectory
                .iter()
                .filter_map(|p| {
                    Some((
                        p.int8_params_nonzero?,
                        100.0 * (1.0 - p.int8_test_accuracy?),
                    ))
                })
                .collect();
            runs.push(RunResult {
                seed,
                test_error: 100.0 * (1.0 - s.int8_test_accuracy),
                val_error: 100.0 * (1.0 - s.val_accuracy),
                params_nonzero: s.params_nonzero,
                macs: s.macs,
                wall_seconds: wall,
                curve,
            });
        }
        let n = runs.len() as f64;
        let mean = |f: &dyn Fn(&RunResult) -> f64| runs.iter().map(f).sum::<f64>() / n;
        let result = MethodResult {
            dataset: "mnist (10k train sample, official test)".into(),
            seed_arch: "lenet-300-100".into(),
            method: method.clone(),
            seeds: (1..=seeds).collect(),
            test_error: mean(&|r| r.test_error),
            test_error_runs: runs.iter().map(|r| r.test_error).collect(),
            val_error: mean(&|r| r.val_error),
            params_dense: dense_stats.params_total,
            params_nonzero: mean(&|r| r.params_nonzero as f64).round() as usize,
            flops_dense: 2 * dense_stats.macs_dense,
            flops_nonzero: 2 * mean(&|r| r.macs as f64).round() as usize,
            wall_seconds: mean(&|r| r.wall_seconds),
            runs,
            git_commit: commit.clone(),
            command: command.into(),
        };
        // The curve: the mean over seeds at each stage of the schedule (stages line up, the
        // schedule being the same).
        let stages = result.runs.iter().map(|r| r.curve.len()).min().unwrap_or(0);
        let points: Vec<(f64, f64)> = (0..stages)
            .map(|k| {
                let x = result.runs.iter().map(|r| r.curve[k].0 as f64).sum::<f64>() / n;
                let y = result.runs.iter().map(|r| r.curve[k].1).sum::<f64>() / n;
                (x, y)
            })
            .collect();
        curves.push(Curve {
            name: method.clone(),
            points,
        });
        let spread = result
            .test_error_runs
            .iter()
            .fold((f64::MAX, f64::MIN), |(lo, hi), &e| (lo.min(e), hi.max(e)));
        rows.push(format!(
            "| {method} | {} | {:.2} | {:.2}–{:.2} | {:.2} | {} | {:.1}x | {} | {:.0} |",
            seeds,
            result.test_error,
            spread.0,
            spread.1,
            result.val_error,
            result.params_nonzero,
            result.params_dense as f64 / result.params_nonzero.max(1) as f64,
            result.flops_nonzero,
            result.wall_seconds
        ));
        let path = root.join(format!(
            "bench/results/synth-mnist-lenet-300-100-{method}.json"
        ));
        bonsai::util::write_atomic(&path, serde_json::to_string_pretty(&result)?.as_bytes())
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    let svg = root.join("bench/results/synth-mnist-lenet-300-100.svg");
    error_vs_nonzeros_svg(
        &svg,
        "MNIST LeNet-300-100: int8 test error vs nonzero parameters",
        &curves,
    )?;
    let body = format!(
        "## Grow-and-prune synthesis: MNIST LeNet-300-100\n\n\
         Command: `{command}` (commit {commit}). 10k-image MNIST training sample (9k train / 1k \
         validation), official 10k test set; every method trains 15 epochs first (NeST from a 30% \
         random sparse seed with two growth steps), then 8 prune rounds of 8 retraining epochs to a \
         1.5% target; the shipped model of each run is chosen on validation. Nonzeros are int8 \
         weights + biases of the quantized model; errors are int8 test errors. Per-method results: \
         `bench/results/synth-mnist-lenet-300-100-<method>.json`.\n\n\
         | method | seeds | test error % (mean) | spread | val error % | nonzero params | reduction | FLOPs | s per run |\n\
         |---|---:|---:|---|---:|---:|---:|---:|---:|\n{}\n\n\
         ![error vs nonzeros](bench/results/synth-mnist-lenet-300-100.svg)\n\n",
        rows.join("\n")
    );
    write_section(root, "synth", &body)
}
