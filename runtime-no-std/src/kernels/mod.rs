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

/// Whether this build uses the `SXTB16`/`SMLAD` fast paths of the dense fully connected and
/// convolution kernels: true on `thumbv7em-*` targets (Cortex-M4/M7) and with the crate's `dsp`
/// feature on other ARM targets. The results are identical either way.
pub const DSP_FAST_PATHS: bool = cfg!(bonsai_dsp);

pub mod add;
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
