//! The evaluator: one candidate in, its metrics out. Self-contained so it can run on another
//! machine: an [`EvalRequest`] (candidate + data reference + proxy budget + limits + seed) is
//! JSON, and so are the [`Metrics`] it returns.
//!
//! **Proxy budget** ([`ProxyBudget`]): the candidate is trained from its seeded He
//! initialisation for `epochs` epochs (Adam, no early stopping) on the first
//! `max_train_samples` of the training split, and scored by float accuracy on the validation
//! split at the best epoch. The test split is never read during a search.
//!
//! **Feasibility**: the untrained model is quantized (calibrated on a few training samples),
//! lowered and run through the cost model, which gives the exact flash (parameter arrays), RAM
//! (activation arena) and the energy range of the trained model (a dense model's layout and
//! work do not depend on its weight values). A candidate over a limit is reported infeasible
//! without being trained. After training it is quantized and lowered again and the figures
//! re-checked (a lowering can refuse trained weights, e.g. an int32 accumulator overflow).

use super::{Candidate, SearchError};
use crate::data::{self, DataSpec};
use crate::energy::{self, Coefficients, Device, Mixes, Range};
use crate::ir::Model;
use crate::lower;
use crate::pipeline::{self, Prepared};
use crate::quant;
use crate::synth::seed_file::DataShape;
use crate::train::{self, Samples, TrainConfig};
use serde::{Deserialize, Serialize};
use std::time::Instant;

/// How briefly a candidate is trained to rank it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ProxyBudget {
    pub epochs: usize,
    /// Training samples used (the first ones of the shuffled training split); None: all.
    pub max_train_samples: Option<usize>,
    pub batch_size: usize,
    pub learning_rate: f64,
    /// Trainings per candidate, each from its own initialisation and shuffling seed; the
    /// candidate's accuracy is their mean. Seed-to-seed spread is the larger part of the
    /// measurement noise of a short training, and it is what caps how well a predictor can be
    /// shown to rank (the held-out accuracies are measurements too).
    #[serde(default = "one", skip_serializing_if = "is_one")]
    pub repeats: usize,
}

fn one() -> usize {
    1
}
fn is_one(n: &usize) -> bool {
    *n == 1
}

impl Default for ProxyBudget {
    fn default() -> Self {
        ProxyBudget {
            epochs: 5,
            max_train_samples: None,
            batch_size: 32,
            learning_rate: 2e-3,
            repeats: 1,
        }
    }
}

/// Hard limits for a named device profile; `None` leaves a figure free.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct HwLimits {
    /// A built-in device profile (`bonsai devices`).
    pub device: String,
    /// Parameter flash, KB (the firmware's code comes on top).
    pub flash_kb: Option<f64>,
    /// Activation arena, KB (the stack comes on top).
    pub ram_kb: Option<f64>,
    /// Energy per inference on `device`, µJ, worst case of the estimate.
    pub energy_uj: Option<f64>,
}

impl HwLimits {
    pub fn budgets(&self) -> energy::Budgets {
        energy::Budgets {
            energy_uj: self.energy_uj,
            flash_kb: self.flash_kb,
            ram_kb: self.ram_kb,
        }
    }
}

/// Everything an evaluation needs besides the candidate and its seed: the same for every
/// candidate of a search.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EvalContext {
    /// A dataset reference as `--data` takes it (`digits`, `mnist:DIR`, ...).
    pub data: String,
    /// Seed of the train/validation/test split (fixed for a whole search).
    pub split_seed: u64,
    /// The CNN input shape (the space's `input`); None: the dataset's.
    pub input: Option<Vec<usize>>,
    pub proxy: ProxyBudget,
    pub limits: HwLimits,
    /// Share of the training data (train + validation) held out for validation by the search,
    /// its local search and the output; None: the dataset's own split (10%). MNIST's 1,000
    /// validation images measure a 96%-accurate candidate to ±0.6 points (one sd), about half
    /// the spread between candidates, which caps how well any predictor can be shown to rank.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub val_fraction: Option<f64>,
}

/// One evaluation, as it could be sent to another machine.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EvalRequest {
    pub context: EvalContext,
    pub candidate: Candidate,
    /// Initialisation and shuffling seed of this candidate.
    pub seed: u64,
}

/// A candidate's hardware figures, known before training.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Hardware {
    pub params: usize,
    pub macs: usize,
    /// Parameter flash of the lowered model.
    pub flash_bytes: usize,
    /// Activation arena of the lowered model.
    pub ram_bytes: usize,
    /// Energy per inference on the limits' device, µJ.
    pub energy_uj: Range,
    /// Predicted executed instructions per inference.
    pub insns_predicted: f64,
    /// Why the candidate misses its limits (None: it fits).
    pub infeasible: Option<String>,
}

impl Hardware {
    pub fn feasible(&self) -> bool {
        self.infeasible.is_none()
    }
}

/// What an evaluation measured.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Metrics {
    pub key: String,
    /// Float validation accuracy after the proxy training (0 when not trained: infeasible);
    /// with several repeats, their mean.
    pub val_accuracy: f64,
    /// Each repeat's accuracy, when the proxy budget trains more than once.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub val_accuracy_runs: Vec<f64>,
    pub params: usize,
    pub macs: usize,
    pub flash_bytes: usize,
    pub ram_bytes: usize,
    pub energy_uj: Range,
    pub insns_predicted: f64,
    /// Within every limit, before and after training.
    pub feasible: bool,
    /// Why not, when infeasible.
    pub infeasible: Option<String>,
    /// Trained (false: rejected by the pre-check).
    pub trained: bool,
    pub train_seconds: f64,
}

impl Metrics {
    /// The middle of the energy range, µJ.
    pub fn energy_mid(&self) -> f64 {
        0.5 * (self.energy_uj.min + self.energy_uj.max)
    }
    /// Equal but for the time taken (what a rerun or a resume must reproduce).
    pub fn same_result(&self, o: &Metrics) -> bool {
        Metrics {
            train_seconds: 0.0,
            ..self.clone()
        } == Metrics {
            train_seconds: 0.0,
            ..o.clone()
        }
    }
}

/// Moves the first training samples (the split is already a seeded shuffle) to the validation
/// split until it holds `fraction` of both together.
fn widen_validation(data: &mut Prepared, fraction: f64) -> Result<(), SearchError> {
    let (n_train, n_val) = (data.train.len(), data.val.len());
    let total = n_train + n_val;
    let want = (fraction * total as f64).round() as usize;
    if !(fraction > 0.0 && fraction < 1.0) || want < n_val || want >= total {
        return Err(SearchError::other(format!(
            "validation fraction {fraction}: the dataset's own split already holds {n_val} of \
             {total} samples; give a share above {:.3} and below 1",
            n_val as f64 / total as f64
        )));
    }
    let moved = want - n_val;
    let dim = data.train.dim;
    data.val.x.extend_from_slice(&data.train.x[..moved * dim]);
    data.val.y.extend_from_slice(&data.train.y[..moved]);
    data.train.x.drain(..moved * dim);
    data.train.y.drain(..moved);
    Ok(())
}

/// Calibration samples of the pre-check: enough for activation ranges of the right order; the
/// figures it gives do not depend on them.
const PRECHECK_CALIBRATION: usize = 2;
/// Calibration samples of the trained model's quantization.
const CALIBRATION: usize = 256;

/// An [`EvalContext`] with its data loaded: evaluates many candidates (from any thread).
pub struct Evaluator {
    pub context: EvalContext,
    spec: DataSpec,
    data: Prepared,
    train: Samples,
    device: Device,
    coeffs: Coefficients,
    mixes: Mixes,
}

impl Evaluator {
    /// Loads the data and resolves the device once.
    pub fn new(context: EvalContext) -> Result<Evaluator, SearchError> {
        let spec: DataSpec = context.data.parse().map_err(SearchError::other)?;
        let device = energy::find(
            &energy::builtin_devices().map_err(SearchError::other)?,
            &context.limits.device,
        )
        .map_err(SearchError::other)?
        .clone();
        let mut data = pipeline::prepare(&spec, context.split_seed).map_err(SearchError::other)?;
        if let Some(f) = context.val_fraction {
            widen_validation(&mut data, f)?;
        }
        let train = match context.proxy.max_train_samples {
            Some(n) if n < data.train.len() => Samples {
                x: data.train.x[..n * data.train.dim].to_vec(),
                y: data.train.y[..n].to_vec(),
                dim: data.train.dim,
            },
            _ => data.train.clone(),
        };
        Ok(Evaluator {
            context,
            spec,
            data,
            train,
            device,
            coeffs: Coefficients::builtin().map_err(SearchError::other)?,
            mixes: Mixes::builtin().map_err(SearchError::other)?,
        })
    }

    /// The loaded data (the local search and the output stage reuse it).
    pub fn data(&self) -> &Prepared {
        &self.data
    }
    pub fn data_spec(&self) -> &DataSpec {
        &self.spec
    }
    pub fn device(&self) -> &Device {
        &self.device
    }
    pub fn data_shape(&self) -> DataShape {
        self.data.data_shape()
    }

    /// The candidate's (untrained) model, initialised from `seed`.
    pub fn model(&self, c: &Candidate, seed: u64) -> Result<Model, SearchError> {
        c.to_model(&self.data_shape(), self.context.input.as_deref(), seed)
    }

    fn calibration(&self, n: usize) -> Vec<Vec<f32>> {
        (0..self.data.train.len().min(n))
            .map(|i| self.data.train.row(i).to_vec())
            .collect()
    }

    /// Quantizes, lowers and estimates a float model; the figures and whether they meet the
    /// limits. An error of quantization or lowering is a reason for infeasibility, not a failure.
    fn figures(&self, model: &Model, calib: usize) -> Hardware {
        let stats = model.stats();
        let mut hw = Hardware {
            params: stats.params_nonzero,
            macs: stats.macs,
            flash_bytes: 0,
            ram_bytes: 0,
            energy_uj: Range::default(),
            insns_predicted: 0.0,
            infeasible: None,
        };
        let input_quant = data::fixed_input_quant(&self.spec);
        let lowered = quant::quantize_with_input(model, &self.calibration(calib), input_quant)
            .map_err(|e| e.to_string())
            .and_then(|q| {
                let l =
                    lower::lower(&q, &lower::LowerOptions::default()).map_err(|e| e.to_string())?;
                let est = energy::estimate(&q, &l, &self.device, &self.coeffs, &self.mixes)
                    .map_err(|e| e.to_string())?;
                Ok((l, est))
            });
        match lowered {
            Ok((l, est)) => {
                hw.flash_bytes = l.weight_bytes;
                hw.ram_bytes = l.arena_bytes;
                hw.energy_uj = est.energy_uj;
                hw.insns_predicted = est.insns;
                hw.infeasible = energy::check_budgets(
                    &self.context.limits.budgets(),
                    &energy::Figures {
                        energy_uj_max: est.energy_uj.max,
                        flash_bytes: l.weight_bytes,
                        ram_bytes: l.arena_bytes,
                    },
                    &self.device.name,
                )
                .err()
                .map(|e| e.to_string());
            }
            Err(e) => hw.infeasible = Some(format!("cannot be lowered: {e}")),
        }
        hw
    }

    /// Figures of a trained float model (quantized with the search's calibration), and whether
    /// they meet the limits.
    pub fn check(&self, model: &Model) -> Hardware {
        self.figures(model, CALIBRATION)
    }

    /// The hardware pre-check: figures of the untrained model, no training.
    pub fn hardware(&self, c: &Candidate) -> Result<Hardware, SearchError> {
        Ok(self.figures(&self.model(c, 0)?, PRECHECK_CALIBRATION))
    }

    /// Trains `c` with the proxy budget from `seed` and measures it. Infeasible candidates are
    /// returned untrained. With `repeats` > 1, repeat `i` starts from its own seed (repeat 0 from
    /// `seed` itself, so one repeat measures what it always did) and the accuracies are averaged.
    pub fn evaluate(&self, c: &Candidate, seed: u64) -> Result<Metrics, SearchError> {
        let key = c.key();
        let first = self.evaluate_model(&key, self.model(c, seed)?, seed)?;
        let repeats = self.context.proxy.repeats;
        if repeats <= 1 || !first.trained {
            return Ok(first);
        }
        let mut runs = vec![first.val_accuracy];
        let mut out = first;
        for i in 1..repeats {
            let s = repeat_seed(seed, i);
            let m = self.train_and_measure(
                &key,
                &mut self.model(c, s)?,
                s,
                self.context.proxy.epochs,
                false,
            )?;
            runs.push(m.val_accuracy);
            out.train_seconds = canonical(out.train_seconds + m.train_seconds);
            // Feasible only if every trained copy lowers within the limits.
            if out.infeasible.is_none() {
                out.infeasible = m.infeasible;
                out.feasible = m.feasible;
            }
        }
        out.val_accuracy = canonical(runs.iter().sum::<f64>() / runs.len() as f64);
        out.val_accuracy_runs = runs;
        Ok(out)
    }

    /// [`Evaluator::evaluate`] for any float model (a search over another kind of space builds
    /// its own): pre-check, proxy training from the model's current weights with shuffling
    /// seed `seed`, figures of the trained model. `key` names it in the metrics.
    pub fn evaluate_model(
        &self,
        key: &str,
        mut model: Model,
        seed: u64,
    ) -> Result<Metrics, SearchError> {
        self.train_and_measure(key, &mut model, seed, self.context.proxy.epochs, true)
    }

    /// Short fine-tuning of `model` in place, from its current weights, for `epochs` (the
    /// proxy budget otherwise), then its figures against the limits. Unlike
    /// [`Evaluator::evaluate_model`] it trains whatever the pre-check would say: a search that
    /// shrinks a model over the limits (AutoShrink) needs the trained weights to pass on.
    pub fn fine_tune(
        &self,
        key: &str,
        model: &mut Model,
        seed: u64,
        epochs: usize,
    ) -> Result<Metrics, SearchError> {
        self.train_and_measure(key, model, seed, epochs, false)
    }

    fn train_and_measure(
        &self,
        key: &str,
        model: &mut Model,
        seed: u64,
        epochs: usize,
        precheck: bool,
    ) -> Result<Metrics, SearchError> {
        let metrics = |hw: Hardware, val: f64, trained: bool, secs: f64| Metrics {
            key: key.to_string(),
            val_accuracy: canonical(val),
            val_accuracy_runs: Vec::new(),
            params: hw.params,
            macs: hw.macs,
            flash_bytes: hw.flash_bytes,
            ram_bytes: hw.ram_bytes,
            energy_uj: Range {
                min: canonical(hw.energy_uj.min),
                max: canonical(hw.energy_uj.max),
            },
            insns_predicted: canonical(hw.insns_predicted),
            feasible: hw.infeasible.is_none(),
            infeasible: hw.infeasible,
            trained,
            train_seconds: canonical(secs),
        };
        if precheck {
            let pre = self.figures(model, PRECHECK_CALIBRATION);
            if !pre.feasible() {
                return Ok(metrics(pre, 0.0, false, 0.0));
            }
        }
        let start = Instant::now();
        let p = &self.context.proxy;
        let cfg = TrainConfig {
            max_epochs: epochs,
            batch_size: p.batch_size,
            learning_rate: p.learning_rate,
            patience: epochs,
            seed,
            // Annealed to a small rate, the last epoch is near a minimum instead of wherever a
            // constant rate left it: less noise between candidates, a better ranking.
            lr_schedule: crate::train::LrSchedule::Cosine { floor: 0.01 },
            weight_decay: 0.0,
            label_smoothing: 0.0,
            augment: None,
        };
        let report =
            train::train(model, &self.train, &self.data.val, &cfg, |_| {}).map_err(|e| {
                SearchError::Candidate {
                    key: key.to_string(),
                    problem: format!("{key}: training failed: {e}"),
                }
            })?;
        let secs = start.elapsed().as_secs_f64();
        let post = self.check(model);
        Ok(metrics(post, report.best_val_accuracy, true, secs))
    }
}

/// The seed of repeat `i` (> 0) of a candidate trained from `seed`.
fn repeat_seed(seed: u64, i: usize) -> u64 {
    super::candidate::fnv1a(format!("{seed}/repeat/{i}").as_bytes())
}

/// `x` to 12 significant digits. serde_json (without its `float_roundtrip` feature, which would
/// rebuild half the workspace) parses a number of up to 15 significant digits exactly but may be
/// off by one ulp on longer ones; metrics are rounded so that a resumed search, reading them back
/// from its state file, sees the very numbers the uninterrupted search saw.
pub fn canonical(x: f64) -> f64 {
    if x == 0.0 || !x.is_finite() {
        return x;
    }
    let k = 11 - x.abs().log10().floor() as i32;
    if (0..=22).contains(&k) {
        let s = 10f64.powi(k);
        (x * s).round() / s
    } else {
        x
    }
}

/// Runs one request on this machine (loads its data first): the remote evaluator's entry.
pub fn evaluate(req: &EvalRequest) -> Result<Metrics, SearchError> {
    Evaluator::new(req.context.clone())?.evaluate(&req.candidate, req.seed)
}
