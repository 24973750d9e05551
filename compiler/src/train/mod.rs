//! Training with burn (flex CPU backend, autodiff): minibatch Adam on cross-entropy, early
//! stopping on validation accuracy, seeded shuffling. The IR is the model: training reads weights
//! and masks from it and writes the best weights back.

mod denormals;
mod net;

pub use net::{LayerTensor, Masks, Net};

use crate::interp;
use crate::ir::{Model, Op};
use burn::optim::{AdamConfig, GradientsParams};
use burn::tensor::{Device, Int, Tensor, TensorData};
use rand::seq::SliceRandom;
use rand::Rng;
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
    /// How the learning rate moves over the `max_epochs` of one training call.
    pub lr_schedule: LrSchedule,
    /// L2 penalty added to the gradient (Adam's coupled weight decay, as Han et al. trained
    /// the nets they pruned: it pushes unneeded weights toward zero before magnitude pruning).
    pub weight_decay: f64,
    /// Label smoothing of the cross-entropy (0: off): the targets become `1 - a + a/K` and
    /// `a/K`. A net that fits its training sample exactly has a loss and gradients near zero;
    /// smoothing keeps both alive (regularisation, and a growth signal at dormant weights).
    pub label_smoothing: f64,
    /// Random translation of the training images (off: `None`).
    pub augment: Option<Shift>,
}

/// Random translation of training images, the augmentation TFLite/Keras pipelines apply to
/// small image sets: every sample of every batch moves by up to `max` pixels along each axis
/// (uniform, independently), and the pixels it uncovers take `fill`, the preprocessed value of
/// the background. Validation and test images are never moved.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Shift {
    pub max: usize,
    /// Height, width, channels of a sample (HWC, row-major as the samples are stored).
    pub shape: [usize; 3],
    pub fill: f32,
}

impl Shift {
    /// Writes `src` moved by (`dy`, `dx`) pixels into `dst` (same length).
    pub fn apply(&self, src: &[f32], dy: isize, dx: isize, dst: &mut [f32]) {
        let [h, w, c] = self.shape;
        for y in 0..h {
            for x in 0..w {
                let (sy, sx) = (y as isize - dy, x as isize - dx);
                let inside = (0..h as isize).contains(&sy) && (0..w as isize).contains(&sx);
                let out = &mut dst[(y * w + x) * c..][..c];
                if inside {
                    let i = (sy as usize * w + sx as usize) * c;
                    out.copy_from_slice(&src[i..i + c]);
                } else {
                    out.fill(self.fill);
                }
            }
        }
    }
}

/// Learning-rate schedule of one training call.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum LrSchedule {
    Constant,
    /// Cosine annealing from the rate down to `rate × floor` at the last step of `max_epochs`:
    /// a pruned net retrained at a constant Adam rate keeps bouncing around its minimum, and
    /// early stopping on a noisy validation split then picks a random point of that bounce.
    Cosine {
        floor: f64,
    },
}

impl LrSchedule {
    /// Rate at `step` of `total` optimizer steps.
    pub fn rate(self, base: f64, step: usize, total: usize) -> f64 {
        match self {
            LrSchedule::Constant => base,
            LrSchedule::Cosine { floor } => {
                let t = step as f64 / total.max(1) as f64;
                let low = base * floor;
                low + (base - low) * 0.5 * (1.0 + (std::f64::consts::PI * t.min(1.0)).cos())
            }
        }
    }
}

impl std::str::FromStr for LrSchedule {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "constant" => Ok(LrSchedule::Constant),
            "cosine" => Ok(LrSchedule::Cosine { floor: 0.01 }),
            _ => Err(format!(
                "unknown learning-rate schedule {s:?}: use constant or cosine"
            )),
        }
    }
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            max_epochs: 60,
            batch_size: 32,
            learning_rate: 2e-3,
            patience: 10,
            seed: 1,
            lr_schedule: LrSchedule::Constant,
            weight_decay: 0.0,
            label_smoothing: 0.0,
            augment: None,
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
    /// Kept for IR ops the net does not run yet (see `trainable`); every op of IR version 1
    /// trains today.
    #[error("node {node:?}: {op} layers cannot be trained yet")]
    Unsupported { node: String, op: &'static str },
}

/// Fraction of samples whose float argmax matches the label.
///
/// Evaluated in batches with the burn net on the plain (non-autodiff) flex device rather than
/// sample by sample with [`interp::float`]: the two agree to about 1e-6 (tested), and the
/// interpreter needs ~15 ms per LeNet-5 image, which made validation cost more than training.
pub fn float_accuracy(model: &Model, s: &Samples) -> f64 {
    if s.is_empty() {
        return 0.0;
    }
    let mut correct = 0;
    for_each_logits(model, s, s.len(), |z, y| {
        correct += usize::from(argmax(z) == y as usize)
    });
    correct as f64 / s.len() as f64
}

/// Mean cross-entropy of the float model over the first `max` samples (batched forward on the
/// plain flex device): what growth compares candidates by.
pub fn mean_loss(model: &Model, s: &Samples, max: usize) -> f64 {
    let n = s.len().min(max);
    if n == 0 {
        return 0.0;
    }
    let mut total = 0.0f64;
    for_each_logits(model, s, n, |z, y| {
        // log-sum-exp with the max taken out, in f64.
        let m = z.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b)) as f64;
        let lse = m + z.iter().map(|&v| (v as f64 - m).exp()).sum::<f64>().ln();
        total += lse - z[y as usize] as f64;
    });
    total / n as f64
}

/// Calls `f(logits, label)` for each of the first `n` samples, forwarded in batches of
/// [`EVAL_BATCH`] by the burn net on the plain (non-autodiff) flex device.
fn for_each_logits(model: &Model, s: &Samples, n: usize, mut f: impl FnMut(&[f32], u32)) {
    let device = Device::flex();
    let (net, masks) = Net::from_model(model, &device);
    let n_out = model.output_len();
    for start in (0..n).step_by(EVAL_BATCH) {
        let end = (start + EVAL_BATCH).min(n);
        let x = Tensor::<2>::from_data(
            TensorData::new(
                s.x[start * s.dim..end * s.dim].to_vec(),
                [end - start, s.dim],
            ),
            &device,
        );
        let logits = net
            .forward(model, &masks, x)
            .into_data()
            .try_to_vec::<f32>()
            .expect("f32 logits");
        for (z, &y) in logits.chunks(n_out).zip(&s.y[start..end]) {
            f(z, y);
        }
    }
}

/// Samples per forward pass when evaluating.
const EVAL_BATCH: usize = 256;

/// [`float_accuracy`] through the reference interpreter, one sample at a time.
pub fn float_accuracy_reference(model: &Model, s: &Samples) -> f64 {
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

/// Cross-entropy on logits, smoothed by `smoothing` when it is above zero (callers check that
/// it is below 1: burn asserts it).
fn cross_entropy(smoothing: f64, device: &Device) -> burn::nn::loss::CrossEntropyLoss {
    burn::nn::loss::CrossEntropyLossConfig::new()
        .with_smoothing((smoothing > 0.0).then_some(smoothing as f32))
        .init(device)
}

/// Trains `model` in place; on return it holds the weights of the best validation epoch.
/// `on_epoch` is called after every epoch (progress display).
///
/// Masks are respected without touching the optimizer: the net multiplies each weight by its
/// mask, so a dormant position's gradient is exactly zero, and each call starts a fresh Adam, so
/// the moments of positions grown or pruned since the last call start at zero (see [`Masks`]).
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
    let _flush = denormals::FlushDenormals::new();
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

    if let Some(shift) = &cfg.augment {
        let [h, w, c] = shift.shape;
        if h * w * c != train.dim {
            return Err(TrainError::Shape {
                expected: h * w * c,
                found: train.dim,
            });
        }
    }
    if let Some(node) = model.nodes.iter().find(|n| !trainable(&n.op)) {
        return Err(TrainError::Unsupported {
            node: node.name.clone(),
            op: node.op.kind(),
        });
    }
    let device = Device::flex().autodiff();
    let (mut net, masks) = Net::from_model(model, &device);
    let mut adam = AdamConfig::new();
    if cfg.weight_decay > 0.0 {
        adam = adam.with_weight_decay(Some(burn::optim::decay::WeightDecayConfig::new(
            cfg.weight_decay as f32,
        )));
    }
    let mut optim = adam.init();
    let steps_per_epoch = train.len().div_ceil(cfg.batch_size.max(1));
    let total_steps = cfg.max_epochs * steps_per_epoch;
    let mut step = 0;
    let loss_fn = cross_entropy(cfg.label_smoothing, &device);
    let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed);
    let mut order: Vec<usize> = (0..train.len()).collect();
    // Its own stream, so that runs without augmentation shuffle exactly as before it existed.
    let mut shift_rng = ChaCha8Rng::seed_from_u64(cfg.seed ^ 0x5348_4946_5421);

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
            if let Some(shift) = &cfg.augment {
                let k = shift.max as i32;
                for (dst, &i) in xb.chunks_mut(train.dim).zip(chunk) {
                    let dy = shift_rng.random_range(-k..=k) as isize;
                    let dx = shift_rng.random_range(-k..=k) as isize;
                    shift.apply(train.row(i), dy, dx, dst);
                }
            }
            let yb: Vec<i64> = chunk.iter().map(|&i| train.y[i] as i64).collect();
            let x = Tensor::<2>::from_data(TensorData::new(xb, [chunk.len(), train.dim]), &device);
            let y = Tensor::<1, Int>::from_data(TensorData::new(yb, [chunk.len()]), &device);
            let logits = net.forward(model, &masks, x);
            let loss = loss_fn.forward(logits, y);
            loss_sum += loss.clone().into_scalar::<f32>() as f64;
            batches += 1;
            let grads = GradientsParams::from_grads(loss.backward(), &net);
            let lr = cfg.lr_schedule.rate(cfg.learning_rate, step, total_steps);
            step += 1;
            net = optim.step(lr, net, grads);
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

/// Whether [`Net`] can run `op`. Exhaustive on purpose: a new IR op must be taught to the net
/// (or refused here) before this compiles.
fn trainable(op: &Op) -> bool {
    match op {
        Op::Dense(_)
        | Op::Conv2d(_)
        | Op::MaxPool(_)
        | Op::AvgPool(_)
        | Op::Flatten
        | Op::Relu
        | Op::Add
        | Op::Concat => true,
    }
}

/// Mean dense gradient ∂L/∂W of every weighted node (Dense and Conv2d, in node order), in the
/// IR's weight layout (`[out][in]`, OHWI for convolutions), dormant connections included, over
/// up to `max_batches` batches of `batch_size` training samples.
///
/// L is the plain cross-entropy even when training smooths its labels: the smoothed loss is
/// flat where a net trained on it has settled (p(label) = 1 - a + a/K), while the plain one
/// still points every sample toward its label.
pub fn weight_gradients(
    model: &Model,
    samples: &Samples,
    batch_size: usize,
    max_batches: usize,
) -> Vec<Vec<f32>> {
    let device = Device::flex().autodiff();
    let (net, masks) = Net::from_model(model, &device);
    let loss_fn = cross_entropy(0.0, &device);
    let weighted: Vec<&Op> = model
        .nodes
        .iter()
        .map(|n| &n.op)
        .filter(|op| op.weights().is_some())
        .collect();
    let mut sums: Vec<Vec<f32>> = weighted
        .iter()
        .map(|op| vec![0.0; op.weights().expect("weighted").weight.len()])
        .collect();
    let mut batches = 0;
    for (x, y) in first_batches(samples, batch_size, max_batches, &device) {
        let probes: Vec<LayerTensor> = weighted
            .iter()
            .map(|op| match op {
                Op::Dense(d) => LayerTensor::Dense(
                    Tensor::<2>::zeros([d.in_features, d.out_features], &device).require_grad(),
                ),
                Op::Conv2d(c) => {
                    let dims = [
                        c.out_channels,
                        c.channels_per_group(),
                        c.kernel[0],
                        c.kernel[1],
                    ];
                    LayerTensor::Conv(Tensor::<4>::zeros(dims, &device).require_grad())
                }
                other => unreachable!("{} has no weights", other.kind()),
            })
            .collect();
        let loss = loss_fn.forward(net.forward_probed(model, &masks, x, Some(&probes)), y);
        let grads = loss.backward();
        for ((sum, probe), op) in sums.iter_mut().zip(&probes).zip(&weighted) {
            let g = match probe {
                LayerTensor::Dense(p) => p.grad(&grads).map(|g| g.into_data()),
                LayerTensor::Conv(p) => p.grad(&grads).map(|g| g.into_data()),
            }
            .expect("probe is part of the graph");
            let g = g.try_to_vec::<f32>().expect("f32 gradient");
            for (s, v) in sum.iter_mut().zip(net::to_ir_layout(op, &g)) {
                *s += v;
            }
        }
        batches += 1;
    }
    for s in &mut sums {
        s.iter_mut().for_each(|v| *v /= batches.max(1) as f32);
    }
    sums
}

/// The first `max_batches` batches of `samples`, in order (no shuffling: the gradient probes
/// see the same images every time).
fn first_batches<'a>(
    samples: &'a Samples,
    batch_size: usize,
    max_batches: usize,
    device: &'a Device,
) -> impl Iterator<Item = (Tensor<2>, Tensor<1, Int>)> + 'a {
    (0..samples.len())
        .step_by(batch_size.max(1))
        .take(max_batches)
        .map(move |start| batch(samples, start, batch_size, device))
}

/// Samples `start..start + batch_size` (clipped) as a batch.
fn batch(
    samples: &Samples,
    start: usize,
    batch_size: usize,
    device: &Device,
) -> (Tensor<2>, Tensor<1, Int>) {
    let end = (start + batch_size).min(samples.len());
    let x = Tensor::<2>::from_data(
        TensorData::new(
            samples.x[start * samples.dim..end * samples.dim].to_vec(),
            [end - start, samples.dim],
        ),
        device,
    );
    let y: Vec<i64> = samples.y[start..end].iter().map(|&l| l as i64).collect();
    let y = Tensor::<1, Int>::from_data(TensorData::new(y, [end - start]), device);
    (x, y)
}

/// Per weighted node, for each Conv2d (None for Dense), the importance of every output
/// position of every channel, `[C][OH][OW]` channel-major: the mean over batches of
/// `|Σ_batch y·∂L/∂y|`, the first-order change of the (unsmoothed) loss if that output were
/// zeroed (Molchanov et al.'s Taylor criterion, per position instead of per map). 0 outside a
/// channel's current area, where the output already is 0.
pub fn area_importance(
    model: &Model,
    samples: &Samples,
    batch_size: usize,
    max_batches: usize,
) -> Vec<Option<Vec<f32>>> {
    let device = Device::flex().autodiff();
    let (net, masks) = Net::from_model(model, &device);
    let loss_fn = cross_entropy(0.0, &device);
    let conv_shapes: Vec<Option<[usize; 4]>> = model
        .nodes
        .iter()
        .filter(|n| n.op.weights().is_some())
        .map(|n| match &n.op {
            Op::Conv2d(c) => {
                let s = &model.tensor(n.output).shape;
                Some([1, c.out_channels, s[0], s[1]])
            }
            _ => None,
        })
        .collect();
    let mut sums: Vec<Option<Vec<f32>>> = conv_shapes
        .iter()
        .map(|s| s.map(|d| vec![0.0; d.iter().product()]))
        .collect();
    let mut batches = 0;
    for (x, y) in first_batches(samples, batch_size, max_batches, &device) {
        let gates: Vec<Option<Tensor<4>>> = conv_shapes
            .iter()
            .map(|s| s.map(|d| Tensor::<4>::ones(d, &device).require_grad()))
            .collect();
        let logits = net.forward_gated(model, &masks, x, None, Some(&gates));
        let grads = loss_fn.forward(logits, y).backward();
        for (sum, gate) in sums.iter_mut().zip(&gates) {
            let (Some(sum), Some(gate)) = (sum, gate) else {
                continue;
            };
            let g = gate.grad(&grads).expect("gate is part of the graph");
            let g = g.into_data().try_to_vec::<f32>().expect("f32 gradient");
            for (s, v) in sum.iter_mut().zip(g) {
                *s += v.abs();
            }
        }
        batches += 1;
    }
    for s in sums.iter_mut().flatten() {
        s.iter_mut().for_each(|v| *v /= batches.max(1) as f32);
    }
    sums
}

#[cfg(test)]
pub(crate) mod tests;
