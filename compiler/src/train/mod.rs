//! Training with burn (flex CPU backend, autodiff): minibatch Adam on cross-entropy, early
//! stopping on validation accuracy, seeded shuffling. The IR is the model: training reads weights
//! and masks from it and writes the best weights back.

mod net;

pub use net::{Masks, Net};

use crate::interp;
use crate::ir::Model;
use burn::optim::{AdamConfig, GradientsParams};
use burn::tensor::{Device, Int, Tensor, TensorData};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// Preprocessed float samples (row-major `n × d`) with labels.
#[derive(Clone, Debug)]
pub struct Samples {
    pub x: Vec<f32>,
    pub y: Vec<u32>,
    pub dim: usize,
}

impl Samples {
    pub fn len(&self) -> usize {
        self.y.len()
    }
    pub fn is_empty(&self) -> bool {
        self.y.is_empty()
    }
    pub fn row(&self, i: usize) -> &[f32] {
        &self.x[i * self.dim..(i + 1) * self.dim]
    }
    /// Rows as owned vectors (calibration and test-vector inputs).
    pub fn rows(&self) -> Vec<Vec<f32>> {
        (0..self.len()).map(|i| self.row(i).to_vec()).collect()
    }
    /// Preprocesses a dataset split with the model's preprocessing.
    pub fn from_dataset(d: &crate::data::Dataset, pre: &crate::ir::Preprocess) -> Samples {
        let dim = d.n_features();
        let mut x = Vec::with_capacity(d.features.len());
        for i in 0..d.len() {
            x.extend(pre.apply(d.sample(i)));
        }
        Samples {
            x,
            y: d.labels.clone(),
            dim,
        }
    }
}

#[derive(Clone, Debug)]
pub struct TrainConfig {
    pub max_epochs: usize,
    pub batch_size: usize,
    pub learning_rate: f64,
    /// Stop after this many epochs without a better validation accuracy.
    pub patience: usize,
    pub seed: u64,
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            max_epochs: 60,
            batch_size: 32,
            learning_rate: 2e-3,
            patience: 10,
            seed: 1,
        }
    }
}

#[derive(Clone, Debug, serde::Serialize)]
pub struct EpochLog {
    pub epoch: usize,
    pub train_loss: f64,
    pub val_accuracy: f64,
}

#[derive(Clone, Debug, serde::Serialize)]
pub struct TrainReport {
    pub epochs_run: usize,
    pub best_epoch: usize,
    pub best_val_accuracy: f64,
    pub history: Vec<EpochLog>,
}

#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error("no training samples")]
    Empty,
    #[error("samples have {found} features, the model takes {expected}")]
    Shape { expected: usize, found: usize },
    #[error("label {label} is out of range for a model with {classes} outputs")]
    Label { label: u32, classes: usize },
    #[error("node {node:?}: {op} layers cannot be trained yet")]
    Unsupported { node: String, op: &'static str },
}

/// Fraction of samples whose float argmax matches the label.
pub fn float_accuracy(model: &Model, s: &Samples) -> f64 {
    if s.is_empty() {
        return 0.0;
    }
    let correct = (0..s.len())
        .filter(|&i| {
            let y = interp::float::run(model, s.row(i)).expect("validated shapes");
            argmax(&y) == s.y[i] as usize
        })
        .count();
    correct as f64 / s.len() as f64
}

pub fn argmax<T: PartialOrd + Copy>(v: &[T]) -> usize {
    let mut best = 0;
    for (i, &x) in v.iter().enumerate() {
        if x > v[best] {
            best = i;
        }
    }
    best
}

/// Trains `model` in place; on return it holds the weights of the best validation epoch.
/// `on_epoch` is called after every epoch (progress display).
pub fn train(
    model: &mut Model,
    train: &Samples,
    val: &Samples,
    cfg: &TrainConfig,
    mut on_epoch: impl FnMut(&EpochLog),
) -> Result<TrainReport, TrainError> {
    if train.is_empty() {
        return Err(TrainError::Empty);
    }
    let expected = model.input_len();
    if train.dim != expected || val.dim != expected {
        return Err(TrainError::Shape {
            expected,
            found: train.dim,
        });
    }
    let classes = model.output_len();
    if let Some(&label) = train
        .y
        .iter()
        .chain(&val.y)
        .find(|&&l| l as usize >= classes)
    {
        return Err(TrainError::Label { label, classes });
    }

    if let Some(node) = model.nodes.iter().find(|n| {
        !matches!(
            n.op,
            crate::ir::Op::Dense(_)
                | crate::ir::Op::Relu
                | crate::ir::Op::Add
                | crate::ir::Op::Concat
        )
    }) {
        return Err(TrainError::Unsupported {
            node: node.name.clone(),
            op: node.op.kind(),
        });
    }
    let device = Device::flex().autodiff();
    let (mut net, masks) = Net::from_model(model, &device);
    let mut optim = AdamConfig::new().init();
    let loss_fn = burn::nn::loss::CrossEntropyLossConfig::new().init(&device);
    let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed);
    let mut order: Vec<usize> = (0..train.len()).collect();

    let mut best = (f64::NEG_INFINITY, 0usize, model.clone());
    let mut history = Vec::new();
    for epoch in 1..=cfg.max_epochs {
        order.shuffle(&mut rng);
        let mut loss_sum = 0.0;
        let mut batches = 0;
        for chunk in order.chunks(cfg.batch_size) {
            let mut xb = Vec::with_capacity(chunk.len() * train.dim);
            for &i in chunk {
                xb.extend_from_slice(train.row(i));
            }
            let yb: Vec<i64> = chunk.iter().map(|&i| train.y[i] as i64).collect();
            let x = Tensor::<2>::from_data(TensorData::new(xb, [chunk.len(), train.dim]), &device);
            let y = Tensor::<1, Int>::from_data(TensorData::new(yb, [chunk.len()]), &device);
            let logits = net.forward(model, &masks, x);
            let loss = loss_fn.forward(logits, y);
            loss_sum += loss.clone().into_scalar::<f32>() as f64;
            batches += 1;
            let grads = GradientsParams::from_grads(loss.backward(), &net);
            net = optim.step(cfg.learning_rate, net, grads);
        }
        net.write_back(model);
        let val_accuracy = float_accuracy(model, val);
        let log = EpochLog {
            epoch,
            train_loss: loss_sum / batches as f64,
            val_accuracy,
        };
        on_epoch(&log);
        history.push(log);
        if val_accuracy > best.0 {
            best = (val_accuracy, epoch, model.clone());
        } else if epoch - best.1 >= cfg.patience {
            break;
        }
    }
    let (best_val_accuracy, best_epoch, best_model) = best;
    *model = best_model;
    Ok(TrainReport {
        epochs_run: history.len(),
        best_epoch,
        best_val_accuracy,
        history,
    })
}

/// Mean dense gradient ∂L/∂W of every Dense layer (IR layout `[out][in]`, dormant connections
/// included) over up to `max_batches` batches of `batch_size` training samples.
pub fn dense_weight_gradients(
    model: &Model,
    samples: &Samples,
    batch_size: usize,
    max_batches: usize,
) -> Vec<Vec<f32>> {
    let device = Device::flex().autodiff();
    let (net, masks) = Net::from_model(model, &device);
    let loss_fn = burn::nn::loss::CrossEntropyLossConfig::new().init(&device);
    let shapes: Vec<(usize, usize)> = model
        .nodes
        .iter()
        .filter_map(|n| match &n.op {
            crate::ir::Op::Dense(d) => Some((d.in_features, d.out_features)),
            _ => None,
        })
        .collect();
    let mut sums: Vec<Vec<f32>> = shapes.iter().map(|&(i, o)| vec![0.0; i * o]).collect();
    let mut batches = 0;
    for start in (0..samples.len())
        .step_by(batch_size.max(1))
        .take(max_batches)
    {
        let end = (start + batch_size).min(samples.len());
        let x = Tensor::<2>::from_data(
            TensorData::new(
                samples.x[start * samples.dim..end * samples.dim].to_vec(),
                [end - start, samples.dim],
            ),
            &device,
        );
        let y: Vec<i64> = samples.y[start..end].iter().map(|&l| l as i64).collect();
        let y = Tensor::<1, Int>::from_data(TensorData::new(y, [end - start]), &device);
        let probes: Vec<Tensor<2>> = shapes
            .iter()
            .map(|&(i, o)| Tensor::<2>::zeros([i, o], &device).require_grad())
            .collect();
        let loss = loss_fn.forward(net.forward_probed(model, &masks, x, Some(&probes)), y);
        let grads = loss.backward();
        for ((sum, probe), &(i, o)) in sums.iter_mut().zip(&probes).zip(&shapes) {
            let g = probe
                .grad(&grads)
                .expect("probe is part of the graph")
                .into_data();
            let g = g.as_slice::<f32>().expect("f32 gradient");
            // burn's [in][out] -> the IR's [out][in]
            for r in 0..i {
                for c in 0..o {
                    sum[c * i + r] += g[r * o + c];
                }
            }
        }
        batches += 1;
    }
    for s in &mut sums {
        s.iter_mut().for_each(|v| *v /= batches.max(1) as f32);
    }
    sums
}

#[cfg(test)]
mod tests;
