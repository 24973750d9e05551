use super::*;
use crate::ir::tests::tiny_mlp;

fn samples() -> Vec<Vec<f32>> {
    (0..50)
        .map(|i| {
            (0..4)
                .map(|j| ((i * 7 + j * 13) % 17) as f32 / 8.0 - 1.0)
                .collect()
        })
        .collect()
}

#[test]
fn act_quant_covers_range_and_zero() {
    let q = choose_act_quant(0.0, 1.0);
    assert_eq!(q.zero_point, -128);
    assert!((q.scale - 1.0 / 255.0).abs() < 1e-9);
    let q = choose_act_quant(-1.0, 1.0);
    // zero must be exactly representable
    let zero = q.scale * (q.zero_point as f32 - q.zero_point as f32);
    assert_eq!(zero, 0.0);
    assert!((-1..=0).contains(&q.zero_point));
    let q = choose_act_quant(0.5, 2.0); // widened to include 0
    assert_eq!(q.zero_point, -128);
}

#[test]
fn weights_are_symmetric_per_channel_and_within_127() {
    let q = quantize(&tiny_mlp(), &samples()).unwrap();
    assert!(q.is_quantized());
    for n in &q.nodes {
        if let Op::Dense(d) = &n.op {
            let dq = d.quant.as_ref().unwrap();
            for o in 0..d.out_features {
                let row = &dq.weight_q[o * d.in_features..(o + 1) * d.in_features];
                // the largest |w| of each channel maps to exactly 127
                assert_eq!(row.iter().map(|w| w.unsigned_abs()).max(), Some(127));
            }
        }
    }
}

#[test]
fn dormant_weights_stay_exactly_zero() {
    let q = quantize(&tiny_mlp(), &samples()).unwrap();
    let Op::Dense(d) = &q.nodes[0].op else {
        panic!()
    };
    assert_eq!(d.quant.as_ref().unwrap().weight_q[2], 0);
}

#[test]
fn int8_reference_tracks_float_model() {
    let m = tiny_mlp();
    let q = quantize(&m, &samples()).unwrap();
    let out_q = q.tensor(q.outputs[0]).quant.unwrap();
    for x in samples() {
        let f = interp::float::run(&m, &x).unwrap();
        let xi = quantize_input(&q, &x);
        let yi = interp::int8::run(&q, &xi).unwrap();
        for (a, b) in f.iter().zip(&yi) {
            let deq = out_q.scale * (*b as f32 - out_q.zero_point as f32);
            // a few output steps of error through two layers
            assert!((a - deq).abs() < 4.0 * out_q.scale, "{a} vs {deq}");
        }
    }
}

#[test]
fn empty_channel_gets_no_nan_and_outputs_its_bias() {
    let mut m = tiny_mlp();
    if let Op::Dense(d) = &mut m.nodes[0].op {
        for i in 4..8 {
            d.weight[i] = 0.0;
            d.mask.set(i, false);
        }
        d.bias[1] = 0.3;
    }
    let q = quantize(&m, &samples()).unwrap();
    let Op::Dense(d) = &q.nodes[0].op else {
        panic!()
    };
    let dq = d.quant.as_ref().unwrap();
    assert!(dq.weight_scale.iter().all(|s| s.is_finite() && *s > 0.0));
    let s_in = q.tensors[0].quant.unwrap();
    let s_h = q.tensors[q.nodes[0].output.0].quant.unwrap();
    let rq = dense_requant(s_in.scale, s_h.scale, &dq.weight_scale);
    // a multiplier of 1.0 up to f32 rounding of the scales
    let real = rq[1].0 as f64 * 2f64.powi(rq[1].1 - 31);
    assert!((real - 1.0).abs() < 1e-6, "{rq:?}");
    // hidden unit 1 outputs relu(0.3) whatever the input
    let all = interp::int8::run_all(&q, &quantize_input(&q, &samples()[3])).unwrap();
    let h1 = all[q.nodes[0].output.0][1];
    let deq = s_h.scale * (h1 as f32 - s_h.zero_point as f32);
    assert!((deq - 0.3).abs() <= s_h.scale, "{deq}");
}

#[test]
fn a_bias_far_larger_than_its_weights_cannot_overflow_the_accumulator() {
    // What pruning leaves behind: hidden unit 2 keeps one tiny weight and a large bias. At
    // max|w|/127 its int32 bias would be ~1e11; the scale must grow until the bias fits.
    let mut m = tiny_mlp();
    let n_in = m.input_len();
    if let Op::Dense(d) = &mut m.nodes[0].op {
        for i in 0..n_in {
            let k = 2 * n_in + i;
            d.weight[k] = if i == 0 { 1e-9 } else { 0.0 };
            d.mask.set(k, i == 0);
        }
        d.bias[2] = 0.8;
    }
    let q = quantize(&m, &samples()).unwrap();
    let Op::Dense(d) = &q.nodes[0].op else {
        panic!()
    };
    let dq = d.quant.as_ref().unwrap();
    let s_in = q.tensors[0].quant.unwrap().scale as f64;
    let bias_real = dq.bias_q[2] as f64 * s_in * dq.weight_scale[2] as f64;
    assert!((bias_real - 0.8).abs() < 1e-6, "bias kept: {bias_real}");
    assert!(dq.bias_q[2].unsigned_abs() as f64 + 255.0 * 127.0 <= i32::MAX as f64);
    // The most extreme inputs run without an overflow error, and unit 2 outputs relu(0.8).
    let s_h = q.tensors[q.nodes[0].output.0].quant.unwrap();
    for x in [vec![-1e3f32; n_in], vec![1e3f32; n_in]] {
        let all = interp::int8::run_all(&q, &quantize_input(&q, &x)).unwrap();
        let h2 = all[q.nodes[0].output.0][2];
        let deq = s_h.scale * (h2 as f32 - s_h.zero_point as f32);
        assert!((deq - 0.8).abs() <= s_h.scale, "{deq}");
    }
}

fn cnn_samples() -> Vec<Vec<f32>> {
    (0..40)
        .map(|i| {
            (0..36)
                .map(|j| ((i * 5 + j * 7) % 19) as f32 / 9.0 - 0.6)
                .collect()
        })
        .collect()
}

#[test]
fn conv_pool_flatten_quantize_and_track_float() {
    let m = crate::ir::tests::tiny_cnn();
    let q = quantize(&m, &cnn_samples()).unwrap();
    assert!(q.is_quantized());
    // Pools and Flatten share their input's parameters (they move raw int8 values).
    for n in &q.nodes {
        if matches!(n.op, Op::MaxPool(_) | Op::AvgPool(_) | Op::Flatten) {
            assert_eq!(
                q.tensor(n.inputs[0]).quant,
                q.tensor(n.output).quant,
                "{}",
                n.name
            );
        }
    }
    let Op::Conv2d(c) = &q.nodes[0].op else {
        panic!()
    };
    let wq = c.quant.as_ref().unwrap();
    assert_eq!(wq.weight_q[5], 0, "pruned conv weight stays 0");
    for o in 0..4 {
        let row = &wq.weight_q[o * 9..(o + 1) * 9];
        assert_eq!(row.iter().map(|w| w.unsigned_abs()).max(), Some(127));
    }
    // Every intermediate tensor of the int8 reference is within a few output steps of the
    // float model (errors accumulate by about one step per layer).
    for x in cnn_samples() {
        let f = interp::float::run_all(&m, &x).unwrap();
        let i = interp::int8::run_all(&q, &quantize_input(&q, &x)).unwrap();
        for (t, tensor) in q.tensors.iter().enumerate() {
            let aq = tensor.quant.unwrap();
            for (k, (&fv, &iv)) in f[t].iter().zip(&i[t]).enumerate() {
                let deq = aq.scale * (iv as i32 - aq.zero_point) as f32;
                assert!(
                    (deq - fv).abs() <= 4.0 * aq.scale,
                    "tensor {} [{k}]: int8 {deq} vs float {fv} (scale {})",
                    tensor.name,
                    aq.scale
                );
            }
        }
    }
}

#[test]
fn relu6_range_clamps_at_six() {
    let q = ActQuant {
        scale: 0.05,
        zero_point: -100,
    };
    let r = ActRange::for_output(q, Activation::Relu6);
    assert_eq!((r.min, r.max), (-100, 20));
    let wide = ActQuant {
        scale: 0.1,
        zero_point: -128,
    };
    assert_eq!(ActRange::for_output(wide, Activation::Relu6).max, -68);
    let narrow = ActQuant {
        scale: 0.01,
        zero_point: 0,
    };
    assert_eq!(ActRange::for_output(narrow, Activation::Relu6).max, 127);
}

#[test]
fn add_and_concat_quantize_and_track_float() {
    let m = crate::ir::tests::tiny_dag();
    let q = quantize(&m, &samples()).unwrap();
    for x in samples() {
        let f = interp::float::run_all(&m, &x).unwrap();
        let i = interp::int8::run_all(&q, &quantize_input(&q, &x)).unwrap();
        for (t, tensor) in q.tensors.iter().enumerate() {
            let aq = tensor.quant.unwrap();
            for (&fv, &iv) in f[t].iter().zip(&i[t]) {
                let deq = aq.scale * (iv as i32 - aq.zero_point) as f32;
                assert!(
                    (deq - fv).abs() <= 3.0 * aq.scale,
                    "tensor {}: int8 {deq} vs float {fv} (scale {})",
                    tensor.name,
                    aq.scale
                );
            }
        }
    }
}

#[test]
fn add_with_three_inputs_is_refused() {
    let mut m = crate::ir::tests::tiny_dag();
    let h1 = m.nodes[0].output;
    m.nodes[2].inputs.push(h1);
    let e = quantize(&m, &samples()).unwrap_err().to_string();
    assert!(e.contains("two inputs"), "{e}");
}
