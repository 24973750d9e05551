//! Layer kernels. Each works in place on caller-provided slices: the code generator lays out
//! every buffer statically, so kernels never allocate.
//!
//! Callers must pass slices of the documented lengths. On a mismatch a kernel processes the
//! overlapping prefix and leaves the rest untouched, or (the sliding-window kernels, whose
//! loops need the whole shape) writes nothing; debug builds assert instead. So a bad length
//! can give wrong numbers but never a panic on the device.
//!
//! Every kernel has a `*_reference` twin: plain loops that transcribe the formula in its
//! module docs, used by the tests (host proptests and the QEMU harness
//! `firmware-examples/qemu-kernel-harness`) to check the fast versions bit for bit.
//!
//! ## One compiled copy per kernel
//!
//! The layer kernels (dense and sparse fully connected, dense, sparse and depthwise
//! convolution, max and average pooling) are `#[inline(never)]` and pass their arguments through
//! [`core::hint::black_box`] on entry. A generated model calls each kernel with constant
//! parameters (`static`s) and constant buffers; without this, LTO inlines a kernel called from
//! one place into `infer` and specialises it for that layer's shape and for the code around it,
//! so the same kernel ran differently compiled loops in every model and its cost could not be
//! predicted from microbenchmarks: LeNet-5's 28×28 first convolution, inlined, executed 32 %
//! more instructions on the Cortex-M4 than the energy model fitted on other single-call shapes
//! predicted, while those shapes themselves were predicted within 1 % (`cargo xtask bench
//! energy`, per-layer table). With one copy, every layer of every model runs the loops the
//! energy model's microbenchmarks measured (every held-out model within 3 %, `BENCHMARKS.md`).
//!
//! The price is the specialisation, which paid off most for small layers called once: on the
//! Cortex-M4 a lone dense convolution now costs up to 2× what its inlined copy did (LeNet-5's
//! first convolution 748 k instead of 466 k instructions, the whole LeNet-5 +27 %), a lone
//! fully connected layer 3–40 % more; kernels called more than once were never inlined, and
//! `conv2d`'s window layouts (gathering a short window into one run) made those faster.

/// Whether this build uses the `SXTB16`/`SMLAD` fast paths of the dense fully connected and
/// convolution kernels: true on `thumbv7em-*` targets (Cortex-M4/M7) and with the crate's `dsp`
/// feature on other ARM targets. The results are identical either way.
pub const DSP_FAST_PATHS: bool = cfg!(bonsai_dsp);

pub mod add;
pub mod area;
pub mod argmax;
pub mod conv2d;
pub mod conv2d_sparse;
pub mod depthwise_conv2d;
#[cfg(any(test, bonsai_dsp))]
mod dsp;
pub mod fully_connected;
pub mod fully_connected_sparse;
pub mod pooling;
pub mod relu;
pub mod requantize;
pub mod shape;
