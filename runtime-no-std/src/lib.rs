//! # bonsai-rt: the Bonsai runtime
//!
//! Integer kernels that the Bonsai code generator calls from `no_std` Cortex-M firmware.
//! No heap, no floating point, no dependencies, and no panic reachable from a kernel: every
//! loop walks slices with iterators, so a length mismatch shortens the loop instead of
//! indexing out of bounds (debug builds additionally `debug_assert!` the documented lengths).
//!
//! ## Quantization scheme
//!
//! Bit-exact with TFLite's reference kernels and CMSIS-NN, so models quantized by standard
//! tooling run unchanged and the compiler's own integer interpreter can check us bit for bit.
//!
//! * **Activations** are `i8`, asymmetric, one scale per tensor:
//!   `real = scale · (q − zero_point)`.
//! * **Weights** are `i8`, symmetric, one scale per output channel: zero point 0 and values in
//!   `[-127, 127]` (−128 is never produced, which keeps the quantized range symmetric).
//! * **Bias and accumulators** are `i32`, with scale `input_scale · weight_scale[o]` and zero
//!   point 0.
//!
//! A dense layer computes, per output channel `o`,
//!
//! ```text
//! acc[o] = bias[o] + Σ_j (x[j] + input_offset) · w[o][j]          input_offset = −input_zp
//!        = (bias[o] + input_offset · Σ_j w[o][j]) + Σ_j x[j] · w[o][j]
//!        =           folded_bias[o]              + Σ_j x[j] · w[o][j]
//! ```
//!
//! The bracketed term does not depend on the input, so the compiler folds it ahead of time
//! (CMSIS-NN's "kernel sum" trick) and the inner loop is a bare `i8 × i8` dot product.
//!
//! The accumulator is then rescaled to the output tensor's scale. The real factor
//! `input_scale · weight_scale[o] / output_scale` is stored as a Q31 `multiplier` in
//! `[2^30, 2^31)` and a power-of-two `shift` (positive = left), i.e.
//! `real ≈ multiplier · 2^shift / 2^31`, and applied with two integer roundings exactly as
//! TFLite's `MultiplyByQuantizedMultiplier` does (see [`requant`]). Finally the output zero
//! point is added and the result clamped to the fused activation range
//! (`[output_zp, 127]` for a fused ReLU, `[-128, 127]` otherwise).
//!
//! Accumulation wraps modulo 2^32 like the C kernels; the compiler guarantees that real models
//! never overflow `i32`.

#![no_std]
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs)]

// Tests use std (proptest, Vec); the library itself never links it.
#[cfg(test)]
extern crate std;

pub mod arena;
pub mod features;
pub mod kernels;
#[cfg(feature = "layer-probes")]
pub mod probe;
pub mod requant;
#[cfg(any(test, feature = "testgen"))]
pub mod testgen;
