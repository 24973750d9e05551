//! Iterative schedules over a trained model: prune-only (Han et al. 2015: prune, retrain, repeat)
//! and NeST-style grow-and-prune (sparse seed → train → grow by gradient → train → prune
//! iteratively). Both spend retraining epochs from the same `TrainConfig`, so they can be compared
//! at equal budgets.

use super::{nest, prune};
use crate::ir::Model;
use crate::train::{self, EpochLog, Samples, TrainConfig, TrainError};

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Method {
    /// Train the seed as is.
    Dense,
    /// Train dense, then magnitude-prune and retrain in rounds.
    Prune,
    /// Sparse seed, gradient-based connection growth, then magnitude pruning in rounds.
    Nest,
}

impl std::str::FromStr for Method {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "dense" => Ok(Method::Dense),
            "prune" => Ok(Method::Prune),
            "nest" => Ok(Method::Nest),
            _ => Err(format!("unknown method {s:?}: use dense, prune or nest")),
        }
    }
}

#[derive(Clone, Debug)]
pub struct Schedule {
    pub method: Method,
    /// Overall density of Dense weights to reach.
    pub target_density: f64,
    /// Pruning rounds; the density falls geometrically from the start to the target.
    pub rounds: usize,
    /// Retraining epochs after each round.
    pub retrain_epochs: usize,
    /// NeST: density of the random sparse seed.
    pub seed_density: f64,
    /// NeST: fraction of dormant connections grown.
    pub grow_fraction: f64,
}

impl Default for Schedule {
    fn default() -> Self {
        Schedule {
            method: Method::Dense,
            target_density: 0.1,
            rounds: 5,
            retrain_epochs: 8,
            seed_density: 0.2,
            grow_fraction: 0.1,
        }
    }
}

/// Runs `schedule` on `model` (an initialised seed). `log` receives one line per phase,
/// `on_epoch` every training epoch of every phase (progress display).
pub fn synthesize(
    model: &mut Model,
    train_s: &Samples,
    val_s: &Samples,
    cfg: &TrainConfig,
    schedule: &Schedule,
    mut log: impl FnMut(String),
    mut on_epoch: impl FnMut(&EpochLog),
) -> Result<f64, TrainError> {
    let on_epoch = &mut on_epoch;
    let retrain = TrainConfig {
        max_epochs: schedule.retrain_epochs,
        patience: schedule.retrain_epochs,
        ..cfg.clone()
    };
    match schedule.method {
        Method::Dense => Ok(train::train(model, train_s, val_s, cfg, on_epoch)?.best_val_accuracy),
        Method::Prune => {
            train::train(model, train_s, val_s, cfg, &mut *on_epoch)?;
            prune_rounds(
                model, train_s, val_s, &retrain, schedule, &mut log, on_epoch,
            )
        }
        Method::Nest => {
            nest::random_sparse_seed(model, schedule.seed_density, cfg.seed);
            train::train(model, train_s, val_s, cfg, &mut *on_epoch)?;
            let grads = train::weight_gradients(model, train_s, cfg.batch_size, 50);
            let grown = nest::grow_connections(model, &grads, schedule.grow_fraction);
            let r = train::train(model, train_s, val_s, &retrain, &mut *on_epoch)?;
            log(format!(
                "grew {grown} connections -> density {:.3}, val acc {:.2}%",
                prune::density(model),
                100.0 * r.best_val_accuracy
            ));
            prune_rounds(
                model, train_s, val_s, &retrain, schedule, &mut log, on_epoch,
            )
        }
    }
}

fn prune_rounds(
    model: &mut Model,
    train_s: &Samples,
    val_s: &Samples,
    retrain: &TrainConfig,
    schedule: &Schedule,
    log: &mut impl FnMut(String),
    on_epoch: &mut impl FnMut(&EpochLog),
) -> Result<f64, TrainError> {
    let start = prune::density(model);
    let mut val = 0.0;
    let rounds = schedule.rounds.max(1);
    for r in 1..=rounds {
        let d = start * (schedule.target_density / start).powf(r as f64 / rounds as f64);
        let densities = prune::layer_densities(model, d);
        let removed = prune::prune_to(model, &densities);
        let report = train::train(model, train_s, val_s, retrain, &mut *on_epoch)?;
        val = report.best_val_accuracy;
        log(format!(
            "round {r}/{rounds}: pruned {removed} -> density {:.4}, val acc {:.2}%",
            prune::density(model),
            100.0 * report.best_val_accuracy
        ));
    }
    Ok(val)
}

#[cfg(test)]
mod tests;
