//! Iterative schedules over a seed: dense training; prune-only (Han et al. 2015: prune, retrain,
//! repeat); NeST (sparse seed, connection + neuron growth, then iterative pruning); SCANN's three
//! schemes on a DAG with cross-layer connections. All spend retraining epochs from the same
//! `TrainConfig`, so they compare at equal budgets.
//!
//! Every pruning round removes the units it left dead and records a [`Point`] (nonzeros, val
//! accuracy, a snapshot of the model), so one run yields a whole error-vs-nonzeros curve. The run
//! stops at the target density, or earlier when validation accuracy falls more than
//! `max_val_drop` below the pre-pruning reference: then the last round within the budget is
//! kept. Only the validation split is ever consulted.

use super::grow::{self, NeuronGrowth};
use super::grow_maps::{self, MapGrowth};
use super::{area, nest, prune, scann, surgery};
use crate::ir::Model;
use crate::train::{self, EpochLog, Samples, TrainConfig, TrainError};

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Method {
    /// Train the seed as is.
    Dense,
    /// Train dense, then magnitude-prune and retrain in rounds.
    Prune,
    /// Sparse seed, gradient-based connection and neuron growth, then pruning rounds.
    Nest,
    /// SCANN A: a small seed (widths × `seed_width`) grown (connections incl. cross-layer,
    /// neurons), then pruned.
    ScannA,
    /// SCANN B: a sparse random seed over the DAG (cross-layer connections included), grown and
    /// pruned.
    ScannB,
    /// SCANN C: the dense DAG (every cross-layer connection present) pruned, with connection
    /// regrowth every round.
    ScannC,
}

impl std::str::FromStr for Method {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "dense" => Ok(Method::Dense),
            "prune" => Ok(Method::Prune),
            "nest" => Ok(Method::Nest),
            "scann-a" => Ok(Method::ScannA),
            "scann-b" => Ok(Method::ScannB),
            "scann-c" => Ok(Method::ScannC),
            _ => Err(format!(
                "unknown method {s:?}: use dense, prune, nest, scann-a, scann-b or scann-c"
            )),
        }
    }
}

impl Method {
    pub fn is_scann(self) -> bool {
        matches!(self, Method::ScannA | Method::ScannB | Method::ScannC)
    }
    /// Width multiplier of the seed's hidden layers when none is given: SCANN A starts small.
    pub fn default_seed_width(self) -> f64 {
        if self == Method::ScannA {
            0.25
        } else {
            1.0
        }
    }
}

#[derive(Clone, Debug)]
pub struct Schedule {
    pub method: Method,
    /// Nonzero weights to reach, as a fraction of `reference_weights`.
    pub target_density: f64,
    /// Stop pruning once validation accuracy falls more than this (fraction, e.g. 0.002) below
    /// the reference reached before pruning; keep the last round within it.
    pub max_val_drop: Option<f64>,
    /// Pruning rounds; the nonzero count falls geometrically from the start to the target.
    pub rounds: usize,
    /// Retraining epochs after each round.
    pub retrain_epochs: usize,
    /// Learning rate of retraining (None: the training rate).
    pub retrain_lr: Option<f64>,
    /// NeST / SCANN B: density of the random sparse seed.
    pub seed_density: f64,
    /// Fraction of dormant connections grown per growth step.
    pub grow_fraction: f64,
    /// NeST / SCANN A, B: growth steps (each: neurons, connections, retrain).
    pub grow_rounds: usize,
    /// Training epochs after each growth step (None: `retrain_epochs`). With `grow_rounds × g`
    /// taken off the first phase, NeST spends the epochs prune-only does.
    pub grow_epochs: Option<usize>,
    /// Neuron growth (NeST, SCANN A and B); `per_layer = 0` disables it.
    pub neurons: NeuronGrowth,
    /// Feature-map growth of conv layers (NeST); `per_layer = 0` disables it.
    pub maps: MapGrowth,
    /// Connections regrown by gradient each pruning round, as a fraction of the nonzeros: SCANN
    /// C grows them before pruning; NeST prunes past the goal by this share and regrows it.
    pub regrow_fraction: f64,
    /// Anneal the regrowth share over the rounds (cosine, from `regrow_fraction` in the first
    /// round to almost nothing in the last, as RigL anneals its update fraction): connections
    /// regrown in a late round are barely trained when the run ends. Off by default: on MNIST
    /// LeNet-300-100 it changed nothing measurable (BENCHMARKS.md).
    pub regrow_anneal: bool,
    /// Weights the target density refers to (None: the seed's own weight count).
    pub reference_weights: Option<usize>,
    /// Fine-tuning epochs (early-stopped on validation) after the last pruning round; a
    /// heavily pruned net is far from converged after a short retrain.
    pub final_epochs: usize,
    /// Exponent of the per-layer density rule ([`prune::layer_densities_with`]).
    pub layer_exponent: f64,
    /// Partial-area convolution ([`area`]): share of each conv layer's output positions kept
    /// after the last round, reached geometrically over the rounds (1: off).
    pub area_keep: f64,
}

impl Schedule {
    /// Training epochs after a growth step.
    pub fn grow_epochs(&self) -> usize {
        self.grow_epochs.unwrap_or(self.retrain_epochs)
    }

    /// Regrowth share of pruning round `r` (1-based) of `rounds`.
    pub fn regrow_share(&self, r: usize, rounds: usize) -> f64 {
        if !self.regrow_anneal {
            return self.regrow_fraction;
        }
        let t = (r.saturating_sub(1)) as f64 / rounds.max(1) as f64;
        self.regrow_fraction * 0.5 * (1.0 + (std::f64::consts::PI * t).cos())
    }

    /// SCANN C's round: (epochs after regrowth, epochs after pruning). The two share one
    /// round's `retrain_epochs`, so SCANN C spends the epochs prune-only does.
    fn scann_c_split(&self) -> (usize, usize) {
        let k = self.retrain_epochs.max(2);
        (k / 2, k - k / 2)
    }
}

impl Default for Schedule {
    fn default() -> Self {
        Schedule {
            method: Method::Dense,
            target_density: 0.1,
            max_val_drop: None,
            rounds: 5,
            retrain_epochs: 8,
            retrain_lr: None,
            seed_density: 0.2,
            grow_fraction: 0.1,
            grow_rounds: 1,
            grow_epochs: None,
            neurons: NeuronGrowth::default(),
            maps: MapGrowth::default(),
            regrow_fraction: 0.1,
            regrow_anneal: false,
            reference_weights: None,
            final_epochs: 0,
            layer_exponent: prune::DEFAULT_LAYER_EXPONENT,
            area_keep: 1.0,
        }
    }
}

/// One state along a run.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Point {
    /// `train`, `grow k`, `prune k`.
    pub stage: String,
    /// Nonzero weights / reference weights.
    pub density: f64,
    /// Nonzero weights + biases (what the bar counts, before quantization).
    pub params_nonzero: usize,
    pub val_accuracy: f64,
    #[serde(skip)]
    pub model: Model,
}

#[derive(Clone, Debug)]
pub struct SynthResult {
    /// Validation accuracy of the returned model.
    pub val_accuracy: f64,
    pub trajectory: Vec<Point>,
    /// Index in `trajectory` of the returned model.
    pub chosen: usize,
}

/// Weights (Dense + Conv2d, dormant included) of a model.
pub fn weight_count(model: &Model) -> usize {
    model
        .nodes
        .iter()
        .filter_map(|n| n.op.weights().map(|w| w.weight.len()))
        .sum()
}

/// Nonzero (active) weights of a model.
pub fn nonzero_weights(model: &Model) -> usize {
    model
        .nodes
        .iter()
        .filter_map(|n| n.op.weights().map(|w| w.mask.count_ones()))
        .sum()
}

/// Epochs a schedule trains for at most (progress bar length).
pub fn planned_epochs(s: &Schedule, first: usize) -> usize {
    first
        + match s.method {
            Method::Dense => 0,
            Method::Prune => s.rounds * s.retrain_epochs,
            Method::Nest | Method::ScannA | Method::ScannB => {
                s.rounds * s.retrain_epochs + s.grow_rounds * s.grow_epochs()
            }
            Method::ScannC => {
                let (grown, pruned) = s.scann_c_split();
                s.rounds * (grown + pruned)
            }
        }
        + if s.method == Method::Dense {
            0
        } else {
            s.final_epochs
        }
}

struct Run<'a, L, E> {
    train_s: &'a Samples,
    val_s: &'a Samples,
    retrain: TrainConfig,
    schedule: &'a Schedule,
    reference: usize,
    trajectory: Vec<Point>,
    log: L,
    on_epoch: E,
}

impl<L: FnMut(String), E: FnMut(&EpochLog)> Run<'_, L, E> {
    fn train(&mut self, model: &mut Model, cfg: &TrainConfig) -> Result<f64, TrainError> {
        Ok(
            train::train(model, self.train_s, self.val_s, cfg, &mut self.on_epoch)?
                .best_val_accuracy,
        )
    }

    fn record(&mut self, stage: String, model: &Model, val: f64) {
        let mut snapshot = model.clone();
        if self.schedule.method.is_scann() {
            scann::compact_concats(&mut snapshot);
        }
        let p = Point {
            stage,
            density: nonzero_weights(model) as f64 / self.reference.max(1) as f64,
            params_nonzero: snapshot.stats().params_nonzero,
            val_accuracy: val,
            model: snapshot,
        };
        (self.log)(format!(
            "{}: density {:.4}, {} nonzero params, val acc {:.2}%",
            p.stage,
            p.density,
            p.params_nonzero,
            100.0 * val
        ));
        self.trajectory.push(p);
    }

    /// Growth steps: neurons (bridging gradient), then connections (|∂L/∂w|), then retraining.
    fn grow_rounds(&mut self, model: &mut Model) -> Result<(), TrainError> {
        let s = self.schedule;
        for g in 1..=s.grow_rounds {
            let neurons = if s.neurons.per_layer > 0 {
                grow::grow_neurons(model, self.train_s, &s.neurons)
            } else {
                0
            };
            let maps = grow_maps::grow_maps(
                model,
                self.train_s,
                &MapGrowth {
                    seed: self.retrain.seed.wrapping_add(g as u64),
                    ..s.maps.clone()
                },
            );
            let grads = grow::weight_gradients(
                model,
                self.train_s,
                s.neurons.batch_size,
                s.neurons.batches,
            );
            let conns = nest::grow_connections(model, &grads, s.grow_fraction);
            let retrain = TrainConfig {
                max_epochs: s.grow_epochs(),
                patience: s.grow_epochs(),
                ..self.retrain.clone()
            };
            let val = self.train(model, &retrain)?;
            let maps = if maps > 0 {
                format!(", +{maps} maps")
            } else {
                String::new()
            };
            self.record(
                format!("grow {g}: +{neurons} neurons{maps}, +{conns} connections"),
                model,
                val,
            );
        }
        Ok(())
    }

    /// Pruning rounds from the current nonzero count down to the target; SCANN C regrows
    /// connections before each prune.
    fn prune_rounds(&mut self, model: &mut Model) -> Result<usize, TrainError> {
        let s = self.schedule;
        let start = nonzero_weights(model) as f64;
        let target = (s.target_density * self.reference as f64).min(start);
        let reference_val = self
            .trajectory
            .iter()
            .map(|p| p.val_accuracy)
            .fold(0.0, f64::max);
        let rounds = s.rounds.max(1);
        let mut chosen = self.trajectory.len() - 1;
        for r in 1..=rounds {
            // Epochs of this round's retraining after the prune (SCANN C spends part of the
            // round on the regrown connections first).
            let mut retrain_epochs = s.retrain_epochs;
            if s.method == Method::ScannC {
                let nz = nonzero_weights(model);
                let dormant = weight_count(model) - nz;
                if dormant > 0 {
                    let grads = grow::weight_gradients(
                        model,
                        self.train_s,
                        s.neurons.batch_size,
                        s.neurons.batches,
                    );
                    let f = (s.regrow_share(r, rounds) * nz as f64 / dormant as f64).min(1.0);
                    nest::grow_connections(model, &grads, f);
                    let short = TrainConfig {
                        max_epochs: s.scann_c_split().0,
                        patience: s.retrain_epochs,
                        ..self.retrain.clone()
                    };
                    self.train(model, &short)?;
                    retrain_epochs = s.scann_c_split().1;
                }
            }
            let goal = start * (target / start).powf(r as f64 / rounds as f64);
            let total = weight_count(model) as f64;
            // NeST iterates growth with pruning: prune past the goal by the regrowth share, then
            // regrow that share where the loss gradient is largest.
            let regrow = if s.method == Method::Nest {
                s.regrow_share(r, rounds).clamp(0.0, 0.9)
            } else {
                0.0
            };
            let densities = prune::layer_densities_with(
                model,
                (goal * (1.0 - regrow) / total).min(1.0),
                s.layer_exponent,
            );
            prune::prune_to(model, &densities);
            if regrow > 0.0 {
                let grads = grow::weight_gradients(
                    model,
                    self.train_s,
                    s.neurons.batch_size,
                    s.neurons.batches,
                );
                nest::regrow(model, &grads, regrow / (1.0 - regrow));
            }
            if s.area_keep < 1.0 {
                let imp = train::area_importance(
                    model,
                    self.train_s,
                    s.neurons.batch_size,
                    s.neurons.batches,
                );
                let keep = s.area_keep.powf(r as f64 / rounds as f64);
                area::shrink_areas(model, &imp, keep);
            }
            let dead = surgery::remove_dead(model);
            let retrain = TrainConfig {
                max_epochs: retrain_epochs,
                ..self.retrain.clone()
            };
            let val = self.train(model, &retrain)?;
            let stage = if dead.neurons + dead.filters > 0 {
                format!(
                    "prune {r}/{rounds} (-{} neurons, -{} filters)",
                    dead.neurons, dead.filters
                )
            } else {
                format!("prune {r}/{rounds}")
            };
            self.record(stage, model, val);
            if let Some(drop) = s.max_val_drop {
                if val < reference_val - drop {
                    (self.log)(format!(
                        "val acc {:.2}% is more than {:.2} points below {:.2}%: keeping the previous round",
                        100.0 * val,
                        100.0 * drop,
                        100.0 * reference_val
                    ));
                    *model = self.trajectory[chosen].model.clone();
                    return Ok(chosen);
                }
            }
            chosen = self.trajectory.len() - 1;
        }
        if s.final_epochs > 0 {
            let fine = TrainConfig {
                max_epochs: s.final_epochs,
                patience: (s.final_epochs / 3).max(5),
                ..self.retrain.clone()
            };
            let before = self.trajectory[chosen].val_accuracy;
            let val = self.train(model, &fine)?;
            self.record("fine-tune".into(), model, val);
            // Training keeps its best epoch, but never compares with where it started: a
            // fine-tune that ends below the last round on validation is not shipped.
            if val >= before {
                chosen = self.trajectory.len() - 1;
            } else {
                *model = self.trajectory[chosen].model.clone();
            }
        }
        Ok(chosen)
    }
}

/// Runs `schedule` on `model` (an initialised seed). `log` receives one line per phase,
/// `on_epoch` every training epoch of every phase (progress display). On return `model` is the
/// chosen point of the trajectory (compacted for SCANN).
pub fn synthesize(
    model: &mut Model,
    train_s: &Samples,
    val_s: &Samples,
    cfg: &TrainConfig,
    schedule: &Schedule,
    log: impl FnMut(String),
    on_epoch: impl FnMut(&EpochLog),
) -> Result<SynthResult, TrainError> {
    let retrain = TrainConfig {
        max_epochs: schedule.retrain_epochs,
        patience: schedule.retrain_epochs,
        learning_rate: schedule.retrain_lr.unwrap_or(cfg.learning_rate),
        ..cfg.clone()
    };
    let mut run = Run {
        train_s,
        val_s,
        retrain,
        schedule,
        reference: schedule
            .reference_weights
            .unwrap_or_else(|| weight_count(model)),
        trajectory: Vec::new(),
        log,
        on_epoch,
    };
    let s = schedule;
    if s.method.is_scann() {
        let first = scann::head_start(model);
        *model = scann::to_dag(model, first, s.method != Method::ScannA).map_err(|e| {
            TrainError::Unsupported {
                node: e.to_string(),
                op: "SCANN",
            }
        })?;
    }
    match s.method {
        Method::Nest | Method::ScannB => nest::sparse_seed(model, s.seed_density, cfg.seed),
        _ => {}
    }
    let val = run.train(model, cfg)?;
    run.record("train".into(), model, val);
    let chosen = match s.method {
        Method::Dense => 0,
        Method::Prune | Method::ScannC => run.prune_rounds(model)?,
        Method::Nest | Method::ScannA | Method::ScannB => {
            run.grow_rounds(model)?;
            run.prune_rounds(model)?
        }
    };
    if s.method.is_scann() {
        scann::compact_concats(model);
    }
    let val_accuracy = run.trajectory[chosen].val_accuracy;
    Ok(SynthResult {
        val_accuracy,
        trajectory: run.trajectory,
        chosen,
    })
}

#[cfg(test)]
mod tests;
