//! Import checks: every imported graph is run by tract on the original ONNX and by the float
//! interpreter on the imported IR, on the same inputs, within `1e-4 + 1e-4·|ref|`.

use super::*;
use crate::interp;
use crate::ir::tests::{tiny_cnn, tiny_cnn_with_areas, tiny_mlp};
use tract_onnx::pb::{
    tensor_shape_proto, OperatorSetIdProto, TensorShapeProto, TypeProto, ValueInfoProto,
};

const ATOL: f32 = 1e-4;
const RTOL: f32 = 1e-4;

/// xorshift: deterministic test numbers in [-1, 1).
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> f32 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 40) as f32 / (1u64 << 23) as f32 - 1.0
    }
    fn vec(&mut self, n: usize, scale: f32) -> Vec<f32> {
        (0..n).map(|_| self.next() * scale).collect()
    }
}

/// A hand-written ONNX graph.
struct G {
    nodes: Vec<NodeProto>,
    inits: Vec<TensorProto>,
    input: ValueInfoProto,
    output: String,
}

fn attr_i(name: &str, i: i64) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        r#type: AttributeType::Int as i32,
        i,
        ..Default::default()
    }
}

fn attr_f(name: &str, f: f32) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        r#type: AttributeType::Float as i32,
        f,
        ..Default::default()
    }
}

fn attr_is(name: &str, v: &[i64]) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        r#type: AttributeType::Ints as i32,
        ints: v.to_vec(),
        ..Default::default()
    }
}

fn attr_s(name: &str, s: &str) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        r#type: AttributeType::String as i32,
        s: s.as_bytes().to_vec(),
        ..Default::default()
    }
}

impl G {
    /// Input `x` of `dims` (None: the symbolic batch).
    fn new(dims: &[Option<i64>]) -> G {
        use tensor_shape_proto::{dimension::Value as D, Dimension};
        let dim = dims
            .iter()
            .map(|d| Dimension {
                value: Some(match d {
                    Some(v) => D::DimValue(*v),
                    None => D::DimParam("N".into()),
                }),
                ..Default::default()
            })
            .collect();
        G {
            nodes: vec![],
            inits: vec![],
            input: ValueInfoProto {
                name: "x".into(),
                r#type: Some(TypeProto {
                    value: Some(type_proto::Value::TensorType(type_proto::Tensor {
                        elem_type: DataType::Float as i32,
                        shape: Some(TensorShapeProto { dim }),
                    })),
                    ..Default::default()
                }),
                ..Default::default()
            },
            output: String::new(),
        }
    }

    fn init(&mut self, name: &str, dims: &[usize], v: &[f32]) -> String {
        assert_eq!(dims.iter().product::<usize>(), v.len());
        self.inits.push(TensorProto {
            name: name.into(),
            dims: dims.iter().map(|&d| d as i64).collect(),
            data_type: DataType::Float as i32,
            float_data: v.to_vec(),
            ..Default::default()
        });
        name.into()
    }

    fn init_i64(&mut self, name: &str, v: &[i64]) -> String {
        self.inits.push(TensorProto {
            name: name.into(),
            dims: vec![v.len() as i64],
            data_type: DataType::Int64 as i32,
            raw_data: v.iter().flat_map(|x| x.to_le_bytes()).collect(),
            ..Default::default()
        });
        name.into()
    }

    /// Adds a node with one output named after the node; returns the output.
    fn op(&mut self, op: &str, name: &str, inputs: &[&str], attrs: Vec<AttributeProto>) -> String {
        let out = format!("{name}_out");
        self.nodes.push(NodeProto {
            op_type: op.into(),
            name: name.into(),
            input: inputs.iter().map(|s| s.to_string()).collect(),
            output: vec![out.clone()],
            attribute: attrs,
            ..Default::default()
        });
        self.output = out.clone();
        out
    }

    fn bytes(&self, opset: i64) -> Vec<u8> {
        let m = ModelProto {
            ir_version: 7,
            opset_import: vec![OperatorSetIdProto {
                domain: String::new(),
                version: opset,
            }],
            producer_name: "bonsai-test".into(),
            graph: Some(GraphProto {
                node: self.nodes.clone(),
                name: "test".into(),
                initializer: self.inits.clone(),
                input: vec![self.input.clone()],
                output: vec![ValueInfoProto {
                    name: self.output.clone(),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            ..Default::default()
        };
        m.encode_to_vec()
    }
}

/// tract's outputs for `batch` samples given in the ONNX input layout.
fn run_tract(bytes: &[u8], shape: &[usize], x: &[f32]) -> Vec<f32> {
    use tract_onnx::prelude::*;
    let plan = tract_onnx::onnx()
        .model_for_read(&mut &bytes[..])
        .unwrap()
        .with_input_fact(0, InferenceFact::dt_shape(f32::datum_type(), shape))
        .unwrap()
        .into_optimized()
        .unwrap()
        .into_runnable()
        .unwrap();
    let t = tract_onnx::prelude::Tensor::from_shape(shape, x).unwrap();
    let out = plan.run(tvec!(t.into())).unwrap();
    out[0]
        .try_as_plain_ram()
        .unwrap()
        .as_slice::<f32>()
        .unwrap()
        .to_vec()
}

/// Runs `n` random samples through tract (original ONNX) and the float interpreter (imported
/// IR); asserts the tolerance and returns the largest difference.
fn check_against_tract(bytes: &[u8], imp: &Imported, n: usize, seed: u64) -> f32 {
    let m = &imp.model;
    let len = m.input_len();
    let mut rng = Rng(seed);
    let x = rng.vec(n * len, 1.0);
    let shape = imp.input_layout.onnx_shape(n, len);
    let want = run_tract(bytes, &shape, &x);
    let n_out = m.output_len();
    assert_eq!(want.len(), n * n_out);
    let mut max = 0f32;
    for s in 0..n {
        let ir_x = imp.input_layout.onnx_to_ir(&x[s * len..(s + 1) * len]);
        let got = interp::float::run(m, &ir_x).unwrap();
        for (g, w) in got.iter().zip(&want[s * n_out..(s + 1) * n_out]) {
            let d = (g - w).abs();
            assert!(
                d <= ATOL + RTOL * w.abs(),
                "sample {s}: {got:?} vs tract {:?}",
                &want[s * n_out..(s + 1) * n_out]
            );
            max = max.max(d);
        }
    }
    max
}

fn import(bytes: &[u8]) -> Imported {
    import_bytes(bytes, &ImportOptions::default()).unwrap()
}

#[test]
fn exported_models_import_back_to_the_same_network() {
    // The partial-area CNN's masks (a `Mul` after each conv) come back as its areas.
    for orig in [tiny_cnn(), tiny_mlp(), tiny_cnn_with_areas()] {
        let bytes = crate::onnx::export_float(&orig).unwrap();
        let imp = import(&bytes);
        let m = &imp.model;
        assert_eq!(m.input_len(), orig.input_len());
        assert_eq!(
            m.tensor(m.inputs[0]).shape,
            orig.tensor(orig.inputs[0]).shape,
            "the exporter's Reshape of the flat input becomes the IR input's image shape"
        );
        // Same layers, same weights, activations fused back; the exporter's layout changes
        // (Reshape/Transpose) leave nothing behind.
        let kinds = |m: &Model| {
            m.nodes
                .iter()
                .map(|n| (n.op.kind(), n.op.activation()))
                .collect::<Vec<_>>()
        };
        assert_eq!(kinds(m), kinds(&orig));
        for (a, b) in m.nodes.iter().zip(&orig.nodes) {
            if let (Some(wa), Some(wb)) = (a.op.weights(), b.op.weights()) {
                assert_eq!(wa.weight, wb.weight, "{}", b.name);
                assert_eq!(wa.bias, wb.bias, "{}", b.name);
            }
            if let (Op::Conv2d(ca), Op::Conv2d(cb)) = (&a.op, &b.op) {
                // Every empty rectangle is the same area.
                let canon = |c: &crate::ir::Conv2d| {
                    c.area.as_ref().map(|v| {
                        v.iter()
                            .map(|a| if a.is_empty() { Default::default() } else { *a })
                            .collect::<Vec<crate::ir::Area>>()
                    })
                };
                assert_eq!(canon(ca), canon(cb), "{}", b.name);
            }
        }
        let mut rng = Rng(3);
        for _ in 0..8 {
            let x = rng.vec(orig.input_len(), 1.0);
            assert_eq!(
                interp::float::run(m, &x).unwrap(),
                interp::float::run(&orig, &x).unwrap()
            );
        }
        check_against_tract(&bytes, &imp, 4, 5);
    }
}

/// A PyTorch-style CNN: Conv+BN+ReLU, MaxPool, depthwise Conv+Clip(0,6), AveragePool,
/// flatten through the opset-11 Shape/Gather/Unsqueeze/Concat/Reshape subgraph, Gemm+ReLU,
/// MatMul+Add, optionally Softmax. 3 input channels and 4 channels at the flatten make the
/// CHW → HWC column permutation non-trivial.
fn pytorch_cnn(softmax: bool) -> G {
    let mut r = Rng(11);
    let mut g = G::new(&[None, Some(3), Some(7), Some(6)]);
    let w1 = g.init("conv1.weight", &[4, 3, 3, 3], &r.vec(108, 0.5));
    let b1 = g.init("conv1.bias", &[4], &r.vec(4, 0.2));
    let x = g.op(
        "Conv",
        "/conv1/Conv",
        &["x", &w1, &b1],
        vec![
            attr_is("pads", &[1, 1, 1, 1]),
            attr_is("kernel_shape", &[3, 3]),
        ],
    );
    let gamma = g.init("bn.weight", &[4], &[1.2, 0.7, 1.0, 0.9]);
    let beta = g.init("bn.bias", &[4], &[0.1, -0.2, 0.0, 0.3]);
    let mean = g.init("bn.running_mean", &[4], &[0.05, -0.1, 0.2, 0.0]);
    let var = g.init("bn.running_var", &[4], &[0.5, 1.5, 0.8, 1.1]);
    let x = g.op(
        "BatchNormalization",
        "/bn/BatchNormalization",
        &[&x, &gamma, &beta, &mean, &var],
        vec![attr_f("epsilon", 1e-5)],
    );
    let x = g.op("Relu", "/relu/Relu", &[&x], vec![]);
    let x = g.op(
        "MaxPool",
        "/pool/MaxPool",
        &[&x],
        vec![
            attr_is("kernel_shape", &[2, 2]),
            attr_is("strides", &[2, 2]),
        ],
    );
    // 3x3x4 → depthwise 3x3 (channel multiplier 2) → 3x3x8.
    let w2 = g.init("dw.weight", &[8, 1, 3, 3], &r.vec(72, 0.6));
    let b2 = g.init("dw.bias", &[8], &r.vec(8, 0.2));
    let x = g.op(
        "Conv",
        "/dw/Conv",
        &[&x, &w2, &b2],
        vec![attr_i("group", 4), attr_is("pads", &[1, 1, 1, 1])],
    );
    let lo = g.init("clip.min", &[], &[0.0]);
    let hi = g.init("clip.max", &[], &[6.0]);
    let x = g.op("Clip", "/act/Clip", &[&x, &lo, &hi], vec![]);
    let x = g.op(
        "AveragePool",
        "/avg/AveragePool",
        &[&x],
        vec![
            attr_is("kernel_shape", &[2, 2]),
            attr_is("strides", &[1, 1]),
            attr_is("pads", &[0, 0, 1, 0]),
        ],
    );
    // [N, 8, 3, 2] → x.view(x.size(0), -1).
    let shape = g.op("Shape", "/Shape", &[&x], vec![]);
    let zero = g.op(
        "Constant",
        "/Constant",
        &[],
        vec![AttributeProto {
            name: "value".into(),
            r#type: AttributeType::Tensor as i32,
            t: Some(TensorProto {
                data_type: DataType::Int64 as i32,
                int64_data: vec![0],
                ..Default::default()
            }),
            ..Default::default()
        }],
    );
    let n = g.op(
        "Gather",
        "/Gather",
        &[&shape, &zero],
        vec![attr_i("axis", 0)],
    );
    let n = g.op(
        "Unsqueeze",
        "/Unsqueeze",
        &[&n],
        vec![attr_is("axes", &[0])],
    );
    let minus1 = g.init_i64("minus1", &[-1]);
    let target = g.op("Concat", "/Concat", &[&n, &minus1], vec![attr_i("axis", 0)]);
    let x = g.op("Reshape", "/Reshape", &[&x, &target], vec![]);
    let w3 = g.init("fc1.weight", &[5, 48], &r.vec(240, 0.3));
    let b3 = g.init("fc1.bias", &[5], &r.vec(5, 0.1));
    let x = g.op(
        "Gemm",
        "/fc1/Gemm",
        &[&x, &w3, &b3],
        vec![
            attr_i("transB", 1),
            attr_f("alpha", 1.5),
            attr_f("beta", 0.5),
        ],
    );
    let x = g.op("Relu", "/relu2/Relu", &[&x], vec![]);
    let x = g.op("Dropout", "/drop/Dropout", &[&x], vec![]);
    let w4 = g.init("fc2.weight", &[5, 3], &r.vec(15, 0.5));
    let b4 = g.init("fc2.bias", &[3], &r.vec(3, 0.1));
    let x = g.op("MatMul", "/fc2/MatMul", &[&x, &w4], vec![]);
    let x = g.op("Add", "/fc2/Add", &[&x, &b4], vec![]);
    if softmax {
        g.op(
            "Softmax",
            "/softmax/Softmax",
            &[&x],
            vec![attr_i("axis", 1)],
        );
    }
    g
}

#[test]
fn pytorch_cnn_with_batchnorm_and_shape_subgraph_matches_tract() {
    let bytes = pytorch_cnn(false).bytes(11);
    let imp = import(&bytes);
    let m = &imp.model;
    let kinds: Vec<_> = m
        .nodes
        .iter()
        .map(|n| (n.op.kind(), n.op.activation()))
        .collect();
    use Activation::*;
    assert_eq!(
        kinds,
        [
            ("Conv2d", Relu),
            ("MaxPool", None),
            ("DWConv2d", Relu6),
            ("AvgPool", None),
            ("Flatten", None),
            ("Dense", Relu),
            ("Dense", None)
        ],
        "BN, bias Add, ReLU and Clip are folded; the shape subgraph leaves nothing"
    );
    assert_eq!(imp.input_layout, InputLayout::Nchw { c: 3, h: 7, w: 6 });
    assert!(imp.notes.is_empty());
    let d = check_against_tract(&bytes, &imp, 16, 7);
    println!("pytorch-style CNN: max |diff| vs tract {d:.2e}");

    // The trailing Softmax is dropped with a note; everything else is identical.
    let soft = import(&pytorch_cnn(true).bytes(11));
    assert_eq!(soft.model, imp.model);
    assert_eq!(soft.notes.len(), 1);
    assert!(soft.notes[0].contains("Softmax"), "{:?}", soft.notes);
}

#[test]
fn flatten_permutes_the_first_dense_columns_from_chw_to_hwc() {
    // Conv 1→2 channels (identity-like kernels) on 2x2, flatten, Gemm picking feature j.
    let mut g = G::new(&[Some(1), Some(1), Some(2), Some(2)]);
    let w = g.init("w", &[2, 1, 1, 1], &[1.0, 10.0]);
    let x = g.op("Conv", "conv", &["x", &w], vec![]);
    let x = g.op("Flatten", "flat", &[&x], vec![attr_i("axis", 1)]);
    // ONNX feature order is CHW: [c0 p0..p3, c1 p0..p3]; output o reads feature o.
    let eye: Vec<f32> = (0..8 * 8)
        .map(|k| if k / 8 == k % 8 { 1.0 } else { 0.0 })
        .collect();
    let e = g.init("eye", &[8, 8], &eye);
    g.op("Gemm", "fc", &[&x, &e], vec![attr_i("transB", 1)]);
    let imp = import(&g.bytes(13));
    let y = interp::float::run(&imp.model, &[1.0, 2.0, 3.0, 4.0]).unwrap();
    assert_eq!(y, [1.0, 2.0, 3.0, 4.0, 10.0, 20.0, 30.0, 40.0]);
}

#[test]
fn keras_style_nhwc_graph_matches_tract() {
    let mut r = Rng(23);
    let mut g = G::new(&[None, Some(5), Some(5), Some(2)]);
    let x = g.op(
        "Transpose",
        "input_nchw",
        &["x"],
        vec![attr_is("perm", &[0, 3, 1, 2])],
    );
    let w = g.init("conv/kernel", &[3, 2, 3, 3], &r.vec(54, 0.5));
    let b = g.init("conv/bias", &[3], &r.vec(3, 0.2));
    let x = g.op(
        "Conv",
        "conv",
        &[&x, &w, &b],
        vec![
            attr_s("auto_pad", "SAME_UPPER"),
            attr_is("strides", &[2, 2]),
        ],
    );
    let x = g.op("Relu", "conv/Relu", &[&x], vec![]);
    let x = g.op(
        "Transpose",
        "to_nhwc",
        &[&x],
        vec![attr_is("perm", &[0, 2, 3, 1])],
    );
    let s = g.init_i64("flat_shape", &[-1, 27]);
    let x = g.op("Reshape", "flatten", &[&x, &s], vec![]);
    let w2 = g.init("dense/kernel", &[27, 4], &r.vec(108, 0.4));
    let x = g.op("MatMul", "dense/MatMul", &[&x, &w2], vec![]);
    let b2 = g.init("dense/bias", &[4], &r.vec(4, 0.1));
    g.op("Add", "dense/BiasAdd", &[&x, &b2], vec![]);
    let bytes = g.bytes(13);
    let imp = import(&bytes);
    assert_eq!(imp.input_layout, InputLayout::Nhwc { h: 5, w: 5, c: 2 });
    assert_eq!(
        imp.model.nodes.len(),
        3,
        "conv, flatten, dense: {:?}",
        imp.model.nodes
    );
    check_against_tract(&bytes, &imp, 8, 29);
}

#[test]
fn every_unsupported_node_is_listed_in_one_error() {
    let mut g = G::new(&[None, Some(1), Some(4), Some(4)]);
    let x = g.op("Sigmoid", "gate", &["x"], vec![]);
    let w = g.init("w", &[2, 1, 3, 3], &[0.1; 18]);
    let x = g.op(
        "Conv",
        "dilated",
        &[&x, &w],
        vec![attr_is("dilations", &[2, 2])],
    );
    let x = g.op("Tanh", "squash", &[&x], vec![]);
    g.op("Flatten", "flat", &[&x], vec![]);
    // A known op reading an unsupported node's output is skipped (its input is unknown); ops
    // the importer does not know and independent problems are all reported.
    let mut g2 = G::new(&[None, Some(1), Some(4), Some(4)]);
    let w = g2.init("w", &[2, 1, 3, 3], &[0.1; 18]);
    let x = g2.op(
        "Conv",
        "dilated",
        &["x", &w],
        vec![attr_is("dilations", &[2, 2])],
    );
    let bn: Vec<String> = (0..4)
        .map(|k| g2.init(&format!("bn{k}"), &[1], &[1.0]))
        .collect();
    let x = g2.op("LpNormalization", "norm", &[&x], vec![]);
    let _ = x;
    let y = g2.op(
        "BatchNormalization",
        "bn_on_input",
        &["x", &bn[0], &bn[1], &bn[2], &bn[3]],
        vec![],
    );
    g2.op("Flatten", "flat", &[&y], vec![]);
    for (g, expect) in [
        (g, vec![("gate", "Sigmoid"), ("squash", "Tanh")]),
        (
            g2,
            vec![
                ("dilated", "Conv"),
                ("norm", "LpNormalization"),
                ("bn_on_input", "BatchNormalization"),
            ],
        ),
    ] {
        let err = import_bytes(&g.bytes(13), &ImportOptions::default()).unwrap_err();
        let ImportError::Unsupported(nodes) = &err else {
            panic!("{err}")
        };
        let got: Vec<(&str, &str)> = nodes
            .iter()
            .map(|n| (n.name.as_str(), n.op_type.as_str()))
            .collect();
        assert_eq!(got, expect, "{err}");
        let msg = err.to_string();
        for (name, op) in expect {
            assert!(msg.contains(name) && msg.contains(op), "{msg}");
        }
        assert_eq!(msg.lines().count(), 1);
    }
}

#[test]
fn truncated_or_garbage_files_give_errors_not_panics() {
    let bytes = pytorch_cnn(true).bytes(11);
    for cut in [
        1,
        7,
        100,
        bytes.len() / 3,
        bytes.len() / 2,
        bytes.len() - 5,
        bytes.len() - 1,
    ] {
        let r = std::panic::catch_unwind(|| import_bytes(&bytes[..cut], &ImportOptions::default()));
        assert!(
            r.expect("no panic").is_err(),
            "a file cut at {cut} bytes must not import"
        );
    }
    let mut rng = Rng(99);
    for len in [0usize, 1, 16, 300, 5000] {
        let junk: Vec<u8> = (0..len)
            .map(|_| (rng.next() * 128.0 + 128.0) as u8)
            .collect();
        let r = std::panic::catch_unwind(|| import_bytes(&junk, &ImportOptions::default()));
        assert!(
            r.expect("no panic").is_err(),
            "{len} random bytes must not import"
        );
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cut.onnx");
    std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
    let err = import_file(&path, &ImportOptions::default()).unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("cut.onnx"), "{msg}");
    assert!(
        matches!(
            err.root(),
            ImportError::Decode(_) | ImportError::Graph(_) | ImportError::Malformed { .. }
        ),
        "{msg}"
    );
    let missing =
        import_file(&dir.path().join("none.onnx"), &ImportOptions::default()).unwrap_err();
    assert!(missing.to_string().contains("none.onnx"));
}

#[test]
fn options_set_preprocess_and_shape() {
    let mut g = G::new(&[Some(1), Some(1), None, None]);
    let w = g.init("w", &[2, 1, 3, 3], &[0.1; 18]);
    let x = g.op("Conv", "conv", &["x", &w], vec![]);
    g.op("GlobalAveragePool", "gap", &[&x], vec![]);
    let bytes = g.bytes(13);
    let err = import_bytes(&bytes, &ImportOptions::default()).unwrap_err();
    assert!(err.to_string().contains("--input-shape"), "{err}");
    let pre = Preprocess {
        scale: vec![0.5],
        offset: vec![-1.0],
    };
    let opts = ImportOptions {
        input_shape: Some(vec![5, 6, 1]),
        preprocess: Some(pre.clone()),
        name: Some("gap".into()),
        class_names: Some(vec!["a".into(), "b".into()]),
    };
    let imp = import_bytes(&bytes, &opts).unwrap();
    assert_eq!(imp.model.preprocess, pre);
    assert_eq!(imp.model.tensor(imp.model.inputs[0]).shape, [5, 6, 1]);
    assert_eq!(imp.model.output_len(), 2);
    let wrong = ImportOptions {
        input_shape: Some(vec![5, 6, 3]),
        ..opts
    };
    assert!(import_bytes(&bytes, &wrong).is_err());
}

/// The PyTorch MNIST CNN of the shared data folder (not in the repository): imported, it
/// computes what tract computes on the original.
#[test]
fn pytorch_mnist_cnn_matches_tract() {
    let Some(path) = shared_data("onnx/pytorch-mnist-cnn.onnx") else {
        println!("skipped: pytorch-mnist-cnn.onnx not found (set BONSAI_SHARED_DATA or put the shared data at ../shared/data)");
        return;
    };
    let bytes = std::fs::read(&path).unwrap();
    let imp = import(&bytes);
    let s = imp.model.stats();
    assert_eq!(s.params_total, 421_642);
    let kinds: Vec<_> = imp.model.nodes.iter().map(|n| n.op.kind()).collect();
    assert_eq!(
        kinds,
        ["Conv2d", "MaxPool", "Conv2d", "MaxPool", "Flatten", "Dense", "Dense"]
    );
    let d = check_against_tract(&bytes, &imp, 8, 41);
    println!("pytorch-mnist-cnn: max |diff| vs tract {d:.2e}");
}

/// `$BONSAI_SHARED_DATA/rel`, else `<workspace>/../shared/data/rel`, if it exists.
pub(crate) fn shared_data(rel: &str) -> Option<std::path::PathBuf> {
    let base = std::env::var_os("BONSAI_SHARED_DATA")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/data"));
    let p = base.join(rel);
    p.exists().then_some(p)
}

/// A `Mul` after a Conv by a 0/1 mask whose ones are not one rectangle per channel is not a
/// partial-area convolution: refused like any other non-per-channel product, naming the node.
#[test]
fn a_conv_mask_that_is_not_a_rectangle_is_refused() {
    let mut g = G::new(&[None, Some(1), Some(3), Some(3)]);
    let w = g.init("w", &[2, 1, 1, 1], &[1.0, -1.0]);
    let b = g.init("b", &[2], &[0.0, 0.5]);
    let x = g.op(
        "Conv",
        "conv",
        &["x", &w, &b],
        vec![attr_is("kernel_shape", &[1, 1])],
    );
    // Channel 0: a rectangle; channel 1: an L shape.
    let mut m = vec![0.0; 18];
    m[..6].copy_from_slice(&[1.0; 6]);
    for i in [9, 12, 15, 16] {
        m[i] = 1.0;
    }
    let mask = g.init("mask", &[1, 2, 3, 3], &m);
    g.op("Mul", "masked", &[&x, &mask], vec![]);
    let err = import_bytes(&g.bytes(13), &ImportOptions::default()).unwrap_err();
    assert!(err.to_string().contains("masked"), "{err}");
}
