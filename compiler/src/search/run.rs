//! The global search loop: random search (the baseline) and STEERAGE (predictor-guided
//! evolution), over batches evaluated in parallel and recorded in a resumable state.
//!
//! STEERAGE: draw `n_heldout` feasible candidates at random and evaluate them (only to measure
//! the predictor at the end); draw `n_init` more and evaluate them; then `iterations` times: fit
//! the boosted-tree predictor on every evaluated candidate but the held-out ones, run an
//! evolution (tournament selection, crossover, mutation) over the space scored by the predictor
//! with every child checked against the hardware limits first, and evaluate the `top_k`
//! best-predicted candidates not evaluated yet. Random search evaluates `n_init + iterations ×
//! top_k` feasible random candidates: the same evaluation budget as STEERAGE's search proper.

use super::pareto::{self, ParetoPoint};
use super::shrink::{ShrinkConfig, ShrinkStep};
use super::state::{Evaluation, Role, SearchState};
use super::stats;
use super::{Candidate, Evaluator, Hardware, Metrics, Predictor, SearchError, Space};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;
use std::sync::Mutex;
use std::time::Instant;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SearchMethod {
    Steerage,
    Random,
    /// DAG-cell edge shrinking ([`super::shrink`]); needs a cell space.
    Autoshrink,
}

impl std::str::FromStr for SearchMethod {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "steerage" => Ok(SearchMethod::Steerage),
            "random" => Ok(SearchMethod::Random),
            "autoshrink" => Ok(SearchMethod::Autoshrink),
            _ => Err(format!(
                "unknown search method {s:?}: use steerage, autoshrink or random"
            )),
        }
    }
}

impl SearchMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            SearchMethod::Steerage => "steerage",
            SearchMethod::Random => "random",
            SearchMethod::Autoshrink => "autoshrink",
        }
    }
}

/// How much a search evaluates, and how it proposes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SearchConfig {
    pub method: SearchMethod,
    /// Every random step and every candidate's training seed derive from it.
    pub seed: u64,
    /// STEERAGE: feasible random candidates evaluated only to measure the predictor.
    pub n_heldout: usize,
    /// The initial random sample.
    pub n_init: usize,
    /// Fit → evolve → evaluate rounds.
    pub iterations: usize,
    /// Candidates evaluated per round.
    pub top_k: usize,
    /// Evolution: population size and generations per round.
    pub population: usize,
    pub generations: usize,
    /// AutoShrink's settings (None for the other methods, and AutoShrink's defaults).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shrink: Option<ShrinkConfig>,
}

impl Default for SearchConfig {
    fn default() -> Self {
        SearchConfig {
            method: SearchMethod::Steerage,
            seed: 1,
            n_heldout: 30,
            n_init: 16,
            iterations: 4,
            top_k: 6,
            population: 48,
            generations: 12,
            shrink: None,
        }
    }
}

impl SearchConfig {
    /// Evaluations of the search proper (held-out ones excluded).
    pub fn budget(&self) -> usize {
        self.n_init + self.iterations * self.top_k
    }
}

/// What a search reports as it goes (progress display).
pub enum Event<'a> {
    /// Total evaluations planned.
    Planned(usize),
    Phase(String),
    /// One candidate evaluated, or found in the state (`cached`).
    Evaluated {
        metrics: &'a Metrics,
        cached: bool,
    },
}

/// The predictor measured on the held-out candidates.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PredictorQuality {
    pub n_heldout: usize,
    pub spearman: Option<f64>,
    /// Bootstrap 90 % interval (2000 resamples).
    pub spearman_ci: Option<(f64, f64)>,
    /// The held-out candidates measured (trained and feasible), in the order of `predicted`.
    #[serde(default)]
    pub keys: Vec<String>,
    pub predicted: Vec<f64>,
    pub measured: Vec<f64>,
    /// With two or more repeats per candidate: Spearman between the held-out candidates' first
    /// and second trainings, how well one measurement ranks them against another; the noise of
    /// the measured side limits any predictor's Spearman.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repeat_spearman: Option<f64>,
}

/// A finished search.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SearchOutcome {
    pub method: SearchMethod,
    /// The search proper, in evaluation order.
    pub evaluations: Vec<Evaluation>,
    /// STEERAGE's held-out candidates (empty for random search).
    pub heldout: Vec<Evaluation>,
    /// Highest validation accuracy among the feasible evaluations of the search proper (ties:
    /// lower energy, then key); AutoShrink: the last cell kept.
    pub best: Evaluation,
    pub predictor: Option<PredictorQuality>,
    /// Feasible evaluations of the search proper with their fronts.
    pub pareto: Vec<ParetoPoint>,
    /// Candidates trained by this run (the others came from the state file).
    pub evaluated_now: usize,
    /// Wall time of the search, summed over the runs that continued its state.
    pub wall_seconds: f64,
    /// AutoShrink: the parent kept after each step (its `best` is the last one, its Pareto
    /// points these steps).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shrink: Option<Vec<ShrinkStep>>,
    /// AutoShrink: `best`'s trained (inherited and fine-tuned) weights, where the local search
    /// starts.
    #[serde(skip)]
    pub trained_best: Option<crate::ir::Model>,
}

/// Per-candidate training seed: the same wherever and whenever the candidate is evaluated.
pub fn candidate_seed(search_seed: u64, c: &Candidate) -> u64 {
    super::candidate::fnv1a(format!("{search_seed}/{}", c.key()).as_bytes())
}

/// The generator of one named step of a search.
pub(crate) fn step_rng(seed: u64, step: &str, i: usize) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(super::candidate::fnv1a(
        format!("{seed}/{step}/{i}").as_bytes(),
    ))
}

struct Driver<'a> {
    space: &'a Space,
    eval: &'a Evaluator,
    cfg: &'a SearchConfig,
    ledger: Ledger<'a>,
    /// Pre-check figures by key (infeasible also when the candidate does not build).
    hw: Mutex<HashMap<String, Hardware>>,
}

/// The bookkeeping every search driver shares: the state file, the batch counter, the stop
/// after `max_batches`, the time spent, and the cached-evaluation events.
pub(super) struct Ledger<'a> {
    pub state: SearchState,
    pub state_path: &'a Path,
    pub batch: usize,
    pub max_batches: Option<usize>,
    /// When the state's `seconds` were last brought up to date.
    pub clock: Instant,
    pub evaluated_now: usize,
    pub on_event: &'a (dyn Fn(Event) + Sync),
}

impl<'a> Ledger<'a> {
    pub fn open(
        state_path: &'a Path,
        fingerprint: serde_json::Value,
        max_batches: Option<usize>,
        on_event: &'a (dyn Fn(Event) + Sync),
    ) -> Result<Self, SearchError> {
        Ok(Ledger {
            state: SearchState::open(state_path, fingerprint)?,
            state_path,
            batch: 0,
            max_batches,
            clock: Instant::now(),
            evaluated_now: 0,
            on_event,
        })
    }

    /// Before a batch of `keys`: reports those already in the state, and stops (state kept) if
    /// any must be trained and `max_batches` batches have run. Returns the keys to train.
    pub fn begin_batch<'k>(&self, keys: &'k [String]) -> Result<Vec<&'k String>, SearchError> {
        let todo: Vec<&String> = keys
            .iter()
            .filter(|k| !self.state.evaluations.contains_key(*k))
            .collect();
        if !todo.is_empty() && self.max_batches.is_some_and(|m| self.batch >= m) {
            return Err(SearchError::Stopped {
                batches: self.batch,
                state: self.state_path.display().to_string(),
            });
        }
        for k in keys {
            if let Some(e) = self.state.evaluations.get(k) {
                (self.on_event)(Event::Evaluated {
                    metrics: &e.metrics,
                    cached: true,
                });
            }
        }
        Ok(todo)
    }

    /// After a batch: counts it and saves the state.
    pub fn end_batch(&mut self) -> Result<(), SearchError> {
        self.batch += 1;
        self.state.batches_done = self.state.batches_done.max(self.batch);
        self.save()
    }

    pub fn save(&mut self) -> Result<(), SearchError> {
        // Only evaluations make a rerun's time count: a finished search read back adds nothing.
        if self.evaluated_now > 0 {
            self.state.seconds += self.clock.elapsed().as_secs_f64();
        }
        self.clock = Instant::now();
        self.state.save(self.state_path)
    }
}

impl Driver<'_> {
    /// Pre-check figures of `cs`, computed in parallel where not cached.
    fn hardware(&self, cs: &[Candidate]) -> Vec<Hardware> {
        let missing: Vec<&Candidate> = {
            let cache = self.hw.lock().expect("not poisoned");
            let mut seen = HashSet::new();
            cs.iter()
                .filter(|c| !cache.contains_key(&c.key()) && seen.insert(c.key()))
                .collect()
        };
        let computed: Vec<(String, Hardware)> = missing
            .par_iter()
            .map(|c| {
                let hw = self.eval.hardware(c).unwrap_or_else(|e| Hardware {
                    params: 0,
                    macs: 0,
                    flash_bytes: 0,
                    ram_bytes: 0,
                    energy_uj: Default::default(),
                    insns_predicted: 0.0,
                    infeasible: Some(e.to_string()),
                });
                (c.key(), hw)
            })
            .collect();
        let mut cache = self.hw.lock().expect("not poisoned");
        cache.extend(computed);
        cs.iter().map(|c| cache[&c.key()].clone()).collect()
    }

    /// Up to `n` distinct feasible random candidates not in `exclude`, in draw order. Draws in
    /// rounds (each checked in parallel) until `n` are found or a draw limit is reached.
    fn sample_feasible(
        &self,
        rng: &mut ChaCha8Rng,
        n: usize,
        exclude: &HashSet<String>,
    ) -> Vec<Candidate> {
        let mut out = Vec::new();
        let mut keys = HashSet::new();
        let limit = 50 * n + 200;
        let mut drawn = 0;
        while out.len() < n && drawn < limit {
            let round: Vec<Candidate> = (0..(2 * (n - out.len())).max(8))
                .map(|_| self.space.sample(rng))
                .collect();
            drawn += round.len();
            let hw = self.hardware(&round);
            for (c, h) in round.into_iter().zip(hw) {
                let k = c.key();
                if out.len() < n && h.feasible() && !exclude.contains(&k) && keys.insert(k) {
                    out.push(c);
                }
            }
        }
        out
    }

    /// Evaluates a batch (in parallel; candidates already in the state are not retrained),
    /// records it and saves the state.
    fn run_batch(
        &mut self,
        cands: &[Candidate],
        role: Role,
    ) -> Result<Vec<Evaluation>, SearchError> {
        let keys: Vec<String> = cands.iter().map(Candidate::key).collect();
        let todo_keys = self.ledger.begin_batch(&keys)?;
        let todo: Vec<&Candidate> = cands
            .iter()
            .zip(&keys)
            .filter(|(_, k)| todo_keys.contains(k))
            .map(|(c, _)| c)
            .collect();
        let seed = self.cfg.seed;
        let on_event = self.ledger.on_event;
        let eval = self.eval;
        let batch = self.ledger.batch;
        let results: Vec<Result<Evaluation, SearchError>> = todo
            .par_iter()
            .map(|c| {
                let s = candidate_seed(seed, c);
                let metrics = eval.evaluate(c, s)?;
                on_event(Event::Evaluated {
                    metrics: &metrics,
                    cached: false,
                });
                Ok(Evaluation {
                    candidate: (*c).clone(),
                    role,
                    batch,
                    seed: s,
                    metrics,
                })
            })
            .collect();
        for r in results {
            let e = r?;
            self.ledger.evaluated_now += 1;
            self.ledger.state.evaluations.insert(e.candidate.key(), e);
        }
        self.ledger.end_batch()?;
        Ok(keys
            .iter()
            .map(|k| self.ledger.state.evaluations[k].clone())
            .collect())
    }

    fn features(&self, cs: &[Candidate]) -> Vec<Vec<f64>> {
        let hw = self.hardware(cs);
        cs.iter()
            .zip(&hw)
            .map(|(c, h)| self.space.features(c, h))
            .collect()
    }

    /// The predictor fitted on `evals` (feasible, trained ones).
    fn fit(&self, evals: &[&Evaluation], round: usize) -> Result<Option<Predictor>, SearchError> {
        let usable: Vec<&&Evaluation> = evals
            .iter()
            .filter(|e| e.metrics.trained && e.metrics.feasible)
            .collect();
        if usable.len() < 2 {
            return Ok(None);
        }
        let cands: Vec<Candidate> = usable.iter().map(|e| e.candidate.clone()).collect();
        let y: Vec<f64> = usable.iter().map(|e| e.metrics.val_accuracy).collect();
        let seed = step_rng(self.cfg.seed, "predictor", round).random();
        let x = self.features(&cands);
        let linear = Space::linear_columns(x[0].len());
        Predictor::fit(&x, &y, &linear, seed).map(Some)
    }

    /// Evolution on the predictor: the `top_k` best-predicted feasible candidates not in
    /// `exclude`.
    fn propose(
        &self,
        round: usize,
        pred: &Predictor,
        evaluated: &[&Evaluation],
        exclude: &HashSet<String>,
    ) -> Result<Vec<Candidate>, SearchError> {
        let mut rng = step_rng(self.cfg.seed, "evolve", round);
        let p = self.cfg.population.max(4);
        // Start from the best measured candidates, filled up with random feasible ones.
        let mut ranked: Vec<&&Evaluation> = evaluated
            .iter()
            .filter(|e| e.metrics.feasible && e.metrics.trained)
            .collect();
        ranked.sort_by(|a, b| {
            b.metrics
                .val_accuracy
                .total_cmp(&a.metrics.val_accuracy)
                .then(a.metrics.key.cmp(&b.metrics.key))
        });
        let mut pop: Vec<Candidate> = ranked
            .iter()
            .take(p / 2)
            .map(|e| e.candidate.clone())
            .collect();
        let have: HashSet<String> = pop.iter().map(Candidate::key).collect();
        pop.extend(self.sample_feasible(&mut rng, p - pop.len(), &have));
        if pop.is_empty() {
            return Ok(vec![]);
        }
        // Every feasible candidate the evolution met, with its predicted accuracy.
        let mut seen: BTreeMap<String, (Candidate, f64)> = BTreeMap::new();
        let score = |cs: &[Candidate], seen: &mut BTreeMap<String, (Candidate, f64)>| {
            let new: Vec<Candidate> = cs
                .iter()
                .filter(|c| !seen.contains_key(&c.key()))
                .cloned()
                .collect();
            let y = pred.predict(&self.features(&new))?;
            for (c, v) in new.into_iter().zip(y) {
                seen.insert(c.key(), (c, v));
            }
            Ok::<_, SearchError>(())
        };
        score(&pop, &mut seen)?;
        for _ in 0..self.cfg.generations {
            let fitness =
                |c: &Candidate, seen: &BTreeMap<String, (Candidate, f64)>| seen[&c.key()].1;
            let mut children = Vec::with_capacity(p);
            for _ in 0..p {
                let pick = |rng: &mut ChaCha8Rng| {
                    let a = &pop[rng.random_range(0..pop.len())];
                    let b = &pop[rng.random_range(0..pop.len())];
                    if fitness(a, &seen) >= fitness(b, &seen) {
                        a.clone()
                    } else {
                        b.clone()
                    }
                };
                let a = pick(&mut rng);
                let b = pick(&mut rng);
                let mut child = if rng.random_bool(0.5) {
                    self.space.crossover(&a, &b, &mut rng)
                } else {
                    a
                };
                child = self.space.mutate(&child, &mut rng);
                if rng.random_bool(0.3) {
                    child = self.space.mutate(&child, &mut rng);
                }
                children.push(child);
            }
            let hw = self.hardware(&children);
            let feasible: Vec<Candidate> = children
                .into_iter()
                .zip(hw)
                .filter(|(_, h)| h.feasible())
                .map(|(c, _)| c)
                .collect();
            score(&feasible, &mut seen)?;
            let mut merged: Vec<Candidate> = pop.into_iter().chain(feasible).collect();
            let mut keys = HashSet::new();
            merged.retain(|c| keys.insert(c.key()));
            merged.sort_by(|a, b| {
                fitness(b, &seen)
                    .total_cmp(&fitness(a, &seen))
                    .then(a.key().cmp(&b.key()))
            });
            merged.truncate(p);
            pop = merged;
        }
        let mut best: Vec<&(Candidate, f64)> = seen
            .values()
            .filter(|(c, _)| !exclude.contains(&c.key()))
            .collect();
        best.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.key().cmp(&b.0.key())));
        let mut out: Vec<Candidate> = best
            .into_iter()
            .take(self.cfg.top_k)
            .map(|(c, _)| c.clone())
            .collect();
        // A space nearly exhausted around the optimum: fill up at random.
        if out.len() < self.cfg.top_k {
            let mut ex = exclude.clone();
            ex.extend(out.iter().map(Candidate::key));
            let more = self.sample_feasible(&mut rng, self.cfg.top_k - out.len(), &ex);
            out.extend(more);
        }
        Ok(out)
    }
}

/// Runs (or resumes) a search. The state at `state_path` is created or continued and saved after
/// every batch; with `max_batches`, the run stops with [`SearchError::Stopped`] before
/// evaluating batch `max_batches` (as if killed there), and a later call resumes.
pub fn search(
    space: &Space,
    eval: &Evaluator,
    cfg: &SearchConfig,
    state_path: &Path,
    max_batches: Option<usize>,
    on_event: &(dyn Fn(Event) + Sync),
) -> Result<SearchOutcome, SearchError> {
    if cfg.method == SearchMethod::Autoshrink {
        return super::shrink::shrink(space, eval, cfg, state_path, max_batches, on_event);
    }
    if cfg.n_init < 2 || cfg.top_k == 0 {
        return Err(SearchError::Config(format!(
            "needs at least 2 initial candidates and top_k ≥ 1 (got {} and {})",
            cfg.n_init, cfg.top_k
        )));
    }
    let fingerprint = serde_json::json!({
        "search": cfg,
        "context": eval.context,
        "space": space.fingerprint(),
    });
    let mut d = Driver {
        space,
        eval,
        cfg,
        ledger: Ledger::open(state_path, fingerprint, max_batches, on_event)?,
        hw: Mutex::new(HashMap::new()),
    };
    let steerage = cfg.method == SearchMethod::Steerage;
    on_event(Event::Planned(
        cfg.budget() + if steerage { cfg.n_heldout } else { 0 },
    ));
    let mut exclude: HashSet<String> = HashSet::new();
    let mut heldout = Vec::new();
    if steerage && cfg.n_heldout > 0 {
        on_event(Event::Phase("held-out sample".into()));
        let cands = d.sample_feasible(
            &mut step_rng(cfg.seed, "heldout", 0),
            cfg.n_heldout,
            &exclude,
        );
        exclude.extend(cands.iter().map(Candidate::key));
        heldout = d.run_batch(&cands, Role::Heldout)?;
    }
    let mut evals: Vec<Evaluation> = Vec::new();
    let mut quality = None;
    match cfg.method {
        SearchMethod::Random => {
            on_event(Event::Phase("random sample".into()));
            let all = d.sample_feasible(&mut step_rng(cfg.seed, "init", 0), cfg.budget(), &exclude);
            // The same batch sizes as STEERAGE, so an interruption costs as much.
            let (first, rest) = all.split_at(cfg.n_init.min(all.len()));
            evals.extend(d.run_batch(first, Role::Sample)?);
            for chunk in rest.chunks(cfg.top_k) {
                evals.extend(d.run_batch(chunk, Role::Sample)?);
            }
        }
        SearchMethod::Autoshrink => unreachable!("dispatched above"),
        SearchMethod::Steerage => {
            on_event(Event::Phase("initial sample".into()));
            let init = d.sample_feasible(&mut step_rng(cfg.seed, "init", 0), cfg.n_init, &exclude);
            exclude.extend(init.iter().map(Candidate::key));
            evals.extend(d.run_batch(&init, Role::Sample)?);
            for round in 1..=cfg.iterations {
                on_event(Event::Phase(format!("round {round}/{}", cfg.iterations)));
                let refs: Vec<&Evaluation> = evals.iter().collect();
                let proposed = match d.fit(&refs, round)? {
                    Some(pred) => d.propose(round, &pred, &refs, &exclude)?,
                    // Too few feasible results to fit on: keep sampling.
                    None => d.sample_feasible(
                        &mut step_rng(cfg.seed, "fallback", round),
                        cfg.top_k,
                        &exclude,
                    ),
                };
                exclude.extend(proposed.iter().map(Candidate::key));
                evals.extend(d.run_batch(&proposed, Role::Proposed)?);
            }
            let refs: Vec<&Evaluation> = evals.iter().collect();
            if let Some(pred) = d.fit(&refs, cfg.iterations + 1)? {
                let ok: Vec<&Evaluation> = heldout
                    .iter()
                    .filter(|e| e.metrics.trained && e.metrics.feasible)
                    .collect();
                let cands: Vec<Candidate> = ok.iter().map(|e| e.candidate.clone()).collect();
                let predicted = pred.predict(&d.features(&cands))?;
                let measured: Vec<f64> = ok.iter().map(|e| e.metrics.val_accuracy).collect();
                let runs: Vec<&[f64]> = ok
                    .iter()
                    .map(|e| &e.metrics.val_accuracy_runs[..])
                    .collect();
                let repeat_spearman = if runs.iter().all(|r| r.len() >= 2) {
                    let first: Vec<f64> = runs.iter().map(|r| r[0]).collect();
                    let second: Vec<f64> = runs.iter().map(|r| r[1]).collect();
                    stats::spearman(&first, &second)
                } else {
                    None
                };
                quality = Some(PredictorQuality {
                    repeat_spearman,
                    keys: ok.iter().map(|e| e.candidate.key()).collect(),
                    n_heldout: ok.len(),
                    spearman: stats::spearman(&predicted, &measured),
                    spearman_ci: stats::spearman_bootstrap(
                        &predicted, &measured, 2000, 0.9, cfg.seed,
                    ),
                    predicted,
                    measured,
                });
            }
        }
    }
    let best = evals
        .iter()
        .filter(|e| e.metrics.feasible && e.metrics.trained)
        .min_by(|a, b| {
            b.metrics
                .val_accuracy
                .total_cmp(&a.metrics.val_accuracy)
                .then(a.metrics.energy_mid().total_cmp(&b.metrics.energy_mid()))
                .then(a.metrics.key.cmp(&b.metrics.key))
        })
        .cloned()
        .ok_or_else(|| {
            SearchError::Config(
                "no candidate of the space fits the limits (or none could be trained)".into(),
            )
        })?;
    let pareto = pareto::points(&evals.iter().map(|e| &e.metrics).collect::<Vec<_>>());
    d.ledger.state.finished = true;
    d.ledger.save()?;
    Ok(SearchOutcome {
        method: cfg.method,
        evaluations: evals,
        heldout,
        best,
        predictor: quality,
        pareto,
        evaluated_now: d.ledger.evaluated_now,
        wall_seconds: d.ledger.state.seconds,
        shrink: None,
        trained_best: None,
    })
}
