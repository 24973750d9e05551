use super::*;

/// 4 -> 3 (ReLU) -> 2, with one dormant connection in the first layer.
pub(crate) fn tiny_mlp() -> Model {
    let mut m = Model {
        ir_version: IR_VERSION,
        name: "tiny".into(),
        tensors: vec![],
        nodes: vec![],
        inputs: vec![],
        outputs: vec![],
        preprocess: Preprocess::identity(),
        class_names: vec!["a".into(), "b".into()],
    };
    let x = m.add_tensor("input", vec![4]);
    m.inputs.push(x);
    let mut d1 = Dense::new(
        4,
        3,
        vec![
            0.5, -0.25, 0.0, 1.0, 0.1, 0.2, 0.3, -0.4, -1.0, 0.0, 0.75, 0.5,
        ],
        vec![0.1, -0.2, 0.0],
        Activation::Relu,
    );
    d1.mask.set(2, false);
    let h = m.add_node("fc1", Op::Dense(d1), vec![x], vec![3]);
    let d2 = Dense::new(
        3,
        2,
        vec![1.0, -1.0, 0.5, 0.25, 0.5, -0.75],
        vec![0.0, 0.05],
        Activation::None,
    );
    let y = m.add_node("fc2", Op::Dense(d2), vec![h], vec![2]);
    m.outputs.push(y);
    m
}

#[test]
fn json_round_trip_preserves_everything() {
    let m = tiny_mlp();
    m.validate().unwrap();
    let back = Model::from_json(&m.to_json()).unwrap();
    assert_eq!(back, m);
}

#[test]
fn mask_round_trips_at_odd_lengths() {
    for len in [0, 1, 7, 8, 9, 17, 1000] {
        let bits: Vec<bool> = (0..len).map(|i| (i * 7 + i / 3) % 5 < 2).collect();
        let mask = Mask::from_bools(bits.clone());
        let json = serde_json::to_string(&mask).unwrap();
        let back: Mask = serde_json::from_str(&json).unwrap();
        assert_eq!(back.as_slice(), &bits[..], "len {len}");
    }
}

#[test]
fn mask_with_wrong_digit_count_is_rejected() {
    let err = serde_json::from_str::<Mask>(r#"{"len": 9, "bits": "ff"}"#).unwrap_err();
    assert!(err.to_string().contains("needs 4 hex digits"), "{err}");
}

#[test]
fn other_versions_are_refused() {
    let mut v: serde_json::Value = serde_json::from_str(&tiny_mlp().to_json()).unwrap();
    v["ir_version"] = 99.into();
    let err = Model::from_json(&v.to_string()).unwrap_err();
    assert!(matches!(err, IrError::Version { .. }), "{err}");
}

#[test]
fn version_1_files_load_as_the_current_version() {
    let mut v: serde_json::Value = serde_json::from_str(&tiny_cnn().to_json()).unwrap();
    v["ir_version"] = 1.into();
    let m = Model::from_json(&v.to_string()).unwrap();
    assert_eq!(m.ir_version, IR_VERSION);
    assert_eq!(m, tiny_cnn());
}

#[test]
fn conv_areas_round_trip_and_bad_ones_are_refused() {
    let m = tiny_cnn_with_areas();
    assert_eq!(Model::from_json(&m.to_json()).unwrap(), m);
    fn conv(m: &mut Model) -> &mut Vec<super::Area> {
        match &mut m.nodes[0].op {
            Op::Conv2d(c) => c.area.as_mut().unwrap(),
            _ => unreachable!("tiny_cnn starts with conv1"),
        }
    }
    let mut outside = m.clone();
    conv(&mut outside)[1].x1 = 7;
    let err = outside.validate().unwrap_err().to_string();
    assert!(
        err.contains("conv1") && err.contains("not inside its 6x6 output"),
        "{err}"
    );
    let mut inverted = m.clone();
    conv(&mut inverted)[2].y0 = 5;
    conv(&mut inverted)[2].y1 = 4;
    assert!(inverted.validate().is_err());
    let mut short = m.clone();
    conv(&mut short).pop();
    let err = short.validate().unwrap_err().to_string();
    assert!(err.contains("3 conv areas for 4 output channels"), "{err}");
}

#[test]
fn partial_areas_cut_the_conv_macs() {
    let (plain, areas) = (tiny_cnn().stats(), tiny_cnn_with_areas().stats());
    assert_eq!(areas.params_nonzero, plain.params_nonzero);
    assert!(areas.macs < plain.macs, "{} vs {}", areas.macs, plain.macs);
    // conv1: channel o keeps its nonzero weights times its area's positions.
    let m = tiny_cnn_with_areas();
    let Op::Conv2d(c) = &m.nodes[0].op else {
        unreachable!()
    };
    let want: usize = (0..4)
        .map(|o| (o * 9..(o + 1) * 9).filter(|&j| c.mask.get(j)).count() * c.area_of(o, 6, 6).len())
        .sum();
    assert_eq!(areas.nodes[0].macs, want);
}

#[test]
fn nodes_out_of_topological_order_are_refused() {
    let mut m = tiny_mlp();
    m.nodes.swap(0, 1);
    let err = m.validate().unwrap_err();
    assert!(err.to_string().contains("topological"), "{err}");
}

#[test]
fn dormant_connection_with_weight_is_refused() {
    let mut m = tiny_mlp();
    if let Op::Dense(d) = &mut m.nodes[0].op {
        d.weight[2] = 0.3;
    }
    let err = m.validate().unwrap_err();
    assert!(err.to_string().contains("dormant connection 2"), "{err}");
}

#[test]
fn shape_mismatch_is_refused() {
    let mut m = tiny_mlp();
    m.tensors[0].shape = vec![5];
    let err = m.validate().unwrap_err();
    assert!(err.to_string().contains("Dense 4->3"), "{err}");
}

#[test]
fn stats_count_params_and_macs() {
    let s = tiny_mlp().stats();
    assert_eq!(s.params_total, 12 + 3 + 6 + 2);
    assert_eq!(s.params_nonzero, 11 + 3 + 6 + 2);
    assert_eq!(s.macs_dense, 18);
    assert_eq!(s.macs, 17);
}

#[test]
fn multi_input_nodes_are_expressible() {
    let mut m = tiny_mlp();
    let h = m.nodes[0].output;
    let x = m.inputs[0];
    let cat = m.add_node("skip", Op::Concat, vec![x, h], vec![7]);
    let d = Dense::new(7, 2, vec![0.1; 14], vec![0.0; 2], Activation::None);
    let y = m.add_node("fc_skip", Op::Dense(d), vec![cat], vec![2]);
    let sum = m.add_node("sum", Op::Add, vec![m.outputs[0], y], vec![2]);
    m.outputs = vec![sum];
    m.validate().unwrap();
    let back = Model::from_json(&m.to_json()).unwrap();
    assert_eq!(back, m);
}

/// A small LeNet-shaped CNN on a 6x6x1 image: conv 3x3 pad 1 (4 maps, ReLU) -> maxpool 2 ->
/// depthwise 3x3 pad 1 (ReLU6) -> avgpool 3 (padding on one side) -> flatten -> dense 3.
/// Weights are deterministic and some are pruned (mask off, weight 0).
/// tiny_cnn with partial areas on both convolutions (one channel's area empty).
pub(crate) fn tiny_cnn_with_areas() -> Model {
    use crate::ir::Area;
    let mut m = tiny_cnn();
    for k in 0..m.nodes.len() {
        let s = m.tensor(m.nodes[k].output).shape.clone();
        if let Op::Conv2d(c) = &mut m.nodes[k].op {
            let areas = (0..c.out_channels)
                .map(|o| Area {
                    y0: o % 2,
                    x0: (o + 1) % 2,
                    y1: if o == 3 { o % 2 } else { s[0] - o / 2 },
                    x1: s[1],
                })
                .collect();
            c.area = Some(areas);
        }
    }
    m.validate().unwrap();
    m
}

pub(crate) fn tiny_cnn() -> Model {
    use super::{Conv2d, Pool};
    let mut m = Model::with_input("tiny-cnn", vec![6, 6, 1], Preprocess::identity(), vec![]);
    let det = |k: usize, scale: f32| ((k * 37 + 11) % 23) as f32 / 23.0 * scale - scale / 2.0;
    let w1: Vec<f32> = (0..4 * 9).map(|k| det(k, 1.2)).collect();
    let mut c1 = Conv2d::new(
        1,
        4,
        [3, 3],
        [1, 1],
        [1, 1, 1, 1],
        1,
        w1,
        vec![0.1, -0.2, 0.05, 0.0],
        Activation::Relu,
    );
    for i in [0, 5, 13, 30] {
        c1.mask.set(i, false);
        c1.weight[i] = 0.0;
    }
    let x = m.add_node("conv1", Op::Conv2d(c1), vec![m.inputs[0]], vec![6, 6, 4]);
    let x = m.add_node(
        "pool1",
        Op::MaxPool(Pool::square(2)),
        vec![x],
        vec![3, 3, 4],
    );
    let w2: Vec<f32> = (0..4 * 9).map(|k| det(k + 5, 2.0)).collect();
    let c2 = Conv2d::new(
        4,
        4,
        [3, 3],
        [1, 1],
        [1, 1, 1, 1],
        4,
        w2,
        vec![0.3, 0.0, -0.1, 0.2],
        Activation::Relu6,
    );
    let x = m.add_node("dw2", Op::Conv2d(c2), vec![x], vec![3, 3, 4]);
    let avg = Pool {
        kernel: [2, 2],
        stride: [2, 2],
        padding: [1, 1, 0, 0],
    };
    let x = m.add_node("pool2", Op::AvgPool(avg), vec![x], vec![2, 2, 4]);
    let x = m.add_node("flat", Op::Flatten, vec![x], vec![16]);
    let w3: Vec<f32> = (0..3 * 16).map(|k| det(k + 3, 1.0)).collect();
    let d = Dense::new(16, 3, w3, vec![0.0, 0.1, -0.1], Activation::None);
    let y = m.add_node("fc", Op::Dense(d), vec![x], vec![3]);
    m.outputs.push(y);
    m.validate().expect("tiny_cnn is valid");
    m
}

#[test]
fn tiny_cnn_stats_count_conv_macs_per_position() {
    let s = tiny_cnn().stats();
    // conv1: 36 weights, 4 pruned, 6x6 positions.
    assert_eq!(s.nodes[0].macs_dense, 36 * 36);
    assert_eq!(s.nodes[0].macs, 32 * 36);
    assert_eq!(s.nodes[0].params_nonzero, 32 + 4);
    // depthwise: 36 weights over 3x3 positions.
    assert_eq!(s.nodes[2].macs, 36 * 9);
    assert_eq!(s.nodes[2].op, "DWConv2d");
}

#[test]
fn conv_shape_errors_are_reported() {
    let mut m = tiny_cnn();
    m.tensors[m.nodes[0].output.0].shape = vec![5, 5, 4];
    let e = m.validate().unwrap_err().to_string();
    assert!(e.contains("conv1") && e.contains("cannot produce"), "{e}");
    let mut m = tiny_cnn();
    if let Op::Conv2d(c) = &mut m.nodes[2].op {
        c.groups = 2;
    }
    let e = m.validate().unwrap_err().to_string();
    assert!(e.contains("groups"), "{e}");
}

#[test]
fn conv_ir_round_trips_through_json() {
    let m = tiny_cnn();
    assert_eq!(Model::from_json(&m.to_json()).unwrap(), m);
}

/// A DAG: input 4 -> fc1 (ReLU) 3 -> fc2 3; add(fc1, fc2) -> concat(add, input) -> fc3 2.
/// Exercises a residual Add, a cross-layer Concat and a tensor read by three nodes.
pub(crate) fn tiny_dag() -> Model {
    let mut m = Model::with_input("tiny-dag", vec![4], Preprocess::identity(), vec![]);
    let det = |k: usize| ((k * 29 + 7) % 17) as f32 / 17.0 - 0.5;
    let x = m.inputs[0];
    let fc = |n_in: usize, n_out: usize, off: usize, act| {
        let w = (0..n_in * n_out).map(|k| det(k + off)).collect();
        let b = (0..n_out).map(|k| det(k + off + 3) / 4.0).collect();
        Op::Dense(Dense::new(n_in, n_out, w, b, act))
    };
    let h1 = m.add_node("fc1", fc(4, 3, 0, Activation::Relu), vec![x], vec![3]);
    let h2 = m.add_node("fc2", fc(3, 3, 5, Activation::None), vec![h1], vec![3]);
    let s = m.add_node("add", Op::Add, vec![h1, h2], vec![3]);
    let c = m.add_node("cat", Op::Concat, vec![s, x], vec![7]);
    let y = m.add_node("fc3", fc(7, 2, 9, Activation::None), vec![c], vec![2]);
    m.outputs.push(y);
    m.validate().expect("tiny_dag is valid");
    m
}
