//! Neuron- and filter-level edits of a float model: who reads a layer's outputs, adding a neuron,
//! removing one, and removing the neurons/filters pruning left dead.
//!
//! A Dense layer's output may reach later Dense layers directly, through a standalone Relu, or
//! through a Concat (SCANN's cross-layer connections); a column index in the reader is then
//! `offset + j` for the producer's value `j`. A conv's output may reach a conv (through
//! pools/Relu) or, through Flatten, a Dense layer that reads channel `c` at columns `p·C + c`.

use crate::ir::{Dense, Mask, Model, Op, TensorId};

/// A Dense node that reads a tensor's value `j` at column `offset + j`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reader {
    pub node: usize,
    pub offset: usize,
    /// A standalone Relu sits between the tensor and the reader.
    pub through_relu: bool,
}

/// Indices of the nodes with weights (Dense, Conv2d): the order of `weight_gradients`.
pub fn weighted_nodes(model: &Model) -> Vec<usize> {
    (0..model.nodes.len())
        .filter(|&i| model.nodes[i].op.weights().is_some())
        .collect()
}

pub fn dense(model: &Model, node: usize) -> &Dense {
    match &model.nodes[node].op {
        Op::Dense(d) => d,
        other => panic!("node {node} is {}, not Dense", other.kind()),
    }
}

pub fn dense_mut(model: &mut Model, node: usize) -> &mut Dense {
    match &mut model.nodes[node].op {
        Op::Dense(d) => d,
        other => panic!("node {node} is {}, not Dense", other.kind()),
    }
}

/// Every Dense node that reads `tensor` (directly, through Relu, through Concat), or None when
/// something else reads it (or it is the model output): then its width cannot change.
pub fn dense_readers(model: &Model, tensor: TensorId) -> Option<Vec<Reader>> {
    let mut out = Vec::new();
    collect_readers(model, tensor, 0, false, &mut out)?;
    Some(out)
}

fn collect_readers(
    model: &Model,
    tensor: TensorId,
    offset: usize,
    through_relu: bool,
    out: &mut Vec<Reader>,
) -> Option<()> {
    if model.outputs.contains(&tensor) {
        return None;
    }
    for (i, n) in model.nodes.iter().enumerate() {
        for (pos, &t) in n.inputs.iter().enumerate() {
            if t != tensor {
                continue;
            }
            match &n.op {
                Op::Dense(_) => out.push(Reader {
                    node: i,
                    offset,
                    through_relu,
                }),
                Op::Relu => collect_readers(model, n.output, offset, true, out)?,
                Op::Concat => {
                    let before: usize =
                        n.inputs[..pos].iter().map(|&t| model.tensor(t).len()).sum();
                    collect_readers(model, n.output, offset + before, through_relu, out)?
                }
                _ => return None,
            }
        }
    }
    Some(())
}

/// Recomputes every node's output shape from its inputs (after a width changed).
pub fn refresh_shapes(model: &mut Model) {
    for k in 0..model.nodes.len() {
        let n = &model.nodes[k];
        let ins: Vec<Vec<usize>> = n
            .inputs
            .iter()
            .map(|&t| model.tensor(t).shape.clone())
            .collect();
        let shape = match &n.op {
            Op::Dense(d) => Some(vec![d.out_features]),
            Op::Relu | Op::Add => Some(ins[0].clone()),
            Op::Concat => Some(vec![ins.iter().map(|s| s.iter().product::<usize>()).sum()]),
            Op::Conv2d(c) => match ins[0][..] {
                [h, w, _] => c.output_shape(h, w),
                _ => None,
            },
            Op::MaxPool(p) | Op::AvgPool(p) => p.output_shape(&ins[0]),
            Op::Flatten => Some(vec![ins[0].iter().product()]),
        };
        if let Some(s) = shape {
            let out = n.output;
            model.tensors[out.0].shape = s;
        }
    }
}

fn set_mask(d: &mut Dense, bits: Vec<bool>) {
    d.mask = Mask::from_bools(bits);
}

/// Inserts input column `at` (values per output row, mask per row).
pub fn insert_column(d: &mut Dense, at: usize, col: &[f32], on: &[bool]) {
    let (i, o) = (d.in_features, d.out_features);
    let mut w = Vec::with_capacity((i + 1) * o);
    let mut m = Vec::with_capacity((i + 1) * o);
    let old = d.mask.as_slice();
    for r in 0..o {
        let row = r * i;
        w.extend_from_slice(&d.weight[row..row + at]);
        m.extend_from_slice(&old[row..row + at]);
        w.push(if on[r] { col[r] } else { 0.0 });
        m.push(on[r]);
        w.extend_from_slice(&d.weight[row + at..row + i]);
        m.extend_from_slice(&old[row + at..row + i]);
    }
    d.weight = w;
    set_mask(d, m);
    d.in_features += 1;
}

/// Removes input columns `cols` (any order).
pub fn remove_columns(d: &mut Dense, cols: &[usize]) {
    let (i, o) = (d.in_features, d.out_features);
    let mut drop = vec![false; i];
    for &c in cols {
        drop[c] = true;
    }
    let old = d.mask.as_slice();
    let keep: Vec<usize> = (0..o * i).filter(|&k| !drop[k % i]).collect();
    let w = keep.iter().map(|&k| d.weight[k]).collect();
    let m = keep.iter().map(|&k| old[k]).collect();
    d.weight = w;
    set_mask(d, m);
    d.in_features = i - drop.iter().filter(|&&x| x).count();
}

/// Appends an output row.
pub fn push_row(d: &mut Dense, w: &[f32], on: &[bool], bias: f32) {
    d.weight
        .extend(w.iter().zip(on).map(|(&v, &m)| if m { v } else { 0.0 }));
    let mut m = d.mask.as_slice().to_vec();
    m.extend_from_slice(on);
    set_mask(d, m);
    d.bias.push(bias);
    d.out_features += 1;
}

/// Removes output row `j`.
pub fn remove_row(d: &mut Dense, j: usize) {
    let i = d.in_features;
    d.weight.drain(j * i..(j + 1) * i);
    let mut m = d.mask.as_slice().to_vec();
    m.drain(j * i..(j + 1) * i);
    set_mask(d, m);
    d.bias.remove(j);
    d.out_features -= 1;
}

/// A new neuron for Dense `node`: its input row, and per reader (same order as
/// `dense_readers`) one weight and mask bit per reader output row.
pub struct NewNeuron {
    pub weight: Vec<f32>,
    pub mask: Vec<bool>,
    pub bias: f32,
    pub out_weight: Vec<Vec<f32>>,
    pub out_mask: Vec<Vec<bool>>,
}

/// Appends `n` to Dense `node` and wires it into every reader. The readers must be those of
/// [`dense_readers`] for the node's output.
pub fn add_neuron(model: &mut Model, node: usize, readers: &[Reader], n: &NewNeuron) {
    let j = dense(model, node).out_features;
    push_row(dense_mut(model, node), &n.weight, &n.mask, n.bias);
    // Descending column order so a reader listed twice keeps the earlier offset valid.
    let mut order: Vec<usize> = (0..readers.len()).collect();
    order.sort_by_key(|&k| std::cmp::Reverse(readers[k].offset));
    for k in order {
        let r = readers[k];
        insert_column(
            dense_mut(model, r.node),
            r.offset + j,
            &n.out_weight[k],
            &n.out_mask[k],
        );
    }
    refresh_shapes(model);
}

/// Removes neuron `j` of Dense `node` and its columns in every reader.
pub fn remove_neuron(model: &mut Model, node: usize, readers: &[Reader], j: usize) {
    let mut by_node: std::collections::BTreeMap<usize, Vec<usize>> = Default::default();
    for r in readers {
        by_node.entry(r.node).or_default().push(r.offset + j);
    }
    for (rn, cols) in by_node {
        remove_columns(dense_mut(model, rn), &cols);
    }
    remove_row(dense_mut(model, node), j);
    refresh_shapes(model);
}

/// What [`remove_dead`] removed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct DeadReport {
    pub neurons: usize,
    pub filters: usize,
}

/// Removes Dense neurons and conv filters without inputs or outputs, until none is left.
///
/// A unit with no outputs goes as is. A unit with no inputs still outputs the constant `act(b)`;
/// its contribution is folded into the readers' biases before it goes. That is exact for Dense
/// readers, and for conv readers only without padding (a padded border would see 0, not the
/// constant), so a constant filter read by a padded conv stays unless its constant is 0. A
/// layer always keeps at least one unit. Depthwise convs are left alone (a channel there is tied
/// to its input channel).
pub fn remove_dead(model: &mut Model) -> DeadReport {
    let mut report = DeadReport::default();
    loop {
        let before = report;
        for k in 0..model.nodes.len() {
            match &model.nodes[k].op {
                Op::Dense(_) => report.neurons += remove_dead_neurons(model, k),
                Op::Conv2d(c) if !c.is_depthwise() => {
                    report.filters += remove_dead_filters(model, k)
                }
                _ => {}
            }
        }
        if report == before {
            return report;
        }
    }
}

fn column_empty(d: &Dense, col: usize) -> bool {
    (0..d.out_features).all(|r| !d.mask.get(r * d.in_features + col))
}

fn remove_dead_neurons(model: &mut Model, k: usize) -> usize {
    let Some(readers) = dense_readers(model, model.nodes[k].output) else {
        return 0;
    };
    let mut removed = 0;
    for j in (0..dense(model, k).out_features).rev() {
        let d = dense(model, k);
        if d.out_features == 1 {
            break;
        }
        let i = d.in_features;
        let no_inputs = !d.mask.as_slice()[j * i..(j + 1) * i].iter().any(|&b| b);
        let no_outputs = readers
            .iter()
            .all(|r| column_empty(dense(model, r.node), r.offset + j));
        if !no_inputs && !no_outputs {
            continue;
        }
        if !no_outputs {
            let c = d.activation.apply(d.bias[j]);
            for r in &readers {
                let v = if r.through_relu { c.max(0.0) } else { c };
                let rd = dense_mut(model, r.node);
                let col = r.offset + j;
                for row in 0..rd.out_features {
                    rd.bias[row] += v * rd.weight[row * rd.in_features + col];
                }
            }
        }
        remove_neuron(model, k, &readers, j);
        removed += 1;
    }
    removed
}

/// How a conv's channel reaches a weighted layer.
pub(crate) enum ConvReader {
    /// A (non-depthwise) conv reading the channel as its input channel.
    Conv { node: usize, padded: bool },
    /// A Dense reading it through Flatten: columns `p * channels + c` for `p < positions`.
    Flat {
        node: usize,
        positions: usize,
        channels: usize,
    },
}

pub(crate) struct ConvReaders {
    pub readers: Vec<ConvReader>,
    /// The constant `c` becomes `f(c)` on its way (a Relu between).
    pub relu: bool,
}

pub(crate) fn conv_readers(model: &Model, tensor: TensorId) -> Option<ConvReaders> {
    let mut acc = ConvReaders {
        readers: vec![],
        relu: false,
    };
    collect_conv_readers(model, tensor, &mut acc)?;
    Some(acc)
}

fn collect_conv_readers(model: &Model, tensor: TensorId, acc: &mut ConvReaders) -> Option<()> {
    if model.outputs.contains(&tensor) {
        return None;
    }
    for (i, n) in model.nodes.iter().enumerate() {
        if !n.inputs.contains(&tensor) {
            continue;
        }
        match &n.op {
            Op::Conv2d(c) if !c.is_depthwise() => acc.readers.push(ConvReader::Conv {
                node: i,
                padded: c.padding.iter().any(|&p| p > 0),
            }),
            // Pools skip padded positions, so a constant map stays the same constant.
            Op::MaxPool(_) | Op::AvgPool(_) => collect_conv_readers(model, n.output, acc)?,
            Op::Relu => {
                acc.relu = true;
                collect_conv_readers(model, n.output, acc)?
            }
            Op::Flatten => {
                let s = &model.tensor(tensor).shape;
                let (positions, channels) = (s[0] * s[1], s[2]);
                for (j, m) in model.nodes.iter().enumerate() {
                    if m.inputs.contains(&n.output) {
                        if !matches!(m.op, Op::Dense(_)) || model.outputs.contains(&n.output) {
                            return None;
                        }
                        acc.readers.push(ConvReader::Flat {
                            node: j,
                            positions,
                            channels,
                        });
                    }
                }
            }
            _ => return None,
        }
    }
    Some(())
}

pub(crate) fn conv(model: &Model, node: usize) -> &crate::ir::Conv2d {
    match &model.nodes[node].op {
        Op::Conv2d(c) => c,
        _ => unreachable!("conv_readers only lists Conv2d"),
    }
}

pub(crate) fn conv_mut(model: &mut Model, node: usize) -> &mut crate::ir::Conv2d {
    match &mut model.nodes[node].op {
        Op::Conv2d(c) => c,
        _ => unreachable!("conv_readers only lists Conv2d"),
    }
}

fn remove_dead_filters(model: &mut Model, k: usize) -> usize {
    let mut removed = 0;
    for o in (0..conv(model, k).out_channels).rev() {
        // Looked up again for every filter: a Flatten reader's channel count (its column
        // stride) shrinks with each filter removed.
        let Some(cr) = conv_readers(model, model.nodes[k].output) else {
            return removed;
        };
        let c = conv(model, k);
        if c.out_channels == 1 {
            break;
        }
        let fan = c.fan_in();
        let no_inputs = !c.mask.as_slice()[o * fan..(o + 1) * fan].iter().any(|&b| b);
        let no_outputs = cr.readers.iter().all(|r| match *r {
            ConvReader::Conv { node, .. } => {
                let rc = conv(model, node);
                let cin = rc.in_channels;
                (0..rc.mask.len()).all(|i| i % cin != o || !rc.mask.get(i))
            }
            ConvReader::Flat {
                node,
                positions,
                channels,
            } => (0..positions).all(|p| column_empty(dense(model, node), p * channels + o)),
        });
        if !no_inputs && !no_outputs {
            continue;
        }
        if !no_outputs {
            let mut v = c.activation.apply(c.bias[o]);
            if cr.relu {
                v = v.max(0.0);
            }
            // The channel's output is the constant v only where it computes: a partial area
            // makes it v inside and 0 outside, which no bias can stand in for.
            let out = &model.tensor(model.nodes[k].output).shape;
            let whole = c.area_of(o, out[0], out[1]) == crate::ir::Area::full(out[0], out[1]);
            let exact = v == 0.0
                || (whole
                    && cr
                        .readers
                        .iter()
                        .all(|r| !matches!(r, ConvReader::Conv { padded: true, .. })));
            if !exact {
                continue;
            }
            for r in &cr.readers {
                match *r {
                    ConvReader::Conv { node, .. } => {
                        let rc = conv_mut(model, node);
                        let (cin, rfan) = (rc.in_channels, rc.fan_in());
                        for oo in 0..rc.out_channels {
                            let s: f32 = (0..rfan)
                                .filter(|i| i % cin == o)
                                .map(|i| rc.weight[oo * rfan + i])
                                .sum();
                            rc.bias[oo] += v * s;
                        }
                    }
                    ConvReader::Flat {
                        node,
                        positions,
                        channels,
                    } => {
                        let d = dense_mut(model, node);
                        for row in 0..d.out_features {
                            let s: f32 = (0..positions)
                                .map(|p| d.weight[row * d.in_features + p * channels + o])
                                .sum();
                            d.bias[row] += v * s;
                        }
                    }
                }
            }
        }
        remove_filter(model, k, &cr.readers, o);
        removed += 1;
    }
    removed
}

fn remove_filter(model: &mut Model, k: usize, readers: &[ConvReader], o: usize) {
    for r in readers {
        match *r {
            ConvReader::Conv { node, .. } => {
                let rc = conv_mut(model, node);
                let cin = rc.in_channels;
                let keep: Vec<usize> = (0..rc.weight.len()).filter(|i| i % cin != o).collect();
                rc.weight = keep.iter().map(|&i| rc.weight[i]).collect();
                rc.mask = Mask::from_bools(keep.iter().map(|&i| rc.mask.get(i)).collect());
                rc.in_channels -= 1;
            }
            ConvReader::Flat {
                node,
                positions,
                channels,
            } => {
                let cols: Vec<usize> = (0..positions).map(|p| p * channels + o).collect();
                remove_columns(dense_mut(model, node), &cols);
            }
        }
    }
    let c = conv_mut(model, k);
    let fan = c.fan_in();
    c.weight.drain(o * fan..(o + 1) * fan);
    let mut m = c.mask.as_slice().to_vec();
    m.drain(o * fan..(o + 1) * fan);
    c.mask = Mask::from_bools(m);
    c.bias.remove(o);
    if let Some(a) = &mut c.area {
        a.remove(o);
    }
    c.out_channels -= 1;
    refresh_shapes(model);
}

/// Appends a filter (`weight`/`mask`: `fan_in` values, OHWI order) with `bias` to conv `k` and
/// gives every reader a dormant (zero, masked) input for it: the new channel is the last one, so
/// a conv reader gets one more weight at the end of every (o, h, w) group and a Flatten-Dense
/// reader a column after each position's channels. The model computes what it did before.
pub(crate) fn add_filter(
    model: &mut Model,
    k: usize,
    readers: &[ConvReader],
    weight: &[f32],
    mask: &[bool],
    bias: f32,
) {
    for r in readers {
        match *r {
            ConvReader::Conv { node, .. } => {
                let rc = conv_mut(model, node);
                let cin = rc.in_channels;
                let (mut w, mut m) = (Vec::new(), Vec::new());
                for (i, &v) in rc.weight.iter().enumerate() {
                    w.push(v);
                    m.push(rc.mask.get(i));
                    if i % cin == cin - 1 {
                        w.push(0.0);
                        m.push(false);
                    }
                }
                rc.weight = w;
                rc.mask = Mask::from_bools(m);
                rc.in_channels += 1;
            }
            ConvReader::Flat {
                node,
                positions,
                channels,
            } => {
                let d = dense_mut(model, node);
                let zeros = vec![0.0; d.out_features];
                let off = vec![false; d.out_features];
                // Ascending: each insertion lands after the earlier ones.
                for p in 0..positions {
                    insert_column(d, p * (channels + 1) + channels, &zeros, &off);
                }
            }
        }
    }
    let out = model.tensor(model.nodes[k].output).shape.clone();
    let c = conv_mut(model, k);
    if let Some(a) = &mut c.area {
        // A new map starts computing everywhere; area pruning may shrink it later.
        a.push(crate::ir::Area::full(out[0], out[1]));
    }
    c.weight.extend_from_slice(weight);
    let mut m = c.mask.as_slice().to_vec();
    m.extend_from_slice(mask);
    c.mask = Mask::from_bools(m);
    c.bias.push(bias);
    c.out_channels += 1;
    refresh_shapes(model);
}

/// Weight indices through which the readers see channel `ch` of a conv with `channels` output
/// channels, per reader (in `readers` order).
pub(crate) fn channel_inputs(
    model: &Model,
    readers: &[ConvReader],
    ch: usize,
    channels: usize,
) -> Vec<Vec<usize>> {
    readers
        .iter()
        .map(|r| match *r {
            ConvReader::Conv { node, .. } => {
                let rc = conv(model, node);
                (0..rc.weight.len())
                    .filter(|i| i % rc.in_channels == ch)
                    .collect()
            }
            ConvReader::Flat {
                node, positions, ..
            } => {
                let d = dense(model, node);
                (0..d.out_features)
                    .flat_map(|row| {
                        (0..positions).map(move |p| row * d.in_features + p * channels + ch)
                    })
                    .collect()
            }
        })
        .collect()
}

/// Hidden Dense layers whose width may change: ReLU-activated (or not) Dense nodes whose
/// outputs reach only Dense readers.
pub fn growable_layers(model: &Model) -> Vec<usize> {
    (0..model.nodes.len())
        .filter(|&k| {
            matches!(model.nodes[k].op, Op::Dense(_))
                && dense_readers(model, model.nodes[k].output).is_some_and(|r| !r.is_empty())
        })
        .collect()
}

/// Mean |w| over a Dense layer's active weights (its scale for new weights).
pub fn mean_abs_active(d: &Dense) -> f32 {
    let (s, n) = d
        .weight
        .iter()
        .zip(d.mask.as_slice())
        .filter(|(_, &m)| m)
        .fold((0.0f64, 0usize), |(s, n), (w, _)| {
            (s + w.abs() as f64, n + 1)
        });
    if n == 0 {
        0.0
    } else {
        (s / n as f64) as f32
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::interp;
    use crate::ir::{Activation, Conv2d, Pool, Preprocess};
    use crate::synth::seed::mlp;
    use rand::{Rng, SeedableRng};

    fn close(a: &[f32], b: &[f32]) {
        assert_eq!(a.len(), b.len());
        for (x, y) in a.iter().zip(b) {
            assert!((x - y).abs() <= 1e-5 * (1.0 + x.abs()), "{a:?} vs {b:?}");
        }
    }

    fn cut_row(m: &mut Model, node: usize, j: usize) {
        let d = dense_mut(m, node);
        for i in 0..d.in_features {
            d.mask.set(j * d.in_features + i, false);
            d.weight[j * d.in_features + i] = 0.0;
        }
    }

    fn cut_col(m: &mut Model, node: usize, c: usize) {
        let d = dense_mut(m, node);
        for o in 0..d.out_features {
            d.mask.set(o * d.in_features + c, false);
            d.weight[o * d.in_features + c] = 0.0;
        }
    }

    #[test]
    fn dead_neurons_go_and_outputs_stay() {
        let classes: Vec<String> = (0..3).map(|i| i.to_string()).collect();
        let mut m = mlp("t", 5, &[6, 4], classes, Preprocess::identity(), 2);
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(9);
        for n in &mut m.nodes {
            if let Op::Dense(d) = &mut n.op {
                d.bias
                    .iter_mut()
                    .for_each(|b| *b = rng.random_range(-0.5..0.5));
            }
        }
        dense_mut(&mut m, 0).bias[1] = 0.7; // a constant ReLU(0.7) after its inputs go
        cut_row(&mut m, 0, 1);
        cut_col(&mut m, 1, 4); // fc1 neuron 4 feeds nothing
        cut_row(&mut m, 1, 2);
        let xs: Vec<Vec<f32>> = (0..20)
            .map(|_| (0..5).map(|_| rng.random_range(-1.0..1.0)).collect())
            .collect();
        let want: Vec<Vec<f32>> = xs
            .iter()
            .map(|x| interp::float::run(&m, x).unwrap())
            .collect();
        let r = remove_dead(&mut m);
        m.validate().unwrap();
        assert_eq!(r.neurons, 3);
        assert_eq!(dense(&m, 0).out_features, 4);
        assert_eq!(dense(&m, 1).out_features, 3);
        for (x, w) in xs.iter().zip(&want) {
            close(&interp::float::run(&m, x).unwrap(), w);
        }
        // the same through a SCANN concat
        let mut dag = crate::synth::scann::to_dag(&m, 0, true).unwrap();
        for i in 0..dense(&dag, 2).out_features {
            let d = dense_mut(&mut dag, 2);
            let at = i * d.in_features;
            d.weight[at] = 0.25; // input 0 -> fc2 directly
        }
        cut_row(&mut dag, 0, 0);
        let want: Vec<Vec<f32>> = xs
            .iter()
            .map(|x| interp::float::run(&dag, x).unwrap())
            .collect();
        assert_eq!(remove_dead(&mut dag).neurons, 1);
        dag.validate().unwrap();
        for (x, w) in xs.iter().zip(&want) {
            close(&interp::float::run(&dag, x).unwrap(), w);
        }
    }

    fn conv_model(pad2: usize) -> Model {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
        let mut r =
            |n: usize| -> Vec<f32> { (0..n).map(|_| rng.random_range(-0.5..0.5)).collect() };
        let classes: Vec<String> = (0..3).map(|i| i.to_string()).collect();
        let mut m = Model::with_input("c", vec![8, 8, 2], Preprocess::identity(), classes);
        let c1 = Conv2d::new(
            2,
            4,
            [3, 3],
            [1, 1],
            [0; 4],
            1,
            r(4 * 18),
            r(4),
            Activation::Relu,
        );
        let t = m.add_node("conv1", Op::Conv2d(c1), vec![m.inputs[0]], vec![6, 6, 4]);
        let t = m.add_node(
            "pool1",
            Op::MaxPool(Pool::square(2)),
            vec![t],
            vec![3, 3, 4],
        );
        let c2 = Conv2d::new(
            4,
            3,
            [2, 2],
            [1, 1],
            [pad2; 4],
            1,
            r(3 * 16),
            r(3),
            Activation::None,
        );
        let s = c2.output_shape(3, 3).unwrap();
        let t = m.add_node("conv2", Op::Conv2d(c2), vec![t], s.clone());
        let f = s.iter().product();
        let t = m.add_node("flat", Op::Flatten, vec![t], vec![f]);
        let d = Dense::new(f, 3, r(3 * f), r(3), Activation::None);
        let t = m.add_node("fc", Op::Dense(d), vec![t], vec![3]);
        m.outputs.push(t);
        m.validate().unwrap();
        m
    }

    /// Runs [`remove_dead`] and checks the model still validates and computes what it did.
    fn remove_dead_exactly(m: &mut Model, xs: &[Vec<f32>]) -> DeadReport {
        let want: Vec<Vec<f32>> = xs
            .iter()
            .map(|x| interp::float::run(m, x).unwrap())
            .collect();
        let r = remove_dead(m);
        m.validate().unwrap();
        for (x, w) in xs.iter().zip(&want) {
            close(&interp::float::run(m, x).unwrap(), w);
        }
        r
    }

    fn cut_filter(m: &mut Model, node: usize, o: usize) {
        let Op::Conv2d(c) = &mut m.nodes[node].op else {
            panic!()
        };
        let fan = c.fan_in();
        for i in o * fan..(o + 1) * fan {
            c.mask.set(i, false);
            c.weight[i] = 0.0;
        }
    }

    #[test]
    fn dead_filters_fold_exactly_or_stay() {
        let xs: Vec<Vec<f32>> = (0..10)
            .map(|s| {
                (0..128)
                    .map(|i| ((i * 7 + s * 13) % 17) as f32 / 17.0)
                    .collect()
            })
            .collect();
        // Unpadded reader: conv1's filter 2 becomes a constant map and folds into conv2.
        let mut m = conv_model(0);
        {
            let Op::Conv2d(c) = &mut m.nodes[0].op else {
                panic!()
            };
            c.bias[2] = 0.3;
        }
        cut_filter(&mut m, 0, 2);
        cut_filter(&mut m, 2, 1); // conv2 filter 1: constant, read through Flatten by fc
        assert_eq!(remove_dead_exactly(&mut m, &xs).filters, 2);
        assert_eq!(m.tensor(m.nodes[0].output).shape, vec![6, 6, 3]);
        // Two dead filters of the conv read through Flatten: removing the first shrinks the
        // reader's column stride, and the second must use the new one (it used a stale stride).
        let mut m = conv_model(0);
        {
            let Op::Conv2d(c) = &mut m.nodes[2].op else {
                panic!()
            };
            c.bias[0] = 0.2;
            c.bias[2] = -0.1;
        }
        cut_filter(&mut m, 2, 0);
        cut_filter(&mut m, 2, 2);
        assert_eq!(remove_dead_exactly(&mut m, &xs).filters, 2);
        // Padded reader: a nonzero constant map cannot fold (the border sees zeros), so it stays.
        let mut m = conv_model(1);
        {
            let Op::Conv2d(c) = &mut m.nodes[0].op else {
                panic!()
            };
            c.bias[2] = 0.3;
            c.bias[3] = -0.3; // ReLU(-0.3) = 0: removable even with padding
        }
        cut_filter(&mut m, 0, 2);
        cut_filter(&mut m, 0, 3);
        assert_eq!(remove_dead_exactly(&mut m, &xs).filters, 1);
        let Op::Conv2d(c) = &m.nodes[0].op else {
            panic!()
        };
        assert_eq!(c.out_channels, 3);
    }
}
