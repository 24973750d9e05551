//! The golden integer model. Plain i64 arithmetic straight from the quantization equations
//! (`(x - zp_x)·w + b`, no folded biases, no clever loops) so that it is an independent check on
//! `bonsai-rt`, which folds zero points into biases and will grow SIMD paths.

use super::InterpError;
use crate::ir::{Activation, Model, Op};
use crate::quant::fixed_point::multiply_by_quantized_multiplier;
use crate::quant::{dense_requant, ActRange};

/// Runs a quantized model on an int8 input and returns the int8 output.
pub fn run(model: &Model, input: &[i8]) -> Result<Vec<i8>, InterpError> {
    let mut all = run_all(model, input)?;
    Ok(std::mem::take(&mut all[model.outputs[0].0]))
}

/// Every tensor's int8 value; used for per-layer comparisons.
// Index loops on purpose: the reference reads like the equations it implements.
#[allow(clippy::needless_range_loop)]
pub fn run_all(model: &Model, input: &[i8]) -> Result<Vec<Vec<i8>>, InterpError> {
    if !model.is_quantized() {
        return Err(InterpError::NotQuantized);
    }
    let expected = model.input_len();
    if input.len() != expected {
        return Err(InterpError::InputLength {
            expected,
            found: input.len(),
        });
    }
    let mut values: Vec<Vec<i8>> = vec![Vec::new(); model.tensors.len()];
    values[model.inputs[0].0] = input.to_vec();
    for node in &model.nodes {
        let err = |msg: String| InterpError::Node {
            node: node.name.clone(),
            msg,
        };
        let qin = model.tensor(node.inputs[0]).quant.expect("checked above");
        let qout = model.tensor(node.output).quant.expect("checked above");
        let out = match &node.op {
            Op::Dense(d) => {
                let q = d.quant.as_ref().expect("checked above");
                let x = &values[node.inputs[0].0];
                let range = ActRange::for_output(qout, d.activation == Activation::Relu);
                let rq = dense_requant(qin.scale, qout.scale, &q.weight_scale);
                let mut y = Vec::with_capacity(d.out_features);
                for o in 0..d.out_features {
                    let mut acc = q.bias_q[o] as i64;
                    for i in 0..d.in_features {
                        let w = q.weight_q[o * d.in_features + i] as i64;
                        acc += (x[i] as i64 - qin.zero_point as i64) * w;
                    }
                    let acc = i32::try_from(acc).map_err(|_| {
                        err(format!("accumulator {acc} overflows int32 at output {o}"))
                    })?;
                    let (m, s) = rq[o];
                    let scaled = multiply_by_quantized_multiplier(acc, m, s).ok_or_else(|| {
                        err(format!(
                            "requantization left shift {s} overflows at output {o}"
                        ))
                    })?;
                    let v = (scaled as i64 + qout.zero_point as i64)
                        .clamp(range.min as i64, range.max as i64);
                    y.push(v as i8);
                }
                y
            }
            Op::Relu => {
                if qin != qout {
                    return Err(err(
                        "int8 Relu needs equal input and output quantization".into()
                    ));
                }
                let zp = qin.zero_point.clamp(-128, 127) as i8;
                values[node.inputs[0].0]
                    .iter()
                    .map(|&v| v.max(zp))
                    .collect()
            }
            Op::Add | Op::Concat => {
                return Err(err(format!(
                    "{} has no int8 implementation yet",
                    node.op.kind()
                )))
            }
        };
        values[node.output.0] = out;
    }
    Ok(values)
}
