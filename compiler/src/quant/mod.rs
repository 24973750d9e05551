//! Post-training quantization, TFLite/CMSIS-NN style:
//! int8 weights symmetric per output channel (±127), int8 activations asymmetric per tensor
//! (calibrated min/max over training samples), int32 biases with scale `s_in·s_w[o]`, and
//! requantization by a Q31 multiplier plus shift per output channel.

pub mod elementwise;
pub mod fixed_point;
mod multiplier;

pub use multiplier::quantize_multiplier;

use crate::interp::{self, InterpError};
use crate::ir::{ActQuant, Activation, LayerWeights, Model, Op, WeightQuant};

#[derive(Debug, thiserror::Error)]
pub enum QuantError {
    #[error("calibration needs at least one sample")]
    NoSamples,
    #[error(transparent)]
    Interp(#[from] InterpError),
    #[error("node {node:?}: {msg}")]
    Unsupported { node: String, msg: String },
}

/// The clamp an int8 output gets: the full range, `[zp, 127]` under a fused ReLU, or
/// `[zp, zp + round(6 / scale)]` (capped at 127) under ReLU6, as TFLite's
/// `CalculateActivationRangeQuantized` computes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ActRange {
    pub min: i8,
    pub max: i8,
}

impl ActRange {
    pub fn for_output(q: ActQuant, activation: Activation) -> ActRange {
        let zp = q.zero_point.clamp(-128, 127) as i8;
        match activation {
            Activation::None => ActRange {
                min: -128,
                max: 127,
            },
            Activation::Relu => ActRange { min: zp, max: 127 },
            Activation::Relu6 => {
                let six = (6.0 / q.scale as f64).round() as i64 + q.zero_point as i64;
                ActRange {
                    min: zp,
                    max: six.clamp(zp as i64, 127) as i8,
                }
            }
        }
    }
}

/// (multiplier, shift) per output channel for a Dense or Conv2d layer: `s_in·s_w[o] / s_out` in f64.
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
    // Ops that only select or average input values keep their input's parameters: ReLU is then a
    // plain max with the zero point, pools compare or average raw int8 values, Flatten moves
    // nothing.
    for i in 0..q.nodes.len() {
        let node = &q.nodes[i];
        match &node.op {
            Op::Relu | Op::MaxPool(_) | Op::AvgPool(_) | Op::Flatten => {
                let qin = q.tensors[node.inputs[0].0].quant;
                let out = node.output.0;
                q.tensors[out].quant = qin;
            }
            Op::Add if node.inputs.len() != 2 => {
                return Err(QuantError::Unsupported {
                    node: node.name.clone(),
                    msg: format!(
                        "int8 Add takes two inputs (TFLite's ADD), this one has {}",
                        node.inputs.len()
                    ),
                })
            }
            // Add and Concat rescale their inputs (elementwise.rs), so their outputs keep the
            // calibrated range.
            Op::Add | Op::Concat | Op::Dense(_) | Op::Conv2d(_) => {}
        }
    }
    for i in 0..q.nodes.len() {
        let s_in = q.tensors[q.nodes[i].inputs[0].0].quant.unwrap().scale;
        let s_out = q.tensors[q.nodes[i].output.0].quant.unwrap().scale;
        let op = &mut q.nodes[i].op;
        let wq = match op.weights() {
            Some(w) => quantize_weights(&w, s_in, s_out),
            None => continue,
        };
        match op {
            Op::Dense(d) => d.quant = Some(wq),
            Op::Conv2d(c) => c.quant = Some(wq),
            _ => unreachable!("weights() is Some only for Dense and Conv2d"),
        }
    }
    Ok(q)
}

/// Per-output-channel symmetric int8 weights and int32 biases of a Dense or Conv2d layer (a
/// conv filter is a row of `kh·kw·cin/groups` weights).
fn quantize_weights(d: &LayerWeights, s_in: f32, s_out: f32) -> WeightQuant {
    let n_in = d.fan();
    let mut weight_scale = Vec::with_capacity(d.out_channels);
    let mut weight_q = Vec::with_capacity(d.weight.len());
    let mut bias_q = Vec::with_capacity(d.out_channels);
    for o in 0..d.out_channels {
        let row = &d.weight[o * n_in..(o + 1) * n_in];
        let max_abs = row.iter().fold(0f32, |m, w| m.max(w.abs()));
        // A channel without weights (all pruned) would get scale 0 and a bias it cannot express.
        // Give it the scale that makes the requantization multiplier exactly 1: its bias is then
        // stored in output units and no division by zero (NaN) can occur.
        //
        // The accumulator is bias_q + Σ (x−zp)·w_q with |x−zp| ≤ 255 and |w_q| ≤ 127: it must
        // stay inside int32 for any input. Pruning leaves channels whose few weights are tiny
        // next to their bias; at max|w|/127 that bias alone would overflow int32. Such a channel
        // gets the smallest weight scale at which the bias fits beside the input term: its
        // weights lose precision they hardly had, and no input can overflow the accumulator.
        let sw = if max_abs > 0.0 {
            let nonzero = row.iter().filter(|w| **w != 0.0).count();
            // 2^30, not 2^31: a margin for the f32 rounding of the scale.
            let bias_room = ((1u64 << 30) as f64 - 255.0 * 127.0 * nonzero as f64).max(1.0);
            let for_bias = (d.bias[o].abs() as f64 / (s_in as f64 * bias_room)) as f32;
            (max_abs / 127.0).max(for_bias)
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
    WeightQuant {
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
