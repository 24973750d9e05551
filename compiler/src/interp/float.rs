//! Float reference: the IR's meaning in f32, one sample at a time.

use super::window::{conv_taps, outside_area, pool_taps};
use super::InterpError;
use crate::ir::{Model, Op};

/// Runs the model and returns every tensor's value (indexed like `model.tensors`), so calibration
/// can see intermediate ranges. Tensors the graph never computes are left empty.
pub fn run_all(model: &Model, input: &[f32]) -> Result<Vec<Vec<f32>>, InterpError> {
    let expected = model.input_len();
    if input.len() != expected {
        return Err(InterpError::InputLength {
            expected,
            found: input.len(),
        });
    }
    let mut values: Vec<Vec<f32>> = vec![Vec::new(); model.tensors.len()];
    values[model.inputs[0].0] = input.to_vec();
    for node in &model.nodes {
        let out = match &node.op {
            Op::Dense(d) => {
                let x = &values[node.inputs[0].0];
                let mut y = d.bias.clone();
                for (o, yo) in y.iter_mut().enumerate() {
                    let row = &d.weight[o * d.in_features..(o + 1) * d.in_features];
                    *yo += row.iter().zip(x).map(|(w, v)| w * v).sum::<f32>();
                }
                y.iter_mut().for_each(|v| *v = d.activation.apply(*v));
                y
            }
            Op::Conv2d(c) => {
                let x = &values[node.inputs[0].0];
                let out_shape = &model.tensor(node.output).shape;
                let mut y: Vec<f32> = (0..model.tensor(node.output).len())
                    .map(|i| c.bias[i % c.out_channels])
                    .collect();
                conv_taps(
                    c,
                    &model.tensor(node.inputs[0]).shape,
                    out_shape,
                    |o, i, w| y[o] += x[i] * c.weight[w],
                );
                y.iter_mut().for_each(|v| *v = c.activation.apply(*v));
                outside_area(c, out_shape, |o| y[o] = 0.0);
                y
            }
            Op::MaxPool(p) => {
                let x = &values[node.inputs[0].0];
                let out = model.tensor(node.output);
                let mut y = vec![f32::NEG_INFINITY; out.len()];
                pool_taps(
                    p,
                    &model.tensor(node.inputs[0]).shape,
                    &out.shape,
                    |o, i| y[o] = y[o].max(x[i]),
                );
                y
            }
            Op::AvgPool(p) => {
                let x = &values[node.inputs[0].0];
                let out = model.tensor(node.output);
                let mut sum = vec![0f32; out.len()];
                let mut count = vec![0u32; out.len()];
                pool_taps(
                    p,
                    &model.tensor(node.inputs[0]).shape,
                    &out.shape,
                    |o, i| {
                        sum[o] += x[i];
                        count[o] += 1;
                    },
                );
                sum.iter().zip(&count).map(|(s, &n)| s / n as f32).collect()
            }
            Op::Flatten => values[node.inputs[0].0].clone(),
            Op::Relu => values[node.inputs[0].0]
                .iter()
                .map(|v| v.max(0.0))
                .collect(),
            Op::Add => {
                let mut acc = values[node.inputs[0].0].clone();
                for id in &node.inputs[1..] {
                    acc.iter_mut().zip(&values[id.0]).for_each(|(a, b)| *a += b);
                }
                acc
            }
            Op::Concat => node
                .inputs
                .iter()
                .flat_map(|id| values[id.0].iter().copied())
                .collect(),
        };
        values[node.output.0] = out;
    }
    Ok(values)
}

/// Runs the model and returns its output.
pub fn run(model: &Model, input: &[f32]) -> Result<Vec<f32>, InterpError> {
    let mut all = run_all(model, input)?;
    Ok(std::mem::take(&mut all[model.outputs[0].0]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::tests::tiny_mlp;

    #[test]
    fn tiny_mlp_by_hand() {
        let m = tiny_mlp();
        let x = [1.0, 2.0, 3.0, -1.0];
        // fc1 row 0: 0.5 - 0.5 + 0 - 1.0 + 0.1 = -0.9 -> relu 0
        // row 1: 0.1 + 0.4 + 0.9 + 0.4 - 0.2 = 1.6
        // row 2: -1.0 + 0 + 2.25 - 0.5 + 0 = 0.75
        // fc2: [0 - 1.6 + 0.375, 0 + 0.8 - 0.5625 + 0.05]
        let y = run(&m, &x).unwrap();
        assert!((y[0] - (-1.225)).abs() < 1e-6, "{y:?}");
        assert!((y[1] - 0.2875).abs() < 1e-6, "{y:?}");
    }

    #[test]
    fn wrong_input_length_is_an_error() {
        let err = run(&tiny_mlp(), &[1.0]).unwrap_err();
        assert_eq!(
            err,
            InterpError::InputLength {
                expected: 4,
                found: 1
            }
        );
    }
}

#[cfg(test)]
mod conv_tests {
    use super::*;
    use crate::ir::tests::tiny_cnn;

    #[test]
    fn conv_center_pixel_by_hand() {
        let m = tiny_cnn();
        let x: Vec<f32> = (0..36).map(|i| i as f32 / 36.0).collect();
        let all = run_all(&m, &x).unwrap();
        let Op::Conv2d(c) = &m.nodes[0].op else {
            panic!()
        };
        // Output pixel (2,3), channel 1: the 3x3 window centred on input (2,3).
        let mut acc = c.bias[1];
        for ky in 0..3 {
            for kx in 0..3 {
                acc += c.weight[9 + ky * 3 + kx] * x[(1 + ky) * 6 + (2 + kx)];
            }
        }
        let got = all[m.nodes[0].output.0][(2 * 6 + 3) * 4 + 1];
        assert!((got - acc.max(0.0)).abs() < 1e-6, "{got} vs {acc}");
        // Max pool output (0,0) channel 1 is the max of conv pixels (0..2, 0..2).
        let conv = &all[m.nodes[0].output.0];
        let want = [0, 1, 6, 7]
            .iter()
            .map(|p| conv[p * 4 + 1])
            .fold(f32::MIN, f32::max);
        assert_eq!(all[m.nodes[1].output.0][1], want);
    }
}
