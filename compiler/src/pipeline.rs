//! The end-to-end job behind `bonsai synthesize`: dataset → seed → training → int8 → lowered
//! model crate + test vectors + `summary.json`. Each step is a stage module; this file only
//! sequences them and records what they measured.

use crate::data::{self, DataSpec};
use crate::energy::{self, Budgets};
use crate::interp;
use crate::ir::{Model, Preprocess};
use crate::lower;
use crate::quant;
use crate::synth::reduce::{self, Reduce};
use crate::synth::schedule::{self, Method, Schedule};
use crate::synth::{seed, seed_file};
use crate::train::{self, argmax, Samples, TrainConfig};
use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use std::path::{Path, PathBuf};
use std::time::Instant;

#[derive(Clone, Debug)]
pub struct SynthOptions {
    pub data: DataSpec,
    pub out: PathBuf,
    pub hidden: Vec<usize>,
    /// A seed architecture file (`models/seeds/*.toml`) or a trained ONNX model; None: the
    /// built-in MLP of `hidden`.
    pub seed_arch: Option<PathBuf>,
    /// Input normalisation of an ONNX seed: `(raw / 255 - mean) / std`.
    pub normalize: Option<(f32, f32)>,
    /// Multiplier of the seed's hidden widths (None: the method's default, see
    /// [`Method::default_seed_width`]).
    pub seed_width: Option<f64>,
    /// Input dimension reduction in front of the seed (DR+SCANN).
    pub reduce: Option<Reduce>,
    /// Evaluate every point of the schedule's trajectory on the test split (int8 and float), for
    /// error-vs-nonzeros curves. The chosen model is still picked on validation.
    pub curve: bool,
    pub train: TrainConfig,
    /// Training images move by up to this many pixels (0: no augmentation); see
    /// [`crate::train::Shift`]. Only for image datasets.
    pub augment_shift: usize,
    /// Dense training, prune-only or NeST grow-and-prune.
    pub schedule: Schedule,
    /// Test samples written as firmware test vectors (they live in flash: keep it modest).
    pub max_vectors: usize,
    /// Calibration samples drawn from the training split.
    pub calibration_samples: usize,
    pub show_progress: bool,
    /// Device the energy and latency in `summary.json` are estimated for.
    pub device: String,
    /// Extra device profiles (`--device-file`).
    pub device_files: Vec<PathBuf>,
    /// Limits the result must meet, or synthesis fails.
    pub budgets: Budgets,
}

impl Default for SynthOptions {
    fn default() -> Self {
        SynthOptions {
            data: DataSpec::Digits,
            out: "out".into(),
            hidden: vec![64, 32],
            seed_arch: None,
            normalize: None,
            seed_width: None,
            reduce: None,
            curve: false,
            train: TrainConfig::default(),
            augment_shift: 0,
            schedule: Schedule::default(),
            max_vectors: 400,
            calibration_samples: 1000,
            show_progress: true,
            device: "stm32l4r5".into(),
            device_files: vec![],
            budgets: Budgets::default(),
        }
    }
}

/// The command-line form of [`SynthOptions`], shared by `bonsai synthesize` and
/// `cargo xtask synthesize`.
#[derive(clap::Args, Clone, Debug)]
pub struct SynthArgs {
    /// `digits` (embedded default), `mnist:DIR`, `fashion-mnist:DIR` (options
    /// `:train-sample=N`: the first N training images; `:dev-test=N`: the last N of them are the
    /// test set, the official one is not read), `csv:FILE[:label=COLUMN][:train-rows=N]`,
    /// `ts:TRAIN.ts[,TEST.ts]` (raw series), `imu:TRAIN.ts[,TEST.ts]` (IMU window features, as
    /// the board firmware computes them) or `basicmotions[:DIR]` (embedded IMU activity data).
    #[arg(long, default_value = "digits")]
    pub data: String,
    #[arg(long, default_value = "out")]
    pub out: PathBuf,
    /// Hidden layer widths of the built-in seed MLP, comma separated (ignored with --seed).
    #[arg(long, value_delimiter = ',', default_value = "64,32")]
    pub hidden: Vec<usize>,
    /// Seed architecture file, e.g. models/seeds/lenet-5.toml, or a trained ONNX model
    /// (`.onnx`: its weights are the starting point) (default: the built-in MLP).
    #[arg(long = "seed", value_name = "FILE")]
    pub seed_arch: Option<PathBuf>,
    /// With an ONNX seed trained on normalised 8-bit pixels: `MEAN,STD`, i.e. the model's input
    /// is `(raw / 255 - MEAN) / STD` (default: the dataset's own preprocessing).
    #[arg(long, value_delimiter = ',', value_name = "MEAN,STD")]
    pub normalize: Option<Vec<f32>>,
    /// Random seed (initialisation, splits, shuffling).
    #[arg(long, default_value_t = 1)]
    pub rng_seed: u64,
    #[arg(long, default_value_t = 60)]
    pub epochs: usize,
    #[arg(long, default_value_t = 32)]
    pub batch_size: usize,
    #[arg(long, default_value_t = 2e-3)]
    pub lr: f64,
    /// Learning-rate schedule of every training phase: constant or cosine (annealed to 1% of
    /// the rate over each phase's epochs).
    #[arg(long, default_value = "constant")]
    pub lr_schedule: String,
    /// L2 weight decay of the optimizer.
    #[arg(long, default_value_t = 0.0)]
    pub weight_decay: f64,
    /// Label smoothing of the training loss, in [0, 1): 0.1 moves a tenth of each target's
    /// probability mass evenly over the classes.
    #[arg(long, default_value_t = 0.0)]
    pub label_smoothing: f64,
    /// Augmentation: every training image moves by a random offset of up to N pixels along
    /// each axis (0: off). Image datasets only.
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub augment_shift: usize,
    /// First training phase: stop after this many epochs without a better validation accuracy.
    #[arg(long, default_value_t = 10)]
    pub patience: usize,
    /// Test samples written as firmware test vectors.
    #[arg(long, default_value_t = 400)]
    pub vectors: usize,
    /// Synthesis method and schedule (boxed: it is most of the options).
    #[command(flatten)]
    pub schedule: Box<ScheduleArgs>,
    /// No progress bars.
    #[arg(long)]
    pub quiet: bool,
    /// Device for the energy and latency estimates (`bonsai devices` lists them).
    #[arg(long, default_value = "stm32l4r5")]
    pub device: String,
    /// An extra device profile (TOML, same schema as models/devices/*.toml); repeatable.
    #[arg(long)]
    pub device_file: Vec<PathBuf>,
    /// Fail unless one inference costs at most this many µJ on --device (worst case).
    #[arg(long)]
    pub energy_budget_uj: Option<f64>,
    /// Fail unless the model's parameters fit in this many KB of flash.
    #[arg(long)]
    pub flash_budget_kb: Option<f64>,
    /// Fail unless the activation arena fits in this many KB of RAM.
    #[arg(long)]
    pub ram_budget_kb: Option<f64>,
}

/// The schedule part of [`SynthArgs`].
#[derive(clap::Args, Clone, Debug)]
pub struct ScheduleArgs {
    /// dense, prune (magnitude prune + retrain), nest (sparse seed, grow, prune), scann-a
    /// (small seed grown then pruned), scann-b (sparse random seed), scann-c (dense, pruned with
    /// regrowth); SCANN adds cross-layer connections.
    #[arg(long, default_value = "dense")]
    pub method: String,
    /// Nonzero weights to reach, as a fraction of the seed's weights at full width (with
    /// --reduce: of the seed reading the reduced features, plus the reduction's weights).
    #[arg(long, default_value_t = 0.1)]
    pub target_density: f64,
    /// Stop pruning when validation accuracy falls more than this many points (percent) below
    /// its pre-pruning best; the last round within it is kept.
    #[arg(long)]
    pub max_val_drop: Option<f64>,
    /// Pruning rounds (prune/nest).
    #[arg(long, default_value_t = 5)]
    pub rounds: usize,
    /// Retraining epochs after each round (prune/nest).
    #[arg(long, default_value_t = 8)]
    pub retrain_epochs: usize,
    /// NeST: density of the random sparse seed.
    #[arg(long, default_value_t = 0.2)]
    pub seed_density: f64,
    /// NeST: fraction of dormant connections grown.
    #[arg(long, default_value_t = 0.1)]
    pub grow_fraction: f64,
    /// Learning rate of retraining after each round (default: --lr).
    #[arg(long)]
    pub retrain_lr: Option<f64>,
    /// Growth steps (nest, scann-a, scann-b).
    #[arg(long, default_value_t = 1)]
    pub grow_rounds: usize,
    /// Training epochs after each growth step (default: --retrain-epochs).
    #[arg(long)]
    pub grow_epochs: Option<usize>,
    /// Neurons grown per hidden layer and growth step (0: connection growth only).
    #[arg(long, default_value_t = 8)]
    pub grow_neurons: usize,
    /// Feature maps grown per conv layer and growth step (0: none).
    #[arg(long, default_value_t = 2)]
    pub grow_maps: usize,
    /// Random candidate kernels tried per grown feature map (the lowest-loss one is kept).
    #[arg(long, default_value_t = 4)]
    pub map_candidates: usize,
    /// Neuron growth: fraction β of (input, output) pairs a new neuron may connect.
    #[arg(long, default_value_t = 0.02)]
    pub neuron_beta: f64,
    /// Neuron growth: birth strength (new weights' mean |w| over the layer's).
    #[arg(long, default_value_t = 0.5)]
    pub alpha_birth: f64,
    /// nest, scann-c: connections regrown by gradient each pruning round, as a fraction of the
    /// nonzeros (0 turns regrowth off).
    #[arg(long, default_value_t = 0.1)]
    pub regrow_fraction: f64,
    /// Anneal the regrowth share over the pruning rounds (cosine, from --regrow-fraction to
    /// almost nothing in the last round) instead of keeping it constant.
    #[arg(long)]
    pub regrow_anneal: bool,
    /// Fine-tuning epochs after the last pruning round (early-stopped on validation).
    #[arg(long, default_value_t = 0)]
    pub final_epochs: usize,
    /// Exponent e of the per-layer pruning rule: layer l keeps d · (mean layer size / its
    /// size)^e of its weights, at least d (0: every layer alike).
    #[arg(long, default_value_t = crate::synth::prune::DEFAULT_LAYER_EXPONENT)]
    pub layer_exponent: f64,
    /// NeST's partial-area convolution: share of each conv layer's output positions still
    /// computed after the last pruning round (1: off). Each round shrinks the per-channel
    /// rectangles geometrically toward it, dropping the edge lines whose outputs matter least
    /// to the loss; outside its rectangle a channel outputs 0 and costs no MACs.
    #[arg(long, default_value_t = 1.0)]
    pub partial_area: f64,
    /// Multiplier of the seed's hidden widths (default 0.25 for scann-a, else 1).
    #[arg(long)]
    pub seed_width: Option<f64>,
    /// Input reduction fitted on the training split, put in front as a Dense layer:
    /// pca:K or rp:K (sparse random projection).
    #[arg(long)]
    pub reduce: Option<String>,
    /// Also evaluate every round of the schedule on the test split (error-vs-nonzeros curve in
    /// summary.json); the shipped model is still chosen on validation.
    #[arg(long)]
    pub curve: bool,
}

impl SynthArgs {
    pub fn to_options(&self) -> anyhow::Result<SynthOptions> {
        Ok(SynthOptions {
            data: self.data.parse()?,
            out: self.out.clone(),
            hidden: self.hidden.clone(),
            seed_arch: self.seed_arch.clone(),
            normalize: match self.normalize.as_deref() {
                None => None,
                Some(&[mean, std]) => Some((mean, std)),
                Some(other) => anyhow::bail!(
                    "--normalize takes MEAN,STD (two numbers), got {} values",
                    other.len()
                ),
            },
            seed_width: self.schedule.seed_width,
            reduce: self
                .schedule
                .reduce
                .as_deref()
                .map(str::parse)
                .transpose()
                .map_err(anyhow::Error::msg)?,
            curve: self.schedule.curve,
            augment_shift: self.augment_shift,
            train: TrainConfig {
                max_epochs: self.epochs,
                batch_size: self.batch_size,
                learning_rate: self.lr,
                seed: self.rng_seed,
                lr_schedule: self.lr_schedule.parse().map_err(anyhow::Error::msg)?,
                weight_decay: self.weight_decay,
                label_smoothing: checked_smoothing(self.label_smoothing)?,
                patience: self.patience,
                augment: None,
            },
            schedule: Schedule {
                method: self.schedule.method.parse().map_err(anyhow::Error::msg)?,
                target_density: self.schedule.target_density,
                max_val_drop: self.schedule.max_val_drop.map(|p| p / 100.0),
                rounds: self.schedule.rounds,
                retrain_epochs: self.schedule.retrain_epochs,
                retrain_lr: self.schedule.retrain_lr,
                seed_density: self.schedule.seed_density,
                grow_fraction: self.schedule.grow_fraction,
                grow_rounds: self.schedule.grow_rounds,
                grow_epochs: self.schedule.grow_epochs,
                neurons: crate::synth::grow::NeuronGrowth {
                    beta: self.schedule.neuron_beta,
                    alpha_birth: self.schedule.alpha_birth,
                    per_layer: self.schedule.grow_neurons,
                    ..Default::default()
                },
                maps: crate::synth::grow_maps::MapGrowth {
                    per_layer: self.schedule.grow_maps,
                    candidates: self.schedule.map_candidates,
                    alpha_birth: self.schedule.alpha_birth,
                    ..Default::default()
                },
                regrow_fraction: self.schedule.regrow_fraction,
                regrow_anneal: self.schedule.regrow_anneal,
                reference_weights: None,
                final_epochs: self.schedule.final_epochs,
                layer_exponent: self.schedule.layer_exponent,
                area_keep: checked_share("--partial-area", self.schedule.partial_area)?,
            },
            max_vectors: self.vectors,
            show_progress: !self.quiet,
            device: self.device.clone(),
            device_files: self.device_file.clone(),
            budgets: Budgets {
                energy_uj: self.energy_budget_uj,
                flash_kb: self.flash_budget_kb,
                ram_kb: self.ram_budget_kb,
            },
            ..SynthOptions::default()
        })
    }
}

/// `summary.json`. Fields filled by later steps (firmware size, stack) are `None` until then.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize, PartialEq)]
pub struct Summary {
    pub dataset: String,
    pub n_train: usize,
    pub n_val: usize,
    pub n_test: usize,
    pub float_test_accuracy: f64,
    pub int8_test_accuracy: f64,
    pub val_accuracy: f64,
    pub params_total: usize,
    pub params_nonzero: usize,
    pub macs: usize,
    pub weight_bytes: usize,
    pub arena_bytes: usize,
    pub flash_bytes: Option<u64>,
    pub ram_bytes: Option<u64>,
    pub stack_peak_bytes: Option<u64>,
    /// Mean executed instructions per inference on the board, counted under QEMU `-icount`.
    pub insns_per_inference: Option<f64>,
    pub firmware_elf: Option<String>,
    pub board: Option<String>,
    pub seed: u64,
    pub method: Method,
    /// The seed architecture: a file's `name`, or `mlp-<widths>` for the built-in one.
    #[serde(default)]
    pub seed_arch: String,
    pub epochs: usize,
    pub n_vectors: usize,
    pub wall_seconds: f64,
    /// Device of the estimates below (`bonsai::energy`).
    #[serde(default)]
    pub device: Option<String>,
    /// Estimated energy per inference on `device`, µJ (range: cache and pipeline behaviour).
    #[serde(default)]
    pub energy_uj: Option<energy::Range>,
    /// Estimated latency per inference on `device`, µs.
    #[serde(default)]
    pub latency_us: Option<energy::Range>,
    /// Predicted executed instructions per inference on `device`'s instruction set.
    #[serde(default)]
    pub insns_predicted: Option<f64>,
    /// Every state the schedule went through (training, growth, pruning rounds).
    #[serde(default)]
    pub trajectory: Vec<CurvePoint>,
    /// Index in `trajectory` of the shipped model (chosen on validation).
    #[serde(default)]
    pub chosen: usize,
}

/// One state along a synthesis run.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize, PartialEq)]
pub struct CurvePoint {
    pub stage: String,
    /// Nonzero weights over the seed's weights.
    pub density: f64,
    /// Nonzero weights + biases of the float model.
    pub params_nonzero: usize,
    pub val_accuracy: f64,
    /// With `--curve` only.
    pub float_test_accuracy: Option<f64>,
    pub int8_test_accuracy: Option<f64>,
    /// Nonzero weights + biases of the quantized model.
    pub int8_params_nonzero: Option<usize>,
}

impl Summary {
    pub fn save(&self, path: &Path) -> anyhow::Result<()> {
        let text = serde_json::to_string_pretty(self)? + "\n";
        crate::util::write_atomic(path, text.as_bytes())
            .with_context(|| format!("cannot write {}", path.display()))
    }
    pub fn load(path: &Path) -> anyhow::Result<Summary> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        serde_json::from_str(&text)
            .with_context(|| format!("{}: not a summary.json", path.display()))
    }
}

/// Names of the files a synthesize run leaves in its output directory.
pub struct OutputFiles {
    pub model: PathBuf,
    pub model_crate: PathBuf,
    pub vectors: PathBuf,
    pub labels: PathBuf,
    pub summary: PathBuf,
}

impl OutputFiles {
    pub fn in_dir(out: &Path) -> OutputFiles {
        OutputFiles {
            model: out.join("model.json"),
            model_crate: out.join("model"),
            vectors: out.join("vectors.bin"),
            labels: out.join("vectors_labels.json"),
            summary: out.join("summary.json"),
        }
    }
}

pub fn spinner(show: bool, len: u64, what: &str) -> ProgressBar {
    if !show {
        return ProgressBar::hidden();
    }
    let pb = ProgressBar::new(len);
    pb.set_style(
        ProgressStyle::with_template("{prefix:>10} [{bar:30}] {pos}/{len} {msg}")
            .expect("static template")
            .progress_chars("=> "),
    );
    pb.set_prefix(what.to_string());
    pb
}

/// Accuracy of the int8 model on preprocessed samples: the golden arithmetic summing only the
/// nonzero weights ([`interp::sparse`], proven equal to the golden model), samples in parallel,
/// since a synthesis evaluates after every stage.
pub fn int8_accuracy(q: &Model, s: &Samples) -> anyhow::Result<f64> {
    use rayon::prelude::*;
    let model = interp::sparse::SparseInt8::new(q);
    let correct = (0..s.len())
        .into_par_iter()
        .map(|i| -> anyhow::Result<usize> {
            let y = model.run(&quant::quantize_input(q, s.row(i)))?;
            Ok(usize::from(argmax(&y) == s.y[i] as usize))
        })
        .try_reduce(|| 0, |a, b| Ok(a + b))?;
    Ok(correct as f64 / s.len().max(1) as f64)
}

/// A dataset loaded, split and preprocessed: what every training run of a job reads.
pub struct Prepared {
    /// The dataset's name (`Dataset::name`).
    pub name: String,
    /// The training split as loaded (raw features), for seeds that fit to it.
    pub train_raw: data::Dataset,
    pub preprocess: Preprocess,
    pub train: Samples,
    pub val: Samples,
    /// Only for final figures: nothing decides on it.
    pub test: Samples,
}

impl Prepared {
    /// What a seed or search candidate needs to know about the data.
    pub fn data_shape(&self) -> seed_file::DataShape {
        seed_file::DataShape {
            sample_shape: self.train_raw.sample_shape.clone(),
            class_names: self.train_raw.class_names.clone(),
            preprocess: self.preprocess.clone(),
        }
    }
}

/// Loads `spec` with the fixed splits of `seed` and applies the preprocessing fitted on train.
pub fn prepare(spec: &DataSpec, seed: u64) -> anyhow::Result<Prepared> {
    let splits = data::load(spec, seed)?;
    let pre = data::fit_preprocess(spec, &splits.train);
    Ok(Prepared {
        name: splits.train.name.clone(),
        train: Samples::from_dataset(&splits.train, &pre),
        val: Samples::from_dataset(&splits.val, &pre),
        test: Samples::from_dataset(&splits.test, &pre),
        preprocess: pre,
        train_raw: splits.train,
    })
}

/// Runs the whole job. Nothing is written until every step has succeeded, and each file is
/// written atomically, so a failure never leaves a partial output behind.
pub fn synthesize(opts: &SynthOptions) -> anyhow::Result<Summary> {
    let start = Instant::now();
    // Resolve the device first: a typo should not cost a training run.
    let devices = energy::devices_with(&opts.device_files)?;
    let device = energy::find(&devices, &opts.device)?.clone();
    let data = prepare(&opts.data, opts.train.seed)?;
    let train_cfg = TrainConfig {
        augment: image_shift(&data, opts.augment_shift)?,
        ..opts.train.clone()
    };

    let (mut model, seed_arch, reference) =
        build_seed(opts, &data.train_raw, data.preprocess.clone(), &data.train)?;
    let sched = Schedule {
        reference_weights: Some(reference),
        ..opts.schedule.clone()
    };
    let total_epochs = schedule::planned_epochs(&sched, opts.train.max_epochs);
    let pb = spinner(opts.show_progress, total_epochs as u64, "training");
    let mut epochs = 0;
    let result = schedule::synthesize(
        &mut model,
        &data.train,
        &data.val,
        &train_cfg,
        &sched,
        |line| pb.println(format!("  {line}")),
        |log| {
            epochs += 1;
            pb.set_message(format!(
                "loss {:.4}  val acc {:.2}%",
                log.train_loss,
                100.0 * log.val_accuracy
            ));
            pb.inc(1);
        },
    )?;
    pb.finish_with_message(format!("val acc {:.2}%", 100.0 * result.val_accuracy));
    finish(
        opts,
        &device,
        &data,
        &model,
        &result,
        Trained {
            method: sched.method,
            seed_arch,
            epochs,
            start,
        },
    )
}

/// The shift augmentation of `max` pixels for `data` (None for 0). Refused for data that is not
/// images, or whose preprocessing is per feature (the background would differ pixel to pixel).
fn image_shift(data: &Prepared, max: usize) -> anyhow::Result<Option<crate::train::Shift>> {
    if max == 0 {
        return Ok(None);
    }
    let name = &data.name;
    let shape = &data.train_raw.sample_shape;
    // Only HWC images: a 2-D sample is a time series (steps x channels), not a picture.
    let shape = match shape[..] {
        [h, w, c] => [h, w, c],
        _ => anyhow::bail!(
            "--augment-shift moves images; {name} has samples of shape {shape:?}, not height x width x channels"
        ),
    };
    anyhow::ensure!(
        max < shape[0].min(shape[1]),
        "--augment-shift {max}: the images of {name} are only {}x{} pixels",
        shape[0],
        shape[1]
    );
    let pre = &data.preprocess;
    anyhow::ensure!(
        pre.scale.len() == 1 && pre.offset.len() == 1,
        "--augment-shift: {name} is preprocessed feature by feature, so moved images have no single background value"
    );
    Ok(Some(crate::train::Shift {
        max,
        shape,
        fill: pre.apply(&[0.0])[0],
    }))
}

/// How the model handed to [`finish`] came to be (recorded in `summary.json`).
pub struct Trained {
    pub method: Method,
    pub seed_arch: String,
    /// Training epochs run in all.
    pub epochs: usize,
    /// When the job started (for `wall_seconds`).
    pub start: Instant,
}

/// The tail every job shares: quantize the trained float `model` (calibrated on train),
/// measure it on the test split, lower it, estimate its energy on `device`, check
/// `opts.budgets`, then write model.json, the model crate, the test vectors and summary.json
/// into `opts.out`. Nothing is written unless every step succeeded.
pub fn finish(
    opts: &SynthOptions,
    device: &energy::Device,
    data: &Prepared,
    model: &Model,
    result: &schedule::SynthResult,
    how: Trained,
) -> anyhow::Result<Summary> {
    let (train_s, val_s, test_s) = (&data.train, &data.val, &data.test);
    let input_len = data.train_raw.n_features();
    let val_accuracy = result.val_accuracy;
    let calib: Vec<Vec<f32>> = (0..train_s.len().min(opts.calibration_samples))
        .map(|i| train_s.row(i).to_vec())
        .collect();
    let input_quant = data::fixed_input_quant(&opts.data);
    let q = quant::quantize_with_input(model, &calib, input_quant)?;
    let mut trajectory = Vec::new();
    for p in &result.trajectory {
        let (f, i, n) = if opts.curve {
            let pq = quant::quantize_with_input(&p.model, &calib, input_quant)?;
            (
                Some(train::float_accuracy(&p.model, test_s)),
                Some(int8_accuracy(&pq, test_s)?),
                Some(pq.stats().params_nonzero),
            )
        } else {
            (None, None, None)
        };
        trajectory.push(CurvePoint {
            stage: p.stage.clone(),
            density: p.density,
            params_nonzero: p.params_nonzero,
            val_accuracy: p.val_accuracy,
            float_test_accuracy: f,
            int8_test_accuracy: i,
            int8_params_nonzero: n,
        });
    }
    let float_acc = train::float_accuracy(model, test_s);
    let int8_acc = int8_accuracy(&q, test_s)?;

    let lowered = lower::lower(&q, &lower::LowerOptions::default())?;
    let n_vec = test_s.len().min(opts.max_vectors);
    let vectors: Vec<Vec<i8>> = (0..n_vec)
        .map(|i| quant::quantize_input(&q, test_s.row(i)))
        .collect();
    let labels: Vec<u32> = test_s.y[..n_vec].to_vec();

    let est = energy::estimate_builtin(&q, &lowered, device)
        .context("cannot estimate the energy per inference")?;
    energy::check_budgets(
        &opts.budgets,
        &energy::Figures {
            energy_uj_max: est.energy_uj.max,
            flash_bytes: lowered.weight_bytes,
            ram_bytes: lowered.arena_bytes,
        },
        &device.name,
    )
    .context("the synthesized model does not fit its budget (nothing was written)")?;

    let stats = q.stats();
    let summary = Summary {
        dataset: data.name.clone(),
        n_train: train_s.len(),
        n_val: val_s.len(),
        n_test: test_s.len(),
        float_test_accuracy: float_acc,
        int8_test_accuracy: int8_acc,
        val_accuracy,
        params_total: stats.params_total,
        params_nonzero: stats.params_nonzero,
        macs: stats.macs,
        weight_bytes: lowered.weight_bytes,
        arena_bytes: lowered.arena_bytes,
        flash_bytes: None,
        ram_bytes: None,
        stack_peak_bytes: None,
        insns_per_inference: None,
        firmware_elf: None,
        board: None,
        seed: opts.train.seed,
        method: how.method,
        seed_arch: how.seed_arch,
        epochs: how.epochs,
        n_vectors: n_vec,
        wall_seconds: how.start.elapsed().as_secs_f64(),
        device: Some(device.name.clone()),
        energy_uj: Some(est.energy_uj),
        latency_us: Some(est.latency_us),
        insns_predicted: Some(est.insns),
        trajectory,
        chosen: result.chosen,
    };

    let files = OutputFiles::in_dir(&opts.out);
    q.save(&files.model)?;
    lower::write_crate(&lowered, &files.model_crate)?;
    crate::vectors::write(&files.vectors, input_len, &vectors)?;
    crate::util::write_atomic(&files.labels, serde_json::to_string(&labels)?.as_bytes())?;
    summary.save(&files.summary)?;
    Ok(summary)
}

/// `--label-smoothing` in [0, 1): 1 would make every target uniform (and burn asserts it away).
fn checked_smoothing(a: f64) -> anyhow::Result<f64> {
    if (0.0..1.0).contains(&a) {
        Ok(a)
    } else {
        anyhow::bail!("--label-smoothing must be in [0, 1), got {a}")
    }
}

fn checked_share(flag: &str, a: f64) -> anyhow::Result<f64> {
    if a > 0.0 && a <= 1.0 {
        Ok(a)
    } else {
        anyhow::bail!("{flag} must be in (0, 1], got {a}")
    }
}

/// The initialised seed (built-in MLP or seed file, widths scaled, input reduction in front), its
/// name, and the weight count of the full-width seed (what target densities refer to).
fn build_seed(
    opts: &SynthOptions,
    train: &data::Dataset,
    pre: crate::ir::Preprocess,
    train_s: &Samples,
) -> anyhow::Result<(Model, String, usize)> {
    let seed_value = opts.train.seed;
    let width = opts
        .seed_width
        .unwrap_or_else(|| opts.schedule.method.default_seed_width());
    if width <= 0.0 {
        anyhow::bail!("--seed-width must be positive, got {width}");
    }
    let scaled = |n: usize| ((n as f64 * width).round() as usize).max(1);
    let dr = opts
        .reduce
        .map(|r| reduce::fit(r, train_s, seed_value))
        .transpose()
        .map_err(anyhow::Error::msg)?;
    let data_shape = seed_file::DataShape {
        sample_shape: match &dr {
            Some(l) => vec![l.out_features],
            None => train.sample_shape.clone(),
        },
        class_names: train.class_names.clone(),
        // Behind a reduction the seed reads the reduced features; the data's own scaling
        // (per raw feature) goes in front of the reduction, on the whole model.
        preprocess: if dr.is_some() {
            crate::ir::Preprocess::identity()
        } else {
            pre.clone()
        },
    };
    let flat_len: usize = data_shape.sample_shape.iter().product();
    let build = |scale: &dyn Fn(usize) -> usize| -> anyhow::Result<(Model, String)> {
        match &opts.seed_arch {
            Some(path)
                if path
                    .extension()
                    .is_some_and(|e| e.eq_ignore_ascii_case("onnx")) =>
            {
                if dr.is_some() || width != 1.0 {
                    anyhow::bail!(
                        "{}: an ONNX seed keeps its architecture: --reduce and --seed-width do not apply",
                        path.display()
                    );
                }
                let preprocess = match opts.normalize {
                    Some((mean, std)) if std > 0.0 => Preprocess {
                        scale: vec![1.0 / (255.0 * std)],
                        offset: vec![-mean / std],
                    },
                    Some((_, std)) => anyhow::bail!(
                        "--normalize: the standard deviation must be positive, got {std}"
                    ),
                    None => data_shape.preprocess.clone(),
                };
                let imported = crate::onnx::import_file(
                    path,
                    &crate::onnx::ImportOptions {
                        preprocess: Some(preprocess),
                        input_shape: (data_shape.sample_shape.len() == 3)
                            .then(|| data_shape.sample_shape.clone()),
                        name: None,
                        class_names: Some(data_shape.class_names.clone()),
                    },
                )?;
                let m = imported.model;
                let classes = data_shape.class_names.len();
                if m.input_len() != flat_len || (classes > 0 && m.output_len() != classes) {
                    anyhow::bail!(
                        "{}: the ONNX model takes {} inputs and gives {} outputs; the data has {} features and {} classes",
                        path.display(),
                        m.input_len(),
                        m.output_len(),
                        flat_len,
                        classes
                    );
                }
                let name = path
                    .file_stem()
                    .map(|s| s.to_string_lossy().into_owned())
                    .unwrap_or_else(|| "onnx".into());
                Ok((m, name))
            }
            Some(path) => {
                let mut spec = seed_file::read(path)?;
                if dr.is_some() {
                    // The seed reads the reduced features, flat.
                    spec.input = None;
                }
                spec.scale_widths(scale);
                let name = spec.name.clone();
                let m =
                    seed_file::build(&spec, &path.display().to_string(), &data_shape, seed_value)?;
                Ok((m, name))
            }
            None => {
                let hidden: Vec<usize> = opts.hidden.iter().map(|&n| scale(n)).collect();
                let name = format!(
                    "mlp-{}",
                    hidden
                        .iter()
                        .map(|h| h.to_string())
                        .collect::<Vec<_>>()
                        .join("-")
                );
                let m = seed::mlp(
                    &format!("{}-mlp", train.name),
                    flat_len,
                    &hidden,
                    train.class_names.clone(),
                    data_shape.preprocess.clone(),
                    seed_value,
                );
                Ok((m, name))
            }
        }
    };
    let (full, _) = build(&|n| n)?;
    let (mut model, mut name) = build(&scaled)?;
    let mut reference = schedule::weight_count(&full);
    if let Some(layer) = dr {
        name = format!(
            "{}+{}",
            opts.reduce.map(reduce_name).unwrap_or_default(),
            name
        );
        reference += layer.weight.len();
        model = reduce::prepend(&model, layer, pre);
    }
    Ok((model, name, reference))
}

fn reduce_name(r: Reduce) -> String {
    match r {
        Reduce::Pca(k) => format!("pca{k}"),
        Reduce::RandomProjection(k) => format!("rp{k}"),
    }
}
