//! `cargo xtask bench synth`: grow-and-prune against its baselines on MNIST (issue #3), for the
//! LeNet-300-100 and LeNet-5 seeds. Every method runs with the same seed architecture, training
//! recipe and epoch budget; each run records its whole trajectory (`--curve`), so one run per
//! seed gives an error-vs-nonzeros curve. The dense baseline's curve is the seed at smaller
//! widths. The shipped model of each run is chosen on the validation split; the test split only
//! gives the reported errors.

use crate::bench::{git_commit, write_section};
use anyhow::{Context, Result};
use bonsai::pipeline::{synthesize, Summary, SynthArgs};
use bonsai::report::{error_vs_nonzeros_svg, Curve};
use clap::Parser;
use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Instant;

/// Lets the bench build `SynthArgs` exactly as the `bonsai synthesize` command line does.
#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    args: SynthArgs,
}

/// The training recipe and schedule of one seed architecture: what every method shares.
struct Recipe {
    arch: &'static str,
    /// First training phase (dense: see `dense_epochs`).
    epochs: usize,
    rounds: usize,
    retrain_epochs: usize,
    final_epochs: usize,
    /// Prune target, as a fraction of the seed's weights: chosen so that the lowered model,
    /// biases included, lands just under 1/50 of the dense parameter count.
    target_density: f64,
    weight_decay: f64,
    /// Label smoothing of every method's training loss (0: off).
    label_smoothing: f64,
    /// Stop pruning once validation accuracy falls this many points below its pre-pruning best
    /// (the last round within it is shipped): for datasets without a target density.
    max_val_drop: Option<f64>,
    /// Hidden-width multipliers of the dense baseline's curve (1 first: the table's row).
    dense_widths: &'static [f64],
    /// `nest-area`: share of each conv layer's output positions NeST's partial-area
    /// convolution keeps (None: the seed has no convolutions).
    partial_area: Option<f64>,
    /// `dr-scann`: the input reductions DR+SCANN chooses from on validation (empty: not offered).
    reductions: &'static [&'static str],
}

impl Recipe {
    fn for_arch(arch: &str) -> Result<Recipe> {
        Ok(match arch {
            // 16 rounds of 4 epochs, not 8 of 8: smaller steps near the target. Compared on a
            // development split (7k of the training sample to train, the other 3k to score;
            // 3 seeds), never on the test set: 8x8 4.67%, 16x4 4.16%, 32x2 4.51%, 21x4 without
            // fine-tuning 4.46%.
            "lenet-300-100" => Recipe {
                arch: "lenet-300-100",
                epochs: 15,
                rounds: 16,
                retrain_epochs: 4,
                final_epochs: 20,
                // The bar is 50x fewer nonzeros (5,332 of 266,610, biases included): 1.85% of
                // the weights plus the biases that survive is about 52x. 1.7% was chosen when
                // the per-layer rule overshot its target; hit exactly, it gave 57x and cost NeST
                // 0.3 points (4.11%, over the error bar).
                target_density: 0.0185,
                weight_decay: 3e-4,
                // Even at 1.85% density the net fits its 9k training images to a loss near
                // zero, which leaves growth and regrowth a gradient of a few hard samples.
                // Smoothing 0.1 on the development split (10 seeds): NeST 4.64% -> 4.13%,
                // prune-only 4.32% -> 4.11%; dense 3.81% -> 3.85% (6 seeds). All methods get it.
                label_smoothing: 0.1,
                max_val_drop: None,
                dense_widths: &[1.0, 0.5, 0.25, 0.1, 0.05, 0.025],
                partial_area: None,
                // A PCA layer in front costs more nonzeros than it saves at this size: prune-only
                // at 1% (about 2.9k nonzeros; development split, seeds 1-3) behind pca:32 / 64 /
                // 100 gave 5.32 / 5.12 / 5.22% against 4.41% on the raw pixels. And target
                // densities would refer to the reduced net, so its sizes would not line up.
                reductions: &[],
            },
            // 5.5 CPU-s an epoch on 10k images: 59 epochs keep a run near 6 minutes on one
            // core (the 3-seed bench, two runs at a time, takes about 45 minutes). 38 epochs
            // (6 + 6x4 + 8) left NeST 0.3 points above dense; the longer retraining closes most
            // of that. 1.75% of the weights plus biases and NeST's grown maps stays under 1/50.
            "lenet-5" => Recipe {
                arch: "lenet-5",
                epochs: 8,
                rounds: 7,
                retrain_epochs: 5,
                final_epochs: 16,
                target_density: 0.0175,
                weight_decay: 3e-4,
                // Smoothing 0.1 as LeNet-300-100 (its development-split study is there): a
                // LeNet-5 run takes 10-20 minutes, so the check was the bench runs' own
                // validation split against the unsmoothed runs of the same seeds (3): dense
                // 1.77% -> 1.30%, prune-only 2.00% -> 1.53%, NeST 2.20% -> 1.73%.
                label_smoothing: 0.1,
                max_val_drop: None,
                dense_widths: &[1.0, 0.5, 0.25, 0.125, 0.0625],
                // Chosen on the development split (7k train+val / 3k test, 3 seeds, prune-only
                // at 1.75%): keeping 0.7 / 0.5 / 0.3 of the positions gave 1.74 / 1.88 / 2.18%
                // against 1.70% without; NeST with 0.5 1.82% against 1.76%. Down to 0.5 the
                // cost is within the 3k-image test's noise; at 0.3 it is clear in every seed.
                partial_area: Some(0.5),
                reductions: &[],
            },
            // UCI tables (pendigits, letter): a 64-32 MLP on 16 features; 2-9 s a run.
            "tabular-mlp" => Recipe {
                arch: "tabular-mlp",
                // The stop rule measures drops from the net as pruning starts, so that net must
                // be trained near convergence. Mean validation error of the shipped models
                // (3 seeds, commit 61b2ec3) for a first phase of 15 / 30 / 45 / 60 / 90 epochs,
                // letter: prune-only 8.23 / 5.90 / 5.06 / 4.94 / 4.90%, NeST 12.77 / 9.96 /
                // 8.67 / 8.08 / 7.46%; pendigits: prune-only 0.93 / 0.85 / 0.53 / 0.71 / 0.67%.
                // Prune-only levels off at 60 on letter; longer only makes NeST keep more.
                epochs: 60,
                rounds: 8,
                retrain_epochs: 8,
                final_epochs: 20,
                target_density: 0.05,
                weight_decay: 3e-4,
                // Smoothing 0.1 (3 seeds each, at 3906573) lowered every method's validation
                // error on pendigits (e.g. NeST 1.11% -> 0.85%) but raised it on letter's 26
                // classes (dense 3.85% -> 4.40%, NeST 12.77% -> 13.67%): not adopted.
                label_smoothing: 0.0,
                max_val_drop: Some(0.5),
                dense_widths: &[1.0, 0.5, 0.25, 0.125, 0.0625],
                partial_area: None,
                // Half and three quarters of the 16 features. pca:4 lost 3-20 points of
                // validation accuracy in every seed on both UCI sets, so it is not offered.
                reductions: &["pca:8", "pca:12", "rp:8", "rp:12"],
            },
            other => anyhow::bail!(
                "unknown seed architecture {other:?}: use lenet-300-100, lenet-5 or tabular-mlp"
            ),
        })
    }

    /// NeST's split of the first phase: (epochs on the sparse seed, epochs after each of its
    /// two growth steps).
    fn nest_growth_epochs(&self) -> (usize, usize) {
        let grow = (self.epochs / 4).max(1);
        (self.epochs.saturating_sub(2 * grow).max(1), grow)
    }

    /// Epochs every method may spend: first phase + pruning rounds + fine-tuning.
    fn budget(&self) -> usize {
        self.epochs + self.rounds * self.retrain_epochs + self.final_epochs
    }

    /// Command-line options of `method` (dense at `width`; the others pruned to `density`).
    fn args(&self, method: &str, width: f64, density: f64) -> Vec<String> {
        let mut v: Vec<String> = vec![
            "--lr-schedule".into(),
            "cosine".into(),
            "--weight-decay".into(),
            self.weight_decay.to_string(),
            "--method".into(),
            // nest-area is NeST with one more option, dr-scann SCANN C with one (`--reduce`,
            // added per run).
            match method {
                "nest-area" => "nest",
                "dr-scann" => "scann-c",
                other => other,
            }
            .into(),
        ];
        let mut push = |k: &str, x: String| {
            v.push(k.into());
            v.push(x);
        };
        if self.label_smoothing > 0.0 {
            push("--label-smoothing", self.label_smoothing.to_string());
        }
        if method == "dense" {
            // The whole budget in one cosine phase, not cut short by early stopping: the dense
            // baseline gets every epoch the pruning methods get.
            push("--epochs", self.budget().to_string());
            push("--patience", self.budget().to_string());
            push("--seed-width", width.to_string());
            return v;
        }
        let nest = method == "nest" || method == "nest-area";
        // Methods with a growth phase split the first phase's epochs as NeST does.
        let grows = nest || method == "scann-a" || method == "scann-b";
        let first = if grows {
            self.nest_growth_epochs().0
        } else {
            self.epochs
        };
        push("--epochs", first.to_string());
        push("--rounds", self.rounds.to_string());
        push("--retrain-epochs", self.retrain_epochs.to_string());
        push("--final-epochs", self.final_epochs.to_string());
        push("--target-density", density.to_string());
        if let Some(drop) = self.max_val_drop {
            push("--max-val-drop", drop.to_string());
        }
        // The growth phase, as NeST has it: a sparse random seed (SCANN A: the dense seed at a
        // quarter of its widths, `bonsai`'s default for scann-a), then growth steps of neurons
        // by the bridging gradient and of the dormant connections by |dL/dw|. The
        // seed's training and the growth steps share the first phase's epochs, so the growing
        // methods spend what prune-only does.
        if grows {
            push("--grow-epochs", self.nest_growth_epochs().1.to_string());
            if method != "scann-a" {
                push("--seed-density", SEED_DENSITY.to_string());
            }
            push("--grow-fraction", GROW_FRACTION.to_string());
            push("--grow-rounds", GROW_ROUNDS.to_string());
        }
        match method {
            // SCANN A and B prune by magnitude without regrowth (on the cross-layer DAG).
            "prune" | "scann-a" | "scann-b" => {}
            // NeST's pruning rounds prune a share past each goal and regrow that share by gradient.
            _ if nest => {
                push("--regrow-fraction", REGROW_FRACTION.to_string());
                // NeST's partial-area convolution: it removes work (MACs), not weights.
                if method == "nest-area" {
                    let keep = self.partial_area.expect("checked by the caller");
                    push("--partial-area", keep.to_string());
                }
            }
            // SCANN C: the dense DAG (cross-layer connections) pruned with regrowth.
            "scann-c" | "dr-scann" => push("--regrow-fraction", REGROW_FRACTION.to_string()),
            _ => unreachable!("methods are checked by the caller"),
        }
        v
    }
}

#[derive(serde::Serialize, serde::Deserialize)]
struct RunResult {
    seed: u64,
    test_error: f64,
    val_error: f64,
    params_nonzero: usize,
    macs: usize,
    /// Estimated energy per inference on the synthesis's device, µJ (min, max); missing from
    /// results written before it was recorded.
    #[serde(default)]
    energy_uj: Option<(f64, f64)>,
    wall_seconds: f64,
    /// Missing from results written before it was recorded.
    #[serde(default)]
    git_commit: String,
    /// dr-scann: the input reduction chosen on validation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    reduce: Option<String>,
    /// (int8 nonzero parameters, int8 test error %) after every stage of the run (dense: one
    /// point per width, width 1 first).
    curve: Vec<(usize, f64)>,
}

#[derive(serde::Serialize, serde::Deserialize)]
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
    /// Device of `energy_uj` (`bonsai devices`).
    #[serde(default)]
    device: Option<String>,
    /// Mean over the runs of their estimated energy per inference, µJ (min, max).
    #[serde(default)]
    energy_uj: Option<(f64, f64)>,
    /// Mean wall time of one synthesis (dense: the full-width run).
    wall_seconds: f64,
    epoch_budget: usize,
    jobs: usize,
    runs: Vec<RunResult>,
    /// The curve as separate full-budget runs per target density (`--curve-densities`; empty:
    /// the curve is each run's own trajectory, in `runs`).
    #[serde(default)]
    density_curve: Vec<DensityPoint>,
    git_commit: String,
    command: String,
}

/// One point of a method's error-vs-nonzeros curve made of separate runs, one per target
/// density, each with the whole epoch budget.
#[derive(serde::Serialize, serde::Deserialize)]
struct DensityPoint {
    target_density: f64,
    seeds: Vec<u64>,
    /// Means over the seeds.
    params_nonzero: f64,
    test_error: f64,
    /// Each seed's int8 test error, in the order of `seeds` (empty in results written before
    /// they were kept).
    #[serde(default)]
    test_error_runs: Vec<f64>,
}

/// One synthesis to run.
struct Job {
    method: String,
    seed: u64,
    width: f64,
    /// Target density of a pruning method's curve run (None: the recipe's target).
    density: Option<f64>,
    /// dr-scann: the candidate input reduction of this run.
    reduce: Option<&'static str>,
}

struct Done {
    summary: Summary,
    wall: f64,
    /// Commit of the build that ran it.
    commit: String,
}

/// What `bench-run.json` in a run's directory records.
#[derive(serde::Serialize, serde::Deserialize)]
struct RunMarker {
    argv: Vec<String>,
    git_commit: String,
    /// The run's wall time as the bench measured it (absent in markers written before it was
    /// kept, where the synthesis's own, slightly shorter, figure stands in).
    #[serde(default)]
    wall_seconds: Option<f64>,
}

pub struct Options<'a> {
    /// Dataset name in file names and titles, e.g. `mnist`, `pendigits`.
    pub dataset: &'a str,
    /// The `--data` spec of `bonsai synthesize`, e.g. `mnist:DIR`.
    pub data: &'a str,
    pub arch: &'a str,
    pub seeds: u64,
    pub methods: &'a [String],
    /// Syntheses run at once (burn's CPU backend trains on about one core).
    pub jobs: usize,
    /// Reuse runs already done with the same command line (whatever commit made them).
    pub resume: bool,
    /// Target densities of the pruning methods' curves, each a separate run with the whole
    /// budget (empty: the curve is each run's own trajectory).
    pub curve_densities: &'a [f64],
    /// Seeds (1..=N) of those curve runs.
    pub curve_seeds: u64,
    pub command: &'a str,
}

/// The growth phase and regrowth of the recipes, shared by the command lines and the texts that
/// describe them.
const SEED_DENSITY: f64 = 0.3;
const GROW_FRACTION: f64 = 0.2;
const GROW_ROUNDS: usize = 2;
const REGROW_FRACTION: f64 = 0.1;

/// `x` (a fraction) in percent, as the texts write it.
fn pct(x: f64) -> String {
    format!("{:.0}%", x * 100.0)
}

const METHODS: [&str; 8] = [
    "dense",
    "prune",
    "nest",
    "nest-area",
    "scann-a",
    "scann-b",
    "scann-c",
    "dr-scann",
];

/// Whether `method` has an error-vs-nonzeros curve. nest-area has not: partial areas remove
/// MACs, not weights, so its curve would repeat NeST's; it is a row of the table.
fn has_curve(method: &str) -> bool {
    method != "nest-area"
}

pub fn bench(root: &Path, o: &Options) -> Result<()> {
    for m in o.methods {
        anyhow::ensure!(
            METHODS.contains(&m.as_str()),
            "unknown method {m:?}: use {}",
            METHODS.join(", ")
        );
    }
    let recipe = Recipe::for_arch(o.arch)?;
    anyhow::ensure!(
        recipe.partial_area.is_some() || !o.methods.iter().any(|m| m == "nest-area"),
        "nest-area (NeST with partial-area convolution) needs a seed with convolutions; {} has none",
        recipe.arch
    );
    if o.methods.iter().any(|m| m == "dr-scann") {
        anyhow::ensure!(
            !recipe.reductions.is_empty(),
            "dr-scann (SCANN behind an input reduction) is benched on the tabular seed only: on \
             {}'s MNIST pixels a PCA layer costs more nonzeros than it saves",
            recipe.arch
        );
        anyhow::ensure!(
            o.curve_densities.is_empty(),
            "dr-scann has no curve runs: its target densities refer to the reduced net"
        );
    }
    for &d in o.curve_densities {
        anyhow::ensure!(
            d > 0.0 && d < 1.0 && d != recipe.target_density,
            "curve density {d}: use fractions between 0 and 1 other than the table's target {}",
            recipe.target_density
        );
    }
    let seed_file = root.join(format!("models/seeds/{}.toml", recipe.arch));
    let data = o.data.to_string();
    let work = root.join("target/bench/synth");
    let commit = git_commit(root);
    // The dense seed on this data's shape: the reference of every reduction factor.
    let spec: bonsai::data::DataSpec = data.parse()?;
    let splits = bonsai::data::load(&spec, 1)?;
    let seed_model = bonsai::synth::seed_file::build(
        &bonsai::synth::seed_file::read(&seed_file)?,
        &seed_file.display().to_string(),
        &bonsai::synth::seed_file::DataShape {
            sample_shape: splits.train.sample_shape.clone(),
            class_names: splits.train.class_names.clone(),
            preprocess: bonsai::ir::Preprocess::identity(),
        },
        1,
    )?;
    let dense_stats = seed_model.stats();

    // Seed by seed, so the first results cover every method.
    let mut jobs = VecDeque::new();
    for seed in 1..=o.seeds {
        for method in o.methods {
            let widths: &[f64] = if method == "dense" {
                recipe.dense_widths
            } else {
                &[1.0]
            };
            // dr-scann: one run per candidate reduction; validation picks one per seed.
            let reductions: Vec<Option<&'static str>> = if method == "dr-scann" {
                recipe.reductions.iter().map(|&r| Some(r)).collect()
            } else {
                vec![None]
            };
            for &width in widths {
                for &reduce in &reductions {
                    jobs.push_back(Job {
                        method: method.clone(),
                        seed,
                        width,
                        density: None,
                        reduce,
                    });
                }
            }
        }
    }
    // The curves' extra runs after every table run, so the table fills first.
    for seed in 1..=o.curve_seeds.min(o.seeds) {
        for method in o.methods.iter().filter(|m| *m != "dense" && has_curve(m)) {
            for &d in o.curve_densities {
                jobs.push_back(Job {
                    method: method.clone(),
                    seed,
                    width: 1.0,
                    density: Some(d),
                    reduce: None,
                });
            }
        }
    }
    let n_jobs = jobs.len();
    let out_dir = |j: &Job| -> PathBuf {
        if let Some(r) = j.reduce {
            work.join(format!(
                "{}-{}-{}-{}-{}",
                o.dataset,
                recipe.arch,
                j.method,
                r.replace(':', ""),
                j.seed
            ))
        } else if let Some(d) = j.density {
            work.join(format!(
                "{}-{}-{}-d{}-{}",
                o.dataset, recipe.arch, j.method, d, j.seed
            ))
        } else if j.width == 1.0 {
            work.join(format!(
                "{}-{}-{}-{}",
                o.dataset, recipe.arch, j.method, j.seed
            ))
        } else {
            work.join(format!(
                "{}-{}-{}-w{}-{}",
                o.dataset, recipe.arch, j.method, j.width, j.seed
            ))
        }
    };
    let run = |j: &Job| -> Result<Done> {
        let out = out_dir(j);
        let mut argv: Vec<String> = [
            "synthesize",
            "--seed",
            seed_file.to_str().context("non-UTF-8 path")?,
            "--data",
            &data,
            "--rng-seed",
            &j.seed.to_string(),
            "--curve",
            "--quiet",
            "--out",
            out.to_str().context("non-UTF-8 path")?,
        ]
        .map(String::from)
        .to_vec();
        argv.extend(recipe.args(
            &j.method,
            j.width,
            j.density.unwrap_or(recipe.target_density),
        ));
        if let Some(r) = j.reduce {
            argv.extend(["--reduce".into(), r.into()]);
        }
        // `--resume`: a run whose directory records the same command line is not run again (a
        // LeNet-5 bench spans sessions on a 2-core machine); the commit that made each run is
        // kept in the results.
        let marker = out.join("bench-run.json");
        if o.resume {
            let done = std::fs::read_to_string(&marker)
                .ok()
                .and_then(|t| serde_json::from_str::<RunMarker>(&t).ok())
                .filter(|m| m.argv == argv);
            if let Some(m) = done {
                let mut summary = bonsai::pipeline::Summary::load(&out.join("summary.json"))?;
                reestimate_energy(&out, &mut summary)?;
                let wall = m.wall_seconds.unwrap_or(summary.wall_seconds);
                return Ok(Done {
                    summary,
                    wall,
                    commit: m.git_commit,
                });
            }
        }
        let opts = Cli::try_parse_from(&argv)?.args.to_options()?;
        let started = Instant::now();
        let summary = synthesize(&opts)
            .with_context(|| format!("{} {}, seed {}", recipe.arch, j.method, j.seed))?;
        let wall = started.elapsed().as_secs_f64();
        let m = RunMarker {
            argv,
            git_commit: commit.clone(),
            wall_seconds: Some(wall),
        };
        bonsai::util::write_atomic(&marker, serde_json::to_string(&m)?.as_bytes())?;
        Ok(Done {
            summary,
            wall,
            commit: m.git_commit,
        })
    };
    // A shared queue drained by `jobs` threads; results are keyed by position, so the report
    // does not depend on which thread ran what.
    let queue = Mutex::new(jobs.into_iter().enumerate().collect::<VecDeque<_>>());
    let results: Mutex<Vec<Option<(Job, Done)>>> = Mutex::new((0..n_jobs).map(|_| None).collect());
    let failure: Mutex<Option<anyhow::Error>> = Mutex::new(None);
    let bar = indicatif::ProgressBar::new(n_jobs as u64).with_style(
        indicatif::ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} {elapsed} {msg}")
            .expect("static template")
            .progress_chars("=> "),
    );
    bar.set_prefix(format!("synth {}", recipe.arch));
    std::thread::scope(|s| {
        for _ in 0..o.jobs.max(1) {
            s.spawn(|| loop {
                if failure.lock().expect("lock").is_some() {
                    return;
                }
                let Some((k, job)) = queue.lock().expect("lock").pop_front() else {
                    return;
                };
                match run(&job) {
                    Ok(done) => {
                        // indicatif drops println on a hidden bar (output not a terminal).
                        let say = |line: String| {
                            if bar.is_hidden() {
                                eprintln!("{line}");
                            } else {
                                bar.println(line);
                            }
                        };
                        say(format!(
                            "{}{} seed {} width {}: int8 test error {:.2}%, {} nonzero params, {:.0} s",
                            job.method,
                            job.reduce.map(|r| format!(" ({r})")).unwrap_or_default(),
                            job.seed,
                            job.width,
                            100.0 * (1.0 - done.summary.int8_test_accuracy),
                            done.summary.params_nonzero,
                            done.wall
                        ));
                        bar.inc(1);
                        results.lock().expect("lock")[k] = Some((job, done));
                    }
                    Err(e) => {
                        *failure.lock().expect("lock") = Some(e);
                        return;
                    }
                }
            });
        }
    });
    bar.finish();
    if let Some(e) = failure.into_inner().expect("lock") {
        return Err(e);
    }
    let results: Vec<(Job, Done)> = results
        .into_inner()
        .expect("lock")
        .into_iter()
        .map(|r| r.expect("every job ran"))
        .collect();

    let mut finished: Vec<MethodResult> = Vec::new();
    for method in o.methods {
        let mine: Vec<&(Job, Done)> = results
            .iter()
            .filter(|(j, _)| &j.method == method)
            .collect();
        let int8_error = |d: &Done| 100.0 * (1.0 - d.summary.int8_test_accuracy);
        let runs: Vec<RunResult> = (1..=o.seeds)
            .map(|seed| {
                let of_seed: Vec<&&(Job, Done)> =
                    mine.iter().filter(|(j, _)| j.seed == seed).collect();
                // The table's run of the seed; dr-scann's the candidate best on validation.
                let table: Vec<&&(Job, Done)> = of_seed
                    .iter()
                    .filter(|(j, _)| j.width == 1.0 && j.density.is_none())
                    .copied()
                    .collect();
                let scores: Vec<(f64, usize)> = table
                    .iter()
                    .map(|(_, d)| (1.0 - d.summary.val_accuracy, d.summary.params_nonzero))
                    .collect();
                let (chosen, full) = table[best_on_validation(&scores).expect("a table run")];
                let curve = if method == "dense" {
                    of_seed
                        .iter()
                        .map(|(_, d)| (d.summary.params_nonzero, int8_error(d)))
                        .collect()
                } else {
                    full.summary
                        .trajectory
                        .iter()
                        .filter_map(|p| {
                            Some((
                                p.int8_params_nonzero?,
                                100.0 * (1.0 - p.int8_test_accuracy?),
                            ))
                        })
                        .collect()
                };
                RunResult {
                    seed,
                    test_error: int8_error(full),
                    val_error: 100.0 * (1.0 - full.summary.val_accuracy),
                    params_nonzero: full.summary.params_nonzero,
                    macs: full.summary.macs,
                    energy_uj: full.summary.energy_uj.map(|r| (r.min, r.max)),
                    // dr-scann's choice costs every candidate's run.
                    wall_seconds: table.iter().map(|(_, d)| d.wall).sum(),
                    git_commit: full.commit.clone(),
                    reduce: chosen.reduce.map(String::from),
                    curve,
                }
            })
            .collect();
        let mut density_curve: Vec<DensityPoint> = Vec::new();
        if method != "dense" && has_curve(method) && !o.curve_densities.is_empty() {
            let targets = o.curve_densities.iter().map(|&d| Some(d)).chain([None]);
            for target in targets {
                let at: Vec<&&(Job, Done)> =
                    mine.iter().filter(|(j, _)| j.density == target).collect();
                let k = at.len() as f64;
                let errors: Vec<f64> = at.iter().map(|(_, d)| int8_error(d)).collect();
                density_curve.push(DensityPoint {
                    target_density: target.unwrap_or(recipe.target_density),
                    seeds: at.iter().map(|(j, _)| j.seed).collect(),
                    params_nonzero: at
                        .iter()
                        .map(|(_, d)| d.summary.params_nonzero as f64)
                        .sum::<f64>()
                        / k,
                    test_error: errors.iter().sum::<f64>() / k,
                    test_error_runs: errors,
                });
            }
            density_curve.sort_by(|a, b| b.target_density.total_cmp(&a.target_density));
        }
        let n = runs.len() as f64;
        let mean = |f: &dyn Fn(&RunResult) -> f64| runs.iter().map(f).sum::<f64>() / n;
        let energy: Option<Vec<(f64, f64)>> = runs.iter().map(|r| r.energy_uj).collect();
        let device = mine.first().and_then(|(_, d)| d.summary.device.clone());
        let result = MethodResult {
            dataset: if o.dataset == "mnist" {
                "mnist (10k train sample, official test)".into()
            } else {
                o.dataset.into()
            },
            seed_arch: recipe.arch.into(),
            method: method.clone(),
            seeds: (1..=o.seeds).collect(),
            test_error: mean(&|r| r.test_error),
            test_error_runs: runs.iter().map(|r| r.test_error).collect(),
            val_error: mean(&|r| r.val_error),
            params_dense: dense_stats.params_total,
            params_nonzero: mean(&|r| r.params_nonzero as f64).round() as usize,
            flops_dense: 2 * dense_stats.macs_dense,
            flops_nonzero: 2 * mean(&|r| r.macs as f64).round() as usize,
            device,
            energy_uj: energy.map(|e| {
                let (lo, hi) = e.iter().fold((0.0, 0.0), |(a, b), (x, y)| (a + x, b + y));
                (lo / n, hi / n)
            }),
            wall_seconds: mean(&|r| r.wall_seconds),
            epoch_budget: recipe.budget(),
            jobs: o.jobs,
            runs,
            density_curve,
            git_commit: commit.clone(),
            command: o.command.into(),
        };
        let path = root.join(format!(
            "bench/results/synth-{}-{}-{method}.json",
            o.dataset, recipe.arch
        ));
        bonsai::util::write_atomic(&path, serde_json::to_string_pretty(&result)?.as_bytes())
            .with_context(|| format!("cannot write {}", path.display()))?;
        finished.push(result);
    }
    // Methods not run now keep their last results (a method is often rerun alone: a LeNet-5
    // synthesis takes a quarter of an hour).
    let not_run: Vec<&str> = METHODS
        .into_iter()
        .filter(|m| !o.methods.iter().any(|x| x == m))
        .collect();
    let earlier = load_results(root, o.dataset, recipe.arch, &not_run)?;
    let versions = earlier_versions(&earlier);
    let mut all: Vec<MethodResult> = finished.into_iter().chain(earlier).collect();
    all.sort_by_key(|r| METHODS.iter().position(|m| *m == r.method));
    let mut curves = Vec::new();
    let mut rows = Vec::new();
    // (method, mean test error, reduction) for the bar line under the table.
    let mut means: Vec<(String, f64, f64)> = Vec::new();
    for result in &all {
        let method = &result.method;
        if has_curve(method) {
            curves.push(curve_of(result));
        }
        let energy = match (result.energy_uj, &result.device) {
            (Some((lo, hi)), Some(device)) => format!("{lo:.0}–{hi:.0} ({device})"),
            _ => "—".into(),
        };
        let spread = result
            .test_error_runs
            .iter()
            .fold((f64::MAX, f64::MIN), |(lo, hi), &e| (lo.min(e), hi.max(e)));
        rows.push(format!(
            "| {method} | {} | {:.2} | {:.2}–{:.2} | {:.2} | {} | {:.1}x | {} | {energy} | {:.0} |",
            result.runs.len(),
            result.test_error,
            spread.0,
            spread.1,
            result.val_error,
            result.params_nonzero,
            result.params_dense as f64 / result.params_nonzero.max(1) as f64,
            result.flops_nonzero,
            result.wall_seconds
        ));
        means.push((
            method.clone(),
            result.test_error,
            result.params_dense as f64 / result.params_nonzero.max(1) as f64,
        ));
    }
    let svg_name = draw(root, o.dataset, recipe.arch, &curves)?;
    let about_data = if o.dataset == "mnist" {
        "10k-image MNIST training sample (9k train / 1k validation), official 10k test set".into()
    } else {
        format!(
            "{} ({} train / {} validation / {} test samples)",
            o.dataset,
            splits.train.len(),
            splits.val.len(),
            splits.test.len()
        )
    };
    // Issue #3's rule: at least 50x fewer nonzeros at a mean error within 0.2 points of the
    // dense baseline's mean.
    let bar = match means.iter().find(|(m, ..)| m == "dense") {
        Some((_, dense, _)) if o.dataset == "mnist" => {
            let allowed = dense + 0.2;
            let verdicts: Vec<String> = means
                .iter()
                .filter(|(m, ..)| m != "dense")
                .map(|(m, err, red)| {
                    let ok = *red >= 50.0 && *err <= allowed;
                    format!(
                        "{m} {err:.2}% at {red:.1}x: {}",
                        if ok { "meets it" } else { "misses it" }
                    )
                })
                .collect();
            format!(
                "Bar: ≥ 50x fewer nonzeros at a mean test error ≤ dense mean + 0.2 = {allowed:.2}%. {}.\n\n",
                verdicts.join("; ")
            )
        }
        _ => String::new(),
    };
    let parallel = if o.jobs == 1 {
        "syntheses ran one at a time".to_string()
    } else {
        format!("{} syntheses ran at once", o.jobs)
    };
    let body = format!(
        "## Grow-and-prune synthesis: {dataset} {arch}\n\n\
         Command: `{command}` (commit {commit}{reused}). {about_data}; Adam with L2 weight decay {wd}{smoothing}, \
         learning rate cosine-annealed within every training phase. Budget per run: {budget} epochs. \
         Prune-only and NeST: {e} epochs first (NeST: {ne} on a {seed} random sparse seed, then {steps} \
         growth steps of neurons, conv feature maps and connections with {ng} epochs each), {r} \
         prune rounds of {k} retraining epochs to a {t}% target{stop} (NeST prunes {regrow} past each \
         goal and regrows that share by gradient; SCANN C regrows {regrow} by gradient and retrains \
         {kc} of a round's epochs before pruning), {f} fine-tuning epochs (early-stopped; shipped \
         only if validation does not drop). The dense baseline trains all {budget} epochs; its \
         curve is the seed at widths {widths:?}. {curve_kind} Bars on the plot: ± one standard \
         error of a point's mean over its seeds. The \
         shipped model of each run is chosen on validation. Nonzeros are int8 weights + biases of \
         the quantized model; errors are int8 test errors. Time: a run is almost all training \
         epochs (burn's flex backend, about one core each); growth gradients, candidate maps and the \
         int8 test evaluation of every curve point take the rest. {parallel}; other jobs shared the \
         2-core machine, so wall times are upper bounds. Per-method results: \
         `bench/results/synth-{dataset}-{arch}-<method>.json`.\n\n\
         {area}{ab}{dr}\
         | method | seeds | test error % (mean) | spread | val error % | nonzero params | reduction | FLOPs | est. µJ per inference | s per run |\n\
         |---|---:|---:|---|---:|---:|---:|---:|---:|---:|\n{rows}\n\n{bar}{versions}\
         ![error vs nonzeros]({svg_name})\n\n",
        arch = recipe.arch,
        dataset = o.dataset,
        command = o.command,
        wd = recipe.weight_decay,
        smoothing = if recipe.label_smoothing > 0.0 {
            format!(", label smoothing {}", recipe.label_smoothing)
        } else {
            String::new()
        },
        budget = recipe.budget(),
        e = recipe.epochs,
        r = recipe.rounds,
        k = recipe.retrain_epochs,
        // In percent, to two decimals (1.75, 1.7, 5), without float noise.
        t = (1e4 * recipe.target_density).round() / 100.0,
        stop = match recipe.max_val_drop {
            Some(d) => format!(
                ", or until validation accuracy falls more than {d} points below its pre-pruning best \
                 (the last round within that is kept)"
            ),
            None => String::new(),
        },
        f = recipe.final_epochs,
        ne = recipe.nest_growth_epochs().0,
        ng = recipe.nest_growth_epochs().1,
        kc = recipe.retrain_epochs.max(2) / 2,
        widths = recipe.dense_widths,
        curve_kind = curves_text(&all, recipe.target_density),
        reused = reused_runs_text(&commit, results.iter().map(|(_, d)| d.commit.as_str())),
        rows = rows.join("\n"),
        area = match (all.iter().any(|r| r.method == "nest-area"), recipe.partial_area) {
            (true, Some(keep)) => format!(
                "nest-area is NeST with its partial-area convolution: after each pruning round \
                 every conv output channel's computed rectangle shrinks by the edge lines whose \
                 outputs matter least to the loss, until each conv layer computes {}% of its \
                 output positions (0 elsewhere). It removes MACs, not weights, so it has no curve \
                 in the plot. Energy is the cost model's estimate (range: cache and pipeline \
                 behaviour); \"—\": results written before it was recorded.\n\n",
                keep * 100.0
            ),
            _ => "Energy is the cost model's estimate (range: cache and pipeline behaviour); \
                 \"—\": results written before it was recorded.\n\n"
                .into(),
        },
        ab = scann_ab_text(&all, recipe.nest_growth_epochs()),
        seed = pct(SEED_DENSITY),
        steps = number_word(GROW_ROUNDS),
        regrow = pct(REGROW_FRACTION),
        dr = dr_text(&all, recipe.reductions),
        versions = if versions.is_empty() {
            String::new()
        } else {
            format!(
                "Rows not rerun by this command: {}.\n\n",
                versions.join("; ")
            )
        },
    );
    let section = match (o.dataset, recipe.arch) {
        ("mnist", "lenet-300-100") => "synth".to_string(),
        ("mnist", arch) => format!("synth-{arch}"),
        (dataset, arch) => format!("synth-{dataset}-{arch}"),
    };
    write_section(root, &section, &body)
}

/// Where the rows not rerun come from: methods that one command made at one commit are named
/// together, so a command is written once.
fn earlier_versions(earlier: &[MethodResult]) -> Vec<String> {
    let mut groups: Vec<(&str, &str, Vec<&str>)> = Vec::new();
    for r in earlier {
        match groups
            .iter_mut()
            .find(|(c, g, _)| *c == r.command && *g == r.git_commit)
        {
            Some((.., methods)) => methods.push(&r.method),
            None => groups.push((&r.command, &r.git_commit, vec![&r.method])),
        }
    }
    groups
        .into_iter()
        .map(|(command, commit, methods)| {
            format!("{} from `{command}` (commit {commit})", methods.join(", "))
        })
        .collect()
}

/// Names the commits that made runs `--resume` reused, when they differ from the bench's own:
/// the figures are those commits' code, the bench only read them again.
fn reused_runs_text<'a>(commit: &str, run_commits: impl Iterator<Item = &'a str>) -> String {
    let mut others: Vec<&str> = run_commits.filter(|c| *c != commit).collect();
    others.sort_unstable();
    others.dedup();
    if others.is_empty() {
        String::new()
    } else {
        format!("; runs made at {} reused", others.join(", "))
    }
}

/// Index of the run with the lowest validation error (fewer nonzeros break ties) among
/// `(validation error, nonzeros)`: how dr-scann picks its input reduction per seed.
fn best_on_validation(scores: &[(f64, usize)]) -> Option<usize> {
    (0..scores.len()).min_by(|&a, &b| {
        let (ea, na) = scores[a];
        let (eb, nb) = scores[b];
        ea.total_cmp(&eb).then(na.cmp(&nb))
    })
}

/// What the scann-a and scann-b rows are (empty without them).
fn scann_ab_text(results: &[MethodResult], (seed_epochs, grow_epochs): (usize, usize)) -> String {
    let has = |m: &str| results.iter().any(|r| r.method == m);
    if !has("scann-a") && !has("scann-b") {
        return String::new();
    }
    format!(
        "SCANN's other two starting points, on the same DAG as SCANN C (cross-layer connections \
         dormant until grown): scann-a trains the seed at a quarter of its hidden widths, \
         scann-b a {seed} random sparse seed; each then has NeST's growth phase ({seed_epochs} \
         epochs on the seed, {steps} growth steps of neurons and {grow} of the dormant connections \
         by gradient with {grow_epochs} epochs each) and prunes by magnitude without regrowth.\n\n",
        seed = pct(SEED_DENSITY),
        steps = number_word(GROW_ROUNDS),
        grow = pct(GROW_FRACTION),
    )
}

/// Small counts as the texts write them.
fn number_word(n: usize) -> String {
    match n {
        1 => "one".into(),
        2 => "two".into(),
        3 => "three".into(),
        _ => n.to_string(),
    }
}

/// What the dr-scann row is, with the reduction each seed chose (empty without the row).
fn dr_text(results: &[MethodResult], candidates: &[&str]) -> String {
    let Some(r) = results.iter().find(|r| r.method == "dr-scann") else {
        return String::new();
    };
    let chosen: Vec<String> = r
        .runs
        .iter()
        .map(|run| {
            format!(
                "seed {}: {}",
                run.seed,
                run.reduce.as_deref().unwrap_or("?")
            )
        })
        .collect();
    format!(
        "dr-scann is DR+SCANN: SCANN C behind an input reduction, a Dense first layer fitted on \
         the training split (`pca:K`: the top K principal directions; `rp:K`: a sparse random \
         projection) and then trained and pruned with the rest. Each seed runs every candidate \
         ({}) and ships the one with the lowest validation error ({}); the reduction's weights \
         count in its nonzeros and FLOPs, and its time per run is the sum over the candidates.\n\n",
        candidates.join(", "),
        chosen.join(", ")
    )
}

/// A reused run's energy estimate from the current cost model: the estimate is not a result of
/// the training, and the cost model is refitted when the runtime's kernels change.
fn reestimate_energy(out: &Path, summary: &mut Summary) -> Result<()> {
    let Some(device) = &summary.device else {
        return Ok(());
    };
    let path = out.join("model.json");
    let model = bonsai::ir::Model::load(&path)?;
    let lowered = bonsai::lower::lower(&model, &bonsai::lower::LowerOptions::default())
        .with_context(|| format!("cannot lower {}", path.display()))?;
    let devices = bonsai::energy::devices_with(&[] as &[PathBuf])?;
    let est =
        bonsai::energy::estimate_builtin(&model, &lowered, bonsai::energy::find(&devices, device)?)
            .with_context(|| format!("cannot estimate {}", path.display()))?;
    summary.energy_uj = Some(est.energy_uj);
    Ok(())
}

/// How the plotted pruning methods' curves were made, from their results (a method rerun alone
/// keeps the curve of the command that made its results file).
fn curves_text(results: &[MethodResult], target: f64) -> String {
    let mut groups: Vec<(String, Vec<&str>)> = Vec::new();
    for r in results
        .iter()
        .filter(|r| r.method != "dense" && has_curve(&r.method))
    {
        let kind = if r.density_curve.is_empty() {
            "the stages of their runs (mean over seeds)".to_string()
        } else {
            let densities: Vec<f64> = r
                .density_curve
                .iter()
                .map(|p| p.target_density)
                .filter(|&d| d != target)
                .collect();
            let seeds = r.density_curve.iter().map(|p| p.seeds.len()).min();
            format!(
                "separate runs, each with the whole budget, at target densities {densities:?} \
                 and the table's {}% ({} seeds each; the table's point: all seeds)",
                (1e4 * target).round() / 100.0,
                seeds.unwrap_or(0)
            )
        };
        match groups.iter_mut().find(|(k, _)| *k == kind) {
            Some((_, methods)) => methods.push(&r.method),
            None => groups.push((kind, vec![&r.method])),
        }
    }
    match groups.as_slice() {
        [] => String::new(),
        [(kind, _)] => format!("The pruning methods' curves are {kind}."),
        _ => {
            let parts: Vec<String> = groups
                .iter()
                .map(|(kind, methods)| format!("{}: {kind}", methods.join(", ")))
                .collect();
            format!("The pruning methods' curves: {}.", parts.join("; "))
        }
    }
}

/// The results files of `methods` already in bench/results (missing ones are skipped).
fn load_results(
    root: &Path,
    dataset: &str,
    arch: &str,
    methods: &[&str],
) -> Result<Vec<MethodResult>> {
    let mut found = Vec::new();
    for method in methods {
        let path = root.join(format!(
            "bench/results/synth-{dataset}-{arch}-{method}.json"
        ));
        if let Ok(text) = std::fs::read_to_string(&path) {
            let r: MethodResult = serde_json::from_str(&text)
                .with_context(|| format!("{}: not a bench synth result", path.display()))?;
            found.push(r);
        }
    }
    Ok(found)
}

/// A method's error-vs-nonzeros curve: one full-budget run per target density when the bench
/// made them, else the mean over seeds at each stage of the schedule (stages line up, the
/// schedule being the same).
fn curve_of(result: &MethodResult) -> Curve {
    let n = result.runs.len() as f64;
    let stages = result.runs.iter().map(|r| r.curve.len()).min().unwrap_or(0);
    let (points, std_errors): (Vec<(f64, f64)>, Vec<f64>) = if result.density_curve.is_empty() {
        (0..stages)
            .map(|k| {
                let x = result.runs.iter().map(|r| r.curve[k].0 as f64).sum::<f64>() / n;
                let ys: Vec<f64> = result.runs.iter().map(|r| r.curve[k].1).collect();
                ((x, ys.iter().sum::<f64>() / n), std_error(&ys))
            })
            .unzip()
    } else {
        result
            .density_curve
            .iter()
            .map(|p| {
                (
                    (p.params_nonzero, p.test_error),
                    std_error(&p.test_error_runs),
                )
            })
            .unzip()
    };
    Curve {
        name: if result.method == "dense" {
            "dense (narrower seeds)".into()
        } else {
            result.method.clone()
        },
        points,
        std_errors,
    }
}

/// Standard error of the mean of `xs` (sample standard deviation over √n); 0 for fewer than
/// two values, where there is no spread to show.
fn std_error(xs: &[f64]) -> f64 {
    let n = xs.len() as f64;
    if xs.len() < 2 {
        return 0.0;
    }
    let mean = xs.iter().sum::<f64>() / n;
    let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0);
    (var / n).sqrt()
}

/// Draws bench/results/synth-<dataset>-<arch>.svg; returns its path under `root`.
fn draw(root: &Path, dataset: &str, arch: &str, curves: &[Curve]) -> Result<String> {
    let svg_name = format!("bench/results/synth-{dataset}-{arch}.svg");
    error_vs_nonzeros_svg(
        &root.join(&svg_name),
        &format!("{dataset} {arch}: int8 test error vs nonzero parameters"),
        curves,
    )?;
    Ok(svg_name)
}

/// `cargo xtask bench synth-plot`: redraws a bench's plot from its results files, without
/// running anything (a LeNet-5 bench takes hours; the plot's style should not need one).
pub fn replot(root: &Path, dataset: &str, arch: &str) -> Result<PathBuf> {
    let recipe = Recipe::for_arch(arch)?;
    let results = load_results(root, dataset, recipe.arch, &METHODS)?;
    anyhow::ensure!(
        !results.is_empty(),
        "no results for {dataset} {arch} in {}: run `cargo xtask bench synth` first",
        root.join("bench/results").display()
    );
    let curves: Vec<Curve> = results
        .iter()
        .filter(|r| has_curve(&r.method))
        .map(curve_of)
        .collect();
    Ok(root.join(draw(root, dataset, recipe.arch, &curves)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The options `bonsai synthesize` parses from a method's command line.
    fn options(recipe: &Recipe, method: &str) -> bonsai::pipeline::SynthOptions {
        let mut argv = vec!["synthesize".to_string()];
        argv.extend(recipe.args(method, 1.0, recipe.target_density));
        Cli::try_parse_from(&argv)
            .unwrap()
            .args
            .to_options()
            .unwrap()
    }

    /// Epochs a method's command line lets it train: the schedule's own accounting
    /// (`planned_epochs`) of the options `bonsai synthesize` parses.
    fn planned(recipe: &Recipe, method: &str) -> usize {
        let opts = options(recipe, method);
        match opts.schedule.method {
            bonsai::synth::schedule::Method::Dense => opts.train.max_epochs,
            _ => bonsai::synth::schedule::planned_epochs(&opts.schedule, opts.train.max_epochs),
        }
    }

    /// The methods a recipe runs: nest-area only where there are convolutions, dr-scann only
    /// where there are reductions to choose from.
    fn methods_of(recipe: &Recipe) -> Vec<&'static str> {
        METHODS
            .into_iter()
            .filter(|m| *m != "nest-area" || recipe.partial_area.is_some())
            .filter(|m| *m != "dr-scann" || !recipe.reductions.is_empty())
            .collect()
    }

    #[test]
    fn scann_a_and_b_have_nests_growth_phase_and_no_regrowth() {
        let recipe = Recipe::for_arch("lenet-300-100").unwrap();
        let d = recipe.target_density;
        let without = |method: &str, drop: &[&str]| -> Vec<String> {
            let args = recipe.args(method, 1.0, d);
            let mut kept = Vec::new();
            let mut i = 0;
            while i < args.len() {
                if drop.contains(&args[i].as_str()) {
                    i += 2;
                } else {
                    kept.push(args[i].clone());
                    i += 1;
                }
            }
            kept
        };
        let nest = without("nest", &["--method", "--regrow-fraction"]);
        assert_eq!(without("scann-b", &["--method"]), nest);
        assert_eq!(
            without("scann-a", &["--method"]),
            without("nest", &["--method", "--regrow-fraction", "--seed-density"])
        );
    }

    #[test]
    fn dr_scann_is_scann_c_and_picks_its_reduction_on_validation() {
        let recipe = Recipe::for_arch("tabular-mlp").unwrap();
        let (scann, dr) = (options(&recipe, "scann-c"), options(&recipe, "dr-scann"));
        assert_eq!(
            format!("{:?}", scann.schedule),
            format!("{:?}", dr.schedule)
        );
        for r in recipe.reductions {
            assert!(r.parse::<bonsai::synth::reduce::Reduce>().is_ok(), "{r}");
        }
        assert_eq!(best_on_validation(&[]), None);
        assert_eq!(
            best_on_validation(&[(0.02, 900), (0.01, 1500), (0.03, 500)]),
            Some(1)
        );
        // A tie on validation goes to the smaller model.
        assert_eq!(best_on_validation(&[(0.01, 1500), (0.01, 900)]), Some(1));
    }

    #[test]
    fn every_method_gets_the_recipes_epoch_budget() {
        for arch in ["lenet-300-100", "lenet-5", "tabular-mlp"] {
            let recipe = Recipe::for_arch(arch).unwrap();
            for method in methods_of(&recipe) {
                assert_eq!(planned(&recipe, method), recipe.budget(), "{arch} {method}");
            }
        }
    }

    #[test]
    fn nest_area_is_nests_schedule_with_partial_areas() {
        let recipe = Recipe::for_arch("lenet-5").unwrap();
        let (nest, area) = (options(&recipe, "nest"), options(&recipe, "nest-area"));
        assert_eq!(area.schedule.method, nest.schedule.method);
        assert_eq!(nest.schedule.area_keep, 1.0);
        assert_eq!(area.schedule.area_keep, 0.5);
        let without = |mut o: bonsai::pipeline::SynthOptions| {
            o.schedule.area_keep = 1.0;
            format!("{:?}", o.schedule)
        };
        assert_eq!(without(area), without(nest));
    }

    #[test]
    fn every_method_trains_with_the_recipes_label_smoothing() {
        for arch in ["lenet-300-100", "lenet-5", "tabular-mlp"] {
            let recipe = Recipe::for_arch(arch).unwrap();
            for method in methods_of(&recipe) {
                let opts = options(&recipe, method);
                assert_eq!(
                    opts.train.label_smoothing, recipe.label_smoothing,
                    "{arch} {method}"
                );
            }
        }
        assert_eq!(
            Recipe::for_arch("lenet-300-100").unwrap().label_smoothing,
            0.1
        );
    }

    fn result(
        method: &str,
        curve: Vec<(usize, f64)>,
        density_curve: Vec<DensityPoint>,
    ) -> MethodResult {
        MethodResult {
            dataset: "pendigits".into(),
            seed_arch: "tabular-mlp".into(),
            method: method.into(),
            seeds: vec![1],
            test_error: 3.0,
            test_error_runs: vec![3.0],
            val_error: 1.0,
            params_dense: 3498,
            params_nonzero: 900,
            flops_dense: 6784,
            flops_nonzero: 1600,
            device: None,
            energy_uj: None,
            wall_seconds: 2.0,
            epoch_budget: 144,
            jobs: 1,
            runs: vec![RunResult {
                seed: 1,
                test_error: 3.0,
                val_error: 1.0,
                params_nonzero: 900,
                macs: 800,
                energy_uj: None,
                wall_seconds: 2.0,
                git_commit: "abc".into(),
                reduce: None,
                curve,
            }],
            density_curve,
            git_commit: "abc".into(),
            command: "cargo xtask bench synth".into(),
        }
    }

    #[test]
    fn curves_come_from_density_runs_when_there_are_any() {
        let staged = curve_of(&result("prune", vec![(3498, 2.5), (900, 3.0)], vec![]));
        assert_eq!(staged.points, [(3498.0, 2.5), (900.0, 3.0)]);
        let dense = curve_of(&result("dense", vec![(3498, 2.5)], vec![]));
        assert_eq!(dense.name, "dense (narrower seeds)");
        let separate = curve_of(&result(
            "nest",
            vec![(3498, 2.5), (900, 3.0)],
            vec![DensityPoint {
                target_density: 0.1,
                seeds: vec![1, 2, 3],
                params_nonzero: 400.0,
                test_error: 4.0,
                test_error_runs: vec![3.0, 4.0, 5.0],
            }],
        ));
        assert_eq!(separate.points, [(400.0, 4.0)]);
        // Sample standard deviation 1 over 3 seeds.
        assert!((separate.std_errors[0] - 1.0 / 3f64.sqrt()).abs() < 1e-12);
        // One seed per stage: no spread to draw.
        assert_eq!(staged.std_errors, [0.0, 0.0]);
        assert_eq!(std_error(&[]), 0.0);
        assert_eq!(std_error(&[2.0, 4.0]), 1.0);
    }

    #[test]
    fn rows_not_rerun_name_each_command_once() {
        let made = |method: &str, command: &str, commit: &str| {
            let mut r = result(method, vec![], vec![]);
            r.command = command.into();
            r.git_commit = commit.into();
            r
        };
        let earlier = [
            made("dense", "x", "1"),
            made("prune", "x", "1"),
            made("nest", "x", "2"),
            made("scann-c", "y", "1"),
        ];
        assert_eq!(
            earlier_versions(&earlier),
            [
                "dense, prune from `x` (commit 1)",
                "nest from `x` (commit 2)",
                "scann-c from `y` (commit 1)"
            ]
        );
    }

    #[test]
    fn reused_runs_name_their_commits() {
        assert_eq!(reused_runs_text("abc", ["abc", "abc"].into_iter()), "");
        assert_eq!(
            reused_runs_text("abc", ["def", "abc", "123", "def"].into_iter()),
            "; runs made at 123, def reused"
        );
    }

    #[test]
    fn the_curve_text_follows_each_results_file() {
        let point = |d: f64| DensityPoint {
            target_density: d,
            seeds: vec![1, 2, 3],
            params_nonzero: 100.0,
            test_error: 2.0,
            test_error_runs: vec![1.0, 2.0, 3.0],
        };
        let separate = || vec![point(0.1), point(0.05)];
        let all = [
            result("dense", vec![], vec![]),
            result("prune", vec![], separate()),
            result("nest", vec![], separate()),
            result("nest-area", vec![], vec![]),
        ];
        assert_eq!(
            curves_text(&all, 0.05),
            "The pruning methods' curves are separate runs, each with the whole budget, at \
             target densities [0.1] and the table's 5% (3 seeds each; the table's point: all \
             seeds)."
        );
        let mixed = [
            result("prune", vec![], separate()),
            result("scann-c", vec![(1, 2.0)], vec![]),
        ];
        let text = curves_text(&mixed, 0.05);
        assert!(
            text.starts_with("The pruning methods' curves: prune: separate runs")
                && text.ends_with("; scann-c: the stages of their runs (mean over seeds)."),
            "{text}"
        );
    }

    #[test]
    fn replot_redraws_from_results_files_and_names_a_missing_bench() {
        // No tempfile here: a dev-dependency would change xtask's resolved features (Cargo.toml).
        let root = std::env::temp_dir().join(format!("bonsai-replot-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(&root).unwrap();
        let err = replot(&root, "pendigits", "tabular-mlp").unwrap_err();
        assert!(
            err.to_string().contains("no results for pendigits"),
            "{err}"
        );
        let dir = root.join("bench/results");
        std::fs::create_dir_all(&dir).unwrap();
        let r = result("prune", vec![(3498, 2.5), (900, 3.0)], vec![]);
        std::fs::write(
            dir.join("synth-pendigits-tabular-mlp-prune.json"),
            serde_json::to_string(&r).unwrap(),
        )
        .unwrap();
        let svg = replot(&root, "pendigits", "tabular-mlp").unwrap();
        let text = std::fs::read_to_string(svg).unwrap();
        std::fs::remove_dir_all(&root).unwrap();
        assert!(text.contains("<svg") && text.contains("prune"));
    }
}
