//! Layer kernels. Each works in place on caller-provided slices: the code generator lays out
//! every buffer statically, so kernels never allocate.
//!
//! Callers must pass slices of the documented lengths. On a mismatch a kernel processes the
//! overlapping prefix and leaves the rest untouched (debug builds assert instead), so a bad
//! length can give wrong numbers but never a panic on the device.

pub mod argmax;
pub mod fully_connected;
pub mod fully_connected_sparse;
pub mod relu;
pub mod requantize;
