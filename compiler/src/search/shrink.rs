//! AutoShrink (Zhang et al., AAAI 2020): start from the full DAG cell and remove one edge per
//! step until the budget is met.
//!
//! - **Start**: the full cell (every candidate edge of the space) is trained for
//!   `warmup_epochs` from its seeded initialisation: it is the shared-weight parent of every
//!   later cell.
//! - **Step**: the shrink space is every kept edge whose removal leaves the cell's input
//!   connected to its output (edges the removal leaves off every input→output path go with it:
//!   they would compute values nothing reads). `top_k` (K) moves are drawn from it (seeded per
//!   step; all of them when there are no more than K). Each child inherits its parent's trained
//!   weights by name (weight sharing) and is fine-tuned for the proxy budget's epochs with its
//!   own seed (from the search seed and its key), in parallel; the Evaluator measures its
//!   validation accuracy and hardware figures on the device.
//! - **Score** (efficiency-aware): `val_accuracy − λ · energy / energy_full`, energy the middle
//!   of the estimated range per inference and `energy_full` the full cell's: λ = 0.05 says a 20 %
//!   energy cut is worth one point of accuracy. A child over a hard limit scores
//!   `score − 1 − overshoot` (overshoot: the largest relative excess over a limit), so any child
//!   within the limits beats every child over them and, over them, the nearest wins. Ties go
//!   to the lower key. The best child becomes the parent.
//! - **Stop** when the parent meets every hard limit and has at most `target_edges` edges; with
//!   no target, when it meets the limits and none of its evaluated children scores higher (the
//!   shrink no longer pays); in any case when no edge can go (a single path is left): then, if
//!   the limits are still not met, an error names the limit missed and the best figure reached.
//!
//! Every step is a batch of the resumable [`SearchState`]: its evaluations and the trained
//! weights of every evaluated cell (exact, as f32 bits) are saved after it, so a resumed shrink
//! replays the trajectory from the state without training any cell twice.

use super::cell::{self, CellArch};
use super::pareto;
use super::run::{candidate_seed, step_rng, Event, Ledger, SearchConfig, SearchOutcome};
use super::space::SpaceKind;
use super::state::{Evaluation, Role};
use super::{Candidate, Evaluator, HwLimits, Metrics, SearchError, Space};
use crate::ir::Model;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::Path;

/// AutoShrink's settings (K is the search's `top_k`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ShrinkConfig {
    /// Weight of the normalised energy in the score.
    pub lambda: f64,
    /// Keep shrinking (within the limits) down to this many edges; None: stop at the first cell
    /// within the limits that no evaluated child out-scores.
    pub target_edges: Option<usize>,
    /// Training epochs of the full cell before the first step.
    pub warmup_epochs: usize,
}

impl Default for ShrinkConfig {
    fn default() -> Self {
        ShrinkConfig {
            lambda: 0.05,
            target_edges: None,
            warmup_epochs: 10,
        }
    }
}

/// One point of the shrink trajectory: the parent kept after a step.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ShrinkStep {
    /// 0: the full cell.
    pub step: usize,
    pub key: String,
    pub edges: usize,
    /// The edge the step removed, as `from-to:op` (None for the full cell).
    pub removed: Option<String>,
    /// Moves in the shrink space, and how many were evaluated.
    pub moves: usize,
    pub evaluated: usize,
    pub score: f64,
    pub metrics: Metrics,
}

/// The largest relative excess of `m` over a limit of `limits` (0 when none is exceeded).
fn overshoot(m: &Metrics, limits: &HwLimits) -> f64 {
    if m.flash_bytes == 0 {
        // Not lowered at all: further than any figure.
        return 10.0;
    }
    let ratio = |fig: f64, lim: Option<f64>| lim.map_or(0.0, |l| (fig / l - 1.0).max(0.0));
    ratio(m.flash_bytes as f64, limits.flash_kb.map(|k| k * 1024.0))
        .max(ratio(m.ram_bytes as f64, limits.ram_kb.map(|k| k * 1024.0)))
        .max(ratio(m.energy_uj.max, limits.energy_uj))
}

/// The efficiency-aware score (see the module comment); `energy_full` is the full cell's.
pub fn score(m: &Metrics, energy_full: f64, lambda: f64, limits: &HwLimits) -> f64 {
    let s = m.val_accuracy - lambda * m.energy_mid() / energy_full.max(1e-12);
    if m.feasible {
        s
    } else {
        s - 1.0 - overshoot(m, limits)
    }
}

struct Shrinker<'a> {
    eval: &'a Evaluator,
    cfg: &'a SearchConfig,
    ledger: Ledger<'a>,
}

impl Shrinker<'_> {
    /// Evaluates `cands` (children of `parent`, or fresh cells without one) for `epochs`, in
    /// parallel; cells in the state are not retrained. Saves the state; returns the batch's
    /// evaluations in `cands` order and their trained models.
    fn batch(
        &mut self,
        parent: Option<&Model>,
        cands: &[CellArch],
        role: Role,
        epochs: usize,
    ) -> Result<(Vec<Evaluation>, Vec<Model>), SearchError> {
        let keys: Vec<String> = cands.iter().map(CellArch::key).collect();
        let todo_keys = self.ledger.begin_batch(&keys)?;
        let todo: Vec<&CellArch> = cands
            .iter()
            .zip(&keys)
            .filter(|(_, k)| todo_keys.contains(k))
            .map(|(a, _)| a)
            .collect();
        let (eval, seed, batch, on_event) = (
            self.eval,
            self.cfg.seed,
            self.ledger.batch,
            self.ledger.on_event,
        );
        let results: Vec<Result<(Evaluation, Model), SearchError>> = todo
            .par_iter()
            .map(|a| {
                let c = Candidate::Cell((*a).clone());
                let s = candidate_seed(seed, &c);
                let mut model = eval.model(&c, s)?;
                if let Some(p) = parent {
                    cell::inherit(&mut model, p);
                }
                let metrics = eval.fine_tune(&a.key(), &mut model, s, epochs)?;
                on_event(Event::Evaluated {
                    metrics: &metrics,
                    cached: false,
                });
                let e = Evaluation {
                    candidate: c,
                    role,
                    batch,
                    seed: s,
                    metrics,
                };
                Ok((e, model))
            })
            .collect();
        let mut trained: HashMap<String, Model> = HashMap::new();
        for r in results {
            let (e, model) = r?;
            let key = e.candidate.key();
            self.ledger
                .state
                .weights
                .insert(key.clone(), cell::weights_hex(&model));
            self.ledger.state.evaluations.insert(key.clone(), e);
            trained.insert(key, model);
            self.ledger.evaluated_now += 1;
        }
        self.ledger.end_batch()?;
        let mut evals = Vec::with_capacity(cands.len());
        let mut models = Vec::with_capacity(cands.len());
        for a in cands {
            let key = a.key();
            evals.push(self.ledger.state.evaluations[&key].clone());
            models.push(match trained.remove(&key) {
                Some(m) => m,
                None => self.stored_model(a)?,
            });
        }
        Ok((evals, models))
    }

    /// A cell's trained model rebuilt from the weights in the state.
    fn stored_model(&self, a: &CellArch) -> Result<Model, SearchError> {
        let key = a.key();
        let bad = |problem: String| SearchError::State {
            file: self.ledger.state_path.display().to_string(),
            problem,
        };
        let hex = self
            .ledger
            .state
            .weights
            .get(&key)
            .ok_or_else(|| bad(format!("no trained weights for {key}")))?;
        let mut m = self.eval.model(&Candidate::Cell(a.clone()), 0)?;
        cell::set_weights_hex(&mut m, hex).map_err(|e| bad(format!("{key}: {e}")))?;
        Ok(m)
    }
}

/// Runs (or resumes) AutoShrink over a cell space; see the module comment. `max_batches` stops
/// before that batch as [`super::search`] does.
pub fn shrink(
    space: &Space,
    eval: &Evaluator,
    cfg: &SearchConfig,
    state_path: &Path,
    max_batches: Option<usize>,
    on_event: &(dyn Fn(Event) + Sync),
) -> Result<SearchOutcome, SearchError> {
    let SpaceKind::Cell(spec) = &space.kind else {
        return Err(SearchError::Config(format!(
            "autoshrink shrinks a DAG cell: {} is not a cell space (kind = \"cell\", e.g. \
             models/spaces/cell.toml)",
            space.file
        )));
    };
    if cfg.top_k == 0 {
        return Err(SearchError::Config(
            "autoshrink needs top_k (K, the moves evaluated per step) ≥ 1".into(),
        ));
    }
    let sc = cfg.shrink.clone().unwrap_or_default();
    let fingerprint = serde_json::json!({
        "search": cfg,
        "context": eval.context,
        "space": space.fingerprint(),
    });
    let mut d = Shrinker {
        eval,
        cfg,
        ledger: Ledger::open(state_path, fingerprint, max_batches, on_event)?,
    };
    let full = spec.full();
    // Planned evaluations if the shrink ran to a single edge: an upper bound for the progress.
    on_event(Event::Planned(
        1 + (2..=full.edges.len())
            .map(|e| e.min(cfg.top_k))
            .sum::<usize>(),
    ));
    on_event(Event::Phase("full cell".into()));
    let warmup = sc.warmup_epochs.max(1);
    let (mut evals, mut models) =
        d.batch(None, std::slice::from_ref(&full), Role::Sample, warmup)?;
    let (mut current, mut model) = (evals.remove(0), models.remove(0));
    let mut arch = full;
    let limits = &eval.context.limits;
    let energy_full = current.metrics.energy_mid();
    let score_of = |m: &Metrics| score(m, energy_full, sc.lambda, limits);
    let mut all = vec![current.clone()];
    let mut trajectory = vec![ShrinkStep {
        step: 0,
        key: arch.key(),
        edges: arch.edges.len(),
        removed: None,
        moves: 0,
        evaluated: 1,
        score: score_of(&current.metrics),
        metrics: current.metrics.clone(),
    }];
    for step in 1.. {
        let done =
            current.metrics.feasible && sc.target_edges.is_some_and(|t| arch.edges.len() <= t);
        let moves = arch.shrink_moves();
        if done || moves.is_empty() {
            break;
        }
        let picked: Vec<(usize, CellArch)> = if moves.len() <= cfg.top_k {
            moves.clone()
        } else {
            let mut rng = step_rng(cfg.seed, "shrink", step);
            let mut idx = rand::seq::index::sample(&mut rng, moves.len(), cfg.top_k).into_vec();
            idx.sort_unstable();
            idx.into_iter().map(|i| moves[i].clone()).collect()
        };
        on_event(Event::Phase(format!(
            "step {step} ({} edges)",
            arch.edges.len()
        )));
        let children: Vec<CellArch> = picked.iter().map(|(_, a)| a.clone()).collect();
        let (evals, mut models) = d.batch(
            Some(&model),
            &children,
            Role::Proposed,
            eval.context.proxy.epochs,
        )?;
        let best = (0..evals.len())
            .max_by(|&a, &b| {
                score_of(&evals[a].metrics)
                    .total_cmp(&score_of(&evals[b].metrics))
                    .then(evals[b].metrics.key.cmp(&evals[a].metrics.key))
            })
            .expect("at least one move");
        all.extend(evals.iter().cloned());
        if current.metrics.feasible
            && sc.target_edges.is_none()
            && score_of(&evals[best].metrics) <= score_of(&current.metrics)
        {
            // Within the limits and no target: shrinking no longer pays.
            break;
        }
        let removed = &spec.edges[picked[best].0];
        current = evals[best].clone();
        model = models.swap_remove(best);
        arch = picked[best].1.clone();
        trajectory.push(ShrinkStep {
            step,
            key: arch.key(),
            edges: arch.edges.len(),
            removed: Some(format!(
                "{}-{}:{}",
                removed.from,
                removed.to,
                removed.op.name()
            )),
            moves: moves.len(),
            evaluated: evals.len(),
            score: score_of(&current.metrics),
            metrics: current.metrics.clone(),
        });
    }
    if !current.metrics.feasible {
        // The figures nearest the limits over every cell the shrink trained.
        let min = |f: &dyn Fn(&Metrics) -> f64| {
            all.iter()
                .filter(|e| e.metrics.flash_bytes > 0)
                .map(|e| f(&e.metrics))
                .fold(f64::INFINITY, f64::min)
        };
        let figures = crate::energy::Figures {
            energy_uj_max: min(&|m| m.energy_uj.max),
            flash_bytes: min(&|m| m.flash_bytes as f64) as usize,
            ram_bytes: min(&|m| m.ram_bytes as f64) as usize,
        };
        let why = crate::energy::check_budgets(&limits.budgets(), &figures, &limits.device)
            .err()
            .map(|e| e.to_string())
            .or_else(|| current.metrics.infeasible.clone())
            .unwrap_or_default();
        return Err(SearchError::Config(format!(
            "autoshrink: no cell of {} reached the limits; the last cell, {} ({} edges), cannot \
             lose another edge: {why}",
            space.file,
            arch.key(),
            arch.edges.len()
        )));
    }
    // Every cell the shrink trained (the steps and the children it compared), not only the
    // path it took: a child it passed over may still be the better trade of accuracy for energy.
    let pareto = pareto::points(&all.iter().map(|e| &e.metrics).collect::<Vec<_>>());
    d.ledger.state.finished = true;
    d.ledger.save()?;
    Ok(SearchOutcome {
        method: cfg.method,
        evaluations: all,
        heldout: vec![],
        best: current,
        predictor: None,
        pareto,
        evaluated_now: d.ledger.evaluated_now,
        wall_seconds: d.ledger.state.seconds,
        shrink: Some(trajectory),
        trained_best: Some(model),
    })
}
