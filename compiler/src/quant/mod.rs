//! Post-training quantization, TFLite/CMSIS-NN style:
//! int8 weights symmetric per output channel (±127), int8 activations asymmetric per tensor
//! (calibrated min/max over training samples), int32 biases with scale `s_in·s_w[o]`, and
//! requantization by a Q31 multiplier plus shift per output channel.

pub mod fixed_point;
mod multiplier;

pub use multiplier::quantize_multiplier;

use crate::interp::{self, InterpError};
use crate::ir::{ActQuant, DenseQuant, Model, Op};

#[derive(Debug, thiserror::Error)]
pub enum QuantError {
    #[error("calibration needs at least one sample")]
    NoSamples,
    #[error(transparent)]
    Interp(#[from] InterpError),
    #[error("node {node:?}: {msg}")]
    Unsupported { node: String, msg: String },
}

/// The clamp an int8 output gets: the full range, or `[zp, 127]` under a fused ReLU.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ActRange {
    pub min: i8,
    pub max: i8,
}

impl ActRange {
    pub fn for_output(q: ActQuant, relu: bool) -> ActRange {
        let min = if relu {
            q.zero_point.clamp(-128, 127) as i8
        } else {
            -128
        };
        ActRange { min, max: 127 }
    }
}

/// (multiplier, shift) per output channel for a Dense layer: `s_in·s_w[o] / s_out` in f64.
pub fn dense_requant(s_in: f32, s_out: f32, weight_scale: &[f32]) -> Vec<(i32, i32)> {
    weight_scale
        .iter()
        .map(|&sw| quantize_multiplier(s_in as f64 * sw as f64 / s_out as f64))
        .collect()
}

/// Asymmetric int8 parameters covering `[min, max]` (widened to include 0 so that zero, padding
/// and ReLU's floor are exact).
pub fn choose_act_quant(min: f32, max: f32) -> ActQuant {
    let min = min.min(0.0) as f64;
    let max = max.max(0.0) as f64;
    if max - min < 1e-12 {
        // A constant-zero tensor: any scale represents it; keep one that is harmless.
        return ActQuant {
            scale: 1.0 / 255.0,
            zero_point: -128,
        };
    }
    let scale = (max - min) / 255.0;
    let zero_point = (-128.0 - min / scale).round().clamp(-128.0, 127.0) as i32;
    ActQuant {
        scale: scale as f32,
        zero_point,
    }
}

/// Min and max of every tensor over the samples (already preprocessed).
pub fn calibrate(model: &Model, samples: &[Vec<f32>]) -> Result<Vec<(f32, f32)>, QuantError> {
    if samples.is_empty() {
        return Err(QuantError::NoSamples);
    }
    let mut ranges = vec![(f32::INFINITY, f32::NEG_INFINITY); model.tensors.len()];
    for s in samples {
        for (r, v) in ranges.iter_mut().zip(interp::float::run_all(model, s)?) {
            for x in v {
                r.0 = r.0.min(x);
                r.1 = r.1.max(x);
            }
        }
    }
    Ok(ranges)
}

/// Returns a quantized copy of `model`, calibrated on `samples` (preprocessed float inputs).
pub fn quantize(model: &Model, samples: &[Vec<f32>]) -> Result<Model, QuantError> {
    quantize_with_input(model, samples, None)
}

/// As [`quantize`], but with the input's parameters fixed by the caller instead of calibrated
/// (inputs that are int8 codes already, such as the firmware's IMU features).
pub fn quantize_with_input(
    model: &Model,
    samples: &[Vec<f32>],
    input: Option<ActQuant>,
) -> Result<Model, QuantError> {
    let ranges = calibrate(model, samples)?;
    let mut q = model.clone();
    for (t, &(lo, hi)) in q.tensors.iter_mut().zip(&ranges) {
        t.quant = Some(choose_act_quant(lo, hi));
    }
    if let Some(iq) = input {
        for &i in &model.inputs {
            q.tensors[i.0].quant = Some(iq);
        }
    }
    // A standalone ReLU keeps its input's parameters, so it is a plain max with the zero point.
    for i in 0..q.nodes.len() {
        let node = &q.nodes[i];
        match &node.op {
            Op::Relu => {
                let qin = q.tensors[node.inputs[0].0].quant;
                let out = node.output.0;
                q.tensors[out].quant = qin;
            }
            Op::Add | Op::Concat => {
                return Err(QuantError::Unsupported {
                    node: node.name.clone(),
                    msg: format!("int8 {} is not supported yet", node.op.kind()),
                })
            }
            Op::Dense(_) => {}
        }
    }
    for i in 0..q.nodes.len() {
        let s_in = q.tensors[q.nodes[i].inputs[0].0].quant.unwrap().scale;
        let s_out = q.tensors[q.nodes[i].output.0].quant.unwrap().scale;
        if let Op::Dense(d) = &mut q.nodes[i].op {
            d.quant = Some(quantize_dense(d, s_in, s_out));
        }
    }
    Ok(q)
}

fn quantize_dense(d: &crate::ir::Dense, s_in: f32, s_out: f32) -> DenseQuant {
    let n_in = d.in_features;
    let mut weight_scale = Vec::with_capacity(d.out_features);
    let mut weight_q = Vec::with_capacity(d.weight.len());
    let mut bias_q = Vec::with_capacity(d.out_features);
    for o in 0..d.out_features {
        let row = &d.weight[o * n_in..(o + 1) * n_in];
        let max_abs = row.iter().fold(0f32, |m, w| m.max(w.abs()));
        // A channel without weights (all pruned) would get scale 0 and a bias it cannot express.
        // Give it the scale that makes the requantization multiplier exactly 1: its bias is then
        // stored in output units and no division by zero (NaN) can occur.
        let sw = if max_abs > 0.0 {
            max_abs / 127.0
        } else {
            s_out / s_in
        };
        weight_scale.push(sw);
        weight_q.extend(
            row.iter()
                .map(|&w| (w as f64 / sw as f64).round().clamp(-127.0, 127.0) as i8),
        );
        let bias_scale = s_in as f64 * sw as f64;
        let b = (d.bias[o] as f64 / bias_scale).round();
        bias_q.push(b.clamp(i32::MIN as f64, i32::MAX as f64) as i32);
    }
    DenseQuant {
        weight_scale,
        weight_q,
        bias_q,
    }
}

/// Quantizes a preprocessed float input with the model's input parameters.
pub fn quantize_input(model: &Model, x: &[f32]) -> Vec<i8> {
    let q = model
        .tensor(model.inputs[0])
        .quant
        .expect("model is quantized");
    x.iter()
        .map(|&v| ((v / q.scale).round() as i64 + q.zero_point as i64).clamp(-128, 127) as i8)
        .collect()
}

#[cfg(test)]
mod tests;
