//! DAG-cell search spaces (AutoShrink): a cell is a DAG of feature maps whose candidate edges
//! each carry an operation; a candidate architecture is the subset of edges kept.
//!
//! ```toml
//! name = "cell"
//! kind = "cell"
//! input = [28, 28, 1]        # optional: the dataset's own [H, W, C] when omitted
//! [stem]                     # conv (same padding, ReLU) to `channels` maps, then a pool
//! channels = 8
//! kernel = 3
//! pool = "max"               # 2x2 stride 2 after the stem: "max", "avg" or "none"
//! [cell]
//! nodes = 4                  # node 0 is the cell's input, node `nodes` its output
//! repeat = 1                 # cells stacked (the same edges), a 2x2 max pool between two
//! edges = [{ from = 0, to = 1, op = "conv3x3" }, { from = 0, to = 4, op = "identity" }]
//! [head]
//! pool = "global"            # after the last cell: "global" (average), "max", "avg", "none"
//! fc = [32]                  # hidden Dense widths before the classifier (optional)
//! ```
//!
//! Every node of a cell has the stem's channels and the cell's spatial size (same padding,
//! stride 1), so a node merges its incoming edges by element-wise sum (a chain of two-input
//! `Add`s, TFLite's ADD). Ops: `conv1x1`, `conv3x3`, `conv5x5` (ReLU), `sep3x3`, `sep5x5`
//! (depthwise k×k + pointwise 1×1, both ReLU), `maxpool3x3`, `avgpool3x3` (stride 1, padded),
//! `identity`. Parallel edges between two nodes with different ops are allowed: removing one is
//! AutoShrink's operation shrinking.
//!
//! An architecture keeps only *live* edges: an edge is live when it lies on a path from the
//! cell's input to its output (another edge would compute a value nothing reads). Its weights
//! are named after the space's edge ids (`c{cell}e{edge}`), so a child cell finds its parent's
//! trained weights by name (weight sharing).

use super::SearchError;
use crate::ir::{Activation, Conv2d, Dense, Model, Op, Pool, TensorId};
use crate::synth::seed_file::DataShape;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

/// The operation an edge applies; every one keeps the `[H, W, C]` shape.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EdgeOp {
    Conv1x1,
    Conv3x3,
    Conv5x5,
    Sep3x3,
    Sep5x5,
    Maxpool3x3,
    Avgpool3x3,
    Identity,
}

impl EdgeOp {
    const ALL: [(EdgeOp, &'static str, &'static str); 8] = [
        (EdgeOp::Conv1x1, "conv1x1", "c1"),
        (EdgeOp::Conv3x3, "conv3x3", "c3"),
        (EdgeOp::Conv5x5, "conv5x5", "c5"),
        (EdgeOp::Sep3x3, "sep3x3", "s3"),
        (EdgeOp::Sep5x5, "sep5x5", "s5"),
        (EdgeOp::Maxpool3x3, "maxpool3x3", "mp3"),
        (EdgeOp::Avgpool3x3, "avgpool3x3", "ap3"),
        (EdgeOp::Identity, "identity", "id"),
    ];

    fn parse(s: &str) -> Result<EdgeOp, String> {
        EdgeOp::ALL
            .iter()
            .find(|(_, name, _)| *name == s)
            .map(|(op, _, _)| *op)
            .ok_or_else(|| {
                let names: Vec<&str> = EdgeOp::ALL.iter().map(|(_, n, _)| *n).collect();
                format!("unknown op {s:?}: use one of {}", names.join(", "))
            })
    }

    /// The name space files use (`conv3x3`, `identity`, ...).
    pub fn name(self) -> &'static str {
        EdgeOp::ALL
            .iter()
            .find(|(op, _, _)| *op == self)
            .map(|(_, n, _)| *n)
            .expect("every op is listed")
    }

    /// The short code of keys (`c3`, `s5`, `id`, ...).
    fn code(self) -> &'static str {
        EdgeOp::ALL
            .iter()
            .find(|(op, _, _)| *op == self)
            .map(|(_, _, c)| *c)
            .expect("every op is listed")
    }
}

/// One candidate edge: `from < to`, node indices of the cell.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Edge {
    pub from: usize,
    pub to: usize,
    pub op: EdgeOp,
}

/// A pool between feature maps.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HeadPool {
    /// Average over the whole map (global average pooling).
    Global,
    Max,
    Avg,
    None,
}

/// The fixed part of a cell space and its candidate edges: what every architecture of the
/// space shares. Self-contained, so a [`CellArch`] lowers without its space file.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct CellSpec {
    pub name: String,
    pub stem_channels: usize,
    pub stem_kernel: usize,
    /// Max, Avg or None (2×2, stride 2).
    pub stem_pool: HeadPool,
    /// Node `nodes` is the cell's output; node 0 its input.
    pub nodes: usize,
    pub repeat: usize,
    pub edges: Vec<Edge>,
    pub head_pool: HeadPool,
    pub head_fc: Vec<usize>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCellSpace {
    name: String,
    #[serde(default)]
    #[allow(dead_code)]
    description: Option<String>,
    #[allow(dead_code)]
    kind: String,
    #[serde(default)]
    input: Option<Vec<usize>>,
    stem: RawStem,
    cell: RawCell,
    head: RawHead,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStem {
    channels: usize,
    kernel: usize,
    #[serde(default = "none")]
    pool: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCell {
    nodes: usize,
    #[serde(default = "one")]
    repeat: usize,
    edges: Vec<RawEdge>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEdge {
    from: usize,
    to: usize,
    op: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHead {
    #[serde(default = "global")]
    pool: String,
    #[serde(default)]
    fc: Vec<usize>,
}

fn none() -> String {
    "none".into()
}
fn global() -> String {
    "global".into()
}
fn one() -> usize {
    1
}

fn pool_kind(s: &str, global_ok: bool) -> Result<HeadPool, String> {
    match s {
        "max" => Ok(HeadPool::Max),
        "avg" => Ok(HeadPool::Avg),
        "none" => Ok(HeadPool::None),
        "global" if global_ok => Ok(HeadPool::Global),
        _ => Err(format!(
            "unknown pool {s:?}: use \"max\", \"avg\"{} or \"none\"",
            if global_ok { ", \"global\"" } else { "" }
        )),
    }
}

/// Parses a `kind = "cell"` space: its spec and optional input shape. `file` names the source
/// in errors.
pub fn parse(text: &str, file: &str) -> Result<(CellSpec, Option<Vec<usize>>), SearchError> {
    let bad = |problem: String| SearchError::Space {
        file: file.to_string(),
        problem,
    };
    let raw: RawCellSpace = toml::from_str(text).map_err(|e| bad(e.to_string()))?;
    if let Some(input) = &raw.input {
        if input.len() != 3 || input.contains(&0) {
            return Err(bad(format!(
                "a cell space's `input` is [H, W, C] (positive), got {input:?}"
            )));
        }
    }
    if raw.stem.channels == 0 || raw.stem.kernel == 0 {
        return Err(bad("[stem] channels and kernel must be positive".into()));
    }
    if raw.cell.nodes == 0 || raw.cell.repeat == 0 {
        return Err(bad("[cell] nodes and repeat must be positive".into()));
    }
    if raw.head.fc.contains(&0) {
        return Err(bad("[head] fc widths must be positive".into()));
    }
    let mut edges = Vec::with_capacity(raw.cell.edges.len());
    for (i, e) in raw.cell.edges.iter().enumerate() {
        let at = |p: String| bad(format!("[cell] edge {i} ({}→{}): {p}", e.from, e.to));
        if e.from >= e.to || e.to > raw.cell.nodes {
            return Err(at(format!(
                "edges run forward between nodes 0..={} (from < to)",
                raw.cell.nodes
            )));
        }
        let edge = Edge {
            from: e.from,
            to: e.to,
            op: EdgeOp::parse(&e.op).map_err(at)?,
        };
        if edges.contains(&edge) {
            return Err(at(format!("listed twice with op {:?}", e.op)));
        }
        edges.push(edge);
    }
    let spec = CellSpec {
        name: raw.name,
        stem_channels: raw.stem.channels,
        stem_kernel: raw.stem.kernel,
        stem_pool: pool_kind(&raw.stem.pool, false).map_err(|e| bad(format!("[stem] {e}")))?,
        nodes: raw.cell.nodes,
        repeat: raw.cell.repeat,
        edges,
        head_pool: pool_kind(&raw.head.pool, true).map_err(|e| bad(format!("[head] {e}")))?,
        head_fc: raw.head.fc,
    };
    let full = spec.full();
    if !full.connected() {
        return Err(bad(format!(
            "[cell] no path of edges leads from node 0 to node {}",
            spec.nodes
        )));
    }
    Ok((spec, raw.input))
}

impl CellSpec {
    /// Every candidate edge kept (its live part).
    pub fn full(&self) -> CellArch {
        CellArch::new(self.clone(), (0..self.edges.len()).collect())
    }

    /// Which of `edges` (ids) are live, and whether node 0 still reaches the output.
    fn live(&self, edges: &[usize]) -> (Vec<usize>, bool) {
        let n = self.nodes;
        let mut fwd = vec![false; n + 1];
        fwd[0] = true;
        let mut bwd = vec![false; n + 1];
        bwd[n] = true;
        // Edges run forward: one pass in node order settles reachability each way.
        for j in 1..=n {
            fwd[j] = edges
                .iter()
                .any(|&e| self.edges[e].to == j && fwd[self.edges[e].from]);
        }
        for i in (0..n).rev() {
            bwd[i] = edges
                .iter()
                .any(|&e| self.edges[e].from == i && bwd[self.edges[e].to]);
        }
        let live = edges
            .iter()
            .copied()
            .filter(|&e| fwd[self.edges[e].from] && bwd[self.edges[e].to])
            .collect();
        (live, fwd[n])
    }
}

/// A cell architecture: the space's spec and the ids of the edges kept, all live, ascending.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct CellArch {
    pub spec: CellSpec,
    pub edges: Vec<usize>,
}

impl CellArch {
    /// `edges` reduced to its live part (ids out of range are dropped).
    pub fn new(spec: CellSpec, mut edges: Vec<usize>) -> CellArch {
        edges.retain(|&e| e < spec.edges.len());
        edges.sort_unstable();
        edges.dedup();
        let (live, _) = spec.live(&edges);
        CellArch { spec, edges: live }
    }

    /// Whether node 0 reaches the cell's output.
    pub fn connected(&self) -> bool {
        self.spec.live(&self.edges).1
    }

    /// `cell[0-1:c3,1-4:id]`: the kept edges as `from-to:op`, by edge id.
    pub fn key(&self) -> String {
        let edges: Vec<String> = self
            .edges
            .iter()
            .map(|&e| {
                let d = &self.spec.edges[e];
                format!("{}-{}:{}", d.from, d.to, d.op.code())
            })
            .collect();
        format!("{}[{}]", self.spec.name, edges.join(","))
    }

    /// AutoShrink's shrink space: for each kept edge (ascending id), the architecture without it,
    /// when the cell stays connected. Removing an edge can leave others off every input→output
    /// path; those go too (they would compute values nothing reads).
    pub fn shrink_moves(&self) -> Vec<(usize, CellArch)> {
        self.edges
            .iter()
            .filter_map(|&e| {
                let rest: Vec<usize> = self.edges.iter().copied().filter(|&x| x != e).collect();
                let child = CellArch::new(self.spec.clone(), rest);
                child.connected().then_some((e, child))
            })
            .collect()
    }

    /// A random connected sub-cell (each edge kept with probability ½; the full cell when the
    /// draw disconnects it): random and STEERAGE search over a cell space.
    pub fn sample(spec: &CellSpec, rng: &mut impl Rng) -> CellArch {
        let edges = (0..spec.edges.len())
            .filter(|_| rng.random_bool(0.5))
            .collect();
        let c = CellArch::new(spec.clone(), edges);
        if c.connected() {
            c
        } else {
            spec.full()
        }
    }

    /// One edge toggled (added back or removed), if the cell stays connected.
    pub fn mutate(&self, rng: &mut impl Rng) -> CellArch {
        let e = rng.random_range(0..self.spec.edges.len());
        let mut edges = self.edges.clone();
        match edges.iter().position(|&x| x == e) {
            Some(i) => {
                edges.remove(i);
            }
            None => edges.push(e),
        }
        let c = CellArch::new(self.spec.clone(), edges);
        if c.connected() {
            c
        } else {
            self.clone()
        }
    }

    /// The predictor's architecture features: one indicator per candidate edge, and the count.
    pub fn features(&self) -> Vec<f64> {
        let mut f: Vec<f64> = (0..self.spec.edges.len())
            .map(|e| f64::from(u8::from(self.edges.contains(&e))))
            .collect();
        f.push(self.edges.len() as f64);
        f
    }

    /// The model on `data` (`input` re-shapes its samples, e.g. digits' 64 features as
    /// `[8, 8, 1]`), He-initialised from `seed`, validated.
    pub fn to_model(
        &self,
        data: &DataShape,
        input: Option<&[usize]>,
        seed: u64,
    ) -> Result<Model, SearchError> {
        let bad = |problem: String| SearchError::Candidate {
            key: self.key(),
            problem: format!("{}: {problem}", self.key()),
        };
        let n_data: usize = data.sample_shape.iter().product();
        let shape = input.map_or_else(|| data.sample_shape.clone(), <[usize]>::to_vec);
        let [h, w, c_in] = shape[..] else {
            return Err(bad(format!(
                "a cell reads an [H, W, C] input, the data's is {shape:?} (set `input` in the space)"
            )));
        };
        if h * w * c_in != n_data {
            return Err(bad(format!(
                "input {shape:?} holds {} values, the dataset's samples {n_data}",
                h * w * c_in
            )));
        }
        if !self.connected() {
            return Err(bad("the cell's input does not reach its output".into()));
        }
        let s = &self.spec;
        let c = s.stem_channels;
        let mut b = Builder {
            m: Model::with_input(
                self.key(),
                shape.clone(),
                data.preprocess.clone(),
                data.class_names.clone(),
            ),
            rng: ChaCha8Rng::seed_from_u64(seed),
        };
        let mut x = b.m.inputs[0];
        x = b.conv("stem", x, [h, w, c_in], c, s.stem_kernel, 1);
        let mut hw = [h, w];
        (x, hw) = b.pool("stem.pool", x, hw, c, s.stem_pool, &bad)?;
        for r in 0..s.repeat {
            if r > 0 {
                (x, hw) = b.pool(&format!("c{r}.reduce"), x, hw, c, HeadPool::Max, &bad)?;
            }
            let mut node: Vec<Option<TensorId>> = vec![None; s.nodes + 1];
            node[0] = Some(x);
            for j in 1..=s.nodes {
                let mut terms = Vec::new();
                for &e in self.edges.iter().filter(|&&e| s.edges[e].to == j) {
                    let d = s.edges[e];
                    let src = node[d.from].expect("a live edge leaves a computed node");
                    terms.push(b.edge(&format!("c{r}e{e}"), src, [hw[0], hw[1], c], d.op));
                }
                let Some((&first, rest)) = terms.split_first() else {
                    continue;
                };
                let mut sum = first;
                for (k, &t) in rest.iter().enumerate() {
                    sum = b.m.add_node(
                        format!("c{r}n{j}.add{k}"),
                        Op::Add,
                        vec![sum, t],
                        vec![hw[0], hw[1], c],
                    );
                }
                node[j] = Some(sum);
            }
            x = node[s.nodes].expect("a connected cell computes its output");
        }
        let mut flat = hw[0] * hw[1] * c;
        if s.head_pool == HeadPool::Global {
            let p = Pool {
                kernel: hw,
                stride: hw,
                padding: [0; 4],
            };
            x =
                b.m.add_node("head.pool", Op::AvgPool(p), vec![x], vec![1, 1, c]);
            flat = c;
        } else {
            (x, hw) = b.pool("head.pool", x, hw, c, s.head_pool, &bad)?;
            flat = flat.min(hw[0] * hw[1] * c);
        }
        x =
            b.m.add_node("head.flatten", Op::Flatten, vec![x], vec![flat]);
        let mut width = flat;
        for (i, &u) in s.head_fc.iter().enumerate() {
            x = b.dense(&format!("head.fc{i}"), x, width, u, Activation::Relu);
            width = u;
        }
        let classes = data.class_names.len();
        x = b.dense("head.out", x, width, classes, Activation::None);
        b.m.outputs.push(x);
        b.m.validate()
            .map_err(|e| bad(format!("builds an invalid model: {e}")))?;
        Ok(b.m)
    }
}

struct Builder {
    m: Model,
    rng: ChaCha8Rng,
}

impl Builder {
    /// He-uniform, as the seed-file builder initialises.
    fn he(&mut self, n: usize, fan_in: usize) -> Vec<f32> {
        let bound = (6.0 / fan_in.max(1) as f64).sqrt() as f32;
        (0..n)
            .map(|_| self.rng.random_range(-bound..bound))
            .collect()
    }

    /// A k×k same-padded stride-1 ReLU convolution (`groups` 1 or the input's channels).
    fn conv(
        &mut self,
        name: &str,
        x: TensorId,
        [h, w, cin]: [usize; 3],
        cout: usize,
        k: usize,
        groups: usize,
    ) -> TensorId {
        let fan_in = k * k * cin / groups;
        let lo = (k - 1) / 2;
        let conv = Conv2d::new(
            cin,
            cout,
            [k, k],
            [1, 1],
            [lo, lo, k - 1 - lo, k - 1 - lo],
            groups,
            self.he(cout * fan_in, fan_in),
            vec![0.0; cout],
            Activation::Relu,
        );
        self.m
            .add_node(name, Op::Conv2d(conv), vec![x], vec![h, w, cout])
    }

    fn dense(
        &mut self,
        name: &str,
        x: TensorId,
        n_in: usize,
        n_out: usize,
        a: Activation,
    ) -> TensorId {
        let d = Dense::new(
            n_in,
            n_out,
            self.he(n_in * n_out, n_in),
            vec![0.0; n_out],
            a,
        );
        self.m.add_node(name, Op::Dense(d), vec![x], vec![n_out])
    }

    /// A 2×2 stride-2 pool (none: `x` unchanged).
    fn pool(
        &mut self,
        name: &str,
        x: TensorId,
        hw: [usize; 2],
        c: usize,
        kind: HeadPool,
        bad: &dyn Fn(String) -> SearchError,
    ) -> Result<(TensorId, [usize; 2]), SearchError> {
        let p = Pool::square(2);
        let op = match kind {
            HeadPool::Max => Op::MaxPool(p),
            HeadPool::Avg => Op::AvgPool(p),
            HeadPool::None | HeadPool::Global => return Ok((x, hw)),
        };
        let out = p
            .output_shape(&[hw[0], hw[1], c])
            .ok_or_else(|| bad(format!("{name}: a 2x2 pool does not fit a {hw:?} map")))?;
        Ok((
            self.m.add_node(name, op, vec![x], out.clone()),
            [out[0], out[1]],
        ))
    }

    /// The edge's op on `x`; identity adds no node.
    fn edge(&mut self, name: &str, x: TensorId, hwc: [usize; 3], op: EdgeOp) -> TensorId {
        let c = hwc[2];
        let same3 = Pool {
            kernel: [3, 3],
            stride: [1, 1],
            padding: [1; 4],
        };
        match op {
            EdgeOp::Conv1x1 => self.conv(name, x, hwc, c, 1, 1),
            EdgeOp::Conv3x3 => self.conv(name, x, hwc, c, 3, 1),
            EdgeOp::Conv5x5 => self.conv(name, x, hwc, c, 5, 1),
            EdgeOp::Sep3x3 | EdgeOp::Sep5x5 => {
                let k = if op == EdgeOp::Sep3x3 { 3 } else { 5 };
                let dw = self.conv(&format!("{name}.dw"), x, hwc, c, k, c);
                self.conv(&format!("{name}.pw"), dw, hwc, c, 1, 1)
            }
            EdgeOp::Maxpool3x3 => self
                .m
                .add_node(name, Op::MaxPool(same3), vec![x], hwc.to_vec()),
            EdgeOp::Avgpool3x3 => self
                .m
                .add_node(name, Op::AvgPool(same3), vec![x], hwc.to_vec()),
            EdgeOp::Identity => x,
        }
    }
}

/// Copies into `child` every weighted node's weights and biases that `parent` has under the
/// same name and size (a child cell inherits its parent's training); returns how many nodes.
pub fn inherit(child: &mut Model, parent: &Model) -> usize {
    let mut n = 0;
    for node in &mut child.nodes {
        let Some(p) = parent.nodes.iter().find(|p| p.name == node.name) else {
            continue;
        };
        let (Some(src), Some(dst)) = (p.op.weights(), node.op.weights_mut()) else {
            continue;
        };
        if src.weight.len() == dst.weight.len() && src.bias.len() == dst.bias.len() {
            dst.weight.copy_from_slice(src.weight);
            dst.bias.copy_from_slice(src.bias);
            *dst.mask = src.mask.clone();
            n += 1;
        }
    }
    n
}

/// The weights and biases of every weighted node, in node order, as hex of the f32 bits: exact
/// through a JSON state file (decimal text of an f32 may come back one ulp off).
pub fn weights_hex(m: &Model) -> Vec<String> {
    m.nodes
        .iter()
        .filter_map(|n| n.op.weights())
        .map(|w| {
            w.weight
                .iter()
                .chain(w.bias)
                .map(|v| format!("{:08x}", v.to_bits()))
                .collect()
        })
        .collect()
}

/// Loads [`weights_hex`] output into a model of the same architecture.
pub fn set_weights_hex(m: &mut Model, hex: &[String]) -> Result<(), String> {
    let mut it = hex.iter();
    for node in &mut m.nodes {
        let name = node.name.clone();
        let Some(w) = node.op.weights_mut() else {
            continue;
        };
        let s = it
            .next()
            .ok_or_else(|| format!("no stored weights for node {name}"))?;
        let (nw, nb) = (w.weight.len(), w.bias.len());
        if s.len() != 8 * (nw + nb) || !s.is_ascii() {
            return Err(format!(
                "node {name}: {} stored values for {} weights and biases",
                s.len() / 8,
                nw + nb
            ));
        }
        let vals = (0..nw + nb)
            .map(|i| u32::from_str_radix(&s[8 * i..8 * i + 8], 16).map(f32::from_bits))
            .collect::<Result<Vec<f32>, _>>()
            .map_err(|e| format!("node {name}: {e}"))?;
        w.weight.copy_from_slice(&vals[..nw]);
        w.bias.copy_from_slice(&vals[nw..]);
        // A dormant connection keeps weight 0 (cells are dense: every mask bit is on).
        for (i, v) in w.weight.iter_mut().enumerate() {
            if !w.mask.get(i) {
                *v = 0.0;
            }
        }
    }
    if it.next().is_some() {
        return Err("more stored weight arrays than weighted nodes".into());
    }
    Ok(())
}
