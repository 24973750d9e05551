//! The golden integer model. Plain i64 arithmetic straight from the quantization equations
//! (`(x - zp_x)·w + b`, no folded biases, no clever loops) so that it is an independent check on
//! `bonsai-rt`, which folds zero points into biases and will grow SIMD paths.

use super::window::{conv_taps, outside_area, pool_taps};
use super::InterpError;
use crate::ir::{ActQuant, Model, Op, WeightQuant};
use crate::quant::elementwise::{add_params, RequantParams};
use crate::quant::fixed_point::multiply_by_quantized_multiplier;
use crate::quant::{dense_requant, ActRange};

/// Runs a quantized model on an int8 input and returns the int8 output.
pub fn run(model: &Model, input: &[i8]) -> Result<Vec<i8>, InterpError> {
    let mut all = run_all(model, input)?;
    Ok(std::mem::take(&mut all[model.outputs[0].0]))
}

/// Every tensor's int8 value; used for per-layer comparisons.
pub fn run_all(model: &Model, input: &[i8]) -> Result<Vec<Vec<i8>>, InterpError> {
    run_all_with(model, input, &|_, _| None)
}

/// Supplies a weighted node's accumulators: `(node index, input) -> Some(bias + products)`, or
/// `None` for the golden loops.
pub(crate) type Accumulate<'a> = &'a dyn Fn(usize, &[i8]) -> Option<Vec<i64>>;

/// [`run_all`], with the accumulators of Dense and Conv2d nodes taken from `accumulate(node
/// index, input)` where it returns them (the accumulator layout of the code below: bias plus
/// products, channel fastest). Everything after the accumulators (the int32 check,
/// requantization, every other op) stays the golden code, so a faster accumulator is the only
/// thing a caller can change and the only thing its tests need to prove equal.
// Index loops on purpose: the reference reads like the equations it implements.
#[allow(clippy::needless_range_loop)]
pub(crate) fn run_all_with(
    model: &Model,
    input: &[i8],
    accumulate: Accumulate,
) -> Result<Vec<Vec<i8>>, InterpError> {
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
    for (node_index, node) in model.nodes.iter().enumerate() {
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
                let acc = accumulate(node_index, x).unwrap_or_else(|| {
                    let mut acc: Vec<i64> = q.bias_q.iter().map(|&b| b as i64).collect();
                    for (o, acc) in acc.iter_mut().enumerate() {
                        for i in 0..d.in_features {
                            let w = q.weight_q[o * d.in_features + i] as i64;
                            *acc += (x[i] as i64 - qin.zero_point as i64) * w;
                        }
                    }
                    acc
                });
                requantize_all(&acc, d.out_features, q, qin, qout, node.op.activation())
                    .map_err(err)?
            }
            Op::Conv2d(c) => {
                let q = c.quant.as_ref().expect("checked above");
                let x = &values[node.inputs[0].0];
                let out_shape = &model.tensor(node.output).shape;
                let acc = accumulate(node_index, x).unwrap_or_else(|| {
                    let mut acc: Vec<i64> = (0..model.tensor(node.output).len())
                        .map(|i| q.bias_q[i % c.out_channels] as i64)
                        .collect();
                    conv_taps(
                        c,
                        &model.tensor(node.inputs[0]).shape,
                        out_shape,
                        |o, i, w| {
                            acc[o] += (x[i] as i64 - qin.zero_point as i64) * q.weight_q[w] as i64;
                        },
                    );
                    acc
                });
                let mut y = requantize_all(&acc, c.out_channels, q, qin, qout, c.activation)
                    .map_err(err)?;
                // Real 0, which asymmetric quantization represents exactly.
                outside_area(c, out_shape, |o| y[o] = qout.zero_point as i8);
                y
            }
            Op::MaxPool(p) => {
                same_quant(qin, qout).map_err(err)?;
                let x = &values[node.inputs[0].0];
                let out = model.tensor(node.output);
                let mut y = vec![i8::MIN; out.len()];
                pool_taps(
                    p,
                    &model.tensor(node.inputs[0]).shape,
                    &out.shape,
                    |o, i| y[o] = y[o].max(x[i]),
                );
                y
            }
            Op::AvgPool(p) => {
                same_quant(qin, qout).map_err(err)?;
                let x = &values[node.inputs[0].0];
                let out = model.tensor(node.output);
                let mut sum = vec![0i64; out.len()];
                let mut count = vec![0i64; out.len()];
                pool_taps(
                    p,
                    &model.tensor(node.inputs[0]).shape,
                    &out.shape,
                    |o, i| {
                        sum[o] += x[i] as i64;
                        count[o] += 1;
                    },
                );
                // TFLite's integer average pool: divide rounding half away from zero.
                sum.iter()
                    .zip(&count)
                    .map(|(&s, &n)| {
                        let r = if s >= 0 {
                            (s + n / 2) / n
                        } else {
                            (s - n / 2) / n
                        };
                        r.clamp(-128, 127) as i8
                    })
                    .collect()
            }
            Op::Flatten => {
                same_quant(qin, qout).map_err(err)?;
                values[node.inputs[0].0].clone()
            }
            Op::Relu => {
                same_quant(qin, qout).map_err(err)?;
                let zp = qin.zero_point.clamp(-128, 127) as i8;
                values[node.inputs[0].0]
                    .iter()
                    .map(|&v| v.max(zp))
                    .collect()
            }
            Op::Add => {
                let [a, b] = node.inputs[..] else {
                    return Err(err("int8 Add takes exactly two inputs".into()));
                };
                let qb = model.tensor(b).quant.expect("checked above");
                let p = add_params(qin, qb, qout);
                let shifted = |x: i8, k: usize| -> Result<i64, String> {
                    let v = (x as i64 + p.input_offset[k] as i64) << p.left_shift;
                    let v = i32::try_from(v).map_err(|_| "Add input overflows".to_string())?;
                    Ok(
                        multiply_by_quantized_multiplier(v, p.input_multiplier[k], p.input_shift[k])
                            .ok_or("Add input multiplier shifts left")?
                            as i64,
                    )
                };
                let range = ActRange::for_output(qout, crate::ir::Activation::None);
                let mut y = Vec::with_capacity(values[a.0].len());
                for (&xa, &xb) in values[a.0].iter().zip(&values[b.0]) {
                    let sum = shifted(xa, 0).map_err(err)? + shifted(xb, 1).map_err(err)?;
                    let sum =
                        i32::try_from(sum).map_err(|_| err("Add sum overflows int32".into()))?;
                    let out =
                        multiply_by_quantized_multiplier(sum, p.output_multiplier, p.output_shift)
                            .ok_or_else(|| err("Add output multiplier shifts left".into()))?;
                    y.push(
                        (out as i64 + p.output_offset as i64)
                            .clamp(range.min as i64, range.max as i64)
                            as i8,
                    );
                }
                y
            }
            Op::Concat => {
                let mut y = Vec::with_capacity(model.tensor(node.output).len());
                for &id in &node.inputs {
                    let q = model.tensor(id).quant.expect("checked above");
                    match RequantParams::between(q, qout) {
                        None => y.extend_from_slice(&values[id.0]),
                        Some(r) => {
                            for &x in &values[id.0] {
                                let v = multiply_by_quantized_multiplier(
                                    x as i32 + r.input_offset,
                                    r.multiplier,
                                    r.shift,
                                )
                                .ok_or_else(|| err("Concat requantization overflows".into()))?;
                                y.push((v as i64 + r.output_offset as i64).clamp(-128, 127) as i8);
                            }
                        }
                    }
                }
                y
            }
        };
        values[node.output.0] = out;
    }
    Ok(values)
}

/// Ops that move or compare raw int8 values are only exact when input and output share their
/// quantization (the quantizer arranges it).
fn same_quant(qin: ActQuant, qout: ActQuant) -> Result<(), String> {
    if qin != qout {
        return Err("needs equal input and output quantization".into());
    }
    Ok(())
}

/// Rescales i64 accumulators (laid out with the channel fastest) to int8 outputs: checked to
/// fit i32, then TFLite's MultiplyByQuantizedMultiplier, the output zero point, the clamp.
fn requantize_all(
    acc: &[i64],
    channels: usize,
    q: &WeightQuant,
    qin: ActQuant,
    qout: ActQuant,
    activation: crate::ir::Activation,
) -> Result<Vec<i8>, String> {
    let range = ActRange::for_output(qout, activation);
    let rq = dense_requant(qin.scale, qout.scale, &q.weight_scale);
    acc.iter()
        .enumerate()
        .map(|(k, &acc)| {
            let o = k % channels;
            let acc = i32::try_from(acc)
                .map_err(|_| format!("accumulator {acc} overflows int32 at output {k}"))?;
            let (m, s) = rq[o];
            let scaled = multiply_by_quantized_multiplier(acc, m, s)
                .ok_or_else(|| format!("requantization left shift {s} overflows at output {k}"))?;
            let v =
                (scaled as i64 + qout.zero_point as i64).clamp(range.min as i64, range.max as i64);
            Ok(v as i8)
        })
        .collect()
}
