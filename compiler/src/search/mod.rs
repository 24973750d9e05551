//! Hardware-aware architecture search: the global step before grow-and-prune (issue 7).
//!
//! - [`space`]: search spaces as TOML files (`models/spaces/*.toml`) and the random moves over
//!   them; [`candidate`]: a point of a space, its stable key, its model (through the seed-file
//!   builder) and its predictor features.
//! - [`eval`]: the evaluator, a self-contained unit (request in, metrics out, both JSON): the
//!   hardware pre-check (quantize + lower + cost model on the untrained model) and the proxy
//!   training.
//! - [`predictor`]: boosted regression trees predicting validation accuracy from features.
//! - [`run`]: random search and STEERAGE (predictor-guided evolution), batches evaluated in
//!   parallel with rayon; [`state`]: the resumable state file.
//! - [`stats`]: Spearman's rank correlation and its bootstrap interval; [`pareto`]: the fronts of
//!   accuracy against energy and flash, JSON and SVG.
//! - [`cell`]: DAG-cell spaces (`kind = "cell"`) and their architectures (kept edges), lowered
//!   to the IR with Add merges; [`shrink`]: AutoShrink, removing one edge per step from the
//!   full cell with weight sharing and an efficiency-aware score.
//! - [`job`]: a whole `bonsai search` (search, grow-and-prune of the winner, outputs);
//!   [`cli`]: its command-line forms.
//!
//! Library users (e.g. a DAG-cell search) build on [`Evaluator`] (figures and proxy training of
//! any [`Candidate`]), [`Predictor`], [`stats`], [`pareto`] and [`state::SearchState`].

pub mod candidate;
pub mod cell;
pub mod cli;
pub mod eval;
pub mod job;
pub mod pareto;
pub mod predictor;
pub mod run;
pub mod shrink;
pub mod space;
pub mod state;
pub mod stats;

pub use candidate::{Candidate, PoolKind, Stage};
pub use eval::{
    evaluate, EvalContext, EvalRequest, Evaluator, Hardware, HwLimits, Metrics, ProxyBudget,
};
pub use predictor::{Predictor, PredictorParams};
pub use run::{search, SearchConfig, SearchMethod, SearchOutcome};
pub use space::Space;

#[derive(Debug, thiserror::Error)]
pub enum SearchError {
    #[error("search space {file}: {problem}")]
    Space { file: String, problem: String },
    #[error("{problem}")]
    Candidate { key: String, problem: String },
    #[error("search state {file}: {problem}")]
    State { file: String, problem: String },
    #[error("predictor: {0}")]
    Predictor(String),
    #[error("search: {0}")]
    Config(String),
    #[error(
        "stopped before batch {batches} as asked; the state is in {state}: rerun the same \
         command to resume"
    )]
    Stopped { batches: usize, state: String },
    #[error("{0}")]
    Other(String),
}

impl SearchError {
    pub(crate) fn other(e: impl std::fmt::Display) -> SearchError {
        SearchError::Other(e.to_string())
    }
}

#[cfg(test)]
mod shrink_tests;
#[cfg(test)]
mod tests;
