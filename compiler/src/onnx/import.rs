//! ONNX → IR: brings a model trained elsewhere (PyTorch, Keras through tf2onnx) in as a float
//! Bonsai model, the starting point for pruning, quantization and lowering.
//!
//! # What is imported
//!
//! | ONNX | IR |
//! |---|---|
//! | `Conv` (group 1 or depthwise, dilation 1, `pads` or `auto_pad`) | `Conv2d`, weights OIHW → OHWI |
//! | `Gemm` (`transA = 0`, any `transB`, `alpha`, `beta`), `MatMul` with a constant right side | `Dense` |
//! | `Add`/`Sub`/`Mul`/`Div` of a per-channel constant, `BatchNormalization` | folded into the preceding `Conv`/`Gemm`/`MatMul` (its bias and weights) |
//! | `Relu`, `Clip(0, 6)` | fused activation of the preceding layer when nothing else reads its output; else a standalone `Relu` |
//! | `MaxPool`, `AveragePool` (`count_include_pad = 0` when padded), `GlobalAveragePool`, `GlobalMaxPool` | `MaxPool`, `AvgPool` |
//! | `Flatten`, `Reshape` to `[batch, features]` of an image | `Flatten` |
//! | `Add` of two activations | `Add` |
//! | `Transpose` between NCHW and NHWC, `Identity`, `Dropout` | nothing (layout bookkeeping only) |
//! | `Softmax`/`LogSoftmax` producing the graph output | dropped: the IR outputs logits; the predicted class (argmax) is unchanged |
//! | `Constant`, `Shape`, `Gather`, `Unsqueeze`, `Squeeze`, `Concat`, `Slice`, `Cast`, `ConstantOfShape`, arithmetic on constants | folded at import |
//!
//! # Layouts
//!
//! ONNX images are NCHW (PyTorch) or arrive NHWC and are transposed to NCHW in front of the
//! first convolution (tf2onnx); the IR is HWC without batch. Every activation value therefore
//! carries its ONNX layout ([`Kind`]) next to the IR tensor that holds it: transposes between
//! NCHW and NHWC only change the bookkeeping. Flattening an NCHW image yields features in CHW
//! order while the IR's `Flatten` yields HWC order, so a flat value remembers the permutation
//! from ONNX feature index to IR element, and the first `Gemm`/`MatMul` reading it permutes its
//! weight columns accordingly (without that, accuracy drops silently). Convolution weights are
//! reordered from OIHW to OHWI.
//!
//! # Errors
//!
//! Every node is examined before the import fails, so a model with several unsupported nodes
//! gets one [`ImportError::Unsupported`] listing all of them (name and op type). A file that
//! is not a decodable ONNX model (truncated, garbage) gives [`ImportError::Decode`]; a
//! structurally broken one (missing inputs, wrong weight shapes) [`ImportError::Malformed`].

mod consts;
#[cfg(test)]
mod tests;

use super::export::{META_CLASS_NAMES, META_PREPROCESS};
use crate::ir::{Activation, Area, Conv2d, Dense, IrError, Model, Op, Pool, Preprocess, TensorId};
use consts::{norm_axis, Const, Data};
use prost::Message;
use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::rc::Rc;
use tract_onnx::pb::{
    attribute_proto::AttributeType, tensor_proto::DataType, tensor_shape_proto::dimension,
    type_proto, AttributeProto, GraphProto, ModelProto, NodeProto, TensorProto,
};

/// How to import.
#[derive(Clone, Debug, Default)]
pub struct ImportOptions {
    /// How a raw sample becomes the ONNX model's input (e.g. pixels 0..255 to normalised
    /// values). `None`: the model's `preprocess` metadata (as written by Bonsai's exporter),
    /// else identity.
    pub preprocess: Option<Preprocess>,
    /// `[H, W, C]` of an image input: needed when the ONNX input's spatial dimensions are
    /// symbolic, checked against them otherwise.
    pub input_shape: Option<Vec<usize>>,
    /// Model name; default: the ONNX graph's name.
    pub name: Option<String>,
    /// Default: the model's `class_names` metadata, else none.
    pub class_names: Option<Vec<String>>,
}

/// How the ONNX graph's input maps to the IR input.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum InputLayout {
    /// `[batch, F]`: same order as the IR.
    Flat,
    /// `[batch, C, H, W]` (the IR input is `[H, W, C]`).
    Nchw { c: usize, h: usize, w: usize },
    /// `[batch, H, W, C]`: same order as the IR.
    Nhwc { h: usize, w: usize, c: usize },
}

impl InputLayout {
    /// Reorders one sample from the ONNX input's order to the IR's (HWC).
    pub fn onnx_to_ir(&self, x: &[f32]) -> Vec<f32> {
        match *self {
            InputLayout::Nchw { c, h, w } if c > 1 => {
                let mut out = vec![0.0; x.len()];
                for ci in 0..c {
                    for p in 0..h * w {
                        out[p * c + ci] = x[ci * h * w + p];
                    }
                }
                out
            }
            _ => x.to_vec(),
        }
    }

    /// The ONNX input shape for `batch` samples.
    pub fn onnx_shape(&self, batch: usize, len: usize) -> Vec<usize> {
        match *self {
            InputLayout::Flat => vec![batch, len],
            InputLayout::Nchw { c, h, w } => vec![batch, c, h, w],
            InputLayout::Nhwc { h, w, c } => vec![batch, h, w, c],
        }
    }
}

/// An imported model and what the user should know about the import.
#[derive(Clone, Debug)]
pub struct Imported {
    /// Float model, every connection active (mask full), validated.
    pub model: Model,
    pub input_layout: InputLayout,
    /// Changes of meaning the importer made on purpose (a dropped Softmax), one sentence each.
    pub notes: Vec<String>,
    /// ONNX nodes read (including folded and layout-only ones).
    pub onnx_nodes: usize,
}

/// One node the importer cannot translate.
#[derive(Clone, Debug, PartialEq)]
pub struct UnsupportedNode {
    pub name: String,
    pub op_type: String,
    pub reason: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("cannot read {path}: {msg}")]
    Io { path: String, msg: String },
    #[error("{path}: {inner}")]
    InFile {
        path: String,
        inner: Box<ImportError>,
    },
    #[error("not a readable ONNX model (is the file truncated or not ONNX?): {0}")]
    Decode(String),
    #[error("{} unsupported node(s): {}", .0.len(), list_unsupported(.0))]
    Unsupported(Vec<UnsupportedNode>),
    #[error("node {node:?} ({op}): {msg}")]
    Malformed {
        node: String,
        op: String,
        msg: String,
    },
    #[error("{0}")]
    Graph(String),
    #[error("the imported model is invalid: {0}")]
    Invalid(#[from] IrError),
}

impl ImportError {
    /// The error without the file name around it.
    pub fn root(&self) -> &ImportError {
        match self {
            ImportError::InFile { inner, .. } => inner.root(),
            e => e,
        }
    }
}

fn list_unsupported(nodes: &[UnsupportedNode]) -> String {
    nodes
        .iter()
        .map(|n| format!("{:?} ({}): {}", n.name, n.op_type, n.reason))
        .collect::<Vec<_>>()
        .join("; ")
}

/// Reads and imports an `.onnx` file; every error names the file.
pub fn import_file(path: &Path, opts: &ImportOptions) -> Result<Imported, ImportError> {
    let bytes = std::fs::read(path).map_err(|e| ImportError::Io {
        path: path.display().to_string(),
        msg: e.to_string(),
    })?;
    import_bytes(&bytes, opts).map_err(|e| ImportError::InFile {
        path: path.display().to_string(),
        inner: Box::new(e),
    })
}

/// Imports an ONNX model held in memory.
pub fn import_bytes(bytes: &[u8], opts: &ImportOptions) -> Result<Imported, ImportError> {
    let proto = ModelProto::decode(bytes).map_err(|e| ImportError::Decode(e.to_string()))?;
    let graph = proto
        .graph
        .as_ref()
        .filter(|g| !g.node.is_empty() || !g.output.is_empty())
        .ok_or_else(|| {
            ImportError::Decode(
                "the file holds no graph (is the file truncated or not ONNX?)".into(),
            )
        })?;
    if let Some(op) = proto
        .opset_import
        .iter()
        .find(|o| (o.domain.is_empty() || o.domain == "ai.onnx") && o.version > 0 && o.version < 7)
    {
        return Err(ImportError::Graph(format!(
            "opset {} is older than the oldest supported (7)",
            op.version
        )));
    }
    let meta = |key: &str| {
        proto
            .metadata_props
            .iter()
            .find(|p| p.key == key)
            .map(|p| p.value.clone())
    };
    let preprocess = match &opts.preprocess {
        Some(p) => p.clone(),
        None => meta(META_PREPROCESS)
            .and_then(|v| serde_json::from_str::<Preprocess>(&v).ok())
            .unwrap_or_else(Preprocess::identity),
    };
    let class_names = match &opts.class_names {
        Some(c) => c.clone(),
        None => meta(META_CLASS_NAMES)
            .and_then(|v| serde_json::from_str::<Vec<String>>(&v).ok())
            .unwrap_or_default(),
    };
    let name = opts.name.clone().unwrap_or_else(|| {
        if graph.name.is_empty() {
            "onnx-import".into()
        } else {
            graph.name.clone()
        }
    });
    let mut imp = Importer::new(graph, name, preprocess, opts.input_shape.as_deref())?;
    for node in &graph.node {
        imp.node(node)?;
    }
    imp.finish(graph, class_names)
}

/// The ONNX layout of an activation held in an IR tensor.
#[derive(Clone, Debug, PartialEq)]
enum Kind {
    /// ONNX `[N, C, H, W]` of an IR `[H, W, C]` tensor.
    Nchw,
    /// ONNX `[N, H, W, C]` of an IR `[H, W, C]` tensor.
    Nhwc,
    /// ONNX `[N, F]` of a flat IR tensor: ONNX feature `j` is IR element `perm[j]`
    /// (`None`: the identity).
    Flat(Option<Rc<Vec<usize>>>),
}

#[derive(Clone, Debug)]
struct Act {
    id: TensorId,
    kind: Kind,
}

#[derive(Clone, Debug)]
enum Value {
    Const(Rc<Const>),
    Act(Act),
    /// Produced by a node that could not be imported; its readers are skipped.
    Poisoned,
}

/// Why a node cannot be imported.
enum NodeError {
    /// A valid ONNX construct the IR cannot express: collected, reported together.
    Unsupported(String),
    /// Broken ONNX: reported at once.
    Malformed(String),
}

impl From<String> for NodeError {
    fn from(s: String) -> Self {
        NodeError::Malformed(s)
    }
}

impl From<&str> for NodeError {
    fn from(s: &str) -> Self {
        NodeError::Malformed(s.into())
    }
}

type NodeResult<T> = Result<T, NodeError>;

fn unsupported<T>(msg: impl Into<String>) -> NodeResult<T> {
    Err(NodeError::Unsupported(msg.into()))
}

fn malformed<T>(msg: impl Into<String>) -> NodeResult<T> {
    Err(NodeError::Malformed(msg.into()))
}

/// Op types handled (the others are reported as unsupported without further look).
const KNOWN_OPS: &[&str] = &[
    "Conv",
    "Gemm",
    "MatMul",
    "Add",
    "Sub",
    "Mul",
    "Div",
    "Relu",
    "Clip",
    "BatchNormalization",
    "MaxPool",
    "AveragePool",
    "GlobalAveragePool",
    "GlobalMaxPool",
    "Flatten",
    "Reshape",
    "Transpose",
    "Softmax",
    "LogSoftmax",
    "Identity",
    "Dropout",
    "Constant",
    "Shape",
    "Gather",
    "Unsqueeze",
    "Squeeze",
    "Concat",
    "Slice",
    "Cast",
    "ConstantOfShape",
];

struct Importer<'g> {
    model: Model,
    values: HashMap<String, Value>,
    /// How many times each ONNX value is read (node inputs and graph outputs).
    consumers: HashMap<String, usize>,
    /// Per IR tensor: ONNX reads still to come of the values bound to it.
    pending: Vec<usize>,
    /// Per IR tensor: IR nodes reading it.
    ir_reads: Vec<usize>,
    graph_outputs: HashSet<&'g str>,
    /// Values read only by `Transpose(perm = [0, 3, 1, 2])`: NHWC images.
    nhwc_values: HashSet<&'g str>,
    unsupported: Vec<UnsupportedNode>,
    notes: Vec<String>,
    input_layout: InputLayout,
    node_names: HashSet<String>,
    n_nodes: usize,
}

impl<'g> Importer<'g> {
    fn new(
        graph: &'g GraphProto,
        name: String,
        preprocess: Preprocess,
        input_shape: Option<&[usize]>,
    ) -> Result<Self, ImportError> {
        let mut values = HashMap::new();
        for t in &graph.initializer {
            let c = Const::from_proto(t)
                .map_err(|msg| ImportError::Graph(format!("initializer {:?}: {msg}", t.name)))?;
            values.insert(t.name.clone(), Value::Const(Rc::new(c)));
        }
        let mut consumers: HashMap<String, usize> = HashMap::new();
        for n in &graph.node {
            for i in n.input.iter().filter(|i| !i.is_empty()) {
                *consumers.entry(i.clone()).or_default() += 1;
            }
        }
        for o in &graph.output {
            *consumers.entry(o.name.clone()).or_default() += 1;
        }
        let inputs: Vec<_> = graph
            .input
            .iter()
            .filter(|i| !values.contains_key(&i.name))
            .collect();
        let [input] = inputs[..] else {
            return Err(ImportError::Graph(format!(
                "the graph has {} runtime inputs ({}); exactly one is supported",
                inputs.len(),
                inputs
                    .iter()
                    .map(|i| format!("{:?}", i.name))
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        };
        let bad_input = |msg: String| ImportError::Graph(format!("input {:?}: {msg}", input.name));
        let Some(type_proto::Value::TensorType(tt)) =
            input.r#type.as_ref().and_then(|t| t.value.as_ref())
        else {
            return Err(bad_input("not a tensor".into()));
        };
        if tt.elem_type != DataType::Float as i32 {
            return Err(bad_input(format!(
                "element type {} is not float (quantized models are not supported)",
                tt.elem_type
            )));
        }
        let dims: Vec<Option<usize>> = tt
            .shape
            .as_ref()
            .ok_or_else(|| bad_input("no shape".into()))?
            .dim
            .iter()
            .map(|d| match d.value {
                Some(dimension::Value::DimValue(v)) if v > 0 => Some(v as usize),
                _ => None,
            })
            .collect();
        // tf2onnx feeds an NHWC input through Transpose(perm = [0, 3, 1, 2]) into the first
        // convolution; PyTorch inputs are NCHW.
        let nhwc_values = transposed_to_nchw(graph);
        let nhwc = dims.len() == 4 && nhwc_values.contains(input.name.as_str());
        let known = |d: &[Option<usize>], want: &[usize]| -> Result<Vec<usize>, ImportError> {
            d.iter()
                .zip(want)
                .map(|(&d, &w)| match d {
                    Some(d) if w != 0 && d != w => Err(bad_input(format!(
                        "dimension {d} contradicts --input-shape ({w})"
                    ))),
                    Some(d) => Ok(d),
                    None if w != 0 => Ok(w),
                    None => Err(bad_input(
                        "symbolic non-batch dimensions: give the input shape (--input-shape H,W,C)"
                            .into(),
                    )),
                })
                .collect()
        };
        let (shape, kind, layout) = match (dims.len(), input_shape) {
            (2, given) => {
                let f = known(&dims[1..], &[given.map_or(0, |s| s.iter().product())])?;
                (f, Kind::Flat(None), InputLayout::Flat)
            }
            (4, given) => {
                let [h0, w0, c0] = match given {
                    Some(&[h, w, c]) => [h, w, c],
                    Some(s) => {
                        return Err(bad_input(format!(
                            "--input-shape {s:?} must be H,W,C for a 4-D input"
                        )))
                    }
                    None => [0, 0, 0],
                };
                if nhwc {
                    let d = known(&dims[1..], &[h0, w0, c0])?;
                    let (h, w, c) = (d[0], d[1], d[2]);
                    (d, Kind::Nhwc, InputLayout::Nhwc { h, w, c })
                } else {
                    let d = known(&dims[1..], &[c0, h0, w0])?;
                    let (c, h, w) = (d[0], d[1], d[2]);
                    (vec![h, w, c], Kind::Nchw, InputLayout::Nchw { c, h, w })
                }
            }
            (r, _) => {
                return Err(bad_input(format!(
                    "rank {r} inputs are not supported (use [batch, features] or a 4-D image)"
                )))
            }
        };
        let model = Model::with_input(name, shape, preprocess, vec![]);
        let mut imp = Importer {
            pending: vec![0; model.tensors.len()],
            ir_reads: vec![0; model.tensors.len()],
            model,
            values,
            consumers,
            graph_outputs: graph.output.iter().map(|o| o.name.as_str()).collect(),
            nhwc_values,
            unsupported: vec![],
            notes: vec![],
            input_layout: layout,
            node_names: HashSet::new(),
            n_nodes: 0,
        };
        let id = imp.model.inputs[0];
        imp.bind(&input.name, Value::Act(Act { id, kind }));
        Ok(imp)
    }

    fn bind(&mut self, name: &str, v: Value) {
        if let Value::Act(a) = &v {
            self.pending[a.id.0] += self.consumers.get(name).copied().unwrap_or(0);
        }
        self.values.insert(name.to_string(), v);
    }

    fn ir_node(
        &mut self,
        onnx_name: &str,
        op: Op,
        inputs: Vec<TensorId>,
        shape: Vec<usize>,
    ) -> TensorId {
        let mut name = onnx_name.trim_start_matches('/').replace('/', ".");
        if name.is_empty() {
            name = format!("{}{}", op.kind().to_lowercase(), self.model.nodes.len());
        }
        let base = name.clone();
        let mut k = 1;
        while !self.node_names.insert(name.clone()) {
            k += 1;
            name = format!("{base}_{k}");
        }
        for &i in &inputs {
            self.ir_reads[i.0] += 1;
        }
        let t = self.model.add_node(name, op, inputs, shape);
        self.pending.push(0);
        self.ir_reads.push(0);
        t
    }

    fn shape(&self, t: TensorId) -> Vec<usize> {
        self.model.tensor(t).shape.clone()
    }

    /// The IR node whose output `t` is, when it is a Dense/Conv2d without activation whose
    /// output nothing else reads (so its weights may absorb the next op).
    fn fusable(&self, t: TensorId) -> Option<usize> {
        if self.pending[t.0] != 0 || self.ir_reads[t.0] != 0 {
            return None;
        }
        let k = self.model.nodes.iter().position(|n| n.output == t)?;
        let op = &self.model.nodes[k].op;
        (op.weights().is_some() && op.activation() == Activation::None).then_some(k)
    }

    fn node(&mut self, n: &NodeProto) -> Result<(), ImportError> {
        self.n_nodes += 1;
        let name = if n.name.is_empty() {
            format!("{}_{}", n.op_type, self.n_nodes - 1)
        } else {
            n.name.clone()
        };
        let result = if !(n.domain.is_empty() || n.domain == "ai.onnx") {
            Err(NodeError::Unsupported(format!(
                "operator domain {:?}",
                n.domain
            )))
        } else if !KNOWN_OPS.contains(&n.op_type.as_str()) {
            Err(NodeError::Unsupported("operator not supported".into()))
        } else {
            let mut poisoned = false;
            for i in n.input.iter().filter(|i| !i.is_empty()) {
                match self.values.get(i) {
                    None => {
                        return Err(ImportError::Malformed {
                            node: name,
                            op: n.op_type.clone(),
                            msg: format!(
                                "input {i:?} is not produced by an earlier node (graph not topologically sorted?)"
                            ),
                        })
                    }
                    Some(Value::Poisoned) => poisoned = true,
                    Some(_) => {}
                }
            }
            if poisoned {
                for o in &n.output {
                    self.values.insert(o.clone(), Value::Poisoned);
                }
                return Ok(());
            }
            self.translate(n, &name)
        };
        match result {
            Ok(()) => Ok(()),
            Err(NodeError::Unsupported(reason)) => {
                self.unsupported.push(UnsupportedNode {
                    name,
                    op_type: n.op_type.clone(),
                    reason,
                });
                for o in &n.output {
                    self.values.insert(o.clone(), Value::Poisoned);
                }
                Ok(())
            }
            Err(NodeError::Malformed(msg)) => Err(ImportError::Malformed {
                node: name,
                op: n.op_type.clone(),
                msg,
            }),
        }
    }

    /// Input `k` (empty name or absent: `None`), counting the read.
    fn input(&mut self, n: &NodeProto, k: usize) -> Option<Value> {
        let name = n.input.get(k).filter(|s| !s.is_empty())?;
        let v = self.values.get(name).cloned()?;
        if let Value::Act(a) = &v {
            self.pending[a.id.0] -= 1;
        }
        Some(v)
    }

    fn act_input(&mut self, n: &NodeProto, k: usize) -> NodeResult<Act> {
        match self.input(n, k) {
            Some(Value::Act(a)) => Ok(a),
            Some(_) => unsupported(format!("input {k} must be computed from the graph input")),
            None => malformed(format!("missing input {k}")),
        }
    }

    fn const_input(&mut self, n: &NodeProto, k: usize) -> NodeResult<Option<Rc<Const>>> {
        match self.input(n, k) {
            Some(Value::Const(c)) => Ok(Some(c)),
            Some(_) => unsupported(format!("input {k} must be a constant (an initializer)")),
            None => Ok(None),
        }
    }

    fn req_const(&mut self, n: &NodeProto, k: usize) -> NodeResult<Rc<Const>> {
        self.const_input(n, k)?
            .ok_or_else(|| NodeError::Malformed(format!("missing input {k}")))
    }

    fn out(&mut self, n: &NodeProto, v: Value) -> NodeResult<()> {
        let o = n
            .output
            .first()
            .ok_or(NodeError::Malformed("no output".into()))?;
        for extra in &n.output[1..] {
            if !extra.is_empty() && self.consumers.contains_key(extra) {
                return unsupported(format!("its extra output {extra:?} is used"));
            }
        }
        self.bind(&o.clone(), v);
        Ok(())
    }

    fn out_const(&mut self, n: &NodeProto, c: Const) -> NodeResult<()> {
        self.out(n, Value::Const(Rc::new(c)))
    }

    fn translate(&mut self, n: &NodeProto, name: &str) -> NodeResult<()> {
        let all_const = n
            .input
            .iter()
            .filter(|i| !i.is_empty())
            .all(|i| matches!(self.values.get(i), Some(Value::Const(_))));
        match n.op_type.as_str() {
            "Constant" => {
                let c = constant_attr(n)?;
                self.out_const(n, c)
            }
            "Identity" | "Dropout" => {
                let v = self
                    .input(n, 0)
                    .ok_or(NodeError::Malformed("missing input".into()))?;
                self.out(n, v)
            }
            "Shape" => self.shape_op(n),
            "ConstantOfShape" => {
                let dims = self.req_const(n, 0)?.known_ints()?;
                let dims: Vec<usize> = dims.iter().map(|&d| d.max(0) as usize).collect();
                let len = dims.iter().product();
                let value = match attr(n, "value").and_then(|a| a.t.as_ref()) {
                    Some(t) => Const::from_proto(t)?,
                    None => Const::scalar_f(0.0),
                };
                let data = match value.data {
                    Data::F(v) => Data::F(vec![*v.first().ok_or("empty value")?; len]),
                    Data::I(v) => Data::I(vec![*v.first().ok_or("empty value")?; len]),
                };
                self.out_const(n, Const { dims, data })
            }
            _ if all_const => self.fold(n),
            "Conv" => self.conv(n, name),
            "Gemm" => self.gemm(n, name),
            "MatMul" => self.matmul(n, name),
            "Add" | "Sub" | "Mul" | "Div" => self.arith(n, name),
            "Relu" => self.relu(n, name, Activation::Relu),
            "Clip" => self.clip(n, name),
            "BatchNormalization" => self.batchnorm(n),
            "MaxPool" | "AveragePool" | "GlobalAveragePool" | "GlobalMaxPool" => self.pool(n, name),
            "Flatten" => {
                let a = self.act_input(n, 0)?;
                let rank = self.onnx_rank(&a);
                let axis = norm_axis(int_attr(n, "axis").unwrap_or(1), rank + 1)?;
                if axis != 1 {
                    return unsupported(format!(
                        "Flatten on axis {axis} (only axis 1 keeps the batch)"
                    ));
                }
                let v = self.flatten(a, name)?;
                self.out(n, Value::Act(v))
            }
            "Reshape" => self.reshape(n, name),
            "Transpose" => {
                let a = self.act_input(n, 0)?;
                let rank = self.onnx_rank(&a);
                let perm = ints_attr(n, "perm").unwrap_or_else(|| (0..rank as i64).rev().collect());
                let identity: Vec<i64> = (0..rank as i64).collect();
                let kind = match (&a.kind, perm.as_slice()) {
                    (k, p) if p == identity.as_slice() => k.clone(),
                    (Kind::Nhwc, [0, 3, 1, 2]) => Kind::Nchw,
                    (Kind::Nchw, [0, 2, 3, 1]) => Kind::Nhwc,
                    (k, p) => {
                        return unsupported(format!(
                            "Transpose {p:?} of a {} value (only NCHW <-> NHWC)",
                            kind_name(k)
                        ))
                    }
                };
                self.out(n, Value::Act(Act { id: a.id, kind }))
            }
            "Softmax" | "LogSoftmax" => {
                let a = self.act_input(n, 0)?;
                let out = n.output.first().cloned().unwrap_or_default();
                let only_output = self.graph_outputs.contains(out.as_str())
                    && self.consumers.get(&out) == Some(&1);
                if !only_output || !matches!(a.kind, Kind::Flat(_)) {
                    return unsupported(
                        "only a Softmax over the classes that produces the graph output is supported (it is dropped)",
                    );
                }
                self.notes.push(format!(
                    "dropped the final {} {name:?}: the imported model outputs its input (logits); the predicted class (argmax) is the same",
                    n.op_type
                ));
                self.out(n, Value::Act(a))
            }
            other => unsupported(format!("{other} of values computed from the graph input")),
        }
    }

    /// The ONNX rank (batch excluded) of an activation.
    fn onnx_rank(&self, a: &Act) -> usize {
        match a.kind {
            Kind::Flat(_) => 1,
            _ => 3,
        }
    }

    /// ONNX dimensions (batch excluded) of an activation.
    fn onnx_dims(&self, a: &Act) -> Vec<usize> {
        let s = self.shape(a.id);
        match a.kind {
            Kind::Flat(_) => vec![s.iter().product()],
            Kind::Nchw => vec![s[2], s[0], s[1]],
            Kind::Nhwc => s,
        }
    }

    fn shape_op(&mut self, n: &NodeProto) -> NodeResult<()> {
        let dims: Vec<Option<i64>> = match self.input(n, 0) {
            Some(Value::Const(c)) => c.dims.iter().map(|&d| Some(d as i64)).collect(),
            Some(Value::Act(a)) => std::iter::once(None)
                .chain(self.onnx_dims(&a).into_iter().map(|d| Some(d as i64)))
                .collect(),
            _ => return malformed("missing input"),
        };
        let r = dims.len() as i64;
        let clampi = |v: i64| (if v < 0 { v + r } else { v }).clamp(0, r) as usize;
        let start = clampi(int_attr(n, "start").unwrap_or(0));
        let end = clampi(int_attr(n, "end").unwrap_or(r));
        let v = dims[start..end.max(start)].to_vec();
        self.out_const(n, Const::ints(vec![v.len()], v))
    }

    /// A node all of whose inputs are constants.
    fn fold(&mut self, n: &NodeProto) -> NodeResult<()> {
        let ins: Vec<Option<Rc<Const>>> = (0..n.input.len())
            .map(|k| self.const_input(n, k))
            .collect::<NodeResult<_>>()?;
        let req = |k: usize| -> NodeResult<&Const> {
            ins.get(k)
                .and_then(|c| c.as_deref())
                .ok_or_else(|| NodeError::Malformed(format!("missing input {k}")))
        };
        let x = req(0)?;
        let c = match n.op_type.as_str() {
            "Gather" => x.gather(req(1)?, int_attr(n, "axis").unwrap_or(0))?,
            "Unsqueeze" | "Squeeze" => {
                let axes = match ints_attr(n, "axes") {
                    Some(a) => Some(a),
                    None => ins
                        .get(1)
                        .and_then(|c| c.as_deref())
                        .map(|c| c.known_ints())
                        .transpose()?,
                };
                let mut dims = x.dims.clone();
                if n.op_type == "Unsqueeze" {
                    let axes = axes.ok_or("Unsqueeze without axes")?;
                    let rank = dims.len() + axes.len();
                    let mut axes: Vec<usize> = axes
                        .iter()
                        .map(|&a| norm_axis(a, rank))
                        .collect::<Result<_, _>>()?;
                    axes.sort_unstable();
                    for a in axes {
                        dims.insert(a, 1);
                    }
                } else {
                    let rank = dims.len();
                    let axes: Vec<usize> = match axes {
                        Some(a) => a
                            .iter()
                            .map(|&a| norm_axis(a, rank))
                            .collect::<Result<_, _>>()?,
                        None => (0..rank).filter(|&i| dims[i] == 1).collect(),
                    };
                    dims = (0..rank)
                        .filter(|i| !axes.contains(i))
                        .map(|i| dims[i])
                        .collect();
                }
                x.with_dims(dims)?
            }
            "Concat" => {
                let parts: Vec<Const> = ins.iter().flatten().map(|c| (**c).clone()).collect();
                Const::concat(&parts, int_attr(n, "axis").ok_or("Concat without axis")?)?
            }
            "Slice" => {
                let rank = x.dims.len();
                let (starts, ends, axes, steps) = if let Some(s) = ints_attr(n, "starts") {
                    let e = ints_attr(n, "ends").ok_or("Slice without ends")?;
                    let a = ints_attr(n, "axes");
                    (s, e, a, None)
                } else {
                    let opt = |k: usize| -> NodeResult<Option<Vec<i64>>> {
                        Ok(ins
                            .get(k)
                            .and_then(|c| c.as_deref())
                            .map(|c| c.known_ints())
                            .transpose()?)
                    };
                    (
                        opt(1)?.ok_or("Slice without starts")?,
                        opt(2)?.ok_or("Slice without ends")?,
                        opt(3)?,
                        opt(4)?,
                    )
                };
                let axes: Vec<usize> = match axes {
                    Some(a) => a
                        .iter()
                        .map(|&a| norm_axis(a, rank))
                        .collect::<Result<_, _>>()?,
                    None => (0..starts.len()).collect(),
                };
                let steps = steps.unwrap_or_else(|| vec![1; axes.len()]);
                if starts.len() != axes.len()
                    || ends.len() != axes.len()
                    || steps.len() != axes.len()
                {
                    return malformed("Slice starts/ends/axes/steps lengths differ");
                }
                x.slice(&starts, &ends, &axes, &steps)?
            }
            "Cast" => x.cast(int_attr(n, "to").ok_or("Cast without `to`")?)?,
            "Add" | "Sub" | "Mul" | "Div" => x.binary(req(1)?, &n.op_type)?,
            "Reshape" => {
                let target = req(1)?.known_ints()?;
                let dims = resolve_reshape(&x.dims, &target, int_attr(n, "allowzero") == Some(1))?;
                x.with_dims(dims)?
            }
            "Transpose" => {
                let rank = x.dims.len();
                let perm = ints_attr(n, "perm").unwrap_or_else(|| (0..rank as i64).rev().collect());
                let perm: Vec<usize> = perm.iter().map(|&p| p.max(0) as usize).collect();
                x.transpose(&perm)?
            }
            "Relu" => Const {
                dims: x.dims.clone(),
                data: Data::F(x.floats()?.iter().map(|v| v.max(0.0)).collect()),
            },
            op => return unsupported(format!("{op} of constants cannot be folded at import")),
        };
        self.out_const(n, c)
    }

    fn conv(&mut self, n: &NodeProto, name: &str) -> NodeResult<()> {
        let a = self.act_input(n, 0)?;
        let w = self.req_const(n, 1)?;
        let b = self.const_input(n, 2)?;
        if a.kind != Kind::Nchw {
            return unsupported(format!(
                "Conv reads a {} value (NCHW images only)",
                kind_name(&a.kind)
            ));
        }
        let [h, wd, cin] = self.shape(a.id)[..] else {
            unreachable!("images are 3-D")
        };
        let [cout, cpg, kh, kw] = w.dims[..] else {
            return unsupported(format!(
                "Conv weight of shape {:?} (2-D convolutions only)",
                w.dims
            ));
        };
        let group = int_attr(n, "group").unwrap_or(1).max(1) as usize;
        if cpg * group != cin {
            return malformed(format!(
                "weight {:?} with group {group} does not match {cin} input channels",
                w.dims
            ));
        }
        if group != 1 && (group != cin || !cout.is_multiple_of(cin)) {
            return unsupported(format!(
                "group {group} (only 1 or depthwise: group = in_channels dividing out_channels)"
            ));
        }
        if ints_attr(n, "dilations").is_some_and(|d| d.iter().any(|&v| v != 1)) {
            return unsupported("dilated convolution");
        }
        if let Some(ks) = ints_attr(n, "kernel_shape") {
            if ks != [kh as i64, kw as i64] {
                return malformed(format!(
                    "kernel_shape {ks:?} contradicts the weight {:?}",
                    w.dims
                ));
            }
        }
        let stride = pair(n, "strides")?;
        let padding = padding(n, [h, wd], [kh, kw], stride)?;
        let wv = w.floats()?;
        let mut weight = vec![0.0; wv.len()];
        for o in 0..cout {
            for i in 0..cpg {
                for y in 0..kh {
                    for x in 0..kw {
                        weight[((o * kh + y) * kw + x) * cpg + i] =
                            wv[((o * cpg + i) * kh + y) * kw + x];
                    }
                }
            }
        }
        let bias = match b {
            Some(b) if b.len() == cout => b.floats()?,
            Some(b) => return malformed(format!("bias of shape {:?} for {cout} channels", b.dims)),
            None => vec![0.0; cout],
        };
        let conv = Conv2d::new(
            cin,
            cout,
            [kh, kw],
            stride,
            padding,
            group,
            weight,
            bias,
            Activation::None,
        );
        let Some(shape) = conv.output_shape(h, wd) else {
            return unsupported(format!(
                "window {kh}x{kw} stride {stride:?} padding {padding:?} on a {h}x{wd} image (padding must be smaller than the kernel)"
            ));
        };
        let t = self.ir_node(name, Op::Conv2d(conv), vec![a.id], shape);
        self.out(
            n,
            Value::Act(Act {
                id: t,
                kind: Kind::Nchw,
            }),
        )
    }

    /// A Dense reading flat activation `a` with ONNX weights `w[o][j]` (`[out][in]` in ONNX
    /// feature order).
    fn dense(
        &mut self,
        n: &NodeProto,
        name: &str,
        a: Act,
        out_f: usize,
        w_onnx: impl Fn(usize, usize) -> f32,
        bias: Vec<f32>,
    ) -> NodeResult<()> {
        let Kind::Flat(perm) = &a.kind else {
            return unsupported(format!(
                "{} of a {} value (flatten it first)",
                n.op_type,
                kind_name(&a.kind)
            ));
        };
        let in_f: usize = self.shape(a.id).iter().product();
        let mut weight = vec![0.0; in_f * out_f];
        for o in 0..out_f {
            for j in 0..in_f {
                let col = perm.as_ref().map_or(j, |p| p[j]);
                weight[o * in_f + col] = w_onnx(o, j);
            }
        }
        let d = Dense::new(in_f, out_f, weight, bias, Activation::None);
        let t = self.ir_node(name, Op::Dense(d), vec![a.id], vec![out_f]);
        self.out(
            n,
            Value::Act(Act {
                id: t,
                kind: Kind::Flat(None),
            }),
        )
    }

    fn gemm(&mut self, n: &NodeProto, name: &str) -> NodeResult<()> {
        let a = self.act_input(n, 0)?;
        let b = self.req_const(n, 1)?;
        let c = self.const_input(n, 2)?;
        if int_attr(n, "transA").unwrap_or(0) != 0 {
            return unsupported("transA = 1");
        }
        let trans_b = int_attr(n, "transB").unwrap_or(0) != 0;
        let alpha = float_attr(n, "alpha").unwrap_or(1.0);
        let beta = float_attr(n, "beta").unwrap_or(1.0);
        let [r, k] = b.dims[..] else {
            return malformed(format!("B of shape {:?} is not 2-D", b.dims));
        };
        let (in_f, out_f) = if trans_b { (k, r) } else { (r, k) };
        let a_len = self.onnx_dims(&a).iter().product::<usize>();
        if a_len != in_f {
            return malformed(format!(
                "A has {a_len} features, B {:?} expects {in_f}",
                b.dims
            ));
        }
        let bias = match c {
            Some(c) => {
                let v = per_channel(&c, &[1, out_f], 1).ok_or_else(|| {
                    NodeError::Unsupported(format!(
                        "C of shape {:?} (a bias per output is supported)",
                        c.dims
                    ))
                })?;
                v.iter().map(|x| beta * x).collect()
            }
            None => vec![0.0; out_f],
        };
        let bv = b.floats()?;
        let w = |o: usize, j: usize| {
            alpha
                * if trans_b {
                    bv[o * in_f + j]
                } else {
                    bv[j * out_f + o]
                }
        };
        self.dense(n, name, a, out_f, w, bias)
    }

    fn matmul(&mut self, n: &NodeProto, name: &str) -> NodeResult<()> {
        let a = self.act_input(n, 0)?;
        let b = self.const_input(n, 1)?.ok_or(NodeError::Unsupported(
            "MatMul whose right side is not a constant".into(),
        ))?;
        let [in_f, out_f] = b.dims[..] else {
            return unsupported(format!("MatMul by a {:?} constant (2-D only)", b.dims));
        };
        let a_len = self.onnx_dims(&a).iter().product::<usize>();
        if a_len != in_f || !matches!(a.kind, Kind::Flat(_)) {
            return unsupported(format!(
                "MatMul of {:?} by {:?}",
                self.onnx_dims(&a),
                b.dims
            ));
        }
        let bv = b.floats()?;
        self.dense(
            n,
            name,
            a,
            out_f,
            |o, j| bv[j * out_f + o],
            vec![0.0; out_f],
        )
    }

    /// Channel axis (in ONNX dims with batch) and channel count of an activation.
    fn channels(&self, a: &Act) -> (Vec<usize>, usize) {
        let dims: Vec<usize> = std::iter::once(1).chain(self.onnx_dims(a)).collect();
        let axis = match a.kind {
            Kind::Nhwc => 3,
            _ => 1,
        };
        (dims, axis)
    }

    /// `act ∘ c` or `c ∘ act` for an arithmetic op, folded into the producing layer as a
    /// per-channel scale and shift; two activations added become an IR `Add`.
    fn arith(&mut self, n: &NodeProto, name: &str) -> NodeResult<()> {
        let x = self
            .input(n, 0)
            .ok_or(NodeError::Malformed("missing input 0".into()))?;
        let y = self
            .input(n, 1)
            .ok_or(NodeError::Malformed("missing input 1".into()))?;
        let op = n.op_type.as_str();
        let (a, c, act_first) = match (x, y) {
            (Value::Act(a), Value::Act(b)) if op == "Add" => {
                if a.kind != b.kind || self.shape(a.id) != self.shape(b.id) {
                    return unsupported(format!(
                        "Add of differently laid out values ({} {:?} and {} {:?})",
                        kind_name(&a.kind),
                        self.shape(a.id),
                        kind_name(&b.kind),
                        self.shape(b.id)
                    ));
                }
                let shape = self.shape(a.id);
                let t = self.ir_node(name, Op::Add, vec![a.id, b.id], shape);
                return self.out(
                    n,
                    Value::Act(Act {
                        id: t,
                        kind: a.kind,
                    }),
                );
            }
            (Value::Act(a), Value::Const(c)) => (a, c, true),
            (Value::Const(c), Value::Act(a)) => (a, c, false),
            _ => return unsupported(format!("{op} of two values computed from the graph input")),
        };
        if !act_first && (op == "Sub" || op == "Div") {
            return unsupported(format!("{op} with the constant on the left"));
        }
        if op == "Mul" {
            if let Some((k, areas)) = self.conv_areas(&a, &c) {
                // What the exporter writes for a partial-area convolution.
                match &mut self.model.nodes[k].op {
                    Op::Conv2d(conv) => conv.area = Some(areas),
                    _ => unreachable!("conv_areas finds a Conv2d"),
                }
                return self.out(n, Value::Act(a));
            }
        }
        let (dims, axis) = self.channels(&a);
        let Some(v) = per_channel(&c, &dims, axis) else {
            return unsupported(format!(
                "{op} by a constant of shape {:?} that is not per channel",
                c.dims
            ));
        };
        let (scale, shift): (Option<Vec<f32>>, Vec<f32>) = match op {
            "Add" => (None, v),
            "Sub" => (None, v.iter().map(|x| -x).collect()),
            "Mul" => (Some(v), vec![0.0; dims[axis]]),
            _ => (
                Some(v.iter().map(|x| 1.0 / x).collect()),
                vec![0.0; dims[axis]],
            ),
        };
        self.fold_affine(n, a, scale, shift, op)
    }

    /// The Conv2d producing `a` (nothing else reading it, no areas yet) and, when `c` is a
    /// 0/1 mask of its whole NCHW output in which every channel's ones form one rectangle,
    /// those rectangles: multiplying by such a mask is a partial-area convolution.
    fn conv_areas(&self, a: &Act, c: &Const) -> Option<(usize, Vec<Area>)> {
        if !matches!(a.kind, Kind::Nchw) || self.pending[a.id.0] != 0 || self.ir_reads[a.id.0] != 0
        {
            return None;
        }
        let k = self.model.nodes.iter().position(|n| n.output == a.id)?;
        let Op::Conv2d(conv) = &self.model.nodes[k].op else {
            return None;
        };
        if conv.area.is_some() {
            return None;
        }
        let (dims, _) = self.channels(a);
        // `[C, H, W]` with any leading 1s.
        let n = c.dims.len();
        if n < 3 || c.dims[..n - 3].iter().any(|&d| d != 1) || c.dims[n - 3..] != dims[1..] {
            return None;
        }
        let (ch, h, w) = (dims[1], dims[2], dims[3]);
        let v = c.floats().ok()?;
        (0..ch)
            .map(|o| rectangle(&v[o * h * w..(o + 1) * h * w], h, w))
            .collect::<Option<Vec<_>>>()
            .map(|r| (k, r))
    }

    /// Folds `y = x·scale[c] + shift[c]` into the layer producing `a`.
    fn fold_affine(
        &mut self,
        n: &NodeProto,
        a: Act,
        scale: Option<Vec<f32>>,
        shift: Vec<f32>,
        what: &str,
    ) -> NodeResult<()> {
        let Some(k) = self.fusable(a.id) else {
            return unsupported(format!(
                "{what} can only be folded into a directly preceding Conv/Gemm/MatMul whose output nothing else reads"
            ));
        };
        if matches!(&self.model.nodes[k].op, Op::Conv2d(c) if c.area.is_some())
            && shift.iter().any(|&x| x != 0.0)
        {
            return unsupported(format!(
                "{what} adds a constant after a partial-area convolution (it would reach the positions the areas leave at 0)"
            ));
        }
        let lw = self.model.nodes[k]
            .op
            .weights_mut()
            .expect("fusable is weighted");
        let fan = lw.weight.len() / lw.out_channels;
        for o in 0..lw.out_channels {
            let s = scale.as_ref().map_or(1.0, |s| s[o]);
            for w in &mut lw.weight[o * fan..(o + 1) * fan] {
                *w *= s;
            }
            lw.bias[o] = lw.bias[o] * s + shift[o];
        }
        self.out(n, Value::Act(a))
    }

    fn batchnorm(&mut self, n: &NodeProto) -> NodeResult<()> {
        let a = self.act_input(n, 0)?;
        let params: Vec<Rc<Const>> = (1..5)
            .map(|k| self.req_const(n, k))
            .collect::<NodeResult<_>>()?;
        let eps = float_attr(n, "epsilon").unwrap_or(1e-5);
        let (_, axis) = self.channels(&a);
        if axis != 1 {
            return unsupported("BatchNormalization of an NHWC value");
        }
        let ch = self.onnx_dims(&a)[0];
        let v: Vec<Vec<f32>> = params
            .iter()
            .map(|c| c.floats())
            .collect::<Result<_, _>>()?;
        if v.iter().any(|p| p.len() != ch) {
            return malformed(format!("parameters are not {ch} values each"));
        }
        let (gamma, beta, mean, var) = (&v[0], &v[1], &v[2], &v[3]);
        let scale: Vec<f32> = (0..ch).map(|c| gamma[c] / (var[c] + eps).sqrt()).collect();
        let shift: Vec<f32> = (0..ch).map(|c| beta[c] - mean[c] * scale[c]).collect();
        // `a` is Flat only after a Dense, whose output is in ONNX order; an NCHW image's
        // channels are IR channels.
        self.fold_affine(n, a, Some(scale), shift, "BatchNormalization")
    }

    fn relu(&mut self, n: &NodeProto, name: &str, act: Activation) -> NodeResult<()> {
        let a = self.act_input(n, 0)?;
        if let Some(k) = self.fusable(a.id) {
            match &mut self.model.nodes[k].op {
                Op::Dense(d) => d.activation = act,
                Op::Conv2d(c) => c.activation = act,
                _ => unreachable!("fusable is weighted"),
            }
            return self.out(n, Value::Act(a));
        }
        if act != Activation::Relu {
            return unsupported("ReLU6 that does not directly follow a Conv/Gemm/MatMul");
        }
        let shape = self.shape(a.id);
        let t = self.ir_node(name, Op::Relu, vec![a.id], shape);
        self.out(
            n,
            Value::Act(Act {
                id: t,
                kind: a.kind,
            }),
        )
    }

    fn clip(&mut self, n: &NodeProto, name: &str) -> NodeResult<()> {
        let bound = |this: &mut Self, k: usize, attr_name: &str, default: f32| -> NodeResult<f32> {
            if let Some(v) = float_attr(n, attr_name) {
                return Ok(v);
            }
            match this.const_input(n, k)? {
                Some(c) => Ok(*c.floats()?.first().ok_or("empty Clip bound")?),
                None => Ok(default),
            }
        };
        let lo = bound(self, 1, "min", f32::NEG_INFINITY)?;
        let hi = bound(self, 2, "max", f32::INFINITY)?;
        let act = match (lo, hi) {
            (l, h) if l == 0.0 && h == 6.0 => Activation::Relu6,
            (l, h) if l == 0.0 && h >= f32::MAX => Activation::Relu,
            _ => {
                return unsupported(format!(
                    "Clip({lo}, {hi}) (only ReLU (0, inf) and ReLU6 (0, 6))"
                ))
            }
        };
        self.relu(n, name, act)
    }

    fn pool(&mut self, n: &NodeProto, name: &str) -> NodeResult<()> {
        let a = self.act_input(n, 0)?;
        if a.kind != Kind::Nchw {
            return unsupported(format!(
                "{} of a {} value (NCHW images only)",
                n.op_type,
                kind_name(&a.kind)
            ));
        }
        let [h, w, c] = self.shape(a.id)[..] else {
            unreachable!("images are 3-D")
        };
        let global = n.op_type.starts_with("Global");
        let pool = if global {
            Pool {
                kernel: [h, w],
                stride: [1, 1],
                padding: [0; 4],
            }
        } else {
            let k = ints_attr(n, "kernel_shape").ok_or("no kernel_shape")?;
            let [kh, kw] = k[..] else {
                return unsupported(format!("kernel_shape {k:?} (2-D pools only)"));
            };
            if kh <= 0 || kw <= 0 {
                return malformed(format!("kernel_shape {k:?}"));
            }
            if ints_attr(n, "dilations").is_some_and(|d| d.iter().any(|&v| v != 1)) {
                return unsupported("dilated pooling");
            }
            let kernel = [kh as usize, kw as usize];
            let stride = pair(n, "strides")?;
            let padding = padding(n, [h, w], kernel, stride)?;
            if n.op_type == "AveragePool"
                && int_attr(n, "count_include_pad") == Some(1)
                && padding.iter().any(|&p| p > 0)
            {
                return unsupported(
                    "count_include_pad = 1 with padding (the IR averages valid elements)",
                );
            }
            let p = Pool {
                kernel,
                stride,
                padding,
            };
            if int_attr(n, "ceil_mode") == Some(1) {
                let ceil = |len: usize, k: usize, s: usize, pb: usize, pa: usize| {
                    (len + pb + pa).checked_sub(k).map(|r| r.div_ceil(s) + 1)
                };
                let floor = p.output_shape(&[h, w, c]);
                let ceiled = ceil(h, kernel[0], stride[0], padding[0], padding[2])
                    .zip(ceil(w, kernel[1], stride[1], padding[1], padding[3]))
                    .map(|(oh, ow)| vec![oh, ow, c]);
                if floor != ceiled {
                    return unsupported("ceil_mode = 1 where it changes the output size");
                }
            }
            p
        };
        let Some(shape) = pool.output_shape(&[h, w, c]) else {
            return unsupported(format!(
                "window {:?} stride {:?} padding {:?} on a {h}x{w} image",
                pool.kernel, pool.stride, pool.padding
            ));
        };
        let op = if n.op_type.ends_with("AveragePool") {
            Op::AvgPool(pool)
        } else {
            Op::MaxPool(pool)
        };
        let t = self.ir_node(name, op, vec![a.id], shape);
        self.out(
            n,
            Value::Act(Act {
                id: t,
                kind: Kind::Nchw,
            }),
        )
    }

    /// `[N, ...]` → `[N, F]`: an IR Flatten for images, with the CHW → HWC permutation
    /// recorded for NCHW ones.
    fn flatten(&mut self, a: Act, name: &str) -> NodeResult<Act> {
        let s = self.shape(a.id);
        let perm = match a.kind {
            Kind::Flat(_) => return Ok(a),
            Kind::Nhwc => None,
            Kind::Nchw => {
                let [h, w, c] = s[..] else {
                    unreachable!("images are 3-D")
                };
                (c > 1 && h * w > 1).then(|| {
                    let mut p = vec![0; h * w * c];
                    for ci in 0..c {
                        for pos in 0..h * w {
                            p[ci * h * w + pos] = pos * c + ci;
                        }
                    }
                    Rc::new(p)
                })
            }
        };
        let len = s.iter().product();
        let t = self.ir_node(name, Op::Flatten, vec![a.id], vec![len]);
        Ok(Act {
            id: t,
            kind: Kind::Flat(perm),
        })
    }

    fn reshape(&mut self, n: &NodeProto, name: &str) -> NodeResult<()> {
        let a = self.act_input(n, 0)?;
        let target = self.req_const(n, 1)?.opt_ints()?;
        let dims = self.onnx_dims(&a);
        let len: usize = dims.iter().product();
        let allowzero = int_attr(n, "allowzero") == Some(1);
        // Resolve with a stand-in batch of 1; the first target entry must then be the batch.
        let first_is_batch = match target.first() {
            Some(None) => true,
            Some(Some(0)) => !allowzero,
            Some(Some(1)) => true,
            Some(Some(-1)) => target[1..].iter().all(|t| t.is_some_and(|v| v > 0)),
            _ => false,
        };
        let rest: Vec<i64> = target
            .iter()
            .skip(1)
            .map(|t| {
                t.ok_or_else(|| {
                    NodeError::Unsupported("a Reshape that moves the batch dimension".into())
                })
            })
            .collect::<NodeResult<_>>()?;
        if !first_is_batch {
            return unsupported(format!(
                "Reshape to {target:?}: the first dimension must stay the batch"
            ));
        }
        let mut full: Vec<i64> = vec![1];
        full.extend(&rest);
        let in_full: Vec<usize> = std::iter::once(1).chain(dims.iter().copied()).collect();
        let out = resolve_reshape(&in_full, &full, allowzero)?;
        let out = &out[1..];
        if out.iter().product::<usize>() != len {
            return malformed(format!("cannot reshape {dims:?} to {target:?}"));
        }
        if out.len() == 1 {
            let v = self.flatten(a, name)?;
            return self.out(n, Value::Act(v));
        }
        if out == dims.as_slice() {
            return self.out(n, Value::Act(a));
        }
        // A flat graph input reshaped to an image: the IR input takes the image shape (no
        // node), provided the memory order is the same (NHWC, or NCHW with one channel).
        let is_input = a.id == self.model.inputs[0]
            && self.pending[a.id.0] == 0
            && self.ir_reads[a.id.0] == 0
            && a.kind == Kind::Flat(None);
        if let (true, &[d1, d2, d3]) = (is_input, out) {
            let out_name = n.output.first().map_or("", |s| s.as_str());
            let (shape, kind) = if self.nhwc_values.contains(out_name) {
                (vec![d1, d2, d3], Kind::Nhwc)
            } else if d1 == 1 || d2 * d3 == 1 {
                (vec![d2, d3, d1], Kind::Nchw)
            } else {
                return unsupported(format!(
                    "Reshape of the flat input to NCHW {out:?}: with several channels the IR's HWC memory order differs"
                ));
            };
            self.model.tensors[a.id.0].shape = shape.clone();
            self.input_layout = if kind == Kind::Nhwc {
                InputLayout::Nhwc {
                    h: shape[0],
                    w: shape[1],
                    c: shape[2],
                }
            } else {
                InputLayout::Nchw {
                    c: d1,
                    h: d2,
                    w: d3,
                }
            };
            return self.out(n, Value::Act(Act { id: a.id, kind }));
        }
        unsupported(format!("Reshape of {dims:?} to {target:?}"))
    }

    fn finish(
        mut self,
        graph: &GraphProto,
        class_names: Vec<String>,
    ) -> Result<Imported, ImportError> {
        if !self.unsupported.is_empty() {
            return Err(ImportError::Unsupported(self.unsupported));
        }
        let [out] = &graph.output[..] else {
            return Err(ImportError::Graph(format!(
                "the graph has {} outputs; exactly one is supported",
                graph.output.len()
            )));
        };
        let a = match self.values.get(&out.name) {
            Some(Value::Act(a)) => a.clone(),
            Some(_) => {
                return Err(ImportError::Graph(format!(
                    "output {:?} does not depend on the input",
                    out.name
                )))
            }
            None => {
                return Err(ImportError::Graph(format!(
                    "output {:?} is not produced by any node",
                    out.name
                )))
            }
        };
        let id = match &a.kind {
            Kind::Flat(None) => a.id,
            Kind::Flat(Some(_)) => {
                return Err(ImportError::Graph(format!(
                "output {:?} is a flattened NCHW image whose element order the IR cannot reproduce",
                out.name
            )))
            }
            Kind::Nhwc => {
                let v = self
                    .flatten(a, "output.flatten")
                    .map_err(|_| ImportError::Graph("cannot flatten the output".into()))?;
                v.id
            }
            Kind::Nchw => {
                let v = self
                    .flatten(a, "output.flatten")
                    .map_err(|_| ImportError::Graph("cannot flatten the output".into()))?;
                if !matches!(v.kind, Kind::Flat(None)) {
                    return Err(ImportError::Graph(format!(
                        "output {:?} is an NCHW image with several channels and pixels, whose element order the IR cannot reproduce",
                        out.name
                    )));
                }
                v.id
            }
        };
        if id == self.model.inputs[0] {
            return Err(ImportError::Graph(
                "the graph computes nothing (its output is its input)".into(),
            ));
        }
        self.model.outputs.push(id);
        if !class_names.is_empty() && class_names.len() != self.model.output_len() {
            return Err(ImportError::Graph(format!(
                "{} class names for {} outputs",
                class_names.len(),
                self.model.output_len()
            )));
        }
        self.model.class_names = class_names;
        self.model.validate()?;
        Ok(Imported {
            model: self.model,
            input_layout: self.input_layout,
            notes: self.notes,
            onnx_nodes: self.n_nodes,
        })
    }
}

/// Names of the values whose every reader is a `Transpose(perm = [0, 3, 1, 2])`.
fn transposed_to_nchw(graph: &GraphProto) -> HashSet<&str> {
    let mut all_nchw: HashMap<&str, bool> = HashMap::new();
    for n in &graph.node {
        let to_nchw = n.op_type == "Transpose" && ints_attr(n, "perm") == Some(vec![0, 3, 1, 2]);
        for i in &n.input {
            *all_nchw.entry(i.as_str()).or_insert(true) &= to_nchw;
        }
    }
    for o in &graph.output {
        all_nchw.insert(o.name.as_str(), false);
    }
    all_nchw
        .into_iter()
        .filter(|&(_, v)| v)
        .map(|(k, _)| k)
        .collect()
}

fn kind_name(k: &Kind) -> &'static str {
    match k {
        Kind::Nchw => "NCHW",
        Kind::Nhwc => "NHWC",
        Kind::Flat(_) => "flat",
    }
}

/// Values of `c` per channel when `c` broadcast against `dims` varies only along `axis`.
/// The rectangle of ones of an `h x w` 0/1 mask (rows first), or None when the mask holds other
/// values or its ones are not exactly one rectangle. All zeros: an empty rectangle.
fn rectangle(m: &[f32], h: usize, w: usize) -> Option<Area> {
    if m.iter().any(|&x| x != 0.0 && x != 1.0) {
        return None;
    }
    let ones: Vec<usize> = (0..h * w).filter(|&i| m[i] == 1.0).collect();
    let Some(&first) = ones.first() else {
        return Some(Area {
            y0: 0,
            x0: 0,
            y1: 0,
            x1: 0,
        });
    };
    let last = ones[ones.len() - 1];
    let a = Area {
        y0: first / w,
        y1: last / w + 1,
        x0: ones.iter().map(|i| i % w).min()?,
        x1: ones.iter().map(|i| i % w).max()? + 1,
    };
    (ones.len() == a.len()).then_some(a)
}

fn per_channel(c: &Const, dims: &[usize], axis: usize) -> Option<Vec<f32>> {
    if c.dims.len() > dims.len() {
        return None;
    }
    let pad = dims.len() - c.dims.len();
    let cd: Vec<usize> = std::iter::repeat_n(1, pad)
        .chain(c.dims.iter().copied())
        .collect();
    if cd.iter().enumerate().any(|(i, &d)| i != axis && d != 1) {
        return None;
    }
    let v = c.floats().ok()?;
    match cd[axis] {
        1 => Some(vec![v[0]; dims[axis]]),
        x if x == dims[axis] => Some(v),
        _ => None,
    }
}

/// ONNX Reshape semantics: `0` copies the input dimension (unless `allowzero`), `-1` is
/// inferred.
fn resolve_reshape(input: &[usize], target: &[i64], allowzero: bool) -> Result<Vec<usize>, String> {
    let total: usize = input.iter().product();
    let mut out = Vec::with_capacity(target.len());
    let mut infer = None;
    for (i, &t) in target.iter().enumerate() {
        match t {
            -1 if infer.is_none() => {
                infer = Some(i);
                out.push(1);
            }
            0 if !allowzero => out.push(*input.get(i).ok_or("Reshape 0 beyond the input rank")?),
            t if t >= 0 => out.push(t as usize),
            _ => return Err(format!("invalid Reshape target {target:?}")),
        }
    }
    let known: usize = out.iter().product();
    if let Some(i) = infer {
        if known == 0 || !total.is_multiple_of(known) {
            return Err(format!("cannot reshape {input:?} to {target:?}"));
        }
        out[i] = total / known;
    } else if known != total {
        return Err(format!("cannot reshape {input:?} to {target:?}"));
    }
    Ok(out)
}

fn attr<'n>(n: &'n NodeProto, name: &str) -> Option<&'n AttributeProto> {
    n.attribute.iter().find(|a| a.name == name)
}

fn int_attr(n: &NodeProto, name: &str) -> Option<i64> {
    attr(n, name).map(|a| a.i)
}

fn float_attr(n: &NodeProto, name: &str) -> Option<f32> {
    attr(n, name).map(|a| a.f)
}

fn ints_attr(n: &NodeProto, name: &str) -> Option<Vec<i64>> {
    attr(n, name).map(|a| a.ints.clone())
}

/// A 2-D `strides` attribute (default 1).
fn pair(n: &NodeProto, name: &str) -> NodeResult<[usize; 2]> {
    match ints_attr(n, name).as_deref() {
        None => Ok([1, 1]),
        Some(&[a, b]) if a > 0 && b > 0 => Ok([a as usize, b as usize]),
        Some(v) => malformed(format!("{name} {v:?}")),
    }
}

/// `[top, left, bottom, right]` from `pads` (ONNX order: begins then ends) or `auto_pad`.
fn padding(
    n: &NodeProto,
    hw: [usize; 2],
    k: [usize; 2],
    stride: [usize; 2],
) -> NodeResult<[usize; 4]> {
    let auto = attr(n, "auto_pad")
        .map(|a| String::from_utf8_lossy(&a.s).into_owned())
        .unwrap_or_default();
    match auto.as_str() {
        "" | "NOTSET" => match ints_attr(n, "pads").as_deref() {
            None => Ok([0; 4]),
            Some(&[t, l, b, r]) if [t, l, b, r].iter().all(|&p| p >= 0) => {
                Ok([t as usize, l as usize, b as usize, r as usize])
            }
            Some(p) => malformed(format!("pads {p:?}")),
        },
        "VALID" => Ok([0; 4]),
        "SAME_UPPER" | "SAME_LOWER" => {
            let mut pads = [0; 4];
            for d in 0..2 {
                let out = hw[d].div_ceil(stride[d]);
                let total = ((out - 1) * stride[d] + k[d]).saturating_sub(hw[d]);
                let small = total / 2;
                let (before, after) = if auto == "SAME_UPPER" {
                    (small, total - small)
                } else {
                    (total - small, small)
                };
                pads[d] = before;
                pads[d + 2] = after;
            }
            Ok(pads)
        }
        other => malformed(format!("auto_pad {other:?}")),
    }
}

/// The tensor of a `Constant` node (any of its value attributes).
fn constant_attr(n: &NodeProto) -> NodeResult<Const> {
    let a = n.attribute.first().ok_or("Constant without a value")?;
    let t = |t: &TensorProto| Const::from_proto(t).map_err(NodeError::Malformed);
    match (a.name.as_str(), AttributeType::try_from(a.r#type)) {
        ("value", _) => t(a.t.as_ref().ok_or("Constant value is not a tensor")?),
        ("value_float", _) => Ok(Const::scalar_f(a.f)),
        ("value_floats", _) => Ok(Const {
            dims: vec![a.floats.len()],
            data: Data::F(a.floats.clone()),
        }),
        ("value_int", _) => Ok(Const::ints(vec![], vec![Some(a.i)])),
        ("value_ints", _) => Ok(Const::ints(
            vec![a.ints.len()],
            a.ints.iter().map(|&v| Some(v)).collect(),
        )),
        (other, _) => unsupported(format!("Constant attribute {other:?}")),
    }
}
