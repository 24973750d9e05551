//! A whole search job, as `bonsai search` runs it: global search (or AutoShrink) → grow-and-prune the winner
//! (local search with `synth::schedule`) → the same outputs as `bonsai synthesize` (model.json,
//! model crate, test vectors, summary.json), plus `search.json`, `pareto.json` and
//! `pareto.svg`.

use super::pareto::{self, ParetoPoint};
use super::run::{search, Event, SearchConfig, SearchOutcome};
use super::{EvalContext, Evaluator, Space};
use crate::pipeline::{self, Summary, SynthOptions, Trained};
use crate::synth::schedule::{self, Schedule};
use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Instant;

/// Everything a job needs.
#[derive(Clone, Debug)]
pub struct SearchJob {
    pub space: PathBuf,
    pub search: SearchConfig,
    /// Data, proxy budget and hardware limits of every evaluation (`input` is taken from the
    /// space when None).
    pub context: EvalContext,
    /// The resumable state file.
    pub state: PathBuf,
    /// Stop before this batch (see [`search`]).
    pub max_batches: Option<usize>,
    /// The local search and the outputs: `out`, `train` (the winner's full training),
    /// `schedule` (Dense: no grow-and-prune), `budgets`, `max_vectors`, `show_progress`.
    pub synth: SynthOptions,
}

/// `search.json`: the search, the local search and the shipped model.
#[derive(Clone, Debug, Serialize)]
pub struct SearchReport {
    pub space: String,
    pub context: EvalContext,
    pub config: SearchConfig,
    pub outcome: SearchOutcome,
    /// The winner after grow-and-prune, quantized, measured on the test split.
    pub summary: Summary,
    pub wall_seconds: f64,
}

fn bar(show: bool) -> ProgressBar {
    if !show {
        return ProgressBar::hidden();
    }
    let pb = ProgressBar::new(0);
    pb.set_style(
        ProgressStyle::with_template(
            "{prefix:>10} [{bar:30}] {pos}/{len} {elapsed_precise} (eta {eta}) {msg}",
        )
        .expect("static template")
        .progress_chars("=> "),
    );
    pb.set_prefix("search");
    pb
}

/// Runs the job; nothing but the state file is written before the whole job has succeeded.
pub fn run(job: &SearchJob) -> anyhow::Result<SearchReport> {
    let start = Instant::now();
    let space = Space::load(&job.space)?;
    let mut context = job.context.clone();
    if context.input.is_none() {
        context.input = space.input.clone();
    }
    let eval = Evaluator::new(context.clone())?;
    let pb = bar(job.synth.show_progress);
    let best = Mutex::new(None::<(f64, String)>);
    let on_event = |e: Event| match e {
        Event::Planned(n) => pb.set_length(n as u64),
        Event::Phase(p) => pb.set_prefix(p),
        Event::Evaluated { metrics, .. } => {
            if metrics.feasible && metrics.trained {
                let mut b = best.lock().expect("not poisoned");
                if b.as_ref().is_none_or(|(a, _)| metrics.val_accuracy > *a) {
                    *b = Some((metrics.val_accuracy, metrics.key.clone()));
                }
                if let Some((a, k)) = b.as_ref() {
                    pb.set_message(format!("best val {:.2}% {k}", 100.0 * a));
                }
            }
            pb.inc(1);
        }
    };
    let outcome = search(
        &space,
        &eval,
        &job.search,
        &job.state,
        job.max_batches,
        &on_event,
    )?;
    pb.finish_with_message(format!(
        "best {} val {:.2}%, {} trained now",
        outcome.best.candidate.key(),
        100.0 * outcome.best.metrics.val_accuracy,
        outcome.evaluated_now
    ));

    // Local search: the winner, trained in full from its search seed, grown and pruned.
    let winner = &outcome.best;
    let data = eval.data();
    // AutoShrink's winner carries its inherited, fine-tuned weights: the local search continues
    // them (weight sharing); the other methods' winners start from their seeded initialisation.
    let mut model = match &outcome.trained_best {
        Some(m) => m.clone(),
        None => eval.model(&winner.candidate, winner.seed)?,
    };
    let sched = Schedule {
        reference_weights: None,
        ..job.synth.schedule.clone()
    };
    let train_cfg = crate::train::TrainConfig {
        seed: winner.seed,
        ..job.synth.train.clone()
    };
    let pb = pipeline::spinner(
        job.synth.show_progress,
        schedule::planned_epochs(&sched, train_cfg.max_epochs) as u64,
        "local",
    );
    let mut epochs = 0;
    let mut result = schedule::synthesize(
        &mut model,
        &data.train,
        &data.val,
        &train_cfg,
        &sched,
        |line| pb.println(format!("  {line}")),
        |log| {
            epochs += 1;
            pb.set_message(format!("val acc {:.2}%", 100.0 * log.val_accuracy));
            pb.inc(1);
        },
    )
    .context("grow-and-prune of the search's winner")?;
    pb.finish_and_clear();
    // Growth can push a model over a limit: ship the schedule's choice if it fits, else the
    // best-validated point of the run that does.
    if !eval.check(&model).feasible() {
        let mut order: Vec<usize> = (0..result.trajectory.len()).collect();
        order.sort_by(|&a, &b| {
            result.trajectory[b]
                .val_accuracy
                .total_cmp(&result.trajectory[a].val_accuracy)
        });
        let fit = order
            .into_iter()
            .find(|&i| eval.check(&result.trajectory[i].model).feasible())
            .context("no model of the local search fits the limits")?;
        model = result.trajectory[fit].model.clone();
        result.chosen = fit;
        result.val_accuracy = result.trajectory[fit].val_accuracy;
    }
    let opts = SynthOptions {
        data: eval.data_spec().clone(),
        device: eval.device().name.clone(),
        budgets: context.limits.budgets(),
        ..job.synth.clone()
    };
    let summary = pipeline::finish(
        &opts,
        eval.device(),
        data,
        &model,
        &result,
        Trained {
            method: sched.method,
            seed_arch: winner.candidate.key(),
            epochs,
            start,
        },
    )?;
    let report = SearchReport {
        space: job.space.display().to_string(),
        context,
        config: job.search.clone(),
        outcome,
        summary,
        wall_seconds: start.elapsed().as_secs_f64(),
    };
    write_report(&report, &opts.out)?;
    Ok(report)
}

fn write_report(report: &SearchReport, out: &std::path::Path) -> anyhow::Result<()> {
    let write = |name: &str, text: String| {
        let path = out.join(name);
        crate::util::write_atomic(&path, text.as_bytes())
            .with_context(|| format!("cannot write {}", path.display()))
    };
    write("search.json", serde_json::to_string_pretty(report)? + "\n")?;
    let pts: &[ParetoPoint] = &report.outcome.pareto;
    write("pareto.json", serde_json::to_string_pretty(pts)? + "\n")?;
    pareto::svg(
        &out.join("pareto.svg"),
        &format!(
            "{} search ({}): validation error vs energy and flash",
            report.config.method.as_str(),
            report.context.limits.device
        ),
        pts,
    )?;
    Ok(())
}
