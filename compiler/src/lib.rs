//! Bonsai compiler: dataset → IR + training → synthesis → quantization → lowering to a `no_std`
//! model crate. Each stage is a module with a small API over the IR ([`ir::Model`]).

pub mod data;
pub mod energy;
pub mod interp;
pub mod ir;
pub mod lower;
pub mod onnx;
pub mod pipeline;
pub mod quant;
pub mod report;
pub mod search;
pub mod synth;
pub mod train;
pub mod util;
pub mod vectors;
