//! Lowering: a quantized [`Model`] becomes a standalone `no_std` Rust crate (the "model crate")
//! that calls `bonsai-rt` kernels on `static` weight tables.
//!
//! [`lower`] plans and renders the crate in memory; [`write_crate`] puts it on disk (replacing an
//! earlier generated crate without ever leaving a partial one). The generated crate's contract,
//! which the firmware and the host runner rely on, is exactly:
//!
//! ```text
//! pub const INPUT_LEN: usize;    pub const OUTPUT_LEN: usize;    pub const ARENA_BYTES: usize;
//! pub const INPUT_SCALE: f32;    pub const INPUT_ZERO_POINT: i32;
//! pub const OUTPUT_SCALE: f32;   pub const OUTPUT_ZERO_POINT: i32;
//! pub static CLASS_NAMES: [&str; OUTPUT_LEN];
//! pub fn infer(input: &[i8; INPUT_LEN], output: &mut [i8; OUTPUT_LEN], arena: &mut [u8; ARENA_BYTES]);
//! pub fn predict(input: &[i8; INPUT_LEN], arena: &mut [u8; ARENA_BYTES]) -> usize;
//! ```
//!
//! Semantics are those of the golden integer model ([`crate::interp::int8`]), bit for bit: the
//! input zero point is folded into the biases at compile time (in i64, checked to fit i32) and the
//! requantization parameters come from [`crate::quant::dense_requant`] and [`crate::quant::ActRange`], the same
//! functions the interpreter uses.
//!
//! Any DAG of supported ops lowers (Dense with a fused activation, Relu, Flatten, Concat): the
//! memory planner (`memory.rs`) gives every intermediate tensor a static offset in one arena,
//! reusing memory between tensors that are never alive together; the model input and output
//! stay in the caller's arrays, Flatten and last-use ReLUs reuse their input's memory.
//!
//! Each Dense layer stores its weights densely (`fully_connected_s8`) or, when pruning left few
//! enough of them, in delta CSR (`fully_connected_sparse_s8`): [`LowerOptions::storage`] chooses,
//! by default per layer from flash bytes and instruction estimates (`sparse.rs` documents the
//! format, the measured constants and the rule), and [`LoweredCrate::layers`] records the outcome.

mod emit;
mod memory;
mod plan;
mod sparse;
mod write;

pub use sparse::{CostModel, Insns, THUMBV6M, THUMBV7EM};
pub use write::{relative_path, write_crate};

use crate::ir::{IrError, Model};
use std::path::PathBuf;

/// Everything [`lower`] needs besides the model.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LowerOptions {
    /// Cargo package name of the generated crate; the library is the same with `-` → `_`.
    pub crate_name: String,
    /// Absolute path of the `bonsai-rt` crate (`runtime-no-std/`).
    pub runtime_path: PathBuf,
    /// How Dense layers store their weights (default: [`StoragePolicy::Auto`]).
    pub storage: StoragePolicy,
}

impl Default for LowerOptions {
    fn default() -> Self {
        LowerOptions {
            crate_name: "bonsai-model".into(),
            runtime_path: default_runtime_path(),
            storage: StoragePolicy::Auto,
        }
    }
}

/// How [`lower`] stores the weights of Dense layers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum StoragePolicy {
    /// Per layer, sparse (delta CSR, `fully_connected_sparse_s8`) when that is smaller in flash
    /// and estimated no slower on thumbv7em and thumbv6m, else dense. The estimates and their
    /// measured constants are documented in `lower/sparse.rs` ([`THUMBV7EM`], [`THUMBV6M`]).
    #[default]
    Auto,
    /// Every layer dense (`fully_connected_s8`, pruned weights stored as zeros).
    Dense,
    /// Every layer sparse (an error for a layer with a row of more than 65535 entries).
    Sparse,
}

/// How one Dense layer's weights are stored in the generated crate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Storage {
    /// Row-major `[out][in]` int8, zeros included.
    Dense,
    /// Delta CSR: `(weight, column step)` entries plus per-row counts.
    Sparse,
}

impl Storage {
    pub fn as_str(self) -> &'static str {
        match self {
            Storage::Dense => "dense",
            Storage::Sparse => "sparse",
        }
    }
}

/// What [`lower`] did with one Dense layer, and the figures it decided on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LayerInfo {
    /// Index in `Model::nodes` (the generated statics are `LAYER<index>`).
    pub index: usize,
    pub name: String,
    pub in_len: usize,
    pub out_len: usize,
    /// The storage chosen (or forced by [`LowerOptions::storage`]).
    pub storage: Storage,
    /// Nonzero int8 weights (pruned weights are exactly zero; a weight can also quantize to 0).
    pub nonzeros: usize,
    /// Entries of the sparse encoding: the nonzeros plus the filler entries that bridge gaps of
    /// more than 255 columns.
    pub sparse_entries: usize,
    /// Flash of the weight table stored densely (`in · out`) and sparsely (`2 · entries` plus
    /// one `u8` or `u16` count per row); the per-channel arrays are the same for both.
    pub dense_weight_bytes: usize,
    pub sparse_weight_bytes: usize,
    /// Flash of all this layer's parameter arrays as generated: the chosen weight table plus
    /// folded biases, multipliers and shifts (12 bytes per output channel).
    pub weight_bytes: usize,
    /// Estimated instructions per inference of each kernel.
    pub dense_insns: Insns,
    pub sparse_insns: Insns,
}

/// The `runtime-no-std/` directory of this source tree, canonicalized (left as is if it does not
/// exist, so that the error surfaces when the crate is written).
pub fn default_runtime_path() -> PathBuf {
    let p = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../runtime-no-std"));
    p.canonicalize().unwrap_or(p)
}

/// A generated crate, in memory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoweredCrate {
    /// Paths relative to the crate root, with their contents. `Cargo.toml` names `bonsai-rt` by
    /// the absolute [`LoweredCrate::runtime_path`]; [`write_crate`] rewrites that into a path
    /// relative to where the crate is written.
    pub files: Vec<(PathBuf, String)>,
    /// The generated `ARENA_BYTES`.
    pub arena_bytes: usize,
    /// Lower bound on any arena: the largest total of tensors alive at one step.
    pub arena_max_live_bytes: usize,
    /// What giving every intermediate tensor its own memory would take.
    pub arena_naive_bytes: usize,
    /// Flash taken by the parameter arrays (int8 weights, dense or sparse; int32 folded biases,
    /// multipliers and shifts), excluding the small per-layer `FcParams` descriptors.
    pub weight_bytes: usize,
    /// One entry per Dense layer, in model order: storage chosen, nonzeros, bytes, estimates.
    pub layers: Vec<LayerInfo>,
    /// Absolute path of `bonsai-rt` the crate depends on (from [`LowerOptions::runtime_path`]).
    pub runtime_path: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum LowerError {
    #[error("cannot lower an invalid model: {0}")]
    Invalid(#[from] IrError),
    #[error("model {model:?} is not quantized ({what}); run quantization before lowering")]
    NotQuantized { model: String, what: String },
    #[error("invalid quantization parameters: {0}")]
    BadQuant(String),
    #[error("model {0:?} has no nodes: there is nothing to lower")]
    Empty(String),
    #[error("cannot lower node {node:?}: {msg}")]
    Unsupported { node: String, msg: String },
    #[error(
        "node {node:?}, output channel {channel}: the folded bias {value} does not fit int32 \
         (the bias or the input zero point times the weight sum is too large)"
    )]
    BiasOverflow {
        node: String,
        channel: usize,
        value: i64,
    },
    #[error(
        "node {node:?}, output channel {channel}: the int32 accumulator can reach {value} for \
         some int8 input, which overflows (the kernels accumulate in int32)"
    )]
    AccumulatorOverflow {
        node: String,
        channel: usize,
        value: i64,
    },
    #[error(
        "node {node:?}, output channel {channel}: requantization shifts the accumulator left by \
         {shift}, and an accumulator of {value} (reachable for some int8 input) then overflows \
         int32 (the output scale is too small for this layer)"
    )]
    ShiftOverflow {
        node: String,
        channel: usize,
        value: i64,
        shift: i32,
    },
    #[error("invalid crate name {name:?}: {msg}")]
    CrateName { name: String, msg: String },
    #[error("{path}: {msg}")]
    Io { path: String, msg: String },
}

impl LowerError {
    fn io(path: &std::path::Path, e: impl std::fmt::Display) -> LowerError {
        LowerError::Io {
            path: path.display().to_string(),
            msg: e.to_string(),
        }
    }
}

/// Plans the arena and renders the model crate for `model` (which must be quantized).
pub fn lower(model: &Model, opts: &LowerOptions) -> Result<LoweredCrate, LowerError> {
    check_crate_name(&opts.crate_name)?;
    let runtime = opts
        .runtime_path
        .to_str()
        .ok_or_else(|| LowerError::Io {
            path: opts.runtime_path.display().to_string(),
            msg: "the runtime path is not valid UTF-8".into(),
        })?
        .to_string();
    let plan = plan::plan(model, opts.storage)?;
    let mut files = vec![
        (
            PathBuf::from("Cargo.toml"),
            emit::cargo_toml(&opts.crate_name, &model.name, &runtime)?,
        ),
        (
            PathBuf::from("src/lib.rs"),
            emit::lib_rs(model, &plan, &opts.crate_name),
        ),
    ];
    // A model of ReLUs alone has no parameters (and lib.rs then declares no `weights` module).
    if plan.has_params() {
        files.push((
            PathBuf::from("src/weights.rs"),
            emit::weights_rs(model, &plan),
        ));
    }
    Ok(LoweredCrate {
        files,
        arena_bytes: plan.arena_bytes(),
        arena_max_live_bytes: plan.memory.max_live_bytes,
        arena_naive_bytes: plan.memory.naive_bytes,
        weight_bytes: plan.weight_bytes(),
        layers: plan.layer_infos(),
        runtime_path: opts.runtime_path.clone(),
    })
}

/// Cargo's rules for package names, minus names that would clash with what the crate uses.
fn check_crate_name(name: &str) -> Result<(), LowerError> {
    let err = |msg: &str| {
        Err(LowerError::CrateName {
            name: name.into(),
            msg: msg.into(),
        })
    };
    match name.chars().next() {
        None => return err("empty"),
        Some(c) if !c.is_ascii_alphabetic() => return err("must start with an ASCII letter"),
        _ => {}
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return err("only ASCII letters, digits, '-' and '_' are allowed");
    }
    let lib = name.replace('-', "_");
    if ["bonsai_rt", "core", "std", "alloc", "test", "proc_macro"].contains(&lib.as_str()) {
        return err("clashes with a crate the model crate uses");
    }
    Ok(())
}

#[cfg(test)]
mod tests;
