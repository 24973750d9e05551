//! Search spaces as TOML files (`models/spaces/*.toml`): the choices a candidate is drawn from,
//! and the random moves over them (sampling, mutation, crossover).
//!
//! ```toml
//! name = "mlp"
//! kind = "mlp"                  # mlp | cnn
//! depth = [1, 2, 3]             # mlp: hidden layers (0 = a linear classifier)
//! width = [16, 32, 64]          # mlp: units of each hidden layer
//! ```
//!
//! ```toml
//! name = "cnn"
//! kind = "cnn"
//! input = [28, 28, 1]           # optional: the dataset's own shape when omitted
//! stages = [1, 2]               # conv stages: conv (same padding, ReLU), then a 2x2 pool
//! channels = [4, 8, 16]         # filters of each stage
//! kernel = [3, 5]               # square kernel of each stage
//! pool = ["max", "avg", "none"] # the pool after each stage
//! fc_depth = [0, 1]             # hidden Dense layers after the flatten
//! fc_width = [16, 32, 64]
//! ```
//!
//! A `kind = "cell"` file describes a DAG cell (AutoShrink's space; see [`super::cell`]). Random
//! search and STEERAGE also take it: a random point keeps each edge with probability ½, a
//! mutation toggles one edge.

use super::candidate::{Candidate, PoolKind, Stage};
use super::cell::{self, CellArch, CellSpec};
use super::SearchError;
use rand::seq::IndexedRandom;
use rand::Rng;
use serde::Deserialize;
use std::path::Path;

/// A parsed search space.
#[derive(Clone, Debug, PartialEq)]
pub struct Space {
    pub name: String,
    /// The file it came from (errors name it).
    pub file: String,
    /// Input shape the candidates read (None: the dataset's own; MLPs always read flat).
    pub input: Option<Vec<usize>>,
    pub kind: SpaceKind,
}

#[derive(Clone, Debug, PartialEq)]
pub enum SpaceKind {
    Mlp(MlpSpace),
    Cnn(CnnSpace),
    /// A DAG cell ([`super::cell`]): AutoShrink's space.
    Cell(CellSpec),
}

#[derive(Clone, Debug, PartialEq)]
pub struct MlpSpace {
    pub depth: Vec<usize>,
    pub width: Vec<usize>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct CnnSpace {
    pub stages: Vec<usize>,
    pub channels: Vec<usize>,
    pub kernel: Vec<usize>,
    pub pool: Vec<PoolKind>,
    pub fc_depth: Vec<usize>,
    pub fc_width: Vec<usize>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSpace {
    name: String,
    #[serde(default)]
    #[allow(dead_code)]
    description: Option<String>,
    kind: String,
    #[serde(default)]
    input: Option<Vec<usize>>,
    depth: Option<Vec<usize>>,
    width: Option<Vec<usize>>,
    stages: Option<Vec<usize>>,
    channels: Option<Vec<usize>>,
    kernel: Option<Vec<usize>>,
    pool: Option<Vec<String>>,
    fc_depth: Option<Vec<usize>>,
    fc_width: Option<Vec<usize>>,
}

fn invalid(file: &str, problem: impl Into<String>) -> SearchError {
    SearchError::Space {
        file: file.to_string(),
        problem: problem.into(),
    }
}

/// A required list of choices: present, non-empty, each at least `min`.
fn choices(
    file: &str,
    key: &str,
    v: Option<Vec<usize>>,
    min: usize,
) -> Result<Vec<usize>, SearchError> {
    let v = v.ok_or_else(|| invalid(file, format!("missing `{key}` (a list of choices)")))?;
    if v.is_empty() {
        return Err(invalid(file, format!("`{key}` has no choices")));
    }
    if let Some(bad) = v.iter().find(|&&x| x < min) {
        return Err(invalid(
            file,
            format!("`{key}` choice {bad} is below the minimum {min}"),
        ));
    }
    let mut v = v;
    v.sort_unstable();
    v.dedup();
    Ok(v)
}

impl Space {
    /// Reads and checks a space file.
    pub fn load(path: &Path) -> Result<Space, SearchError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| invalid(&file, e.to_string()))?;
        Space::parse(&text, &file)
    }

    /// Parses space text; `file` names the source in errors.
    pub fn parse(text: &str, file: &str) -> Result<Space, SearchError> {
        // A cell space has its own tables: told apart by its kind before the strict parse.
        let is_cell = toml::from_str::<toml::Table>(text)
            .ok()
            .and_then(|t| t.get("kind").and_then(|k| k.as_str().map(|k| k == "cell")))
            .unwrap_or(false);
        if is_cell {
            let (spec, input) = cell::parse(text, file)?;
            return Ok(Space {
                name: spec.name.clone(),
                file: file.to_string(),
                input,
                kind: SpaceKind::Cell(spec),
            });
        }
        let raw: RawSpace = toml::from_str(text).map_err(|e| invalid(file, e.to_string()))?;
        let foreign = |keys: &[(&str, bool)], kind: &str| -> Result<(), SearchError> {
            match keys.iter().find(|(_, present)| *present) {
                Some((k, _)) => Err(invalid(
                    file,
                    format!("`{k}` does not apply to a {kind} space"),
                )),
                None => Ok(()),
            }
        };
        if let Some(input) = &raw.input {
            if input.is_empty() || input.contains(&0) {
                return Err(invalid(
                    file,
                    format!("`input` {input:?} must be non-empty and positive"),
                ));
            }
        }
        let kind = match raw.kind.as_str() {
            "mlp" => {
                foreign(
                    &[
                        ("stages", raw.stages.is_some()),
                        ("channels", raw.channels.is_some()),
                        ("kernel", raw.kernel.is_some()),
                        ("pool", raw.pool.is_some()),
                        ("fc_depth", raw.fc_depth.is_some()),
                        ("fc_width", raw.fc_width.is_some()),
                    ],
                    "mlp",
                )?;
                SpaceKind::Mlp(MlpSpace {
                    depth: choices(file, "depth", raw.depth, 0)?,
                    width: choices(file, "width", raw.width, 1)?,
                })
            }
            "cnn" => {
                foreign(
                    &[
                        ("depth", raw.depth.is_some()),
                        ("width", raw.width.is_some()),
                    ],
                    "cnn",
                )?;
                if let Some(input) = &raw.input {
                    if input.len() != 3 {
                        return Err(invalid(
                            file,
                            format!("a cnn space's `input` is [H, W, C], got {input:?}"),
                        ));
                    }
                }
                let pool = raw
                    .pool
                    .ok_or_else(|| invalid(file, "missing `pool` (a list of choices)"))?
                    .iter()
                    .map(|p| {
                        p.parse::<PoolKind>()
                            .map_err(|e| invalid(file, format!("`pool`: {e}")))
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                if pool.is_empty() {
                    return Err(invalid(file, "`pool` has no choices"));
                }
                SpaceKind::Cnn(CnnSpace {
                    stages: choices(file, "stages", raw.stages, 1)?,
                    channels: choices(file, "channels", raw.channels, 1)?,
                    kernel: choices(file, "kernel", raw.kernel, 1)?,
                    pool,
                    fc_depth: choices(file, "fc_depth", raw.fc_depth, 0)?,
                    fc_width: choices(file, "fc_width", raw.fc_width, 1)?,
                })
            }
            other => {
                return Err(invalid(
                    file,
                    format!("unknown kind {other:?}: use \"mlp\", \"cnn\" or \"cell\""),
                ))
            }
        };
        Ok(Space {
            name: raw.name,
            file: file.to_string(),
            input: raw.input,
            kind,
        })
    }

    /// What identifies the space in a search state (its choices, not the file's path).
    pub fn fingerprint(&self) -> serde_json::Value {
        let kind = match &self.kind {
            SpaceKind::Mlp(s) => serde_json::json!({"mlp": {"depth": s.depth, "width": s.width}}),
            SpaceKind::Cnn(s) => serde_json::json!({"cnn": {
                "stages": s.stages, "channels": s.channels, "kernel": s.kernel,
                "pool": s.pool, "fc_depth": s.fc_depth, "fc_width": s.fc_width}}),
            SpaceKind::Cell(s) => serde_json::json!({ "cell": s }),
        };
        serde_json::json!({"name": self.name, "input": self.input, "kind": kind})
    }

    /// Whether `c` is a point of this space (a resumed state is checked with it).
    pub fn contains(&self, c: &Candidate) -> bool {
        match (&self.kind, c) {
            (SpaceKind::Mlp(s), Candidate::Mlp { hidden }) => {
                s.depth.contains(&hidden.len()) && hidden.iter().all(|w| s.width.contains(w))
            }
            (SpaceKind::Cnn(s), Candidate::Cnn { stages, fc }) => {
                s.stages.contains(&stages.len())
                    && stages.iter().all(|st| {
                        s.channels.contains(&st.channels)
                            && s.kernel.contains(&st.kernel)
                            && s.pool.contains(&st.pool)
                    })
                    && s.fc_depth.contains(&fc.len())
                    && fc.iter().all(|w| s.fc_width.contains(w))
            }
            (SpaceKind::Cell(s), Candidate::Cell(a)) => a.spec == *s && a.connected(),
            _ => false,
        }
    }

    /// A uniformly random point: each choice drawn independently.
    pub fn sample(&self, rng: &mut impl Rng) -> Candidate {
        match &self.kind {
            SpaceKind::Mlp(s) => {
                let depth = *s.depth.choose(rng).expect("checked non-empty");
                Candidate::Mlp {
                    hidden: (0..depth)
                        .map(|_| *s.width.choose(rng).expect("checked non-empty"))
                        .collect(),
                }
            }
            SpaceKind::Cnn(s) => {
                let n = *s.stages.choose(rng).expect("checked non-empty");
                let stages = (0..n).map(|_| random_stage(s, rng)).collect();
                let fc_n = *s.fc_depth.choose(rng).expect("checked non-empty");
                let fc = (0..fc_n)
                    .map(|_| *s.fc_width.choose(rng).expect("checked non-empty"))
                    .collect();
                Candidate::Cnn { stages, fc }
            }
            SpaceKind::Cell(s) => Candidate::Cell(CellArch::sample(s, rng)),
        }
    }

    /// One random change: a layer's width (or a stage's channels, kernel or pool) redrawn, or a
    /// layer added or removed within the allowed depths.
    pub fn mutate(&self, c: &Candidate, rng: &mut impl Rng) -> Candidate {
        let mut out = c.clone();
        match (&self.kind, &mut out) {
            (SpaceKind::Mlp(s), Candidate::Mlp { hidden }) => {
                mutate_list(hidden, &s.depth, &s.width, rng);
            }
            (SpaceKind::Cnn(s), Candidate::Cnn { stages, fc }) => {
                if rng.random_bool(0.6) {
                    let depth_moves = s.stages.len() > 1;
                    if depth_moves && rng.random_bool(0.3) {
                        let n = *s.stages.choose(rng).expect("checked non-empty");
                        stages.truncate(n);
                        while stages.len() < n {
                            stages.push(random_stage(s, rng));
                        }
                    } else if !stages.is_empty() {
                        let i = rng.random_range(0..stages.len());
                        let st = &mut stages[i];
                        match rng.random_range(0..3) {
                            0 => st.channels = *s.channels.choose(rng).expect("non-empty"),
                            1 => st.kernel = *s.kernel.choose(rng).expect("non-empty"),
                            _ => st.pool = *s.pool.choose(rng).expect("non-empty"),
                        }
                    }
                } else {
                    mutate_list(fc, &s.fc_depth, &s.fc_width, rng);
                }
            }
            (SpaceKind::Cell(_), Candidate::Cell(a)) => *a = a.mutate(rng),
            _ => return self.sample(rng),
        }
        out
    }

    /// Uniform crossover: the child's depth from either parent, each layer (stage) from the parent
    /// that has it, chosen at random where both do.
    pub fn crossover(&self, a: &Candidate, b: &Candidate, rng: &mut impl Rng) -> Candidate {
        fn mix<T: Clone>(a: &[T], b: &[T], rng: &mut impl Rng) -> Vec<T> {
            let n = if rng.random_bool(0.5) {
                a.len()
            } else {
                b.len()
            };
            (0..n)
                .map(|i| match (a.get(i), b.get(i)) {
                    (Some(x), Some(y)) => {
                        if rng.random_bool(0.5) {
                            x.clone()
                        } else {
                            y.clone()
                        }
                    }
                    (Some(x), None) => x.clone(),
                    (None, Some(y)) => y.clone(),
                    (None, None) => unreachable!("n is one of the two lengths"),
                })
                .collect()
        }
        match (a, b) {
            (Candidate::Mlp { hidden: ha }, Candidate::Mlp { hidden: hb }) => Candidate::Mlp {
                hidden: mix(ha, hb, rng),
            },
            (Candidate::Cnn { stages: sa, fc: fa }, Candidate::Cnn { stages: sb, fc: fb }) => {
                Candidate::Cnn {
                    stages: mix(sa, sb, rng),
                    fc: mix(fa, fb, rng),
                }
            }
            _ => a.clone(),
        }
    }

    /// Layer slots of the feature vector: the deepest candidate's layer count per kind.
    fn slots(&self) -> (usize, usize) {
        match &self.kind {
            SpaceKind::Mlp(s) => (0, *s.depth.iter().max().expect("non-empty")),
            SpaceKind::Cnn(s) => (
                *s.stages.iter().max().expect("non-empty"),
                *s.fc_depth.iter().max().expect("non-empty"),
            ),
            SpaceKind::Cell(_) => (0, 0),
        }
    }

    /// Columns of a `features` row of length `n` that the predictor's linear base fits: the
    /// depths and the whole-model figures (widths' min/max/sum, logs of params, MACs, flash,
    /// RAM, energy), which order candidates of any shape; the per-layer slots are left to the
    /// trees.
    pub fn linear_columns(n: usize) -> Vec<usize> {
        let mut c = vec![0, 1];
        c.extend(n.saturating_sub(WHOLE_MODEL_FEATURES).max(2)..n);
        c
    }

    /// The predictor's input for `c`: its architecture (per-layer slots, zero where the layer is
    /// absent) and the whole-model figures of `hw` (logs for the counts that span decades).
    /// The length is fixed per space.
    pub fn features(&self, c: &Candidate, hw: &super::Hardware) -> Vec<f64> {
        let (stage_slots, fc_slots) = self.slots();
        let (stages, fc): (&[Stage], &[usize]) = match c {
            Candidate::Mlp { hidden } => (&[], hidden),
            Candidate::Cnn { stages, fc } => (stages, fc),
            Candidate::Cell(_) => (&[], &[]),
        };
        let mut f = vec![stages.len() as f64, fc.len() as f64];
        if let Candidate::Cell(a) = c {
            f.extend(a.features());
        }
        for i in 0..stage_slots {
            match stages.get(i) {
                Some(s) => f.extend([s.channels as f64, s.kernel as f64, s.pool.code()]),
                None => f.extend([0.0, 0.0, 0.0]),
            }
        }
        for i in 0..fc_slots {
            f.push(fc.get(i).map_or(0.0, |&w| w as f64));
        }
        // The last WHOLE_MODEL_FEATURES entries (see `linear_columns`).
        let widths = stages.iter().map(|s| s.channels).chain(fc.iter().copied());
        f.push(widths.clone().min().unwrap_or(0) as f64);
        f.push(widths.clone().max().unwrap_or(0) as f64);
        f.push(widths.sum::<usize>() as f64);
        f.push((hw.params as f64).max(1.0).ln());
        f.push((hw.macs as f64).max(1.0).ln());
        f.push((hw.flash_bytes as f64).max(1.0).ln());
        f.push((hw.ram_bytes as f64).max(1.0).ln());
        f.push(hw.energy_uj.max.max(1e-9).ln());
        debug_assert!(f.len() >= 2 + WHOLE_MODEL_FEATURES);
        f
    }
}

/// Whole-model figures at the end of every feature row.
const WHOLE_MODEL_FEATURES: usize = 8;

fn random_stage(s: &CnnSpace, rng: &mut impl Rng) -> Stage {
    Stage {
        channels: *s.channels.choose(rng).expect("checked non-empty"),
        kernel: *s.kernel.choose(rng).expect("checked non-empty"),
        pool: *s.pool.choose(rng).expect("checked non-empty"),
    }
}

/// Redraws one width, or moves the depth to another allowed value (new layers drawn at random).
fn mutate_list(list: &mut Vec<usize>, depths: &[usize], widths: &[usize], rng: &mut impl Rng) {
    if list.is_empty() || (depths.len() > 1 && rng.random_bool(0.3)) {
        let n = *depths.choose(rng).expect("checked non-empty");
        list.truncate(n);
        while list.len() < n {
            list.push(*widths.choose(rng).expect("checked non-empty"));
        }
    } else {
        let i = rng.random_range(0..list.len());
        list[i] = *widths.choose(rng).expect("checked non-empty");
    }
}
