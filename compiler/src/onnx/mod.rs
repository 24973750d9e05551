//! ONNX export of the IR, so that a Bonsai model can be inspected (Netron), checked against an
//! independent runtime (tract, onnxruntime) or deployed elsewhere; and ONNX import
//! ([`import`]), so that a model trained elsewhere can be pruned and deployed.
//!
//! Two graphs are produced:
//!
//! * [`export_float`]: the float model ([`crate::interp::float`] semantics).
//! * [`export_int8`] / [`export_int8_io`]: the quantized model as a QDQ graph
//!   ([`crate::interp::int8`] semantics up to rounding, see below).
//!
//! Both take graph input `"input"` of shape `[batch, INPUT_LEN]` (`batch` is the symbolic
//! dimension `"batch"`; IR shapes, which exclude the batch, are flattened) and produce
//! `"logits"` of shape `[batch, OUTPUT_LEN]`.
//!
//! # Op mapping
//!
//! | IR op | float graph | QDQ graph (every float value `v` below is `DQ(Q(v))`) |
//! |---|---|---|
//! | `Dense` | `Gemm(x, W, b, transB=1)`, `W` float `[out, in]` stored dense (pruned entries are 0) | `Gemm(x, DQ(W_q, s_w, axis=0), DQ(b_q, s_in·s_w, axis=0), transB=1)` |
//! | `Dense` + fused ReLU | `Gemm` then `Relu` | `Gemm`, `Relu`, then `Q` (the ReLU floor becomes the zero point, as the integer clamp `[zp, 127]`) |
//! | `Relu` | `Relu` | `Relu` (output parameters equal the input's, so `Q`/`DQ` are exact) |
//! | `Add` | chain of binary `Add` (same summation order as the reference) | same, on dequantized inputs, then `Q`/`DQ` |
//! | `Concat` | `Concat(axis=1)` | same, on dequantized inputs, then `Q`/`DQ` |
//! | `Conv2d` (+ fused ReLU/ReLU6) | `Conv(x, W, b)` on NCHW, `W` float OIHW, `pads` = IR `[top, left, bottom, right]`, `group` = groups; then `Relu` / `Clip(0, 6)` | `Conv(x, DQ(W_q, axis=0), DQ(b_q, s_in·s_w, axis=0))` with `W_q` int8 OIHW, then as Dense |
//! | `Conv2d` with partial areas | the above, then `Mul` by a constant `[1, C, OH, OW]` 0/1 mask (each channel's rectangle) | same, the 0 quantized to the zero point; the importer reads such a `Mul` back as the areas |
//! | `MaxPool` | `MaxPool` (ONNX pads never win a max) | same on the dequantized input; output parameters equal the input's |
//! | `AvgPool` | `AveragePool(count_include_pad=0)` | same; runtimes average in float and round half to even, the integer reference (TFLite) rounds half away from zero: 1 LSB apart at ties |
//! | `Flatten` | `Identity`, or the NHWC flattening below | same |
//! | `Relu6` activation | `Clip(x, 0, 6)` | same |
//!
//! # Layouts
//!
//! The graph input stays `[batch, INPUT_LEN]` in the IR's memory order (HWC for images), so a
//! runtime is fed exactly what the references take. ONNX's `Conv` and pools are NCHW, so an
//! image is `Reshape`d to `[batch, H, W, C]` and `Transpose`d (`perm = [0, 3, 1, 2]`) where a
//! convolution or pool first reads it, stays NCHW through convolutions, pools, ReLUs and Adds,
//! and is `Transpose`d back (`perm = [0, 2, 3, 1]`) and `Reshape`d to `[batch, H*W*C]` wherever
//! it is read flat (Flatten, Dense, Concat, the output). Dense weights therefore stay exactly as
//! in the IR (`[out, in]` over HWC order); conv weights are reordered from the IR's OHWI to
//! ONNX's OIHW, int8 ones too (per-channel scales stay on axis 0).
//!
//! Quantization parameters of the QDQ graph (see [`crate::quant`]):
//! * activations: int8 per tensor, `QuantizeLinear`/`DequantizeLinear` with scalar scale and
//!   scalar int8 zero point, one pair per IR tensor;
//! * weights: int8 initializers, symmetric per output channel: `DequantizeLinear(axis=0)` with a
//!   `[out]` scale and `[out]` int8 zero points (all 0);
//! * biases: int32 initializers with per-channel scale `s_in·s_w[o]`: `DequantizeLinear(axis=0)`
//!   with int32 zero points (all 0).
//!
//! The float-IO variant ([`export_int8`]) takes a float input and quantizes it first
//! (`QuantizeLinear` with the input tensor's parameters, as [`crate::quant::quantize_input`]) and
//! returns the dequantized output. The int8-IO variant ([`export_int8_io`]) takes the int8 input
//! tensor the integer reference sees (first op `DequantizeLinear`) and returns the int8 output of
//! the last `QuantizeLinear`, so the two can be compared value by value.
//!
//! The QDQ graph is the *real-valued* meaning of the integer model. It matches the golden integer
//! reference to within one LSB, not bit for bit: a runtime accumulates in f32 and rounds with
//! `QuantizeLinear` (round half to even of `x / s_out`), while the reference accumulates in int32
//! and requantizes with TFLite's Q31 multiplier and two roundings. `Add` and `Concat` are exported
//! with their natural QDQ meaning although the integer reference does not implement them yet.
//!
//! # Why opset 13
//!
//! `QuantizeLinear`/`DequantizeLinear` only accept per-axis (per-channel) scales and zero points
//! from opset 13 on (the `axis` attribute); per-channel weights and biases need that. Opset 13 is
//! also old enough for every mainstream runtime. The ONNX IR version is written explicitly as 8
//! (ONNX 1.10; tract, onnxruntime and the ONNX checker accept it) rather than left to a library
//! default. Initializers are not listed as graph inputs (allowed since IR version 4), so
//! runtimes can constant-fold them.
//!
//! # Metadata
//!
//! `metadata_props` carry what the graph cannot: `class_names` (JSON array of strings),
//! `preprocess` (JSON `{"scale": [...], "offset": [...]}`, how a raw sample becomes the float
//! input: `x = raw·scale + offset`), `bonsai_ir_version` and `bonsai_variant`
//! (`float`, `int8_qdq` or `int8_qdq_int8_io`).

mod export;
pub mod import;

pub use export::{
    export_float, export_int8, export_int8_io, META_CLASS_NAMES, META_IR_VERSION, META_PREPROCESS,
    META_VARIANT, ONNX_IR_VERSION, OPSET_VERSION,
};

pub use import::{
    import_bytes, import_file, ImportError, ImportOptions, Imported, InputLayout, UnsupportedNode,
};

use crate::ir::IrError;

#[derive(Debug, thiserror::Error)]
pub enum OnnxError {
    #[error("cannot export an invalid model: {0}")]
    InvalidModel(#[from] IrError),
    #[error("int8 export needs a quantized model (run quantization first)")]
    NotQuantized,
    #[error("tensor {tensor:?}: {msg}")]
    BadTensorQuant { tensor: String, msg: String },
    #[error("node {node:?}: {msg}")]
    BadNodeQuant { node: String, msg: String },
    /// No op of IR version 1 produces it (the exporters match every op); kept for ops added
    /// later.
    #[error("node {node:?}: {op} cannot be exported to ONNX yet")]
    Unsupported { node: String, op: &'static str },
    #[error("tract rejected the ONNX model: {0}")]
    Tract(String),
    #[error("tract panicked on the ONNX model: {0}")]
    TractPanicked(String),
}

/// Loads `bytes` as an ONNX model with tract, optimizes it and makes it runnable, returning any
/// failure as an error. A panic inside tract (malformed input it does not guard against) is
/// caught and returned as [`OnnxError::TractPanicked`], so callers never unwind.
pub fn check_with_tract(bytes: &[u8]) -> Result<(), OnnxError> {
    use tract_onnx::prelude::*;
    let result = std::panic::catch_unwind(|| -> TractResult<()> {
        let model = tract_onnx::onnx().model_for_read(&mut &bytes[..])?;
        model.into_optimized()?.into_runnable()?;
        Ok(())
    });
    match result {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(OnnxError::Tract(format!("{e:#}"))),
        Err(payload) => {
            let msg = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "non-string panic payload".into());
            Err(OnnxError::TractPanicked(msg))
        }
    }
}

#[cfg(test)]
mod tests;
