//! IR → ONNX `ModelProto` (prost types from `tract_onnx::pb`), encoded to bytes.
//! The op mapping and its reasons are in the module docs of [`crate::onnx`].

use super::OnnxError;
use crate::ir::{
    ActQuant, Activation, Conv2d, Model, Node, Op, Pool, TensorId, WeightQuant, IR_VERSION,
};
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
    g.reserve(INPUT_NAME);
    g.reserve(OUTPUT_NAME);
    let mut values = Values::new(model);
    values.set(model.inputs[0], Layout::Flat, INPUT_NAME.to_string());
    let output = model.outputs[0];
    for node in &model.nodes {
        let layout = output_layout(model, node, &values);
        let out = if node.output == output && layout == Layout::Flat {
            OUTPUT_NAME.to_string()
        } else {
            g.unique(&model.tensor(node.output).name)
        };
        match &node.op {
            Op::Dense(d) => {
                let x = values.flat(&mut g, node.inputs[0]);
                let w = g.init_f32(
                    &format!("{}.weight", node.name),
                    &[d.out_features, d.in_features],
                    &d.weight,
                );
                let b = g.init_f32(&format!("{}.bias", node.name), &[d.out_features], &d.bias);
                g.gemm_relu(&node.name, &x, &w, &b, d.activation, &out);
            }
            Op::Conv2d(c) => {
                let x = values.nchw(&mut g, node.inputs[0]);
                let w = g.init_f32(
                    &format!("{}.weight", node.name),
                    &oihw_dims(c),
                    &ohwi_to_oihw(&c.weight, c),
                );
                let b = g.init_f32(&format!("{}.bias", node.name), &[c.out_channels], &c.bias);
                let out_shape = &model.tensor(node.output).shape;
                g.conv_act_area(&node.name, [&x, &w, &b], c, out_shape, &out);
            }
            Op::MaxPool(p) | Op::AvgPool(p) => {
                let x = values.nchw(&mut g, node.inputs[0]);
                g.pool(&node.name, &node.op, p, &x, &out);
            }
            Op::Flatten => values.flatten_into(&mut g, &node.name, node.inputs[0], &out),
            Op::Relu => {
                let x = values.get(&mut g, node.inputs[0], layout);
                g.node("Relu", &node.name, &[x], &out, vec![]);
            }
            Op::Add => {
                let ins: Vec<String> = node
                    .inputs
                    .iter()
                    .map(|&i| values.get(&mut g, i, layout))
                    .collect();
                g.add_chain(&node.name, &ins, &out);
            }
            Op::Concat => {
                let ins: Vec<String> = node
                    .inputs
                    .iter()
                    .map(|&i| values.flat(&mut g, i))
                    .collect();
                g.node("Concat", &node.name, &ins, &out, vec![attr_int("axis", 1)]);
            }
        }
        values.set(node.output, layout, out);
    }
    values.finish_output(&mut g, output);
    let graph = g.into_graph(model, DataType::Float, DataType::Float);
    Ok(encode(model, graph, "float"))
}

/// How an IR tensor is held in the ONNX graph. ONNX's Conv and pools work on NCHW while the
/// IR is HWC, so an image lives as `[batch, C, H, W]` between convolutions and pools and is
/// transposed back to `[batch, H*W*C]` (the IR's memory order) wherever it is read flat:
/// Flatten, a Dense (whose IR weights assume HWC order), Concat and the graph output.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Layout {
    /// `[batch, len]` in IR memory order.
    Flat,
    /// `[batch, C, H, W]` of an IR `[H, W, C]` tensor.
    Nchw,
}

/// The layout a node's output is produced in: images stay NCHW through ReLU and Add.
fn output_layout(model: &Model, node: &Node, values: &Values) -> Layout {
    match &node.op {
        Op::Conv2d(_) | Op::MaxPool(_) | Op::AvgPool(_) => Layout::Nchw,
        Op::Dense(_) | Op::Flatten | Op::Concat => Layout::Flat,
        Op::Relu | Op::Add => {
            let image = model.tensor(node.output).shape.len() == 3;
            if image && node.inputs.iter().all(|&i| values.has(i, Layout::Nchw)) {
                Layout::Nchw
            } else {
                Layout::Flat
            }
        }
    }
}

/// The ONNX value names of every IR tensor, per layout, with conversions emitted on demand
/// (and then reused).
struct Values {
    shapes: Vec<Vec<usize>>,
    names: Vec<[Option<String>; 2]>,
}

impl Values {
    fn new(model: &Model) -> Self {
        Values {
            shapes: model.tensors.iter().map(|t| t.shape.clone()).collect(),
            names: vec![[None, None]; model.tensors.len()],
        }
    }

    fn set(&mut self, t: TensorId, layout: Layout, name: String) {
        self.names[t.0][layout as usize] = Some(name);
    }

    fn has(&self, t: TensorId, layout: Layout) -> bool {
        self.names[t.0][layout as usize].is_some()
    }

    fn flat(&mut self, g: &mut GraphBuilder, t: TensorId) -> String {
        self.get(g, t, Layout::Flat)
    }

    fn nchw(&mut self, g: &mut GraphBuilder, t: TensorId) -> String {
        self.get(g, t, Layout::Nchw)
    }

    /// The value of `t` in `layout`, converting (Reshape/Transpose) from the other one if
    /// needed.
    fn get(&mut self, g: &mut GraphBuilder, t: TensorId, layout: Layout) -> String {
        if let Some(name) = &self.names[t.0][layout as usize] {
            return name.clone();
        }
        let name = match layout {
            Layout::Flat => {
                let src = self.names[t.0][Layout::Nchw as usize]
                    .clone()
                    .expect("every tensor is produced in some layout");
                let base = format!("{src}.flat");
                let dst = g.unique(&base);
                g.nchw_to_flat(&src, &self.shapes[t.0], &dst);
                dst
            }
            Layout::Nchw => {
                let src = self.names[t.0][Layout::Flat as usize]
                    .clone()
                    .expect("every tensor is produced in some layout");
                let dst = g.unique(&format!("{src}.nchw"));
                g.flat_to_nchw(&src, &self.shapes[t.0], &dst);
                dst
            }
        };
        self.set(t, layout, name.clone());
        name
    }

    /// Flatten: the flat value of `t` as `out` (the IR's Flatten moves no data, so on a flat
    /// value it is an `Identity`).
    fn flatten_into(&mut self, g: &mut GraphBuilder, name: &str, t: TensorId, out: &str) {
        if let Some(flat) = self.names[t.0][Layout::Flat as usize].clone() {
            g.node("Identity", name, &[flat], out, vec![]);
        } else {
            let nchw = self.nchw(g, t);
            g.nchw_to_flat(&nchw, &self.shapes[t.0], out);
        }
    }

    /// Makes sure the graph output `"logits"` exists: a flat output already has that name; an
    /// NCHW one is flattened into it; an output that is the input is copied by `Identity`.
    fn finish_output(&mut self, g: &mut GraphBuilder, output: TensorId) {
        match &self.names[output.0] {
            [Some(flat), _] if flat == OUTPUT_NAME => {}
            [Some(flat), _] => {
                let flat = flat.clone();
                g.node("Identity", "output_identity", &[flat], OUTPUT_NAME, vec![]);
            }
            [None, Some(nchw)] => {
                let nchw = nchw.clone();
                g.nchw_to_flat(&nchw, &self.shapes[output.0], OUTPUT_NAME);
            }
            [None, None] => unreachable!("the output is produced"),
        }
    }
}

/// `[out, in/groups, kh, kw]`.
fn oihw_dims(c: &Conv2d) -> [usize; 4] {
    [
        c.out_channels,
        c.channels_per_group(),
        c.kernel[0],
        c.kernel[1],
    ]
}

/// IR filter layout OHWI → ONNX's OIHW (any element type).
fn ohwi_to_oihw<T: Copy + Default>(v: &[T], c: &Conv2d) -> Vec<T> {
    let ([kh, kw], cpg) = (c.kernel, c.channels_per_group());
    let mut t = vec![T::default(); v.len()];
    for o in 0..c.out_channels {
        for y in 0..kh {
            for x in 0..kw {
                for i in 0..cpg {
                    t[((o * cpg + i) * kh + y) * kw + x] = v[((o * kh + y) * kw + x) * cpg + i];
                }
            }
        }
    }
    t
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
    // Int8 values (only the output's is read, for the int8-IO graph) and dequantized float
    // values, per layout.
    let mut q_values = Values::new(model);
    let mut f_values = Values::new(model);

    // Quantizes float value `pre` (in `layout`) as tensor `t`, then dequantizes it if anything
    // reads it.
    let emit_qdq = |g: &mut GraphBuilder,
                    q_values: &mut Values,
                    f_values: &mut Values,
                    t: TensorId,
                    pre: &str,
                    layout: Layout| {
        let name = &model.tensor(t).name;
        let (s, z) = &params[t.0];
        let flat_output = t == output && layout == Layout::Flat;
        let q = if flat_output && io == Io::Int8 {
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
        q_values.set(t, layout, q.clone());
        if consumed[t.0] {
            let f = if flat_output && io == Io::Float {
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
            f_values.set(t, layout, f);
        }
    };

    match io {
        Io::Float => emit_qdq(
            &mut g,
            &mut q_values,
            &mut f_values,
            input,
            INPUT_NAME,
            Layout::Flat,
        ),
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
            q_values.set(input, Layout::Flat, INPUT_NAME.to_string());
            f_values.set(input, Layout::Flat, f);
        }
    }

    for node in &model.nodes {
        let layout = output_layout(model, node, &f_values);
        let pre = g.unique(&format!("{}.out_float", node.name));
        match &node.op {
            Op::Dense(d) => {
                let x = f_values.flat(&mut g, node.inputs[0]);
                let s_in = quant(node.inputs[0]).scale;
                let dims = [d.out_features, d.in_features];
                let q = d.quant.as_ref().expect("checked by is_quantized");
                let (w, b) = dequantized_params(&mut g, &node.name, &dims, &q.weight_q, q, s_in);
                g.gemm_relu(&node.name, &x, &w, &b, d.activation, &pre);
            }
            Op::Conv2d(c) => {
                let x = f_values.nchw(&mut g, node.inputs[0]);
                let s_in = quant(node.inputs[0]).scale;
                let q = c.quant.as_ref().expect("checked by is_quantized");
                let wq = ohwi_to_oihw(&q.weight_q, c);
                let (w, b) = dequantized_params(&mut g, &node.name, &oihw_dims(c), &wq, q, s_in);
                let out_shape = &model.tensor(node.output).shape;
                g.conv_act_area(&node.name, [&x, &w, &b], c, out_shape, &pre);
            }
            Op::MaxPool(p) | Op::AvgPool(p) => {
                let x = f_values.nchw(&mut g, node.inputs[0]);
                g.pool(&node.name, &node.op, p, &x, &pre);
            }
            Op::Flatten => f_values.flatten_into(&mut g, &node.name, node.inputs[0], &pre),
            Op::Relu => {
                let x = f_values.get(&mut g, node.inputs[0], layout);
                g.node("Relu", &node.name, &[x], &pre, vec![]);
            }
            Op::Add => {
                let ins: Vec<String> = node
                    .inputs
                    .iter()
                    .map(|&i| f_values.get(&mut g, i, layout))
                    .collect();
                g.add_chain(&node.name, &ins, &pre);
            }
            Op::Concat => {
                let ins: Vec<String> = node
                    .inputs
                    .iter()
                    .map(|&i| f_values.flat(&mut g, i))
                    .collect();
                g.node("Concat", &node.name, &ins, &pre, vec![attr_int("axis", 1)]);
            }
        }
        emit_qdq(
            &mut g,
            &mut q_values,
            &mut f_values,
            node.output,
            &pre,
            layout,
        );
    }

    // "logits": the output's int8 or dequantized value, flattened if it is an image, or an
    // Identity when the model has no nodes.
    match io {
        Io::Float => f_values.finish_output(&mut g, output),
        Io::Int8 => q_values.finish_output(&mut g, output),
    }

    let (elem, variant) = match io {
        Io::Float => (DataType::Float, "int8_qdq"),
        Io::Int8 => (DataType::Int8, "int8_qdq_int8_io"),
    };
    let graph = g.into_graph(model, elem, elem);
    Ok(encode(model, graph, variant))
}

/// Int8 weights (`weight_q`, already in ONNX layout `dims`, output channel first) and int32
/// biases with their per-channel `DequantizeLinear` on axis 0; returns the names of the
/// dequantized (float) weight and bias.
fn dequantized_params(
    g: &mut GraphBuilder,
    node: &str,
    dims: &[usize],
    weight_q: &[i8],
    q: &WeightQuant,
    s_in: f32,
) -> (String, String) {
    let n_out = dims[0];
    let wq = g.init_i8(&format!("{node}.weight_q"), dims, weight_q);
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
        if let Some(q) = node.op.weight_quant() {
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

/// Collects nodes and initializers, handing out unique value names and unique node names.
struct GraphBuilder {
    nodes: Vec<NodeProto>,
    initializers: Vec<TensorProto>,
    used: HashSet<String>,
    /// Node names are a namespace of their own in ONNX; IR node names need not be unique, but
    /// tract refuses a graph with two nodes of the same name.
    node_names: HashSet<String>,
}

impl GraphBuilder {
    fn new() -> Self {
        GraphBuilder {
            nodes: Vec::new(),
            initializers: Vec::new(),
            used: HashSet::new(),
            node_names: HashSet::new(),
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

    fn node(
        &mut self,
        op_type: &str,
        name: &str,
        inputs: &[String],
        output: &str,
        attribute: Vec<AttributeProto>,
    ) {
        let mut unique = name.to_string();
        let mut k = 0;
        while !self.node_names.insert(unique.clone()) {
            k += 1;
            unique = format!("{name}_{k}");
        }
        self.nodes.push(NodeProto {
            input: inputs.to_vec(),
            output: vec![output.to_string()],
            name: unique,
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

    /// `Conv` (NCHW, OIHW weights; ONNX's `pads` order `[top, left, bottom, right]` is the
    /// IR's) followed by the fused activation.
    fn conv_act(&mut self, name: &str, x: &str, w: &str, b: &str, c: &Conv2d, out: &str) {
        let ins = [x.to_string(), w.to_string(), b.to_string()];
        let attrs = vec![
            attr_ints("kernel_shape", &c.kernel),
            attr_ints("strides", &c.stride),
            attr_ints("pads", &c.padding),
            attr_ints("dilations", &[1, 1]),
            attr_int("group", c.groups as i64),
        ];
        match c.activation {
            Activation::None => self.node("Conv", name, &ins, out, attrs),
            Activation::Relu => {
                let conv = self.unique(&format!("{name}.conv"));
                self.node("Conv", name, &ins, &conv, attrs);
                self.node("Relu", &format!("{name}.relu"), &[conv], out, vec![]);
            }
            Activation::Relu6 => {
                let conv = self.unique(&format!("{name}.conv"));
                self.node("Conv", name, &ins, &conv, attrs);
                self.relu6(&format!("{name}.relu6"), &conv, out);
            }
        }
    }

    /// [`Self::conv_act`], then for a partial-area convolution a `Mul` by its constant 0/1
    /// mask (`[1, C, OH, OW]`): each channel's output is exactly 0 outside its rectangle, as
    /// the IR defines it, and a QDQ graph quantizes that 0 to the zero point.
    fn conv_act_area(
        &mut self,
        name: &str,
        [x, w, b]: [&str; 3],
        c: &Conv2d,
        out_shape: &[usize],
        out: &str,
    ) {
        let (oh, ow) = (out_shape[0], out_shape[1]);
        let Some(mask) = c.area_mask_chw(oh, ow) else {
            return self.conv_act(name, x, w, b, c, out);
        };
        let full = self.unique(&format!("{name}.whole"));
        self.conv_act(name, x, w, b, c, &full);
        let m = self.init_f32(&format!("{name}.area"), &[1, c.out_channels, oh, ow], &mask);
        self.node("Mul", &format!("{name}.area_mul"), &[full, m], out, vec![]);
    }

    /// `MaxPool` (padding never wins) or `AveragePool` with `count_include_pad=0` (padding not
    /// counted), as the IR defines them.
    fn pool(&mut self, name: &str, op: &Op, p: &Pool, x: &str, out: &str) {
        let mut attrs = vec![
            attr_ints("kernel_shape", &p.kernel),
            attr_ints("strides", &p.stride),
            attr_ints("pads", &p.padding),
        ];
        let op_type = match op {
            Op::MaxPool(_) => "MaxPool",
            _ => {
                attrs.push(attr_int("count_include_pad", 0));
                "AveragePool"
            }
        };
        self.node(op_type, name, &[x.to_string()], out, attrs);
    }

    /// `[batch, H*W*C]` (HWC order) → `[batch, C, H, W]`: Reshape to NHWC, Transpose.
    fn flat_to_nchw(&mut self, src: &str, shape: &[usize], dst: &str) {
        let dims = [-1, shape[0] as i64, shape[1] as i64, shape[2] as i64];
        let s = self.init_i64(&format!("{dst}.shape"), &[4], &dims);
        let nhwc = self.unique(&format!("{dst}.nhwc"));
        self.node(
            "Reshape",
            &format!("{dst}.reshape"),
            &[src.to_string(), s],
            &nhwc,
            vec![],
        );
        self.node(
            "Transpose",
            &format!("{dst}.transpose"),
            &[nhwc],
            dst,
            vec![attr_ints("perm", &[0, 3, 1, 2])],
        );
    }

    /// `[batch, C, H, W]` → `[batch, H*W*C]` in HWC order: Transpose to NHWC, Reshape.
    fn nchw_to_flat(&mut self, src: &str, shape: &[usize], dst: &str) {
        let nhwc = self.unique(&format!("{dst}.nhwc"));
        self.node(
            "Transpose",
            &format!("{dst}.transpose"),
            &[src.to_string()],
            &nhwc,
            vec![attr_ints("perm", &[0, 2, 3, 1])],
        );
        let len: usize = shape.iter().product();
        let s = self.init_i64(&format!("{dst}.shape"), &[2], &[-1, len as i64]);
        self.node(
            "Reshape",
            &format!("{dst}.reshape"),
            &[nhwc, s],
            dst,
            vec![],
        );
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

    fn init_i64(&mut self, base: &str, dims: &[usize], data: &[i64]) -> String {
        let raw = data.iter().flat_map(|v| v.to_le_bytes()).collect();
        self.initializer(base, dims, DataType::Int64, raw)
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

fn attr_ints(name: &str, v: &[usize]) -> AttributeProto {
    AttributeProto {
        name: name.to_string(),
        r#type: AttributeType::Ints as i32,
        ints: v.iter().map(|&x| x as i64).collect(),
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
