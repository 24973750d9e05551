//! Command-line forms of a search job: `bonsai search` ([`SearchArgs`]) and `cargo xtask
//! synthesize --search` (a [`crate::pipeline::SynthArgs`] plus [`SearchTuning`]).

use super::job::SearchJob;
use super::run::{SearchConfig, SearchMethod};
use super::shrink::ShrinkConfig;
use super::{EvalContext, HwLimits, ProxyBudget};
use crate::pipeline::{SynthArgs, SynthOptions};
use crate::synth::schedule::Schedule;
use crate::train::TrainConfig;
use std::path::PathBuf;

/// The search's own options (no name shared with `SynthArgs`, so both flatten into one command).
#[derive(clap::Args, Clone, Debug)]
pub struct SearchTuning {
    /// Search space file (models/spaces/mlp.toml, models/spaces/cnn.toml; autoshrink:
    /// models/spaces/cell.toml).
    #[arg(long, default_value = "models/spaces/mlp.toml")]
    pub space: PathBuf,
    /// Resumable state; rerunning with the same arguments continues it (default:
    /// OUT/search-state.json).
    #[arg(long)]
    pub state: Option<PathBuf>,
    /// STEERAGE: random feasible candidates evaluated before the search to measure the predictor
    /// (never fitted on).
    #[arg(long, default_value_t = 30)]
    pub heldout: usize,
    /// Initial random sample.
    #[arg(long, default_value_t = 16)]
    pub init: usize,
    /// Fit → evolve → evaluate rounds.
    #[arg(long, default_value_t = 4)]
    pub iterations: usize,
    /// Candidates evaluated per round (autoshrink: K, the moves evaluated per step).
    #[arg(long, default_value_t = 6)]
    pub top_k: usize,
    #[arg(long, default_value_t = 48)]
    pub population: usize,
    #[arg(long, default_value_t = 12)]
    pub generations: usize,
    /// Proxy training: epochs per candidate.
    #[arg(long, default_value_t = 5)]
    pub proxy_epochs: usize,
    /// Proxy training: trainings per candidate from different seeds, averaged (less noise).
    #[arg(long, default_value_t = 1)]
    pub proxy_repeats: usize,
    /// Proxy training: training samples per candidate (default: the whole training split).
    #[arg(long)]
    pub proxy_train_samples: Option<usize>,
    /// Autoshrink: weight of the energy (relative to the full cell's) in the score
    /// `val_accuracy − λ·energy/energy_full`.
    #[arg(long, default_value_t = 0.05)]
    pub shrink_lambda: f64,
    /// Autoshrink: shrink (within the limits) down to this many edges (default: stop at the
    /// first cell within the limits that no evaluated child out-scores).
    #[arg(long)]
    pub target_edges: Option<usize>,
    /// Autoshrink: training epochs of the full cell before the first step.
    #[arg(long, default_value_t = 10)]
    pub warmup_epochs: usize,
    /// Stop before evaluating this batch (the state is kept: rerun to resume).
    #[arg(long)]
    pub max_batches: Option<usize>,
    /// Validation share of the training data for the search, its local search and the output
    /// (default: the dataset's own, 10%); a larger one measures candidates with less noise.
    #[arg(long)]
    pub val_fraction: Option<f64>,
}

/// `bonsai search`.
#[derive(clap::Args, Clone, Debug)]
pub struct SearchArgs {
    /// steerage (predictor-guided evolution), autoshrink (DAG-cell edge shrinking, with a cell
    /// --space) or random (the baseline, same evaluation budget).
    #[arg(long, default_value = "steerage")]
    pub method: String,
    #[command(flatten)]
    pub tuning: SearchTuning,
    /// Dataset, as `bonsai synthesize --data` takes it.
    #[arg(long, default_value = "digits")]
    pub data: String,
    #[arg(long, default_value = "out")]
    pub out: PathBuf,
    /// Device profile of the limits and estimates (a built-in one: `bonsai devices`).
    #[arg(long, default_value = "stm32l4r5")]
    pub device: String,
    #[arg(long)]
    pub flash_budget_kb: Option<f64>,
    #[arg(long)]
    pub ram_budget_kb: Option<f64>,
    #[arg(long)]
    pub energy_budget_uj: Option<f64>,
    /// Search seed (candidate seeds derive from it) and data split seed.
    #[arg(long, default_value_t = 1)]
    pub rng_seed: u64,
    /// Local search on the winner: dense (train only), prune or nest.
    #[arg(long, default_value = "prune")]
    pub local: String,
    /// Epochs of the winner's full training (early-stopped on validation).
    #[arg(long, default_value_t = 30)]
    pub epochs: usize,
    #[arg(long, default_value_t = 32)]
    pub batch_size: usize,
    #[arg(long, default_value_t = 2e-3)]
    pub lr: f64,
    /// Local search: nonzero weights to reach, as a fraction of the winner's.
    #[arg(long, default_value_t = 0.3)]
    pub target_density: f64,
    #[arg(long, default_value_t = 3)]
    pub rounds: usize,
    #[arg(long, default_value_t = 4)]
    pub retrain_epochs: usize,
    /// Stop pruning when validation accuracy falls more than this many points (percent) below
    /// its pre-pruning best.
    #[arg(long, default_value_t = 0.5)]
    pub max_val_drop: f64,
    #[arg(long)]
    pub quiet: bool,
}

fn job(
    method: &str,
    tuning: &SearchTuning,
    seed: u64,
    context: EvalContext,
    synth: SynthOptions,
) -> anyhow::Result<SearchJob> {
    let method: SearchMethod = method.parse().map_err(anyhow::Error::msg)?;
    Ok(SearchJob {
        space: tuning.space.clone(),
        search: SearchConfig {
            method,
            seed,
            n_heldout: tuning.heldout,
            n_init: tuning.init,
            iterations: tuning.iterations,
            top_k: tuning.top_k,
            population: tuning.population,
            generations: tuning.generations,
            shrink: (method == SearchMethod::Autoshrink).then(|| tuning.shrink_config()),
        },
        context,
        state: tuning
            .state
            .clone()
            .unwrap_or_else(|| synth.out.join("search-state.json")),
        max_batches: tuning.max_batches,
        synth,
    })
}

impl SearchTuning {
    /// AutoShrink's settings from the options.
    pub fn shrink_config(&self) -> ShrinkConfig {
        ShrinkConfig {
            lambda: self.shrink_lambda,
            target_edges: self.target_edges,
            warmup_epochs: self.warmup_epochs,
        }
    }
}

impl SearchArgs {
    pub fn to_job(&self) -> anyhow::Result<SearchJob> {
        let limits = HwLimits {
            device: self.device.clone(),
            flash_kb: self.flash_budget_kb,
            ram_kb: self.ram_budget_kb,
            energy_uj: self.energy_budget_uj,
        };
        let synth = SynthOptions {
            data: self.data.parse()?,
            out: self.out.clone(),
            train: TrainConfig {
                max_epochs: self.epochs,
                batch_size: self.batch_size,
                learning_rate: self.lr,
                seed: self.rng_seed,
                // The recipe `cargo xtask bench synth` measured for grow-and-prune.
                lr_schedule: crate::train::LrSchedule::Cosine { floor: 0.01 },
                weight_decay: 3e-4,
                ..TrainConfig::default()
            },
            schedule: Schedule {
                method: self.local.parse().map_err(anyhow::Error::msg)?,
                target_density: self.target_density,
                max_val_drop: Some(self.max_val_drop / 100.0),
                rounds: self.rounds,
                retrain_epochs: self.retrain_epochs,
                ..Schedule::default()
            },
            show_progress: !self.quiet,
            device: self.device.clone(),
            budgets: limits.budgets(),
            ..SynthOptions::default()
        };
        let context = EvalContext {
            data: self.data.clone(),
            split_seed: self.rng_seed,
            input: None,
            proxy: ProxyBudget {
                epochs: self.tuning.proxy_epochs,
                max_train_samples: self.tuning.proxy_train_samples,
                batch_size: self.batch_size,
                learning_rate: self.lr,
                repeats: self.tuning.proxy_repeats,
            },
            limits,
            val_fraction: self.tuning.val_fraction,
        };
        job(&self.method, &self.tuning, self.rng_seed, context, synth)
    }
}

/// `cargo xtask synthesize --search METHOD`: the synthesize options give the data, device,
/// budgets, training and the local search (`--method`: dense, prune or nest).
pub fn job_from_synth_args(
    args: &SynthArgs,
    method: &str,
    tuning: &SearchTuning,
) -> anyhow::Result<SearchJob> {
    let synth = args.to_options()?;
    if !synth.device_files.is_empty() {
        anyhow::bail!("--search takes a built-in device profile (--device-file is not supported)");
    }
    let context = EvalContext {
        data: args.data.clone(),
        split_seed: args.rng_seed,
        input: None,
        proxy: ProxyBudget {
            epochs: tuning.proxy_epochs,
            max_train_samples: tuning.proxy_train_samples,
            batch_size: args.batch_size,
            learning_rate: args.lr,
            repeats: tuning.proxy_repeats,
        },
        limits: HwLimits {
            device: args.device.clone(),
            flash_kb: args.flash_budget_kb,
            ram_kb: args.ram_budget_kb,
            energy_uj: args.energy_budget_uj,
        },
        val_fraction: tuning.val_fraction,
    };
    job(method, tuning, args.rng_seed, context, synth)
}
