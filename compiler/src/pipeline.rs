//! The end-to-end job behind `bonsai synthesize`: dataset → seed → training → int8 → lowered
//! model crate + test vectors + `summary.json`. Each step is a stage module; this file only
//! sequences them and records what they measured.

use crate::data::{self, DataSpec};
use crate::energy::{self, Budgets};
use crate::interp;
use crate::ir::Model;
use crate::lower;
use crate::quant;
use crate::synth::schedule::{self, Method, Schedule};
use crate::synth::seed;
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
    pub train: TrainConfig,
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
            train: TrainConfig::default(),
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
    /// `digits` (embedded default), `mnist:DIR`, `fashion-mnist:DIR`, `csv:FILE[:label=COLUMN]`,
    /// `ts:TRAIN.ts[,TEST.ts]` (raw series), `imu:TRAIN.ts[,TEST.ts]` (IMU window features, as
    /// the board firmware computes them) or `basicmotions[:DIR]` (embedded IMU activity data).
    #[arg(long, default_value = "digits")]
    pub data: String,
    #[arg(long, default_value = "out")]
    pub out: PathBuf,
    /// Hidden layer widths of the seed MLP, comma separated.
    #[arg(long, value_delimiter = ',', default_value = "64,32")]
    pub hidden: Vec<usize>,
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    #[arg(long, default_value_t = 60)]
    pub epochs: usize,
    #[arg(long, default_value_t = 32)]
    pub batch_size: usize,
    #[arg(long, default_value_t = 2e-3)]
    pub lr: f64,
    /// Test samples written as firmware test vectors.
    #[arg(long, default_value_t = 400)]
    pub vectors: usize,
    /// dense, prune (magnitude prune + retrain) or nest (sparse seed, grow, prune).
    #[arg(long, default_value = "dense")]
    pub method: String,
    /// Overall density of Dense weights for prune/nest.
    #[arg(long, default_value_t = 0.1)]
    pub target_density: f64,
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

impl SynthArgs {
    pub fn to_options(&self) -> anyhow::Result<SynthOptions> {
        Ok(SynthOptions {
            data: self.data.parse()?,
            out: self.out.clone(),
            hidden: self.hidden.clone(),
            train: TrainConfig {
                max_epochs: self.epochs,
                batch_size: self.batch_size,
                learning_rate: self.lr,
                seed: self.seed,
                ..TrainConfig::default()
            },
            schedule: Schedule {
                method: self.method.parse().map_err(anyhow::Error::msg)?,
                target_density: self.target_density,
                rounds: self.rounds,
                retrain_epochs: self.retrain_epochs,
                seed_density: self.seed_density,
                grow_fraction: self.grow_fraction,
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

fn spinner(show: bool, len: u64, what: &str) -> ProgressBar {
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

/// Accuracy of the int8 reference on preprocessed samples.
pub fn int8_accuracy(q: &Model, s: &Samples) -> anyhow::Result<f64> {
    let mut correct = 0;
    for i in 0..s.len() {
        let y = interp::int8::run(q, &quant::quantize_input(q, s.row(i)))?;
        correct += usize::from(argmax(&y) == s.y[i] as usize);
    }
    Ok(correct as f64 / s.len().max(1) as f64)
}

/// Runs the whole job. Nothing is written until every step has succeeded, and each file is
/// written atomically, so a failure never leaves a partial output behind.
pub fn synthesize(opts: &SynthOptions) -> anyhow::Result<Summary> {
    let start = Instant::now();
    // Resolve the device first: a typo should not cost a training run.
    let devices = energy::devices_with(&opts.device_files)?;
    let device = energy::find(&devices, &opts.device)?.clone();
    let seed_value = opts.train.seed;
    let splits = data::load(&opts.data, seed_value)?;
    let pre = data::fit_preprocess(&opts.data, &splits.train);
    let train_s = Samples::from_dataset(&splits.train, &pre);
    let val_s = Samples::from_dataset(&splits.val, &pre);
    let test_s = Samples::from_dataset(&splits.test, &pre);
    let input_len = splits.train.n_features();

    let mut model = seed::mlp(
        &format!("{}-mlp", splits.train.name),
        input_len,
        &opts.hidden,
        splits.train.class_names.clone(),
        pre,
        seed_value,
    );
    let sched = &opts.schedule;
    let total_epochs = opts.train.max_epochs
        + match sched.method {
            Method::Dense => 0,
            Method::Prune => sched.rounds * sched.retrain_epochs,
            Method::Nest => (sched.rounds + 1) * sched.retrain_epochs,
        };
    let pb = spinner(opts.show_progress, total_epochs as u64, "training");
    let mut epochs = 0;
    let val_accuracy = schedule::synthesize(
        &mut model,
        &train_s,
        &val_s,
        &opts.train,
        sched,
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
    pb.finish_with_message(format!("val acc {:.2}%", 100.0 * val_accuracy));

    let calib: Vec<Vec<f32>> = (0..train_s.len().min(opts.calibration_samples))
        .map(|i| train_s.row(i).to_vec())
        .collect();
    let q = quant::quantize_with_input(&model, &calib, data::fixed_input_quant(&opts.data))?;
    let float_acc = train::float_accuracy(&model, &test_s);
    let int8_acc = int8_accuracy(&q, &test_s)?;

    let lowered = lower::lower(&q, &lower::LowerOptions::default())?;
    let n_vec = test_s.len().min(opts.max_vectors);
    let vectors: Vec<Vec<i8>> = (0..n_vec)
        .map(|i| quant::quantize_input(&q, test_s.row(i)))
        .collect();
    let labels: Vec<u32> = test_s.y[..n_vec].to_vec();

    let est = energy::estimate_builtin(&q, &lowered, &device)
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
        dataset: splits.train.name.clone(),
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
        seed: seed_value,
        method: sched.method,
        epochs,
        n_vectors: n_vec,
        wall_seconds: start.elapsed().as_secs_f64(),
        device: Some(device.name.clone()),
        energy_uj: Some(est.energy_uj),
        latency_us: Some(est.latency_us),
        insns_predicted: Some(est.insns),
    };

    let files = OutputFiles::in_dir(&opts.out);
    q.save(&files.model)?;
    lower::write_crate(&lowered, &files.model_crate)?;
    crate::vectors::write(&files.vectors, input_len, &vectors)?;
    crate::util::write_atomic(&files.labels, serde_json::to_string(&labels)?.as_bytes())?;
    summary.save(&files.summary)?;
    Ok(summary)
}
