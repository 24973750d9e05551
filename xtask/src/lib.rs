//! The project's task runner (`cargo xtask …`) as a library, so the end-to-end tests drive the
//! same build-and-run code the commands use.

pub mod bench;
pub mod bench_boards;
pub mod bench_energy;
pub mod bench_onnx;
pub mod bench_runtime;
pub mod bench_search;
pub mod bench_synth;
pub mod firmware;
pub mod flow;
pub mod qemu;
