//! SCANN's feed-forward nets of arbitrary structure, in the IR: every Dense layer of a chain reads a
//! Concat of the chain's input and all earlier hidden outputs, so a neuron may feed any later
//! neuron. Which of those connections exist is the layer's mask; connection growth, neuron growth
//! and pruning then work on the DAG unchanged (see `surgery`: a Concat is just a column offset).
//! After synthesis [`compact_concats`] drops the Concat inputs no kept connection reads.

use super::surgery;
use crate::ir::{Dense, Mask, Model, Node, Op, TensorId};

#[derive(Debug, thiserror::Error)]
pub enum ScannError {
    #[error("SCANN needs a chain of Dense layers; node {node:?} is {op} or not part of the chain")]
    NotAChain { node: String, op: &'static str },
    #[error("SCANN needs Dense layers at the end of the network; it ends in {op} node {node:?}")]
    NoDenseHead { node: String, op: &'static str },
}

/// Index of the first node SCANN rewires: the start of the trailing chain of Dense layers, so a
/// CNN's classifier head (after its Flatten) becomes the DAG while its feature extractor is kept
/// as it is, and an input reduction is never part of the DAG (its weights are fitted, not grown).
pub fn head_start(model: &Model) -> usize {
    let mut first = model.nodes.len();
    while first > 0 {
        let n = &model.nodes[first - 1];
        let feeds_chain = first == model.nodes.len() || model.nodes[first].inputs == [n.output];
        if !matches!(n.op, Op::Dense(_)) || !feeds_chain {
            break;
        }
        first -= 1;
    }
    let after_reduction = usize::from(
        model
            .nodes
            .first()
            .is_some_and(|n| n.name == super::reduce::NODE_NAME),
    );
    first.max(after_reduction)
}

/// Rewires the chain of Dense layers starting at node `first` (earlier nodes, e.g. an input
/// reduction, are kept as they are) into SCANN's DAG. New cross-layer connections carry weight 0;
/// with `active` they exist (mask on, trained from 0), otherwise they are dormant (growth
/// candidates). Either way the DAG computes the same function as the chain.
pub fn to_dag(model: &Model, first: usize, active: bool) -> Result<Model, ScannError> {
    if first >= model.nodes.len() {
        let last = model.nodes.last();
        return Err(ScannError::NoDenseHead {
            node: last.map_or_else(String::new, |n| n.name.clone()),
            op: last.map_or("nothing", |n| n.op.kind()),
        });
    }
    let mut prev = if first == 0 {
        model.inputs[0]
    } else {
        model.nodes[first - 1].output
    };
    for n in &model.nodes[first..] {
        if !matches!(n.op, Op::Dense(_)) || n.inputs != [prev] {
            return Err(ScannError::NotAChain {
                node: n.name.clone(),
                op: n.op.kind(),
            });
        }
        prev = n.output;
    }
    let mut m = model.clone();
    m.nodes.truncate(first);
    let mut sources: Vec<TensorId> = vec![if first == 0 {
        model.inputs[0]
    } else {
        model.nodes[first - 1].output
    }];
    for (k, n) in model.nodes[first..].iter().enumerate() {
        let Op::Dense(d) = &n.op else { unreachable!() };
        if k == 0 {
            m.nodes.push(n.clone());
            sources.push(n.output);
            continue;
        }
        let lens: Vec<usize> = sources.iter().map(|&t| model.tensor(t).len()).collect();
        let total: usize = lens.iter().sum();
        let own = total - d.in_features;
        let cat = m.add_tensor(format!("{}.in", n.name), vec![total]);
        m.nodes.push(Node {
            name: format!("{}.cat", n.name),
            op: Op::Concat,
            inputs: sources.clone(),
            output: cat,
        });
        let mut weight = Vec::with_capacity(total * d.out_features);
        let mut mask = Vec::with_capacity(total * d.out_features);
        for o in 0..d.out_features {
            weight.extend(std::iter::repeat_n(0.0, own));
            mask.extend(std::iter::repeat_n(active, own));
            let row = o * d.in_features..(o + 1) * d.in_features;
            weight.extend_from_slice(&d.weight[row.clone()]);
            mask.extend_from_slice(&d.mask.as_slice()[row]);
        }
        let nd = Dense {
            in_features: total,
            weight,
            mask: Mask::from_bools(mask),
            ..d.clone()
        };
        let mut node = n.clone();
        node.op = Op::Dense(nd);
        node.inputs = vec![cat];
        m.nodes.push(node);
        sources.push(n.output);
    }
    Ok(m)
}

/// Drops every Concat input whose columns no connection of the (single) Dense reader uses, and
/// a Concat left with one input; then drops tensors nothing produces. The function is unchanged.
pub fn compact_concats(model: &mut Model) {
    let mut k = 0;
    while k < model.nodes.len() {
        if !matches!(model.nodes[k].op, Op::Concat) {
            k += 1;
            continue;
        }
        let out = model.nodes[k].output;
        let readers: Vec<usize> = (0..model.nodes.len())
            .filter(|&j| model.nodes[j].inputs.contains(&out))
            .collect();
        let [r] = readers[..] else {
            k += 1;
            continue;
        };
        if !matches!(model.nodes[r].op, Op::Dense(_)) || model.outputs.contains(&out) {
            k += 1;
            continue;
        }
        let parts = model.nodes[k].inputs.clone();
        let lens: Vec<usize> = parts.iter().map(|&t| model.tensor(t).len()).collect();
        let d = surgery::dense(model, r);
        let mut keep = Vec::new();
        let mut drop_cols = Vec::new();
        let mut at = 0;
        for (p, &len) in parts.iter().zip(&lens) {
            let used = (at..at + len)
                .any(|c| (0..d.out_features).any(|o| d.mask.get(o * d.in_features + c)));
            if used {
                keep.push(*p);
            } else {
                drop_cols.extend(at..at + len);
            }
            at += len;
        }
        if keep.is_empty() || keep.len() == parts.len() {
            k += 1;
            continue;
        }
        surgery::remove_columns(surgery::dense_mut(model, r), &drop_cols);
        if let [only] = keep[..] {
            model.nodes[r].inputs[0] = only;
            model.nodes.remove(k);
        } else {
            model.nodes[k].inputs = keep;
            k += 1;
        }
        surgery::refresh_shapes(model);
    }
    drop_unused_tensors(model);
}

/// Removes tensors that are neither the input nor produced by a node, renumbering the rest.
pub fn drop_unused_tensors(model: &mut Model) {
    let mut used = vec![false; model.tensors.len()];
    used[model.inputs[0].0] = true;
    for n in &model.nodes {
        used[n.output.0] = true;
    }
    let mut map = vec![usize::MAX; used.len()];
    let mut tensors = Vec::new();
    for (i, t) in model.tensors.iter().enumerate() {
        if used[i] {
            map[i] = tensors.len();
            tensors.push(t.clone());
        }
    }
    let re = |t: &mut TensorId| t.0 = map[t.0];
    model.tensors = tensors;
    for n in &mut model.nodes {
        n.inputs.iter_mut().for_each(re);
        re(&mut n.output);
    }
    model.inputs.iter_mut().for_each(re);
    model.outputs.iter_mut().for_each(re);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::interp;
    use crate::ir::Preprocess;
    use crate::synth::seed::mlp;

    #[test]
    fn dag_computes_the_chain_and_compacts_back() {
        let classes: Vec<String> = (0..4).map(|i| i.to_string()).collect();
        let m = mlp("t", 6, &[5, 3], classes, Preprocess::identity(), 3);
        let x = [0.3, -1.0, 0.5, 2.0, 0.0, 1.5];
        let want = interp::float::run(&m, &x).unwrap();
        for active in [false, true] {
            let mut dag = to_dag(&m, 0, active).unwrap();
            dag.validate().unwrap();
            // fc2 reads [x, h1] = 11, fc3 reads [x, h1, h2] = 14
            assert_eq!(surgery::dense(&dag, 2).in_features, 11);
            assert_eq!(surgery::dense(&dag, 4).in_features, 14);
            assert_eq!(interp::float::run(&dag, &x).unwrap(), want);
            let before = dag.stats().params_nonzero;
            compact_concats(&mut dag);
            dag.validate().unwrap();
            assert_eq!(interp::float::run(&dag, &x).unwrap(), want);
            if active {
                assert_eq!(dag.stats().params_nonzero, before);
            } else {
                assert_eq!(dag, m, "dormant skips compact back to the chain");
            }
        }
    }

    #[test]
    fn a_cnn_head_becomes_the_dag_and_its_features_stay() {
        let m = crate::synth::grow_maps::tests::tiny_cnn();
        let first = head_start(&m);
        assert_eq!(m.nodes[first - 1].op.kind(), "Flatten");
        let x: Vec<f32> = (0..100)
            .map(|i| ((i * 7) % 11) as f32 / 5.0 - 1.0)
            .collect();
        let want = interp::float::run(&m, &x).unwrap();
        let dag = to_dag(&m, first, true).unwrap();
        dag.validate().unwrap();
        assert_eq!(
            dag.nodes[..first],
            m.nodes[..first],
            "feature extractor kept"
        );
        // the classifier reads [flattened features, fc1's outputs]
        let flat = m.tensor(m.nodes[first - 1].output).len();
        assert_eq!(surgery::dense(&dag, first + 2).in_features, flat + 6);
        assert_eq!(interp::float::run(&dag, &x).unwrap(), want);
    }

    #[test]
    fn a_net_without_a_dense_head_is_refused() {
        let mut m = crate::synth::grow_maps::tests::tiny_cnn();
        let flatten = m
            .nodes
            .iter()
            .position(|n| n.op.kind() == "Flatten")
            .unwrap();
        m.nodes.truncate(flatten + 1);
        m.outputs = vec![m.nodes[flatten].output];
        let first = head_start(&m);
        assert_eq!(first, flatten + 1);
        let e = to_dag(&m, first, true).unwrap_err().to_string();
        assert!(e.contains("Flatten"), "{e}");
    }

    #[test]
    fn refuses_non_chains() {
        let classes: Vec<String> = (0..4).map(|i| i.to_string()).collect();
        let mut m = mlp("t", 6, &[5], classes, Preprocess::identity(), 3);
        let x = m.nodes[0].output;
        let y = m.add_node("r", Op::Relu, vec![x], vec![5]);
        m.nodes[1].inputs = vec![y];
        m.nodes.swap(1, 2);
        let e = to_dag(&m, 0, false).unwrap_err().to_string();
        assert!(e.contains("Relu"), "{e}");
    }
}
