//! `cargo xtask bench search`: hardware-aware architecture search (issue 7: STEERAGE, random,
//! AutoShrink) on MNIST under a
//! device's flash/RAM budget. Each method runs `bonsai search` (the same job), then the shipped
//! model and the Pareto-front architectures are built for the Cortex-M4 board and run under QEMU
//! to measure their instructions per inference. The baseline is the best grown-and-pruned model
//! of the seed architecture (LeNet-5 by default) within the same budget. Writes
//! `bench/results/search-<method>.json` and a BENCHMARKS.md section.
//!
//! The search states live in `target/bench/search/<method>/`: an interrupted bench resumes.

use crate::bench::{git_commit, write_section};
use crate::{firmware, flow};
use anyhow::{Context, Result};
use bonsai::ir::Model;
use bonsai::pipeline::{synthesize, OutputFiles, Summary, SynthOptions};
use bonsai::search::cli::SearchTuning;
use bonsai::search::job::{self, SearchJob};
use bonsai::search::pareto::ParetoPoint;
use bonsai::search::space::SpaceKind;
use bonsai::search::{
    Candidate, EvalContext, Evaluator, HwLimits, ProxyBudget, SearchConfig, SearchMethod, Space,
};
use bonsai::synth::schedule::{Method, Schedule};
use bonsai::train::TrainConfig;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// What the command line chose.
pub struct BenchArgs {
    pub data: String,
    pub methods: Vec<String>,
    pub tuning: SearchTuning,
    pub device: String,
    pub flash_kb: f64,
    pub ram_kb: f64,
    pub energy_uj: Option<f64>,
    /// The baseline's seed architecture; None: no baseline.
    pub baseline_seed: Option<PathBuf>,
    /// Skip the QEMU measurements of the Pareto-front points (the shipped model is measured).
    pub no_front_qemu: bool,
}

/// One model's figures in the results file.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ModelFigures {
    pub name: String,
    /// int8 test error, %.
    pub test_error: f64,
    /// Estimated energy per inference on the device, µJ (min, max).
    pub energy_uj: Option<bonsai::energy::Range>,
    /// The estimate rescaled by measured / predicted instructions: the energy of the
    /// instructions QEMU counted, at the cost model's cycles per instruction and power.
    pub energy_uj_measured: Option<bonsai::energy::Range>,
    /// Parameter flash (the generated arrays) and activation arena, bytes.
    pub flash_bytes: usize,
    pub ram_bytes: usize,
    /// Firmware ELF flash and RAM (static + measured stack) on the QEMU board.
    pub firmware_flash_bytes: Option<u64>,
    pub firmware_ram_bytes: Option<u64>,
    pub params_nonzero: usize,
    pub insns_predicted: Option<f64>,
    /// Mean executed instructions per inference under QEMU (mps2-an386, `-icount`).
    pub insns_measured: Option<f64>,
    pub wall_seconds: f64,
}

impl ModelFigures {
    /// Records what the firmware under QEMU measured: (ELF flash, RAM, instructions).
    fn set_measured(&mut self, (flash, ram, insns): (u64, u64, Option<f64>)) {
        self.firmware_flash_bytes = Some(flash);
        self.firmware_ram_bytes = Some(ram);
        self.insns_measured = insns;
        self.energy_uj_measured = match (self.energy_uj, insns, self.insns_predicted) {
            (Some(e), Some(m), Some(p)) if p > 0.0 => Some(e.scale(m / p)),
            _ => None,
        };
    }
}

#[derive(Serialize)]
struct Budgets {
    flash_kb: f64,
    ram_kb: f64,
    energy_uj: Option<f64>,
}

#[derive(Serialize)]
struct Results {
    method: String,
    dataset: String,
    space: String,
    device: String,
    budgets: Budgets,
    proxy: ProxyBudget,
    config: SearchConfig,
    spearman: Option<f64>,
    spearman_ci: Option<(f64, f64)>,
    n_heldout: usize,
    /// Spearman between two trainings of each held-out candidate (with 2+ proxy repeats).
    #[serde(skip_serializing_if = "Option::is_none")]
    repeat_spearman: Option<f64>,
    /// The held-out candidates: predicted and measured validation accuracy, each repeat's.
    heldout: Vec<HeldOut>,
    /// Search, grow-and-prune and output (QEMU measurements excluded).
    wall_seconds: f64,
    evaluations: usize,
    best: ModelFigures,
    best_key: String,
    baseline: Option<ModelFigures>,
    pareto: Vec<ParetoPoint>,
    git_commit: String,
    command: String,
}

#[derive(Serialize)]
struct HeldOut {
    key: String,
    predicted: f64,
    measured: f64,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    runs: Vec<f64>,
}

/// Builds the board firmware around the model in `out` (model.json + vectors.bin), runs it under
/// QEMU, and returns (ELF flash, RAM, mean instructions per inference).
fn measure(root: &Path, out: &Path) -> Result<(u64, u64, Option<f64>)> {
    let board = firmware::board("qemu-mps2-an386")?;
    let files = OutputFiles::in_dir(out);
    let model = Model::load(&files.model)?;
    let vectors = std::path::absolute(&files.vectors)?;
    let elf = flow::build_firmware(root, board, &model, &vectors)?;
    let run = flow::run_firmware(board, &elf, Duration::from_secs(900))?;
    let expected = flow::reference_outputs(&model, &bonsai::vectors::read(&files.vectors)?)?;
    flow::compare("firmware under QEMU", &expected, &run.outputs)?;
    Ok((
        elf.flash_bytes,
        elf.static_ram_bytes + run.stack_peak,
        flow::mean_insns(&run),
    ))
}

/// Instructions per inference of a front architecture under QEMU: its seeded (untrained) model,
/// quantized and lowered like a trained one. Dense kernels execute the same instructions whatever
/// the weight values (only ReLU and max-pool branches depend on data), so this measures the
/// architecture's cost without retraining it.
fn measure_architecture(
    root: &Path,
    eval: &Evaluator,
    c: &Candidate,
    dir: &Path,
) -> Result<Option<f64>> {
    let board = firmware::board("qemu-mps2-an386")?;
    let model = eval.model(c, 1)?;
    let data = eval.data();
    let calib: Vec<Vec<f32>> = (0..data.train.len().min(64))
        .map(|i| data.train.row(i).to_vec())
        .collect();
    let q = bonsai::quant::quantize_with_input(
        &model,
        &calib,
        bonsai::data::fixed_input_quant(eval.data_spec()),
    )?;
    let vectors: Vec<Vec<i8>> = (0..data.test.len().min(8))
        .map(|i| bonsai::quant::quantize_input(&q, data.test.row(i)))
        .collect();
    let path = std::path::absolute(dir.join("vectors.bin"))?;
    bonsai::vectors::write(&path, q.input_len(), &vectors)?;
    let elf = flow::build_firmware(root, board, &q, &path)?;
    let run = flow::run_firmware(board, &elf, Duration::from_secs(900))?;
    flow::compare(
        "front architecture under QEMU",
        &flow::reference_outputs(&q, &vectors)?,
        &run.outputs,
    )?;
    Ok(flow::mean_insns(&run))
}

fn figures(name: &str, s: &Summary) -> ModelFigures {
    ModelFigures {
        name: name.into(),
        test_error: 100.0 * (1.0 - s.int8_test_accuracy),
        energy_uj: s.energy_uj,
        energy_uj_measured: None,
        flash_bytes: s.weight_bytes,
        ram_bytes: s.arena_bytes,
        firmware_flash_bytes: None,
        firmware_ram_bytes: None,
        params_nonzero: s.params_nonzero,
        insns_predicted: s.insns_predicted,
        insns_measured: None,
        wall_seconds: s.wall_seconds,
    }
}

/// A finished baseline and the settings that made it: a rerun with the same settings (the
/// methods are often benched one at a time) reuses it instead of retraining for 10 minutes.
#[derive(Serialize, Deserialize)]
struct BaselineRecord {
    settings: String,
    figures: ModelFigures,
}

/// The baseline: the seed architecture trained, then magnitude-pruned in rounds (with
/// retraining) to a density whose sparse storage fits the flash budget. Its figures, or None (with
/// the reason on stderr) when it does not fit.
fn baseline(root: &Path, args: &BenchArgs, seed: &Path) -> Result<Option<ModelFigures>> {
    let out = root.join("target/bench/search/baseline");
    let record = out.join("baseline-run.json");
    let opts = SynthOptions {
        data: args.data.parse()?,
        out: out.clone(),
        seed_arch: Some(seed.to_path_buf()),
        train: TrainConfig {
            max_epochs: 10,
            lr_schedule: bonsai::train::LrSchedule::Cosine { floor: 0.01 },
            weight_decay: 3e-4,
            ..TrainConfig::default()
        },
        schedule: Schedule {
            method: Method::Prune,
            // LeNet-5's 431k weights at 5 %: ~21k nonzeros, ~45 KB as delta-CSR entries.
            target_density: 0.05,
            rounds: 5,
            retrain_epochs: 3,
            final_epochs: 6,
            ..Schedule::default()
        },
        device: args.device.clone(),
        budgets: bonsai::energy::Budgets {
            energy_uj: args.energy_uj,
            flash_kb: Some(args.flash_kb),
            ram_kb: Some(args.ram_kb),
        },
        ..SynthOptions::default()
    };
    let name = seed
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let settings = format!("{opts:?}");
    if let Some(r) = std::fs::read_to_string(&record)
        .ok()
        .and_then(|t| serde_json::from_str::<BaselineRecord>(&t).ok())
        .filter(|r| r.settings == settings)
    {
        eprintln!("baseline {name}: reusing {}", record.display());
        return Ok(Some(r.figures));
    }
    match synthesize(&opts) {
        Ok(s) => {
            let mut f = figures(&format!("{name} pruned"), &s);
            f.set_measured(measure(root, &out)?);
            let r = BaselineRecord {
                settings,
                figures: f.clone(),
            };
            bonsai::util::write_atomic(&record, serde_json::to_string_pretty(&r)?.as_bytes())
                .with_context(|| format!("cannot write {}", record.display()))?;
            Ok(Some(f))
        }
        Err(e) => {
            eprintln!("baseline {name}: {e:#}");
            Ok(None)
        }
    }
}

pub fn bench(root: &Path, args: &BenchArgs, command: &str) -> Result<()> {
    let commit = git_commit(root);
    let base = match &args.baseline_seed {
        Some(seed) => baseline(root, args, seed)?,
        None => None,
    };
    // No more energy than the baseline: its worst-case estimate is the search's hard limit
    // unless one was given (the same check the search applies to every candidate).
    let energy_uj = args
        .energy_uj
        .or_else(|| base.as_ref().and_then(|b| b.energy_uj).map(|e| e.max));
    if let (None, Some(e)) = (args.energy_uj, energy_uj) {
        eprintln!("energy budget: {e:.1} µJ per inference, the baseline's worst-case estimate");
    }
    for method in &args.methods {
        let m: SearchMethod = method.parse().map_err(anyhow::Error::msg)?;
        let out = root.join(format!("target/bench/search/{method}"));
        let limits = HwLimits {
            device: args.device.clone(),
            flash_kb: Some(args.flash_kb),
            ram_kb: Some(args.ram_kb),
            energy_uj,
        };
        let t = &args.tuning;
        let proxy = ProxyBudget {
            epochs: t.proxy_epochs,
            max_train_samples: t.proxy_train_samples,
            repeats: t.proxy_repeats,
            ..ProxyBudget::default()
        };
        // AutoShrink shrinks a DAG cell: the shipped cell space unless a cell space was given.
        let space = match (m, Space::load(&t.space)) {
            (SearchMethod::Autoshrink, Ok(s)) if !matches!(s.kind, SpaceKind::Cell(_)) => {
                root.join("models/spaces/cell.toml")
            }
            _ => t.space.clone(),
        };
        let job = SearchJob {
            space: space.clone(),
            search: SearchConfig {
                method: m,
                seed: 1,
                n_heldout: t.heldout,
                n_init: t.init,
                iterations: t.iterations,
                top_k: t.top_k,
                population: t.population,
                generations: t.generations,
                shrink: (m == SearchMethod::Autoshrink).then(|| t.shrink_config()),
            },
            context: EvalContext {
                data: args.data.clone(),
                split_seed: 1,
                input: None,
                proxy: proxy.clone(),
                limits: limits.clone(),
                val_fraction: t.val_fraction,
            },
            state: t
                .state
                .clone()
                .unwrap_or_else(|| out.join("search-state.json")),
            max_batches: t.max_batches,
            synth: SynthOptions {
                data: args.data.parse()?,
                out: out.clone(),
                train: TrainConfig {
                    max_epochs: 20,
                    lr_schedule: bonsai::train::LrSchedule::Cosine { floor: 0.01 },
                    weight_decay: 3e-4,
                    ..TrainConfig::default()
                },
                // Local search on the winner: NeST's grow-prune iteration from the trained
                // dense model (no sparse seed, no growth phase): each round prunes 10% past its
                // goal and regrows that share where |dL/dw| is largest, until validation drops
                // half a point.
                schedule: Schedule {
                    method: Method::Nest,
                    seed_density: 1.0,
                    grow_rounds: 0,
                    regrow_fraction: 0.1,
                    target_density: 0.3,
                    max_val_drop: Some(0.005),
                    rounds: 3,
                    retrain_epochs: 4,
                    ..Schedule::default()
                },
                device: args.device.clone(),
                budgets: limits.budgets(),
                ..SynthOptions::default()
            },
        };
        let started = Instant::now();
        let report = job::run(&job).with_context(|| format!("{method} search"))?;
        let wall = started.elapsed().as_secs_f64();
        let mut best = figures(&report.outcome.best.candidate.key(), &report.summary);
        best.wall_seconds = wall;
        best.set_measured(measure(root, &out)?);
        let mut pareto = report.outcome.pareto.clone();
        if !args.no_front_qemu {
            let eval = Evaluator::new(report.context.clone())?;
            let dir = out.join("front");
            for p in pareto
                .iter_mut()
                .filter(|p| p.on_energy_front || p.on_flash_front)
            {
                let c = report
                    .outcome
                    .evaluations
                    .iter()
                    .find(|e| e.candidate.key() == p.key)
                    .map(|e| e.candidate.clone())
                    .context("a front point that was not evaluated")?;
                p.insns_measured = measure_architecture(root, &eval, &c, &dir)?;
                eprintln!(
                    "front {}: {:.0} instructions predicted, {:?} measured",
                    p.key, p.insns_predicted, p.insns_measured
                );
            }
        }
        let q = report.outcome.predictor.as_ref();
        let heldout = q.map_or_else(Vec::new, |q| {
            (q.keys.iter().zip(&q.predicted).zip(&q.measured))
                .map(|((key, &predicted), &measured)| HeldOut {
                    key: key.clone(),
                    predicted,
                    measured,
                    runs: report
                        .outcome
                        .heldout
                        .iter()
                        .find(|e| e.metrics.key == *key)
                        .map_or_else(Vec::new, |e| e.metrics.val_accuracy_runs.clone()),
                })
                .collect()
        });
        let results = Results {
            method: method.clone(),
            dataset: report.summary.dataset.clone(),
            space: space.display().to_string(),
            device: args.device.clone(),
            budgets: Budgets {
                flash_kb: args.flash_kb,
                ram_kb: args.ram_kb,
                energy_uj,
            },
            proxy,
            config: report.config.clone(),
            spearman: q.and_then(|q| q.spearman),
            spearman_ci: q.and_then(|q| q.spearman_ci),
            n_heldout: q.map_or(0, |q| q.n_heldout),
            repeat_spearman: q.and_then(|q| q.repeat_spearman),
            heldout,
            wall_seconds: wall,
            evaluations: report.outcome.evaluations.len() + report.outcome.heldout.len(),
            best_key: report.outcome.best.candidate.key(),
            best,
            baseline: base.clone(),
            pareto,
            git_commit: commit.clone(),
            command: command.into(),
        };
        let path = root.join(format!("bench/results/search-{method}.json"));
        bonsai::util::write_atomic(
            &path,
            (serde_json::to_string_pretty(&results)? + "\n").as_bytes(),
        )
        .with_context(|| format!("cannot write {}", path.display()))?;
        let svg = root.join(format!("bench/results/search-{method}-pareto.svg"));
        std::fs::copy(out.join("pareto.svg"), &svg)
            .with_context(|| format!("cannot write {}", svg.display()))?;
    }
    write_section(root, "search", &table(root)?)
}

/// The BENCHMARKS.md section from every `bench/results/search-*.json` present (methods may be
/// run separately).
fn table(root: &Path) -> Result<String> {
    let mut rows = String::new();
    let mut baseline_row = None;
    let mut plots = String::new();
    let mut all = Vec::new();
    for method in ["steerage", "autoshrink", "random"] {
        let path = root.join(format!("bench/results/search-{method}.json"));
        let Ok(text) = std::fs::read_to_string(&path) else {
            continue;
        };
        let r: serde_json::Value =
            serde_json::from_str(&text).with_context(|| format!("{}", path.display()))?;
        let b = &r["best"];
        let num = |v: &serde_json::Value, d: usize| {
            v.as_f64().map_or("–".to_string(), |x| format!("{x:.d$}"))
        };
        let energy = |v: &serde_json::Value| match (
            v["energy_uj"]["min"].as_f64(),
            v["energy_uj"]["max"].as_f64(),
        ) {
            (Some(a), Some(b)) => format!("{a:.1}–{b:.1}"),
            _ => "–".into(),
        };
        let ci = match r["spearman_ci"]
            .as_array()
            .map(|a| (a[0].as_f64(), a[1].as_f64()))
        {
            Some((Some(a), Some(b))) => format!(" ({a:.2}–{b:.2})"),
            _ => String::new(),
        };
        rows += &format!(
            "| {method} | {} | {:.2} | {} | {} | {} | {} | {} | {}{} ({}) | {} | {:.0} |\n",
            r["best_key"].as_str().unwrap_or("?"),
            b["test_error"].as_f64().unwrap_or(f64::NAN),
            energy(b),
            b["flash_bytes"],
            b["ram_bytes"],
            b["params_nonzero"],
            num(&b["insns_measured"], 0),
            num(&r["spearman"], 3),
            ci,
            r["n_heldout"],
            r["evaluations"],
            r["wall_seconds"].as_f64().unwrap_or(f64::NAN),
        );
        if let Some(base) = r["baseline"].as_object() {
            let base = serde_json::Value::Object(base.clone());
            baseline_row = Some(format!(
                "| baseline | {} | {:.2} | {} | {} | {} | {} | {} | – | – | {:.0} |\n",
                base["name"].as_str().unwrap_or("?"),
                base["test_error"].as_f64().unwrap_or(f64::NAN),
                energy(&base),
                base["flash_bytes"],
                base["ram_bytes"],
                base["params_nonzero"],
                num(&base["insns_measured"], 0),
                base["wall_seconds"].as_f64().unwrap_or(f64::NAN),
            ));
        }
        plots += &format!("![{method} Pareto front](bench/results/search-{method}-pareto.svg)\n\n");
        all.push((method, r));
    }
    let first = all.first().map(|(_, r)| r.clone()).unwrap_or_default();
    Ok(format!(
        "## Architecture search under an MCU budget (issue 7)\n\n\
         Command: `{}` (commit {}). Dataset {}, device {} with {} KB parameter flash and {} KB \
         activation RAM. Every candidate is checked against the limits before training \
         (quantize + lower + cost model); feasible ones get the proxy training ({} epochs{}); \
         the winner is trained in full, then grown and pruned (NeST rounds that prune past their goal and regrow by gradient, until validation drops half a point), then shipped int8. Test error is the shipped \
         model's int8 error on the official test split (never consulted by the search); energy is \
         the cost model's estimate; instructions are measured under QEMU (mps2-an386, \
         `-icount`). Spearman: predicted vs measured validation accuracy of the held-out random \
         candidates (90% bootstrap interval). Per-method results: \
         `bench/results/search-<method>.json`.\n\n\
         | method | model | test error % | energy µJ | flash B | RAM B | nonzero params | insns measured | Spearman (CI) (held-out) | evaluations | wall s |\n\
         |---|---|---:|---|---:|---:|---:|---:|---|---:|---:|\n{rows}{}\n{}{}\n{plots}",
        first["command"].as_str().unwrap_or("?"),
        first["git_commit"].as_str().unwrap_or("?"),
        first["dataset"].as_str().unwrap_or("?"),
        first["device"].as_str().unwrap_or("?"),
        first["budgets"]["flash_kb"],
        first["budgets"]["ram_kb"],
        first["proxy"]["epochs"],
        match first["proxy"]["repeats"].as_u64() {
            Some(n) if n > 1 => format!(", the mean of {n} trainings from different seeds"),
            _ => String::new(),
        },
        baseline_row.unwrap_or_default(),
        other_commands(&all, &first),
        bar(&all),
    ))
}

/// A line naming the runs whose command or commit is not the header's.
fn other_commands(all: &[(&str, serde_json::Value)], first: &serde_json::Value) -> String {
    fn run(r: &serde_json::Value) -> (Option<&str>, Option<&str>) {
        (r["command"].as_str(), r["git_commit"].as_str())
    }
    let others: Vec<String> = all
        .iter()
        .filter_map(|(m, r)| match run(r) {
            (Some(c), Some(g)) if run(r) != run(first) => {
                Some(format!("{m} from `{c}` (commit {g})"))
            }
            _ => None,
        })
        .collect();
    if others.is_empty() {
        String::new()
    } else {
        format!("Rows from other runs: {}.\n\n", others.join("; "))
    }
}

/// The bar, checked against the results: one line per criterion, met or missed, with
/// the measured figures.
fn bar(all: &[(&str, serde_json::Value)]) -> String {
    let get = |m: &str| all.iter().find(|(k, _)| *k == m).map(|(_, r)| r);
    let verdict = |ok: bool| if ok { "met" } else { "MISSED" };
    // Energy of the instructions QEMU counted (the estimate where nothing was measured).
    let energy = |b: &serde_json::Value| {
        b["energy_uj_measured"]["max"]
            .as_f64()
            .or_else(|| b["energy_uj"]["max"].as_f64())
    };
    let err = |b: &serde_json::Value| b["test_error"].as_f64().unwrap_or(f64::NAN);
    let mut out = String::from("Bar (issue 7):\n\n");
    let Some(st) = get("steerage") else {
        return out + "- no STEERAGE result yet\n";
    };
    let rho = st["spearman"].as_f64().unwrap_or(f64::NAN);
    let ceiling = st["repeat_spearman"].as_f64().map_or(String::new(), |r| {
        format!(" (two single trainings of each held-out candidate agree to {r:.3})")
    });
    out += &format!(
        "- predictor Spearman >= 0.8 on {} held-out candidates: {rho:.3}{ceiling}, {}\n",
        st["n_heldout"],
        verdict(rho >= 0.8)
    );
    let wall = st["wall_seconds"].as_f64().unwrap_or(f64::NAN);
    out += &format!(
        "- STEERAGE search + grow-and-prune within 45 minutes: {wall:.0} s, {}\n",
        verdict(wall <= 2700.0)
    );
    let (b, base) = (&st["best"], &st["baseline"]);
    if base.is_object() {
        let (e, be) = (energy(b), energy(base));
        let no_more = matches!((e, be), (Some(e), Some(be)) if e <= be);
        let less = matches!((e, be), (Some(e), Some(be)) if e < be);
        let ok = (err(b) < err(base) && no_more) || (less && err(b) <= err(base));
        out += &format!(
            "- beats the baseline ({}: {:.2}% at {:.0} µJ) on error at no more energy, or on \
             energy at no more error: {:.2}% at {:.0} µJ (worst case, measured instructions), {}\n",
            base["name"].as_str().unwrap_or("?"),
            err(base),
            be.unwrap_or(f64::NAN),
            err(b),
            e.unwrap_or(f64::NAN),
            verdict(ok)
        );
    }
    if let Some(rd) = get("random") {
        let rb = &rd["best"];
        let ok = err(b) < err(rb)
            || (err(b) == err(rb) && energy(b).zip(energy(rb)).is_some_and(|(a, r)| a < r));
        out += &format!(
            "- beats random search at the same budget: {:.2}% vs {:.2}%, {}\n",
            err(b),
            err(rb),
            verdict(ok)
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::other_commands;

    #[test]
    fn rows_from_other_runs_are_named_with_their_command() {
        let first =
            serde_json::json!({"command": "cargo xtask bench search A", "git_commit": "aaa"});
        let same = ("steerage", first.clone());
        assert_eq!(other_commands(std::slice::from_ref(&same), &first), "");
        let other = (
            "autoshrink",
            serde_json::json!({"command": "cargo xtask bench search B", "git_commit": "bbb"}),
        );
        let line = other_commands(&[same, other], &first);
        assert_eq!(
            line,
            "Rows from other runs: autoshrink from `cargo xtask bench search B` (commit bbb).\n\n"
        );
    }
}
