use super::*;
use crate::interp;
use crate::ir::tests::{tiny_cnn, tiny_cnn_with_areas, tiny_mlp};
use crate::ir::{Activation, Dense, Mask, Model, Op, Preprocess, WeightQuant, IR_VERSION};
use crate::quant;
use crate::train::tests::strided_cnn;
use prost::Message;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tract_onnx::pb::ModelProto;
use tract_onnx::prelude::*;

/// Runs an exported model with tract on a batch (one row per sample) and returns one row per
/// sample.
fn run_tract<I: Datum + Copy, O: Datum + Copy>(
    bytes: &[u8],
    inputs: &[Vec<I>],
    n_out: usize,
) -> Vec<Vec<O>> {
    let batch = inputs.len();
    let n_in = inputs[0].len();
    let plan = tract_onnx::onnx()
        .model_for_read(&mut &bytes[..])
        .unwrap()
        .with_input_fact(0, InferenceFact::dt_shape(I::datum_type(), [batch, n_in]))
        .unwrap()
        .into_optimized()
        .unwrap()
        .into_runnable()
        .unwrap();
    let x = Tensor::from_shape(&[batch, n_in], &inputs.concat()).unwrap();
    let out = plan.run(tvec!(x.into())).unwrap();
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].shape(), &[batch, n_out]);
    let flat = out[0]
        .try_as_plain_ram()
        .unwrap()
        .as_slice::<O>()
        .unwrap()
        .to_vec();
    flat.chunks(n_out).map(|c| c.to_vec()).collect()
}

fn random_inputs(rng: &mut ChaCha8Rng, n: usize, len: usize, amp: f32) -> Vec<Vec<f32>> {
    (0..n)
        .map(|_| (0..len).map(|_| rng.random_range(-amp..amp)).collect())
        .collect()
}

fn empty_model(name: &str, input_len: usize) -> Model {
    Model::with_input(name, vec![input_len], Preprocess::identity(), vec![])
}

/// A random Dense layer keeping each connection with probability `density` (dormant weights 0).
fn random_dense(
    rng: &mut ChaCha8Rng,
    n_in: usize,
    n_out: usize,
    density: f64,
    act: Activation,
) -> Dense {
    let amp = 1.5 / (n_in as f32 * density as f32).sqrt();
    let bits: Vec<bool> = (0..n_in * n_out)
        .map(|_| rng.random_bool(density))
        .collect();
    let weight = bits
        .iter()
        .map(|&on| if on { rng.random_range(-amp..amp) } else { 0.0 })
        .collect();
    let bias = (0..n_out).map(|_| rng.random_range(-0.2..0.2)).collect();
    let mut d = Dense::new(n_in, n_out, weight, bias, act);
    d.mask = Mask::from_bools(bits);
    d
}

/// 64-32-16-10 with about half of the connections dormant. The first layer has one channel with
/// every connection pruned (its bias alone survives) and the second layer's ReLU is a standalone
/// node instead of a fused one, so that every int8 path is exercised.
fn random_mlp(seed: u64) -> Model {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut m = empty_model("mlp64", 64);
    m.class_names = (0..10).map(|i| format!("class {i}")).collect();
    m.preprocess = Preprocess {
        scale: vec![1.0 / 255.0],
        offset: vec![-0.5],
    };
    let x = m.inputs[0];
    let mut d1 = random_dense(&mut rng, 64, 32, 0.5, Activation::Relu);
    for i in 0..64 {
        d1.weight[5 * 64 + i] = 0.0;
        d1.mask.set(5 * 64 + i, false);
    }
    d1.bias[5] = 0.3;
    let h1 = m.add_node("fc1", Op::Dense(d1), vec![x], vec![32]);
    let d2 = random_dense(&mut rng, 32, 16, 0.5, Activation::None);
    let h2 = m.add_node("fc2", Op::Dense(d2), vec![h1], vec![16]);
    let r2 = m.add_node("relu2", Op::Relu, vec![h2], vec![16]);
    let d3 = random_dense(&mut rng, 16, 10, 0.5, Activation::None);
    let y = m.add_node("fc3", Op::Dense(d3), vec![r2], vec![10]);
    m.outputs.push(y);
    m.validate().unwrap();
    m
}

/// Concat and a three-way Add with a standalone ReLU:
/// h1 = fc1(x); h2 = relu(fc2(concat(x, h1))); h3 = fc3(h1); y = fc4(h1 + h2 + h3).
fn dag_model(seed: u64) -> Model {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut m = empty_model("dag", 8);
    let x = m.inputs[0];
    let h1 = m.add_node(
        "fc1",
        Op::Dense(random_dense(&mut rng, 8, 6, 0.7, Activation::Relu)),
        vec![x],
        vec![6],
    );
    let c = m.add_node("cat", Op::Concat, vec![x, h1], vec![14]);
    let h2 = m.add_node(
        "fc2",
        Op::Dense(random_dense(&mut rng, 14, 6, 0.6, Activation::None)),
        vec![c],
        vec![6],
    );
    let r2 = m.add_node("relu2", Op::Relu, vec![h2], vec![6]);
    let h3 = m.add_node(
        "fc3",
        Op::Dense(random_dense(&mut rng, 6, 6, 1.0, Activation::None)),
        vec![h1],
        vec![6],
    );
    let s = m.add_node("sum", Op::Add, vec![h1, r2, h3], vec![6]);
    let y = m.add_node(
        "fc4",
        Op::Dense(random_dense(&mut rng, 6, 4, 1.0, Activation::None)),
        vec![s],
        vec![4],
    );
    m.outputs.push(y);
    m.validate().unwrap();
    m
}

/// Largest |tract - reference| over all samples; asserts the float tolerance.
fn check_float(model: &Model, inputs: &[Vec<f32>]) -> f32 {
    let bytes = export_float(model).unwrap();
    check_with_tract(&bytes).unwrap();
    let got: Vec<Vec<f32>> = run_tract(&bytes, inputs, model.output_len());
    let mut max_diff = 0f32;
    for (x, y) in inputs.iter().zip(&got) {
        let want = interp::float::run(model, x).unwrap();
        for (&a, &b) in y.iter().zip(&want) {
            let d = (a - b).abs();
            assert!(d <= 1e-4 + 1e-4 * b.abs(), "tract {a} vs reference {b}");
            max_diff = max_diff.max(d);
        }
    }
    max_diff
}

/// (exact, total, max |diff| in LSB) of the int8-IO graph against the golden integer model.
fn check_int8_io(model: &Model, inputs: &[Vec<f32>]) -> (usize, usize, i32) {
    let bytes = export_int8_io(model).unwrap();
    check_with_tract(&bytes).unwrap();
    let xq: Vec<Vec<i8>> = inputs
        .iter()
        .map(|x| quant::quantize_input(model, x))
        .collect();
    let got: Vec<Vec<i8>> = run_tract(&bytes, &xq, model.output_len());
    let (mut exact, mut total, mut worst) = (0, 0, 0);
    for (x, y) in xq.iter().zip(&got) {
        let want = interp::int8::run(model, x).unwrap();
        for (&a, &b) in y.iter().zip(&want) {
            let d = (a as i32 - b as i32).abs();
            assert!(d <= 1, "tract {a} vs reference {b}");
            exact += usize::from(d == 0);
            total += 1;
            worst = worst.max(d);
        }
    }
    (exact, total, worst)
}

#[test]
fn float_tiny_mlp_matches_reference() {
    let m = tiny_mlp();
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let inputs = random_inputs(&mut rng, 16, 4, 3.0);
    let d = check_float(&m, &inputs);
    eprintln!("tiny_mlp float: max |diff| {d:e}");
}

#[test]
fn float_sparse_mlp_matches_reference() {
    let m = random_mlp(7);
    let mut rng = ChaCha8Rng::seed_from_u64(2);
    let inputs = random_inputs(&mut rng, 32, 64, 1.0);
    let d = check_float(&m, &inputs);
    eprintln!("64-32-16-10 float: max |diff| {d:e}");
}

#[test]
fn float_concat_add_dag_matches_reference() {
    let m = dag_model(3);
    let mut rng = ChaCha8Rng::seed_from_u64(4);
    let inputs = random_inputs(&mut rng, 32, 8, 2.0);
    let d = check_float(&m, &inputs);
    eprintln!("concat/add DAG float: max |diff| {d:e}");
}

#[test]
fn int8_tiny_mlp_within_one_lsb() {
    let m = tiny_mlp();
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let calib = random_inputs(&mut rng, 64, 4, 2.0);
    let q = quant::quantize(&m, &calib).unwrap();
    // Beyond the calibration range too, so that saturation is exercised.
    let inputs = random_inputs(&mut rng, 64, 4, 2.5);
    let (exact, total, worst) = check_int8_io(&q, &inputs);
    eprintln!("tiny_mlp int8: {exact}/{total} exact, worst {worst} LSB");
}

#[test]
fn int8_sparse_mlp_within_one_lsb() {
    let m = random_mlp(7);
    let mut rng = ChaCha8Rng::seed_from_u64(6);
    let calib = random_inputs(&mut rng, 128, 64, 1.0);
    let q = quant::quantize(&m, &calib).unwrap();
    let inputs = random_inputs(&mut rng, 64, 64, 1.0);
    let (exact, total, worst) = check_int8_io(&q, &inputs);
    eprintln!("64-32-16-10 int8: {exact}/{total} exact, worst {worst} LSB");
    assert!(
        exact * 10 >= total * 9,
        "only {exact}/{total} outputs match exactly"
    );
}

#[test]
fn int8_float_io_matches_dequantized_reference() {
    let m = random_mlp(11);
    let mut rng = ChaCha8Rng::seed_from_u64(8);
    let calib = random_inputs(&mut rng, 128, 64, 1.0);
    let q = quant::quantize(&m, &calib).unwrap();
    let out_q = q.tensor(q.outputs[0]).quant.unwrap();
    let inputs = random_inputs(&mut rng, 32, 64, 1.0);
    let bytes = export_int8(&q).unwrap();
    let got: Vec<Vec<f32>> = run_tract(&bytes, &inputs, 10);
    let mut worst = 0f32;
    for (x, y) in inputs.iter().zip(&got) {
        let want = interp::int8::run(&q, &quant::quantize_input(&q, x)).unwrap();
        for (&a, &b) in y.iter().zip(&want) {
            let b = out_q.scale * (b as i32 - out_q.zero_point) as f32;
            let lsb = (a - b).abs() / out_q.scale;
            assert!(lsb <= 1.0 + 1e-3, "tract {a} vs reference {b}");
            worst = worst.max(lsb);
        }
    }
    eprintln!("64-32-16-10 int8 float-io: worst {worst} LSB");
}

/// The quantizer refuses Add and Concat (and the integer reference does not run them): quantize
/// the DAG by hand and check the QDQ graph against its real-valued meaning.
#[test]
fn int8_dag_matches_fake_quant_reference() {
    let m = dag_model(3);
    let mut rng = ChaCha8Rng::seed_from_u64(9);
    let calib = random_inputs(&mut rng, 128, 8, 2.0);
    let q = hand_quantize(&m, &calib);
    assert!(q.is_quantized());
    let bytes = export_int8(&q).unwrap();
    check_with_tract(&bytes).unwrap();
    let inputs = random_inputs(&mut rng, 32, 8, 2.0);
    let got: Vec<Vec<f32>> = run_tract(&bytes, &inputs, 4);
    let s_out = q.tensor(q.outputs[0]).quant.unwrap().scale;
    let (mut worst, mut worst_float, mut exact, mut total) = (0f32, 0f32, 0, 0);
    for (x, y) in inputs.iter().zip(&got) {
        let want = fake_quant_run(&q, x);
        let float = interp::float::run(&m, x).unwrap();
        for ((&a, &b), &f) in y.iter().zip(&want).zip(&float) {
            let lsb = (a - b).abs() / s_out;
            assert!(lsb <= 1.0 + 1e-3, "tract {a} vs fake-quant reference {b}");
            worst = worst.max(lsb);
            exact += usize::from(lsb < 1e-3);
            total += 1;
            worst_float = worst_float.max((a - f).abs() / s_out);
        }
    }
    eprintln!(
        "DAG int8 (float io): {exact}/{total} exact vs fake-quant reference, worst {worst} LSB; \
         {worst_float} LSB from the float model"
    );
}

/// Quantizes like [`quant::quantize`] but also models it refuses (Add, Concat): activations
/// from the calibrated ranges, ReLU/pool/Flatten outputs sharing their input's parameters,
/// weights per output channel (a conv filter is one row).
fn hand_quantize(m: &Model, calib: &[Vec<f32>]) -> Model {
    let ranges = quant::calibrate(m, calib).unwrap();
    let mut q = m.clone();
    for (t, &(lo, hi)) in q.tensors.iter_mut().zip(&ranges) {
        t.quant = Some(quant::choose_act_quant(lo, hi));
    }
    for i in 0..q.nodes.len() {
        let node = &q.nodes[i];
        if matches!(
            node.op,
            Op::Relu | Op::MaxPool(_) | Op::AvgPool(_) | Op::Flatten
        ) {
            q.tensors[node.output.0].quant = q.tensors[node.inputs[0].0].quant;
        }
    }
    for i in 0..q.nodes.len() {
        let s_in = q.tensors[q.nodes[i].inputs[0].0].quant.unwrap().scale;
        let Some(lw) = q.nodes[i].op.weights() else {
            continue;
        };
        let fan = lw.fan();
        let mut dq = WeightQuant {
            weight_scale: vec![],
            weight_q: vec![],
            bias_q: vec![],
        };
        for o in 0..lw.out_channels {
            let row = &lw.weight[o * fan..(o + 1) * fan];
            let sw = row.iter().fold(0f32, |a, w| a.max(w.abs())) / 127.0;
            dq.weight_scale.push(sw);
            dq.weight_q
                .extend(row.iter().map(|w| (w / sw).round() as i8));
            dq.bias_q.push((lw.bias[o] / (s_in * sw)).round() as i32);
        }
        match &mut q.nodes[i].op {
            Op::Dense(d) => d.quant = Some(dq),
            Op::Conv2d(c) => c.quant = Some(dq),
            _ => unreachable!(),
        }
    }
    q
}

/// Calls `tap(out_index, in_index, kernel_tap)` for every window position of a `[kh, kw]`
/// window (stride, padding `[top, left, bottom, right]`) over an `[H, W, C]` input that lies
/// inside the image, for each output pixel; `kernel_tap` is `ky * kw + kx`. Channels are left
/// to the caller. Written independently of the interpreters' window code on purpose.
fn windows(
    in_shape: &[usize],
    out_shape: &[usize],
    kernel: [usize; 2],
    stride: [usize; 2],
    padding: [usize; 4],
    mut tap: impl FnMut(usize, usize, usize),
) {
    for oy in 0..out_shape[0] {
        for ox in 0..out_shape[1] {
            for ky in 0..kernel[0] {
                for kx in 0..kernel[1] {
                    let iy = (oy * stride[0] + ky) as isize - padding[0] as isize;
                    let ix = (ox * stride[1] + kx) as isize - padding[1] as isize;
                    if iy < 0 || ix < 0 || iy >= in_shape[0] as isize || ix >= in_shape[1] as isize
                    {
                        continue;
                    }
                    let pixel_in = iy as usize * in_shape[1] + ix as usize;
                    tap(oy * out_shape[1] + ox, pixel_in, ky * kernel[1] + kx);
                }
            }
        }
    }
}

/// The real-valued meaning of a QDQ graph, in f32: every tensor is quantized and dequantized
/// (round half to even), weights and biases are dequantized before a float Gemm.
fn fake_quant_run(q: &Model, x: &[f32]) -> Vec<f32> {
    let fq = |v: f32, aq: crate::ir::ActQuant| {
        let k = ((v / aq.scale).round_ties_even() + aq.zero_point as f32).clamp(-128.0, 127.0);
        aq.scale * (k - aq.zero_point as f32)
    };
    let qa = |id: crate::ir::TensorId| q.tensor(id).quant.unwrap();
    let mut values: Vec<Vec<f32>> = vec![Vec::new(); q.tensors.len()];
    values[q.inputs[0].0] = x.iter().map(|&v| fq(v, qa(q.inputs[0]))).collect();
    for node in &q.nodes {
        let ins: Vec<&Vec<f32>> = node.inputs.iter().map(|i| &values[i.0]).collect();
        let pre: Vec<f32> = match &node.op {
            Op::Dense(d) => {
                let dq = d.quant.as_ref().unwrap();
                let s_in = qa(node.inputs[0]).scale;
                (0..d.out_features)
                    .map(|o| {
                        let sw = dq.weight_scale[o];
                        let mut acc = dq.bias_q[o] as f32 * ((s_in as f64 * sw as f64) as f32);
                        let row = &dq.weight_q[o * d.in_features..(o + 1) * d.in_features];
                        for (&w, &v) in row.iter().zip(ins[0].iter()) {
                            acc += w as f32 * sw * v;
                        }
                        d.activation.apply(acc)
                    })
                    .collect()
            }
            Op::Relu => ins[0].iter().map(|v| v.max(0.0)).collect(),
            Op::Add => {
                let mut acc = ins[0].clone();
                for v in &ins[1..] {
                    acc.iter_mut().zip(v.iter()).for_each(|(a, b)| *a += b);
                }
                acc
            }
            Op::Concat => ins.iter().flat_map(|v| v.iter().copied()).collect(),
            Op::Conv2d(c) => {
                let dq = c.quant.as_ref().unwrap();
                let s_in = qa(node.inputs[0]).scale;
                let (in_shape, out_shape) = (
                    &q.tensor(node.inputs[0]).shape,
                    &q.tensor(node.output).shape,
                );
                let (cin, cout, cpg) = (c.in_channels, c.out_channels, c.channels_per_group());
                let per_group = cout / c.groups;
                let mut acc: Vec<f32> = (0..q.tensor(node.output).len())
                    .map(|i| {
                        let o = i % cout;
                        dq.bias_q[o] as f32 * ((s_in as f64 * dq.weight_scale[o] as f64) as f32)
                    })
                    .collect();
                windows(
                    in_shape,
                    out_shape,
                    c.kernel,
                    c.stride,
                    c.padding,
                    |po, pi, k| {
                        for o in 0..cout {
                            let sw = dq.weight_scale[o];
                            for ci in 0..cpg {
                                let w = dq.weight_q[(o * c.kernel[0] * c.kernel[1] + k) * cpg + ci];
                                let x = ins[0][pi * cin + (o / per_group) * cpg + ci];
                                acc[po * cout + o] += w as f32 * sw * x;
                            }
                        }
                    },
                );
                // Outside its partial area a channel is 0.
                let ow = out_shape[1];
                acc.into_iter()
                    .enumerate()
                    .map(|(i, v)| {
                        let (pos, o) = (i / cout, i % cout);
                        let inside = c.area_of(o, out_shape[0], ow).contains(pos / ow, pos % ow);
                        if inside {
                            c.activation.apply(v)
                        } else {
                            0.0
                        }
                    })
                    .collect()
            }
            Op::MaxPool(p) | Op::AvgPool(p) => {
                let (in_shape, out_shape) = (
                    &q.tensor(node.inputs[0]).shape,
                    &q.tensor(node.output).shape,
                );
                let ch = in_shape[2];
                let len = q.tensor(node.output).len();
                let (mut max, mut sum, mut n) = (
                    vec![f32::NEG_INFINITY; len],
                    vec![0f32; len],
                    vec![0f32; len],
                );
                windows(
                    in_shape,
                    out_shape,
                    p.kernel,
                    p.stride,
                    p.padding,
                    |po, pi, _| {
                        for c in 0..ch {
                            let v = ins[0][pi * ch + c];
                            max[po * ch + c] = max[po * ch + c].max(v);
                            sum[po * ch + c] += v;
                            n[po * ch + c] += 1.0;
                        }
                    },
                );
                if matches!(node.op, Op::MaxPool(_)) {
                    max
                } else {
                    sum.iter().zip(&n).map(|(s, n)| s / n).collect()
                }
            }
            Op::Flatten => ins[0].clone(),
        };
        let aq = qa(node.output);
        values[node.output.0] = pre.into_iter().map(|v| fq(v, aq)).collect();
    }
    std::mem::take(&mut values[q.outputs[0].0])
}

#[test]
fn header_and_metadata() {
    let m = random_mlp(7);
    let bytes = export_float(&m).unwrap();
    let p = ModelProto::decode(&bytes[..]).unwrap();
    assert_eq!(p.ir_version, 8);
    assert_eq!(p.producer_name, "bonsai");
    assert_eq!(p.opset_import.len(), 1);
    assert_eq!(p.opset_import[0].domain, "");
    assert_eq!(p.opset_import[0].version, 13);
    let meta = |k: &str| {
        p.metadata_props
            .iter()
            .find(|e| e.key == k)
            .unwrap_or_else(|| panic!("no {k}"))
            .value
            .clone()
    };
    let names: Vec<String> = serde_json::from_str(&meta(META_CLASS_NAMES)).unwrap();
    assert_eq!(names, m.class_names);
    let pre: Preprocess = serde_json::from_str(&meta(META_PREPROCESS)).unwrap();
    assert_eq!(pre, m.preprocess);
    assert_eq!(meta(META_IR_VERSION), IR_VERSION.to_string());
    assert_eq!(meta(META_VARIANT), "float");

    let g = p.graph.unwrap();
    assert_eq!(g.input.len(), 1);
    assert_eq!(g.input[0].name, "input");
    assert_eq!(g.output[0].name, "logits");
    let ops: Vec<&str> = g.node.iter().map(|n| n.op_type.as_str()).collect();
    assert_eq!(ops, ["Gemm", "Relu", "Gemm", "Relu", "Gemm"]);
    // Weights are stored dense, pruned entries as zeros.
    let w = g
        .initializer
        .iter()
        .find(|t| t.name == "fc1.weight")
        .unwrap();
    assert_eq!(w.dims, [32, 64]);
    assert_eq!(w.raw_data.len(), 32 * 64 * 4);
}

#[test]
fn int8_graph_structure() {
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let q = quant::quantize(&tiny_mlp(), &random_inputs(&mut rng, 16, 4, 2.0)).unwrap();
    for (bytes, variant, in_type, first) in [
        (export_int8(&q).unwrap(), "int8_qdq", 1, "QuantizeLinear"),
        (
            export_int8_io(&q).unwrap(),
            "int8_qdq_int8_io",
            3,
            "DequantizeLinear",
        ),
    ] {
        let p = ModelProto::decode(&bytes[..]).unwrap();
        let v = p
            .metadata_props
            .iter()
            .find(|e| e.key == META_VARIANT)
            .unwrap();
        assert_eq!(v.value, variant);
        let g = p.graph.unwrap();
        let elem = |vi: &tract_onnx::pb::ValueInfoProto| match &vi.r#type.as_ref().unwrap().value {
            Some(tract_onnx::pb::type_proto::Value::TensorType(t)) => t.elem_type,
            _ => panic!(),
        };
        assert_eq!(elem(&g.input[0]), in_type);
        assert_eq!(elem(&g.output[0]), in_type);
        assert_eq!(g.node[0].op_type, first);
        assert_eq!(g.node[0].input[0], "input");
        let last = g.node.last().unwrap();
        assert_eq!(last.output[0], "logits");
        // Per-channel weight dequantization on axis 0.
        let wdq = g
            .node
            .iter()
            .find(|n| n.name == "fc1.weight_dequantize")
            .unwrap();
        assert_eq!(wdq.attribute[0].name, "axis");
        assert_eq!(wdq.attribute[0].i, 0);
        let ws = g
            .initializer
            .iter()
            .find(|t| t.name == wdq.input[1])
            .unwrap();
        assert_eq!(ws.dims, [3]);
    }
}

#[test]
fn int8_export_refuses_float_model() {
    let err = export_int8(&tiny_mlp()).unwrap_err();
    assert!(matches!(err, OnnxError::NotQuantized), "{err}");
    assert!(err.to_string().contains("quantized"), "{err}");
}

#[test]
fn invalid_model_is_refused() {
    let mut m = tiny_mlp();
    m.nodes.swap(0, 1);
    let err = export_float(&m).unwrap_err();
    assert!(matches!(err, OnnxError::InvalidModel(_)), "{err}");
    assert!(err.to_string().contains("topological"), "{err}");
}

#[test]
fn bad_activation_scale_is_refused() {
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let mut q = quant::quantize(&tiny_mlp(), &random_inputs(&mut rng, 16, 4, 2.0)).unwrap();
    q.tensors[1].quant.as_mut().unwrap().scale = 0.0;
    let err = export_int8(&q).unwrap_err();
    assert!(matches!(err, OnnxError::BadTensorQuant { .. }), "{err}");
}

#[test]
fn model_without_nodes_exports_identity() {
    let mut m = empty_model("id", 3);
    m.outputs.push(m.inputs[0]);
    m.validate().unwrap();
    let x = vec![vec![1.0, -2.0, 0.5]];
    let y: Vec<Vec<f32>> = run_tract(&export_float(&m).unwrap(), &x, 3);
    assert_eq!(y, x);
}

#[test]
fn garbage_and_truncated_bytes_are_errors_not_panics() {
    let good = export_float(&random_mlp(7)).unwrap();
    check_with_tract(&good).unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(10);
    let garbage: Vec<u8> = (0..4096).map(|_| rng.random()).collect();
    let cases: Vec<(&str, &[u8])> = vec![
        ("empty", &[]),
        ("text", b"this is not an onnx file"),
        ("random bytes", &garbage),
        ("truncated to half", &good[..good.len() / 2]),
        ("truncated by one byte", &good[..good.len() - 1]),
        ("first 10 bytes", &good[..10]),
    ];
    for (what, bytes) in cases {
        match check_with_tract(bytes) {
            Err(OnnxError::Tract(msg)) => eprintln!("{what}: {msg}"),
            other => panic!("{what}: expected a tract error, got {other:?}"),
        }
    }
}

#[test]
fn float_tiny_cnn_matches_reference() {
    let mut rng = ChaCha8Rng::seed_from_u64(12);
    let inputs = random_inputs(&mut rng, 16, 36, 2.0);
    let d = check_float(&tiny_cnn(), &inputs);
    eprintln!("tiny_cnn float: max |diff| {d:e}");
}

#[test]
fn float_strided_depthwise_asymmetric_cnn_matches_reference() {
    let m = strided_cnn();
    let mut rng = ChaCha8Rng::seed_from_u64(13);
    let inputs = random_inputs(&mut rng, 16, m.input_len(), 2.0);
    let d = check_float(&m, &inputs);
    eprintln!("strided cnn float: max |diff| {d:e}");
}

#[test]
fn float_cnn_whose_output_is_an_image_is_flattened_in_hwc_order() {
    // Cut tiny_cnn after its average pool: the graph must return [batch, H*W*C] in HWC order.
    let mut m = tiny_cnn();
    m.nodes.truncate(4);
    m.outputs = vec![m.nodes[3].output];
    m.validate().unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(14);
    let inputs = random_inputs(&mut rng, 8, 36, 2.0);
    check_float(&m, &inputs);
}

#[test]
fn partial_area_cnn_matches_reference_in_float_and_int8() {
    let m = tiny_cnn_with_areas();
    let mut rng = ChaCha8Rng::seed_from_u64(18);
    let inputs = random_inputs(&mut rng, 16, 36, 2.0);
    let d = check_float(&m, &inputs);
    eprintln!("tiny_cnn with areas float: max |diff| {d:e}");
    // The areas change the function: the same inputs give other outputs without them.
    let plain = crate::interp::float::run(&tiny_cnn(), &inputs[0]).unwrap();
    assert_ne!(crate::interp::float::run(&m, &inputs[0]).unwrap(), plain);
    let calib = random_inputs(&mut rng, 128, 36, 2.0);
    let q = hand_quantize(&m, &calib);
    let bytes = export_int8(&q).unwrap();
    let got: Vec<Vec<f32>> = run_tract(&bytes, &inputs, m.output_len());
    let s_out = q.tensor(q.outputs[0]).quant.unwrap().scale;
    for (x, y) in inputs.iter().zip(&got) {
        for (&a, &b) in y.iter().zip(&fake_quant_run(&q, x)) {
            assert!(
                (a - b).abs() / s_out <= 1.0 + 1e-3,
                "tract {a} vs fake-quant {b}"
            );
        }
    }
}

/// Within one LSB everywhere. Exactness is lower with the average pool: runtimes average the
/// dequantized values in float and round half to even, the integer reference (TFLite) rounds
/// half away from zero, and 2x2 windows (1 or 2 taps at the padded border) hit .5 often. With
/// a max pool in its place the graph is as exact as the MLPs.
#[test]
fn int8_tiny_cnn_within_one_lsb() {
    for (avg, min_exact) in [(true, 0.6), (false, 0.9)] {
        let mut m = tiny_cnn();
        if !avg {
            let Op::AvgPool(p) = m.nodes[3].op else {
                panic!("tiny_cnn's node 3 is its average pool")
            };
            m.nodes[3].op = Op::MaxPool(p);
        }
        let mut rng = ChaCha8Rng::seed_from_u64(15);
        let calib = random_inputs(&mut rng, 128, 36, 2.0);
        let q = quant::quantize(&m, &calib).unwrap();
        let inputs = random_inputs(&mut rng, 64, 36, 2.0);
        let (exact, total, worst) = check_int8_io(&q, &inputs);
        eprintln!("tiny_cnn int8 (avg pool {avg}): {exact}/{total} exact, worst {worst} LSB");
        assert!(
            exact as f64 >= min_exact * total as f64,
            "avg pool {avg}: only {exact}/{total} outputs match exactly"
        );
    }
}

/// Every QDQ value of a conv graph against its real-valued meaning, with float IO, for both CNNs
/// (the strided one has an Add, which the quantizer refuses, so it is quantized by hand).
#[test]
fn int8_cnns_match_fake_quant_reference() {
    for (m, seed) in [(tiny_cnn(), 16), (strided_cnn(), 17)] {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let calib = random_inputs(&mut rng, 128, m.input_len(), 2.0);
        let q = hand_quantize(&m, &calib);
        assert!(q.is_quantized());
        let bytes = export_int8(&q).unwrap();
        check_with_tract(&bytes).unwrap();
        let inputs = random_inputs(&mut rng, 32, m.input_len(), 2.0);
        let got: Vec<Vec<f32>> = run_tract(&bytes, &inputs, m.output_len());
        let s_out = q.tensor(q.outputs[0]).quant.unwrap().scale;
        let (mut worst, mut exact, mut total) = (0f32, 0, 0);
        for (x, y) in inputs.iter().zip(&got) {
            let want = fake_quant_run(&q, x);
            for (&a, &b) in y.iter().zip(&want) {
                let lsb = (a - b).abs() / s_out;
                assert!(lsb <= 1.0 + 1e-3, "{}: tract {a} vs fake-quant {b}", m.name);
                worst = worst.max(lsb);
                exact += usize::from(lsb < 1e-3);
                total += 1;
            }
        }
        eprintln!(
            "{} int8 (float io): {exact}/{total} exact vs fake-quant reference, worst {worst} LSB",
            m.name
        );
        assert!(
            exact * 10 >= total * 9,
            "{}: only {exact}/{total} exact",
            m.name
        );
    }
}

#[test]
fn conv_graph_structure() {
    let m = tiny_cnn();
    let p = ModelProto::decode(&export_float(&m).unwrap()[..]).unwrap();
    let g = p.graph.unwrap();
    let ops: Vec<&str> = g.node.iter().map(|n| n.op_type.as_str()).collect();
    assert_eq!(
        ops,
        [
            "Reshape",
            "Transpose",
            "Conv",
            "Relu",
            "MaxPool",
            "Conv",
            "Clip",
            "AveragePool",
            "Transpose",
            "Reshape",
            "Gemm"
        ]
    );
    let attr = |op: &str, name: &str| {
        let n = g.node.iter().find(|n| n.op_type == op).unwrap();
        n.attribute.iter().find(|a| a.name == name).unwrap().clone()
    };
    assert_eq!(attr("AveragePool", "count_include_pad").i, 0);
    assert_eq!(attr("AveragePool", "pads").ints, [1, 1, 0, 0]);
    let dw = g
        .node
        .iter()
        .filter(|n| n.op_type == "Conv")
        .nth(1)
        .unwrap();
    let group = dw.attribute.iter().find(|a| a.name == "group").unwrap();
    assert_eq!(group.i, 4);
    // OIHW weights: conv1 is [4, 1, 3, 3], the depthwise one [4, 1, 3, 3] as well.
    let w = g
        .initializer
        .iter()
        .find(|t| t.name == "conv1.weight")
        .unwrap();
    assert_eq!(w.dims, [4, 1, 3, 3]);

    let mut rng = ChaCha8Rng::seed_from_u64(18);
    let q = quant::quantize(&m, &random_inputs(&mut rng, 32, 36, 2.0)).unwrap();
    let g = ModelProto::decode(&export_int8(&q).unwrap()[..])
        .unwrap()
        .graph
        .unwrap();
    let wdq = g
        .node
        .iter()
        .find(|n| n.name == "dw2.weight_dequantize")
        .unwrap();
    assert_eq!(wdq.attribute[0].name, "axis");
    assert_eq!(wdq.attribute[0].i, 0);
    let wq = g
        .initializer
        .iter()
        .find(|t| t.name == wdq.input[0])
        .unwrap();
    assert_eq!(wq.dims, [4, 1, 3, 3]);
    let bq = g
        .initializer
        .iter()
        .find(|t| t.name == "dw2.bias_q")
        .unwrap();
    assert_eq!(
        bq.data_type,
        tract_onnx::pb::tensor_proto::DataType::Int32 as i32
    );
}

#[test]
fn duplicate_ir_node_names_get_unique_onnx_node_names() {
    // A seed with a max and an average pool once named both "pool1"; tract refuses duplicate
    // node names, so the exporter must make them unique whatever the IR holds.
    let mut m = tiny_cnn();
    let first = m.nodes[0].name.clone();
    for n in &mut m.nodes {
        n.name = first.clone();
    }
    m.validate().unwrap();
    let bytes = export_float(&m).unwrap();
    check_with_tract(&bytes).unwrap();
    let proto = ModelProto::decode(&bytes[..]).unwrap();
    let names: Vec<&str> = proto
        .graph
        .as_ref()
        .unwrap()
        .node
        .iter()
        .map(|n| n.name.as_str())
        .collect();
    let distinct: std::collections::HashSet<&&str> = names.iter().collect();
    assert_eq!(distinct.len(), names.len(), "{names:?}");
    let mut rng = ChaCha8Rng::seed_from_u64(15);
    let inputs = random_inputs(&mut rng, 4, m.input_len(), 2.0);
    check_float(&m, &inputs);
}
