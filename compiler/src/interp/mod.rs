//! Reference interpreters over the IR: float (training, calibration, export checks) and int8 (the
//! golden integer model that `bonsai-rt` and the firmware must match bit for bit).

pub mod float;
pub mod int8;
pub mod sparse;
mod window;

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum InterpError {
    #[error("input has {found} values, the model takes {expected}")]
    InputLength { expected: usize, found: usize },
    #[error("node {node:?}: {msg}")]
    Node { node: String, msg: String },
    #[error("the model is not quantized (run quantization first)")]
    NotQuantized,
}
