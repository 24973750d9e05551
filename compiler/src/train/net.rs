//! The IR as a burn module: one trainable weight and bias per Dense node, evaluated by walking the
//! IR's nodes, so any DAG the IR can express (skip connections, concatenations) trains as is.

use crate::ir::{Activation, Model, Op};
use burn::module::{Module, Param};
use burn::tensor::activation::relu;
use burn::tensor::{Device, Tensor, TensorData};

#[derive(Module, Debug)]
pub struct Net {
    /// Burn's layout `[in, out]` (the transpose of the IR's `[out][in]`).
    pub weights: Vec<Param<Tensor<2>>>,
    pub biases: Vec<Param<Tensor<1>>>,
}

/// Constant masks (not parameters): the effective weight is `W ⊙ M`, so dormant connections get
/// a zero gradient and the optimizer never moves them.
pub struct Masks(pub Vec<Option<Tensor<2>>>);

fn dense_layers(model: &Model) -> impl Iterator<Item = &crate::ir::Dense> {
    model.nodes.iter().filter_map(|n| match &n.op {
        Op::Dense(d) => Some(d),
        _ => None,
    })
}

/// `[out][in]` row-major -> `[in][out]` row-major.
fn transpose(v: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    let mut t = vec![0.0; v.len()];
    for r in 0..rows {
        for c in 0..cols {
            t[c * rows + r] = v[r * cols + c];
        }
    }
    t
}

impl Net {
    pub fn from_model(model: &Model, device: &Device) -> (Net, Masks) {
        let mut weights = Vec::new();
        let mut biases = Vec::new();
        let mut masks = Vec::new();
        for d in dense_layers(model) {
            let (i, o) = (d.in_features, d.out_features);
            let w = TensorData::new(transpose(&d.weight, o, i), [i, o]);
            weights.push(Param::from_tensor(Tensor::from_data(w, device)));
            let b = TensorData::new(d.bias.clone(), [o]);
            biases.push(Param::from_tensor(Tensor::from_data(b, device)));
            let full = d.mask.count_ones() == d.mask.len();
            masks.push((!full).then(|| {
                let m: Vec<f32> = d.mask.as_slice().iter().map(|&b| b as u8 as f32).collect();
                Tensor::from_data(TensorData::new(transpose(&m, o, i), [i, o]), device)
            }));
        }
        (Net { weights, biases }, Masks(masks))
    }

    /// Writes the trained parameters back into the IR (dormant weights stay exactly zero).
    pub fn write_back(&self, model: &mut Model) {
        let mut k = 0;
        for node in &mut model.nodes {
            if let Op::Dense(d) = &mut node.op {
                let (i, o) = (d.in_features, d.out_features);
                let w = self.weights[k].val().into_data();
                let w = w.as_slice::<f32>().expect("f32 weights");
                d.weight = transpose(w, i, o);
                for (j, wv) in d.weight.iter_mut().enumerate() {
                    if !d.mask.get(j) {
                        *wv = 0.0;
                    }
                }
                let b = self.biases[k].val().into_data();
                d.bias = b.as_slice::<f32>().expect("f32 bias").to_vec();
                k += 1;
            }
        }
    }

    /// Logits for a batch `[n, input_len]`.
    pub fn forward(&self, model: &Model, masks: &Masks, x: Tensor<2>) -> Tensor<2> {
        self.forward_probed(model, masks, x, None)
    }

    /// As [`Net::forward`], with `probes[k]` (zeros that require a gradient) added to the k-th
    /// effective weight: the gradient at a probe is the dense ∂L/∂W, dormant positions included,
    /// which is what connection growth ranks (the masked weights' own gradient is zero there).
    pub fn forward_probed(
        &self,
        model: &Model,
        masks: &Masks,
        x: Tensor<2>,
        probes: Option<&[Tensor<2>]>,
    ) -> Tensor<2> {
        let mut values: Vec<Option<Tensor<2>>> = vec![None; model.tensors.len()];
        values[model.inputs[0].0] = Some(x);
        let get = |values: &Vec<Option<Tensor<2>>>, id: crate::ir::TensorId| {
            values[id.0]
                .clone()
                .expect("IR is validated: inputs precede use")
        };
        let mut k = 0;
        for node in &model.nodes {
            let out = match &node.op {
                Op::Dense(d) => {
                    let mut w = self.weights[k].val();
                    if let Some(m) = &masks.0[k] {
                        w = w * m.clone();
                    }
                    if let Some(p) = probes {
                        w = w + p[k].clone();
                    }
                    let y = get(&values, node.inputs[0]).matmul(w)
                        + self.biases[k].val().unsqueeze::<2>();
                    k += 1;
                    match d.activation {
                        Activation::Relu => relu(y),
                        Activation::Relu6 => y.clamp(0.0, 6.0),
                        Activation::None => y,
                    }
                }
                Op::Relu => relu(get(&values, node.inputs[0])),
                Op::Add => node.inputs[1..]
                    .iter()
                    .fold(get(&values, node.inputs[0]), |acc, &id| {
                        acc + get(&values, id)
                    }),
                Op::Concat => {
                    Tensor::cat(node.inputs.iter().map(|&id| get(&values, id)).collect(), 1)
                }
                other => unreachable!("train() refuses {} before building a Net", other.kind()),
            };
            values[node.output.0] = Some(out);
        }
        get(&values, model.outputs[0])
    }
}
