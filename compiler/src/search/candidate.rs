//! A point of a search space, its stable identity, and its model.
//!
//! A candidate lowers to the IR through the seed-file builder ([`crate::synth::seed_file`]): it
//! is turned into the same layer list a `models/seeds/*.toml` file describes, so every candidate
//! is a model the rest of the toolchain (training, growth, pruning, lowering) already takes.

use super::cell::CellArch;
use super::SearchError;
use crate::ir::Model;
use crate::synth::seed_file::{
    self, ActSpec, DataShape, LayerSpec, PaddingSpec, Pair, SeedSpec, Units,
};
use serde::{Deserialize, Serialize};

/// The pool after a convolution stage.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PoolKind {
    Max,
    Avg,
    None,
}

impl PoolKind {
    fn as_str(self) -> &'static str {
        match self {
            PoolKind::Max => "max",
            PoolKind::Avg => "avg",
            PoolKind::None => "none",
        }
    }
    /// The predictor's encoding: pooled or not first, the kind second.
    pub(crate) fn code(self) -> f64 {
        match self {
            PoolKind::None => 0.0,
            PoolKind::Avg => 1.0,
            PoolKind::Max => 2.0,
        }
    }
}

impl std::str::FromStr for PoolKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "max" => Ok(PoolKind::Max),
            "avg" => Ok(PoolKind::Avg),
            "none" => Ok(PoolKind::None),
            _ => Err(format!(
                "unknown pool {s:?}: use \"max\", \"avg\" or \"none\""
            )),
        }
    }
}

/// One convolution stage: `channels` filters of `kernel × kernel`, same padding, ReLU, then
/// the pool (2×2, stride 2) unless `None`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Stage {
    pub channels: usize,
    pub kernel: usize,
    pub pool: PoolKind,
}

/// An architecture: an MLP's hidden widths, a CNN's stages and hidden FC widths (the
/// classifier layer, as many units as classes, is implied), or a DAG cell's kept edges.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Candidate {
    Mlp { hidden: Vec<usize> },
    Cnn { stages: Vec<Stage>, fc: Vec<usize> },
    Cell(CellArch),
}

impl Candidate {
    /// Canonical text identity, e.g. `mlp[64,32]` or `cnn[c8k3max,c16k5none][32]`: equal keys
    /// are equal architectures, so a search never evaluates one twice.
    pub fn key(&self) -> String {
        let list = |v: &[usize]| {
            v.iter()
                .map(|w| w.to_string())
                .collect::<Vec<_>>()
                .join(",")
        };
        match self {
            Candidate::Mlp { hidden } => format!("mlp[{}]", list(hidden)),
            Candidate::Cnn { stages, fc } => format!(
                "cnn[{}][{}]",
                stages
                    .iter()
                    .map(|s| format!("c{}k{}{}", s.channels, s.kernel, s.pool.as_str()))
                    .collect::<Vec<_>>()
                    .join(","),
                list(fc)
            ),
            Candidate::Cell(a) => a.key(),
        }
    }

    /// A 64-bit hash of [`Candidate::key`] that is the same on every machine and every build
    /// (FNV-1a; std's hasher is randomly keyed): per-candidate RNG seeds derive from it.
    pub fn hash64(&self) -> u64 {
        fnv1a(self.key().as_bytes())
    }

    /// The candidate as a seed description (what a `models/seeds/*.toml` file would say).
    /// `input` is the CNN's `[H, W, C]` (None: the dataset's); an MLP reads its input flat.
    /// None for a cell: a DAG is no layer list.
    pub fn to_spec(&self, input: Option<&[usize]>) -> Option<SeedSpec> {
        let dense = |n: usize| LayerSpec::Dense {
            units: Units::N(n),
            activation: ActSpec::Relu,
        };
        let mut layers = Vec::new();
        let input = match self {
            Candidate::Mlp { hidden } => {
                layers.extend(hidden.iter().map(|&n| dense(n)));
                // Flat whatever the dataset's shape: filled in by `to_model`.
                None
            }
            Candidate::Cnn { stages, fc } => {
                for s in stages {
                    layers.push(LayerSpec::Conv {
                        filters: s.channels,
                        kernel: Pair::Same(s.kernel),
                        stride: None,
                        padding: PaddingSpec::Named("same".into()),
                        depthwise: false,
                        activation: ActSpec::Relu,
                    });
                    let size = Some(Pair::Same(POOL));
                    match s.pool {
                        PoolKind::Max => layers.push(LayerSpec::MaxPool {
                            size: Pair::Same(POOL),
                            stride: size,
                        }),
                        PoolKind::Avg => layers.push(LayerSpec::AvgPool {
                            size: Pair::Same(POOL),
                            stride: size,
                        }),
                        PoolKind::None => {}
                    }
                }
                layers.push(LayerSpec::Flatten);
                layers.extend(fc.iter().map(|&n| dense(n)));
                input.map(<[usize]>::to_vec)
            }
            Candidate::Cell(_) => return None,
        };
        layers.push(LayerSpec::Dense {
            units: Units::Named("classes".into()),
            activation: ActSpec::None,
        });
        Some(SeedSpec {
            name: self.key(),
            description: None,
            input,
            layers,
        })
    }

    /// The candidate's model on `data` (input shape, classes, preprocessing), He-initialised
    /// from `seed`, validated. `input` re-shapes a CNN's input (e.g. digits' 64 features as
    /// `[8, 8, 1]`). Fails when the stages do not fit the input (a pool on a 1×1 map).
    pub fn to_model(
        &self,
        data: &DataShape,
        input: Option<&[usize]>,
        seed: u64,
    ) -> Result<Model, SearchError> {
        let Some(mut spec) = self.to_spec(input) else {
            let Candidate::Cell(a) = self else {
                unreachable!("only a cell has no seed description")
            };
            return a.to_model(data, input, seed);
        };
        if matches!(self, Candidate::Mlp { .. }) {
            spec.input = Some(vec![data.sample_shape.iter().product()]);
        }
        seed_file::build(&spec, &self.key(), data, seed).map_err(|e| SearchError::Candidate {
            key: self.key(),
            problem: e.to_string(),
        })
    }
}

/// Pool window and stride of a stage.
const POOL: usize = 2;

/// FNV-1a, 64 bits.
pub(crate) fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}
