//! The resumable search state: every evaluation by candidate key, and how far the search got.
//! Written atomically after each evaluated batch.
//!
//! No RNG state is stored: every random step of a search draws from its own generator, seeded
//! from the search seed and the step's name (see `run::step_rng`), and a candidate's training
//! seed derives from the search seed and its key. A resumed search therefore replays the same
//! steps; each candidate it meets is looked up here first, so none is trained twice, and the
//! replay reaches exactly the state an uninterrupted run would.

use super::{Candidate, Metrics, SearchError};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

/// Bumped when the meaning of a field changes; other versions are refused.
pub const STATE_VERSION: u32 = 1;

/// Why a candidate was evaluated.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Drawn before the search to measure the predictor; never fitted on, never chosen.
    Heldout,
    /// The initial random sample (STEERAGE) or a random-search draw.
    Sample,
    /// Proposed by the predictor-guided evolution.
    Proposed,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Evaluation {
    pub candidate: Candidate,
    pub role: Role,
    /// The batch it was evaluated in (0-based, in search order).
    pub batch: usize,
    pub seed: u64,
    pub metrics: Metrics,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SearchState {
    pub version: u32,
    /// The search's configuration as JSON: a state only resumes the search that wrote it.
    pub config: serde_json::Value,
    /// Batches fully evaluated so far.
    pub batches_done: usize,
    pub finished: bool,
    /// Wall time spent on the search so far, over every run that continued this state.
    pub seconds: f64,
    pub evaluations: BTreeMap<String, Evaluation>,
    /// AutoShrink: each evaluated cell's trained weights (`cell::weights_hex`), which its
    /// children inherit.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub weights: BTreeMap<String, Vec<String>>,
}

impl SearchState {
    pub fn new(config: serde_json::Value) -> SearchState {
        SearchState {
            version: STATE_VERSION,
            config,
            batches_done: 0,
            finished: false,
            seconds: 0.0,
            evaluations: BTreeMap::new(),
            weights: BTreeMap::new(),
        }
    }

    /// The state at `path` if it exists (checked against `config`), else a new one.
    pub fn open(path: &Path, config: serde_json::Value) -> Result<SearchState, SearchError> {
        if !path.exists() {
            return Ok(SearchState::new(config));
        }
        let file = path.display().to_string();
        let bad = |problem: String| SearchError::State {
            file: file.clone(),
            problem,
        };
        let text = std::fs::read_to_string(path).map_err(|e| bad(e.to_string()))?;
        let raw: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| bad(format!("not a search state: {e}")))?;
        let version = raw.get("version").and_then(|v| v.as_u64());
        if version != Some(u64::from(STATE_VERSION)) {
            return Err(bad(format!(
                "state version {}, this bonsai reads {STATE_VERSION}",
                version.map_or("none".into(), |v| v.to_string())
            )));
        }
        let state: SearchState =
            serde_json::from_value(raw).map_err(|e| bad(format!("not a search state: {e}")))?;
        if state.config != config {
            let differs = differing_keys(&state.config, &config);
            return Err(bad(format!(
                "written by a different search ({} differ); rerun with the same arguments, or \
                 give another --state file",
                if differs.is_empty() {
                    "the settings".into()
                } else {
                    differs.join(", ")
                }
            )));
        }
        for (key, e) in &state.evaluations {
            if e.candidate.key() != *key || e.metrics.key != *key {
                return Err(bad(format!(
                    "entry {key:?} holds candidate {}",
                    e.candidate.key()
                )));
            }
        }
        Ok(state)
    }

    /// Writes the state atomically (a kill mid-write leaves the previous state).
    pub fn save(&self, path: &Path) -> Result<(), SearchError> {
        let text = serde_json::to_string_pretty(self).map_err(SearchError::other)? + "\n";
        crate::util::write_atomic(path, text.as_bytes()).map_err(|e| SearchError::State {
            file: path.display().to_string(),
            problem: e.to_string(),
        })
    }
}

/// Top-level keys whose values differ (for the error message).
fn differing_keys(a: &serde_json::Value, b: &serde_json::Value) -> Vec<String> {
    match (a.as_object(), b.as_object()) {
        (Some(a), Some(b)) => {
            let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
            keys.sort();
            keys.dedup();
            keys.into_iter()
                .filter(|k| a.get(*k) != b.get(*k))
                .cloned()
                .collect()
        }
        _ => vec![],
    }
}
