//! IR → ONNX `ModelProto` (prost types from `tract_onnx::pb`), encoded to bytes.
//! The op mapping and its reasons are in the module docs of [`crate::onnx`].

use super::OnnxError;
use crate::ir::{ActQuant, Activation, Dense, Model, Op, TensorId, IR_VERSION};
use prost::Message;
use std::collections::HashSet;
use tract_onnx::pb::{
    attribute_proto::AttributeType, tensor_proto::DataType, tensor_shape_proto, type_proto,
    AttributeProto, GraphProto, ModelProto, NodeProto, OperatorSetIdProto, StringStringEntryProto,
    TensorProto, TensorShapeProto, TypeProto, ValueInfoProto,
};

/// Default-domain opset: the first with per-axis `QuantizeLinear`/`DequantizeLinear`.
pub const OPSET_VERSION: i64 = 13;
/// ONNX IR version written into every model.
pub const ONNX_IR_VERSION: i64 = 8;
/// `metadata_props` keys.
pub const META_CLASS_NAMES: &str = "class_names";
pub const META_PREPROCESS: &str = "preprocess";
pub const META_IR_VERSION: &str = "bonsai_ir_version";
pub const META_VARIANT: &str = "bonsai_variant";

const INPUT_NAME: &str = "input";
const OUTPUT_NAME: &str = "logits";
const BATCH_DIM: &str = "batch";

/// The float graph: `input: f32[batch, INPUT_LEN]` → `logits: f32[batch, OUTPUT_LEN]`.
pub fn export_float(model: &Model) -> Result<Vec<u8>, OnnxError> {
    model.validate()?;
    let mut g = GraphBuilder::new();
    let mut names = g.tensor_names(model);
    for node in &model.nodes {
        let out = names[node.output.0].clone();
        let ins: Vec<String> = node.inputs.iter().map(|i| names[i.0].clone()).collect();
        match &node.op {
            Op::Dense(d) => {
                let w = g.init_f32(
                    &format!("{}.weight", node.name),
                    &[d.out_features, d.in_features],
                    &d.weight,
                );
                let b = g.init_f32(&format!("{}.bias", node.name), &[d.out_features], &d.bias);
                g.gemm_relu(&node.name, &ins[0], &w, &b, d.activation, &out);
            }
            Op::Relu => g.node("Relu", &node.name, &ins, &out, vec![]),
            Op::Add => g.add_chain(&node.name, &ins, &out),
            Op::Concat => g.node("Concat", &node.name, &ins, &out, vec![attr_int("axis", 1)]),
            other => {
                return Err(OnnxError::Unsupported {
                    node: node.name.clone(),
                    op: other.kind(),
                })
            }
        }
    }
    g.finish_output(model, &mut names);
    let graph = g.into_graph(model, DataType::Float, DataType::Float);
    Ok(encode(model, graph, "float"))
}

/// The quantized model as a QDQ graph with float input and output:
/// `input: f32` → `QuantizeLinear` → `DequantizeLinear` → … → `DequantizeLinear` → `logits: f32`.
pub fn export_int8(model: &Model) -> Result<Vec<u8>, OnnxError> {
    export_qdq(model, Io::Float)
}

/// Like [`export_int8`], but the graph input is the int8 input tensor (exactly what
/// [`crate::interp::int8::run`] takes) and the graph output is the int8 output of the last
/// `QuantizeLinear` (what it returns).
pub fn export_int8_io(model: &Model) -> Result<Vec<u8>, OnnxError> {
    export_qdq(model, Io::Int8)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Io {
    Float,
    Int8,
}

fn export_qdq(model: &Model, io: Io) -> Result<Vec<u8>, OnnxError> {
    model.validate()?;
    if !model.is_quantized() {
        return Err(OnnxError::NotQuantized);
    }
    check_quant(model)?;
    let quant = |id: TensorId| model.tensor(id).quant.expect("checked by is_quantized");
    let input = model.inputs[0];
    let output = model.outputs[0];

    // Which tensors some node reads: only those need a DequantizeLinear.
    let mut consumed = vec![false; model.tensors.len()];
    for node in &model.nodes {
        for i in &node.inputs {
            consumed[i.0] = true;
        }
    }
    if io == Io::Float {
        consumed[output.0] = true;
    }

    let mut g = GraphBuilder::new();
    // Graph-level names first so that IR tensors cannot take them.
    g.reserve(INPUT_NAME);
    g.reserve(OUTPUT_NAME);
    // Per tensor: its quantization parameters (initializer names), its int8 value and its
    // dequantized float value.
    let mut params: Vec<(String, String)> = Vec::with_capacity(model.tensors.len());
    for t in &model.tensors {
        let q = t.quant.expect("checked by is_quantized");
        let s = g.init_f32(&format!("{}.scale", t.name), &[], &[q.scale]);
        let z = g.init_i8(
            &format!("{}.zero_point", t.name),
            &[],
            &[q.zero_point as i8],
        );
        params.push((s, z));
    }
    let mut q_names: Vec<String> = vec![String::new(); model.tensors.len()];
    let mut f_names: Vec<String> = vec![String::new(); model.tensors.len()];

    // Quantizes float value `pre` as tensor `t`, then dequantizes it if anything reads it.
    let emit_qdq = |g: &mut GraphBuilder,
                    q_names: &mut Vec<String>,
                    f_names: &mut Vec<String>,
                    t: TensorId,
                    pre: &str| {
        let name = &model.tensor(t).name;
        let (s, z) = &params[t.0];
        let q = if t == output && io == Io::Int8 {
            OUTPUT_NAME.to_string()
        } else {
            g.unique(&format!("{name}.q"))
        };
        g.node(
            "QuantizeLinear",
            &format!("{name}.quantize"),
            &[pre.to_string(), s.clone(), z.clone()],
            &q,
            vec![],
        );
        q_names[t.0] = q.clone();
        if consumed[t.0] {
            let f = if t == output && io == Io::Float {
                OUTPUT_NAME.to_string()
            } else {
                g.unique(&format!("{name}.dq"))
            };
            g.node(
                "DequantizeLinear",
                &format!("{name}.dequantize"),
                &[q, s.clone(), z.clone()],
                &f,
                vec![],
            );
            f_names[t.0] = f;
        }
    };

    match io {
        Io::Float => emit_qdq(&mut g, &mut q_names, &mut f_names, input, INPUT_NAME),
        Io::Int8 => {
            let name = &model.tensor(input).name;
            let (s, z) = &params[input.0];
            let f = g.unique(&format!("{name}.dq"));
            g.node(
                "DequantizeLinear",
                &format!("{name}.dequantize"),
                &[INPUT_NAME.to_string(), s.clone(), z.clone()],
                &f,
                vec![],
            );
            q_names[input.0] = INPUT_NAME.to_string();
            f_names[input.0] = f;
        }
    }

    for node in &model.nodes {
        let ins: Vec<String> = node.inputs.iter().map(|i| f_names[i.0].clone()).collect();
        let pre = g.unique(&format!("{}.out_float", node.name));
        match &node.op {
            Op::Dense(d) => {
                let s_in = quant(node.inputs[0]).scale;
                let (w, b) = dequantized_dense_params(&mut g, &node.name, d, s_in);
                g.gemm_relu(&node.name, &ins[0], &w, &b, d.activation, &pre);
            }
            Op::Relu => g.node("Relu", &node.name, &ins, &pre, vec![]),
            Op::Add => g.add_chain(&node.name, &ins, &pre),
            Op::Concat => g.node("Concat", &node.name, &ins, &pre, vec![attr_int("axis", 1)]),
            other => {
                return Err(OnnxError::Unsupported {
                    node: node.name.clone(),
                    op: other.kind(),
                })
            }
        }
        emit_qdq(&mut g, &mut q_names, &mut f_names, node.output, &pre);
    }

    // A model whose output is its input (no nodes) still needs a node producing "logits".
    let produced = match io {
        Io::Float => &f_names[output.0],
        Io::Int8 => &q_names[output.0],
    };
    if produced != OUTPUT_NAME {
        let produced = produced.clone();
        g.node(
            "Identity",
            "output_identity",
            &[produced],
            OUTPUT_NAME,
            vec![],
        );
    }

    let (elem, variant) = match io {
        Io::Float => (DataType::Float, "int8_qdq"),
        Io::Int8 => (DataType::Int8, "int8_qdq_int8_io"),
    };
    let graph = g.into_graph(model, elem, elem);
    Ok(encode(model, graph, variant))
}

/// Int8 weights and int32 biases with their per-channel `DequantizeLinear`; returns the names of
/// the dequantized (float) weight and bias.
fn dequantized_dense_params(
    g: &mut GraphBuilder,
    node: &str,
    d: &Dense,
    s_in: f32,
) -> (String, String) {
    let q = d.quant.as_ref().expect("checked by is_quantized");
    let n_out = d.out_features;
    let wq = g.init_i8(
        &format!("{node}.weight_q"),
        &[n_out, d.in_features],
        &q.weight_q,
    );
    let ws = g.init_f32(&format!("{node}.weight_scale"), &[n_out], &q.weight_scale);
    let wz = g.init_i8(
        &format!("{node}.weight_zero_point"),
        &[n_out],
        &vec![0; n_out],
    );
    let w = g.unique(&format!("{node}.weight"));
    g.node(
        "DequantizeLinear",
        &format!("{node}.weight_dequantize"),
        &[wq, ws, wz],
        &w,
        vec![attr_int("axis", 0)],
    );
    // The bias scale the quantizer used, s_in·s_w[o] (computed there in f64).
    let bias_scale: Vec<f32> = q
        .weight_scale
        .iter()
        .map(|&sw| (s_in as f64 * sw as f64) as f32)
        .collect();
    let bq = g.init_i32(&format!("{node}.bias_q"), &[n_out], &q.bias_q);
    let bs = g.init_f32(&format!("{node}.bias_scale"), &[n_out], &bias_scale);
    let bz = g.init_i32(
        &format!("{node}.bias_zero_point"),
        &[n_out],
        &vec![0; n_out],
    );
    let b = g.unique(&format!("{node}.bias"));
    g.node(
        "DequantizeLinear",
        &format!("{node}.bias_dequantize"),
        &[bq, bs, bz],
        &b,
        vec![attr_int("axis", 0)],
    );
    (w, b)
}

/// Parameters ONNX (and any sane runtime) needs: positive finite activation scales, int8 zero
/// points, finite non-negative weight scales.
fn check_quant(model: &Model) -> Result<(), OnnxError> {
    for t in &model.tensors {
        let ActQuant { scale, zero_point } = t.quant.expect("checked by is_quantized");
        let bad = |msg: String| OnnxError::BadTensorQuant {
            tensor: t.name.clone(),
            msg,
        };
        if !(scale.is_finite() && scale > 0.0) {
            return Err(bad(format!(
                "activation scale {scale} must be finite and positive"
            )));
        }
        if !(-128..=127).contains(&zero_point) {
            return Err(bad(format!("zero point {zero_point} is outside int8")));
        }
    }
    for node in &model.nodes {
        if let Op::Dense(d) = &node.op {
            let q = d.quant.as_ref().expect("checked by is_quantized");
            if let Some((o, s)) = q
                .weight_scale
                .iter()
                .enumerate()
                .find(|(_, s)| !(s.is_finite() && **s >= 0.0))
            {
                return Err(OnnxError::BadNodeQuant {
                    node: node.name.clone(),
                    msg: format!(
                        "weight scale {s} of output channel {o} must be finite and non-negative"
                    ),
                });
            }
        }
    }
    Ok(())
}

/// Collects nodes and initializers, handing out unique value names.
struct GraphBuilder {
    nodes: Vec<NodeProto>,
    initializers: Vec<TensorProto>,
    used: HashSet<String>,
}

impl GraphBuilder {
    fn new() -> Self {
        GraphBuilder {
            nodes: Vec::new(),
            initializers: Vec::new(),
            used: HashSet::new(),
        }
    }

    fn reserve(&mut self, name: &str) {
        self.used.insert(name.to_string());
    }

    /// `base`, or `base_1`, `base_2`… if taken.
    fn unique(&mut self, base: &str) -> String {
        let base = if base.is_empty() { "value" } else { base };
        let mut name = base.to_string();
        let mut k = 0;
        while self.used.contains(&name) {
            k += 1;
            name = format!("{base}_{k}");
        }
        self.used.insert(name.clone());
        name
    }

    /// ONNX value names for the IR tensors of a float graph: the model input is `"input"`, the
    /// model output `"logits"` (unless it is the input, see [`Self::finish_output`]).
    fn tensor_names(&mut self, model: &Model) -> Vec<String> {
        self.reserve(INPUT_NAME);
        self.reserve(OUTPUT_NAME);
        model
            .tensors
            .iter()
            .enumerate()
            .map(|(i, t)| {
                if i == model.inputs[0].0 {
                    INPUT_NAME.to_string()
                } else if i == model.outputs[0].0 {
                    OUTPUT_NAME.to_string()
                } else {
                    self.unique(&t.name)
                }
            })
            .collect()
    }

    /// Adds an `Identity` when the model's output is its input (a model without nodes).
    fn finish_output(&mut self, model: &Model, names: &mut [String]) {
        if model.outputs[0] == model.inputs[0] {
            let input = names[model.inputs[0].0].clone();
            self.node("Identity", "output_identity", &[input], OUTPUT_NAME, vec![]);
        }
    }

    fn node(
        &mut self,
        op_type: &str,
        name: &str,
        inputs: &[String],
        output: &str,
        attribute: Vec<AttributeProto>,
    ) {
        self.nodes.push(NodeProto {
            input: inputs.to_vec(),
            output: vec![output.to_string()],
            name: name.to_string(),
            op_type: op_type.to_string(),
            attribute,
            ..Default::default()
        });
    }

    /// `Gemm(x, w, b, transB=1)`, followed by `Relu` for a fused activation.
    fn gemm_relu(&mut self, name: &str, x: &str, w: &str, b: &str, act: Activation, out: &str) {
        let ins = [x.to_string(), w.to_string(), b.to_string()];
        let trans_b = vec![attr_int("transB", 1)];
        match act {
            Activation::None => self.node("Gemm", name, &ins, out, trans_b),
            Activation::Relu => {
                let gemm = self.unique(&format!("{name}.gemm"));
                self.node("Gemm", name, &ins, &gemm, trans_b);
                self.node("Relu", &format!("{name}.relu"), &[gemm], out, vec![]);
            }
            Activation::Relu6 => {
                let gemm = self.unique(&format!("{name}.gemm"));
                self.node("Gemm", name, &ins, &gemm, trans_b);
                self.relu6(&format!("{name}.relu6"), &gemm, out);
            }
        }
    }

    /// `Clip(x, 0, 6)`; since opset 11 the bounds are inputs, not attributes.
    fn relu6(&mut self, name: &str, x: &str, out: &str) {
        let lo = self.init_f32(&format!("{name}.min"), &[], &[0.0]);
        let hi = self.init_f32(&format!("{name}.max"), &[], &[6.0]);
        self.node("Clip", name, &[x.to_string(), lo, hi], out, vec![]);
    }

    /// `((a + b) + c) + …`: binary `Add`s in the reference's summation order.
    fn add_chain(&mut self, name: &str, ins: &[String], out: &str) {
        let mut acc = ins[0].clone();
        for (k, x) in ins[1..].iter().enumerate() {
            let last = k + 2 == ins.len();
            let dst = if last {
                out.to_string()
            } else {
                self.unique(&format!("{name}.partial{}", k + 1))
            };
            let node_name = if ins.len() == 2 {
                name.to_string()
            } else {
                format!("{name}.add{}", k + 1)
            };
            self.node("Add", &node_name, &[acc, x.clone()], &dst, vec![]);
            acc = dst;
        }
    }

    fn initializer(&mut self, base: &str, dims: &[usize], dt: DataType, raw: Vec<u8>) -> String {
        let name = self.unique(base);
        self.initializers.push(TensorProto {
            dims: dims.iter().map(|&d| d as i64).collect(),
            data_type: dt as i32,
            name: name.clone(),
            raw_data: raw,
            ..Default::default()
        });
        name
    }

    fn init_f32(&mut self, base: &str, dims: &[usize], data: &[f32]) -> String {
        let raw = data.iter().flat_map(|v| v.to_le_bytes()).collect();
        self.initializer(base, dims, DataType::Float, raw)
    }

    fn init_i8(&mut self, base: &str, dims: &[usize], data: &[i8]) -> String {
        let raw = data.iter().map(|&v| v as u8).collect();
        self.initializer(base, dims, DataType::Int8, raw)
    }

    fn init_i32(&mut self, base: &str, dims: &[usize], data: &[i32]) -> String {
        let raw = data.iter().flat_map(|v| v.to_le_bytes()).collect();
        self.initializer(base, dims, DataType::Int32, raw)
    }

    fn into_graph(self, model: &Model, input: DataType, output: DataType) -> GraphProto {
        GraphProto {
            node: self.nodes,
            name: if model.name.is_empty() {
                "bonsai".into()
            } else {
                model.name.clone()
            },
            initializer: self.initializers,
            input: vec![value_info(INPUT_NAME, input, model.input_len())],
            output: vec![value_info(OUTPUT_NAME, output, model.output_len())],
            ..Default::default()
        }
    }
}

fn attr_int(name: &str, i: i64) -> AttributeProto {
    AttributeProto {
        name: name.to_string(),
        r#type: AttributeType::Int as i32,
        i,
        ..Default::default()
    }
}

/// `name: elem[batch, len]`.
fn value_info(name: &str, elem: DataType, len: usize) -> ValueInfoProto {
    use tensor_shape_proto::{dimension::Value, Dimension};
    let dim = |value| Dimension {
        value: Some(value),
        ..Default::default()
    };
    ValueInfoProto {
        name: name.to_string(),
        r#type: Some(TypeProto {
            value: Some(type_proto::Value::TensorType(type_proto::Tensor {
                elem_type: elem as i32,
                shape: Some(TensorShapeProto {
                    dim: vec![
                        dim(Value::DimParam(BATCH_DIM.into())),
                        dim(Value::DimValue(len as i64)),
                    ],
                }),
            })),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn encode(model: &Model, graph: GraphProto, variant: &str) -> Vec<u8> {
    let meta = |key: &str, value: String| StringStringEntryProto {
        key: key.to_string(),
        value,
    };
    let proto = ModelProto {
        ir_version: ONNX_IR_VERSION,
        opset_import: vec![OperatorSetIdProto {
            domain: String::new(),
            version: OPSET_VERSION,
        }],
        producer_name: "bonsai".into(),
        producer_version: env!("CARGO_PKG_VERSION").into(),
        doc_string: format!("Bonsai model {:?} ({variant})", model.name),
        graph: Some(graph),
        metadata_props: vec![
            meta(
                META_CLASS_NAMES,
                serde_json::to_string(&model.class_names).expect("strings serialize"),
            ),
            meta(
                META_PREPROCESS,
                serde_json::to_string(&model.preprocess).expect("floats serialize"),
            ),
            meta(META_IR_VERSION, IR_VERSION.to_string()),
            meta(META_VARIANT, variant.to_string()),
        ],
        ..Default::default()
    };
    proto.encode_to_vec()
}
