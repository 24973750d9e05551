//! ONNX export validation (issue #6), shared by `cargo xtask bench onnx` and
//! `tests/tests/onnx_runtimes.rs`.
//!
//! A synthesized model is exported three ways ([`Variant`]) and every graph is
//! * checked by tract ([`bonsai::onnx::check_with_tract`]) and run by tract on the whole test set;
//! * checked by `onnx.checker.check_model(full_check=True)` and run by onnxruntime (all graph
//!   optimizations off) on the same inputs, by `tests/python/check_onnx.py` in a venv under
//!   `target/onnx-venv` ([`ensure_venv`]).
//!
//! Both runtimes are compared with the compiler's references: the float graph with
//! [`bonsai::interp::float`], the QDQ graphs with the golden integer model
//! [`bonsai::interp::int8`] (dequantized for the float-IO graph). [`problems`] holds the pass
//! criteria; the test asserts there are none, the bench records them.

use anyhow::{bail, ensure, Context, Result};
use bonsai::data::{self, DataSpec};
use bonsai::interp;
use bonsai::ir::{Model, Op, Preprocess};
use bonsai::pipeline::{synthesize, OutputFiles, SynthOptions};
use bonsai::quant;
use bonsai::synth::prune;
use bonsai::synth::schedule::{Method, Schedule};
use bonsai::train::{self, argmax, Samples, TrainConfig};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Float graph tolerance against the float reference: `|out - ref| <= ATOL + RTOL·|ref|`.
pub const FLOAT_ATOL: f64 = 1e-4;
pub const FLOAT_RTOL: f64 = 1e-4;
/// Minimum top-1 agreement of the QDQ graphs with the integer reference.
pub const MIN_TOP1_AGREEMENT: f64 = 0.995;
/// Packages the venv gets (`pip install` arguments).
pub const PIP_PACKAGES: [&str; 2] = ["onnxruntime", "onnx"];

/// The three exports of a model.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Variant {
    /// [`bonsai::onnx::export_float`]: f32 in, f32 out.
    Float,
    /// [`bonsai::onnx::export_int8`]: QDQ graph, f32 in (quantized inside), dequantized f32 out.
    Int8Qdq,
    /// [`bonsai::onnx::export_int8_io`]: QDQ graph, int8 in, int8 out.
    Int8QdqInt8Io,
}

impl Variant {
    pub const ALL: [Variant; 3] = [Variant::Float, Variant::Int8Qdq, Variant::Int8QdqInt8Io];

    /// The `bonsai_variant` metadata value the exporter writes.
    pub fn name(self) -> &'static str {
        match self {
            Variant::Float => "float",
            Variant::Int8Qdq => "int8_qdq",
            Variant::Int8QdqInt8Io => "int8_qdq_int8_io",
        }
    }

    pub fn is_int8(self) -> bool {
        self != Variant::Float
    }

    pub fn export(self, model: &Model) -> Result<Vec<u8>> {
        Ok(match self {
            Variant::Float => bonsai::onnx::export_float(model),
            Variant::Int8Qdq => bonsai::onnx::export_int8(model),
            Variant::Int8QdqInt8Io => bonsai::onnx::export_int8_io(model),
        }?)
    }

    /// The reference interpreter the variant is compared with.
    pub fn reference_name(self) -> &'static str {
        if self.is_int8() {
            "interp::int8"
        } else {
            "interp::float"
        }
    }
}

/// One runtime's outputs against the reference, over a whole input set. Computed in Rust for
/// tract ([`compare`]) and by `check_onnx.py` for onnxruntime, with the same definitions.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Comparison {
    pub n_samples: usize,
    pub n_outputs: usize,
    /// In output units: float logits, or LSB for int8 outputs.
    pub max_abs_diff: f64,
    /// Outputs with `|out - ref| > atol + rtol·|ref|` (float graph only).
    pub tol_violations: Option<usize>,
    /// Disjoint counts in LSB of the output (QDQ graphs only): equal, one LSB apart, further.
    pub exact: Option<usize>,
    pub one_lsb: Option<usize>,
    pub worse: Option<usize>,
    /// Fraction of samples whose argmax (first maximum) equals the reference's.
    pub top1_agreement: f64,
}

impl Comparison {
    /// Fraction of outputs at most one LSB from the reference (QDQ graphs only).
    pub fn within_1lsb_fraction(&self) -> Option<f64> {
        Some((self.exact? + self.one_lsb?) as f64 / self.n_outputs.max(1) as f64)
    }
}

/// Slack (in LSB) for f32 rounding when a float difference is counted in LSB.
const LSB_SLACK: f64 = 1e-3;

/// How outputs are compared with the reference.
#[derive(Clone, Copy, Debug)]
pub struct Tolerance {
    /// `(atol, rtol)`: count tolerance violations.
    pub abs_rel: Option<(f64, f64)>,
    /// Quantization step of the output: count exact / one-LSB / worse.
    pub lsb: Option<f64>,
}

/// Compares rows of outputs with rows of reference values (same definitions as
/// `check_onnx.py`'s `compare`).
pub fn compare<T: Copy + Into<f64> + PartialOrd>(
    got: &[Vec<T>],
    want: &[Vec<T>],
    tol: Tolerance,
) -> Comparison {
    assert_eq!(got.len(), want.len(), "sample count");
    let (mut max_abs_diff, mut violations, mut top1) = (0f64, 0usize, 0usize);
    let (mut exact, mut one, mut total) = (0usize, 0usize, 0usize);
    for (g, w) in got.iter().zip(want) {
        assert_eq!(g.len(), w.len(), "output length");
        for (&a, &b) in g.iter().zip(w) {
            let (a, b): (f64, f64) = (a.into(), b.into());
            let d = (a - b).abs();
            max_abs_diff = max_abs_diff.max(d);
            if let Some((atol, rtol)) = tol.abs_rel {
                violations += usize::from(d > atol + rtol * b.abs());
            }
            if let Some(lsb) = tol.lsb {
                let l = d / lsb;
                exact += usize::from(l <= LSB_SLACK);
                one += usize::from(l > LSB_SLACK && l <= 1.0 + LSB_SLACK);
            }
            total += 1;
        }
        top1 += usize::from(argmax(g) == argmax(w));
    }
    let counted = |v: usize| tol.lsb.map(|_| v);
    Comparison {
        n_samples: got.len(),
        n_outputs: total,
        max_abs_diff,
        tol_violations: tol.abs_rel.map(|_| violations),
        exact: counted(exact),
        one_lsb: counted(one),
        worse: counted(total - exact - one),
        top1_agreement: if got.is_empty() {
            1.0
        } else {
            top1 as f64 / got.len() as f64
        },
    }
}

/// A synthesized model and the preprocessed test split it is checked on.
pub struct Case {
    /// e.g. `digits mlp-64-64-32-10`.
    pub name: String,
    pub model: Model,
    pub inputs: Samples,
}

/// `mlp-IN-H1-…-OUT` for an MLP; for a model with convolutions
/// `cnn-HxWxC-c8-mp2-…-OUT` (`cN` conv with N filters, `dwN` depthwise, `mpK`/`apK` max/average
/// pool of K×K, plain numbers Dense widths), all in node order.
pub fn arch_name(model: &Model) -> String {
    let input_shape = &model.tensor(model.inputs[0]).shape;
    let is_cnn = model.nodes.iter().any(|n| matches!(n.op, Op::Conv2d(_)));
    let mut parts = vec![if is_cnn {
        input_shape
            .iter()
            .map(|d| d.to_string())
            .collect::<Vec<_>>()
            .join("x")
    } else {
        model.input_len().to_string()
    }];
    for n in &model.nodes {
        match &n.op {
            Op::Dense(d) => parts.push(d.out_features.to_string()),
            Op::Conv2d(c) if c.is_depthwise() => parts.push(format!("dw{}", c.out_channels)),
            Op::Conv2d(c) => parts.push(format!("c{}", c.out_channels)),
            Op::MaxPool(p) => parts.push(format!("mp{}", p.kernel[0])),
            Op::AvgPool(p) => parts.push(format!("ap{}", p.kernel[0])),
            _ => {}
        }
    }
    format!("{}-{}", if is_cnn { "cnn" } else { "mlp" }, parts.join("-"))
}

/// `<prefix> <arch_name>`, with ` p<density %>` for a pruned model (e.g.
/// `mnist mlp-784-239-91-10 p2.8`).
pub fn case_name(prefix: &str, model: &Model) -> String {
    let d = prune::density(model);
    if d < 0.9995 {
        format!("{prefix} {} p{:.1}", arch_name(model), 100.0 * d)
    } else {
        format!("{prefix} {}", arch_name(model))
    }
}

/// Runs [`synthesize`] (writing into `opts.out`), reloads the quantized `model.json` and the
/// test split of the same seeded data split, preprocessed with the model's own preprocessing.
pub fn synthesize_case(opts: &SynthOptions) -> Result<Case> {
    let s = synthesize(opts).context("synthesize")?;
    let model = Model::load(&OutputFiles::in_dir(&opts.out).model)?;
    let splits = data::load(&opts.data, opts.train.seed)?;
    let inputs = Samples::from_dataset(&splits.test, &model.preprocess);
    ensure!(
        inputs.len() == s.n_test && inputs.dim == model.input_len(),
        "reloaded test split ({} × {}) does not match the synthesized model ({} × {})",
        inputs.len(),
        inputs.dim,
        s.n_test,
        model.input_len()
    );
    Ok(Case {
        name: case_name(&s.dataset, &model),
        model,
        inputs,
    })
}

/// The default digits model (seed 1) as the test and the bench use it.
pub fn digits_options(out: &Path, show_progress: bool) -> SynthOptions {
    let mut opts = SynthOptions {
        data: DataSpec::Digits,
        out: out.to_path_buf(),
        show_progress,
        ..SynthOptions::default()
    };
    opts.train.seed = 1;
    opts
}

/// A small CNN for the 8×8 digits, whose samples are read as `[8, 8, 1]` images. Both
/// convolutions pad ("same"), so the exports' Conv pads are exercised, and the last pool leaves
/// a 2×2×16 image: the flatten in front of the Dense layer must reorder ONNX's NCHW into the
/// runtime's HWC order, and a wrong permutation shows up as a mismatch rather than silently.
pub const DIGITS_CNN_SEED: &str = include_str!("../../models/seeds/digits-cnn.toml");

/// Epochs of [`digits_cnn_options`]: enough for a CNN well above chance on digits while the
/// test that uses it stays short.
pub const DIGITS_CNN_EPOCHS: usize = 12;

/// The [`DIGITS_CNN_SEED`] CNN trained densely on digits (seed 1, [`DIGITS_CNN_EPOCHS`] epochs);
/// the seed file is written to `out/digits-cnn.toml` first.
pub fn digits_cnn_options(out: &Path, show_progress: bool) -> Result<SynthOptions> {
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    let seed = out.join("digits-cnn.toml");
    bonsai::util::write_atomic(&seed, DIGITS_CNN_SEED.as_bytes())
        .with_context(|| format!("cannot write {}", seed.display()))?;
    let mut opts = digits_options(out, show_progress);
    opts.seed_arch = Some(seed);
    opts.train.max_epochs = DIGITS_CNN_EPOCHS;
    Ok(opts)
}

/// The MNIST 784-300-100-10 MLP (10 epochs, seed 1).
pub fn mnist_options(mnist_dir: &Path, out: &Path, show_progress: bool) -> SynthOptions {
    let mut opts = SynthOptions {
        data: DataSpec::mnist(mnist_dir.to_path_buf()),
        out: out.to_path_buf(),
        hidden: vec![300, 100],
        show_progress,
        ..SynthOptions::default()
    };
    opts.train.seed = 1;
    opts.train.max_epochs = 10;
    opts
}

/// The 784-300-100-10 MLP pruned to [`LENET_300_100_DENSITY`] on MNIST (the sparse runtime's
/// benchmark model): 10 dense epochs, then magnitude pruning with retraining (seed 1).
pub fn mnist_sparse_mlp_options(mnist_dir: &Path, out: &Path, show_progress: bool) -> SynthOptions {
    let mut opts = mnist_options(mnist_dir, out, show_progress);
    opts.schedule = Schedule {
        method: Method::Prune,
        target_density: LENET_300_100_DENSITY,
        ..Schedule::default()
    };
    opts
}

/// Density of the sparse LeNet-300-100 (the sparse runtime's 2 % bar).
pub const LENET_300_100_DENSITY: f64 = 0.02;
/// Density of the pruned LeNet-5 (Han et al. 2015 reach 8 % on the Caffe LeNet-5).
pub const LENET5_DENSITY: f64 = 0.08;

/// `models/seeds/<name>.toml`.
pub fn seed_path(root: &Path, name: &str) -> PathBuf {
    root.join("models/seeds").join(format!("{name}.toml"))
}

/// LeNet-5 (Caffe variant, `models/seeds/lenet-5.toml`) trained on MNIST and pruned to
/// [`LENET5_DENSITY`] in three rounds of two retraining epochs after four dense epochs (seed
/// 1): a short schedule, since every epoch of the 431k-parameter CNN costs minutes on a CPU.
pub fn mnist_lenet5_options(
    root: &Path,
    mnist_dir: &Path,
    out: &Path,
    show_progress: bool,
) -> SynthOptions {
    let mut opts = mnist_options(mnist_dir, out, show_progress);
    opts.hidden = vec![];
    opts.seed_arch = Some(seed_path(root, "lenet-5"));
    opts.train.max_epochs = 4;
    opts.schedule = Schedule {
        method: Method::Prune,
        target_density: LENET5_DENSITY,
        rounds: 3,
        retrain_epochs: 2,
        ..Schedule::default()
    };
    opts
}

/// The embedded 8×8 digits as MNIST-shaped images, the seeded split's train, validation and
/// test sets: every pixel (0..=16) repeated 3×3 and the 24×24 digit centred in a 28×28 frame, as
/// MNIST centres its digits; values scaled by 1/16 (the digits' own preprocessing,
/// [`digits_28x28_preprocess`]). Real handwriting in the benchmark CNNs' input geometry,
/// without MNIST in the repository.
pub fn digits_28x28(seed: u64) -> Result<[Samples; 3]> {
    let splits = data::load(&DataSpec::Digits, seed)?;
    let pre = digits_28x28_preprocess();
    let upscale = |d: &data::Dataset| -> Result<Samples> {
        ensure!(
            d.n_features() == 64,
            "digits samples have {} features, expected 64",
            d.n_features()
        );
        let mut x = Vec::with_capacity(d.len() * 784);
        for i in 0..d.len() {
            let s = d.sample(i);
            let mut img = [0f32; 784];
            for (r, row) in img.chunks_mut(28).enumerate().skip(2).take(24) {
                for (c, v) in row.iter_mut().enumerate().skip(2).take(24) {
                    *v = s[(r - 2) / 3 * 8 + (c - 2) / 3];
                }
            }
            x.extend(pre.apply(&img));
        }
        Ok(Samples {
            x,
            y: d.labels.clone(),
            dim: 784,
        })
    };
    Ok([
        upscale(&splits.train)?,
        upscale(&splits.val)?,
        upscale(&splits.test)?,
    ])
}

/// The preprocessing of [`digits_28x28`]'s raw pixels (0..=16).
pub fn digits_28x28_preprocess() -> Preprocess {
    Preprocess {
        scale: vec![1.0 / 16.0],
        offset: vec![0.0],
    }
}

/// A benchmark seed architecture (`seed_file`, 784 inputs as `[28, 28, 1]` or flat, 10
/// classes) on [`digits_28x28`]'s `[train, val, test]`: initialised from `seed`, trained
/// `epochs` epochs, pruned by magnitude to overall `density` (each layer as `bonsai
/// synthesize`'s pruning shares it out), fine-tuned `epochs` more, quantized on 500 training
/// rows; checked on the test set.
///
/// Briefly trained rather than left random: an untrained network's top two logits are often a
/// rounding step apart, so a one-LSB difference that the per-layer check accepts would flip
/// its top-1 end to end (seeded LeNet-5: 2 of 359 samples).
pub fn seeded_case(
    seed_file: &Path,
    sets: &[Samples; 3],
    density: f64,
    epochs: usize,
    seed: u64,
) -> Result<Case> {
    let [train_s, val_s, test_s] = sets;
    let shape = bonsai::synth::seed_file::DataShape {
        sample_shape: vec![28, 28, 1],
        class_names: (0..10).map(|d| d.to_string()).collect(),
        preprocess: digits_28x28_preprocess(),
    };
    let mut model = bonsai::synth::seed_file::load(seed_file, &shape, seed)?;
    ensure!(
        model.input_len() == test_s.dim,
        "{}: the model takes {} inputs, the samples have {}",
        seed_file.display(),
        model.input_len(),
        test_s.dim
    );
    let tcfg = TrainConfig {
        max_epochs: epochs,
        patience: epochs,
        seed,
        ..TrainConfig::default()
    };
    if epochs > 0 {
        train::train(&mut model, train_s, val_s, &tcfg, |_| {})?;
    }
    let densities = densities_for(&model, density);
    prune::prune_to(&mut model, &densities);
    if epochs > 0 {
        train::train(&mut model, train_s, val_s, &tcfg, |_| {})?;
    }
    let calib: Vec<Vec<f32>> = (0..train_s.len().min(500))
        .map(|i| train_s.row(i).to_vec())
        .collect();
    let model = quant::quantize(&model, &calib)?;
    Ok(Case {
        name: case_name("digits-28x28", &model),
        model,
        inputs: Samples {
            x: test_s.x.clone(),
            y: test_s.y.clone(),
            dim: test_s.dim,
        },
    })
}

/// How the PyTorch MNIST CNN is imported: its input normalisation (x/255 − 0.1307)/0.3081 and
/// the digit class names.
pub fn pytorch_mnist_import_options() -> bonsai::onnx::ImportOptions {
    let (mean, std) = (0.1307f32, 0.3081f32);
    bonsai::onnx::ImportOptions {
        preprocess: Some(Preprocess {
            scale: vec![1.0 / (255.0 * std)],
            offset: vec![-mean / std],
        }),
        class_names: Some((0..10).map(|d| d.to_string()).collect()),
        ..Default::default()
    }
}

/// The PyTorch MNIST CNN imported from `onnx`, pruned by magnitude to overall `density`
/// without fine-tuning, quantized on 500 MNIST training images and checked on the first
/// `n_test` MNIST test images (all with `None`). The quick stand-in of the imported benchmark
/// model (which [`import_bench`] fine-tunes) for the test suite: same graph, same import path,
/// same sparsity.
pub fn imported_case(
    onnx: &Path,
    mnist: &Path,
    density: f64,
    n_test: Option<usize>,
) -> Result<Case> {
    let imported = bonsai::onnx::import_file(onnx, &pytorch_mnist_import_options())?;
    let mut model = imported.model;
    let spec = DataSpec::mnist(mnist.to_path_buf());
    let splits = data::load(&spec, 1)?;
    let train_s = Samples::from_dataset(&splits.train, &model.preprocess);
    let mut test_s = Samples::from_dataset(&splits.test, &model.preprocess);
    if let Some(n) = n_test.filter(|&n| n < test_s.len()) {
        test_s.x.truncate(n * test_s.dim);
        test_s.y.truncate(n);
    }
    ensure!(
        test_s.dim == model.input_len(),
        "MNIST has {} features, {} takes {}",
        test_s.dim,
        onnx.display(),
        model.input_len()
    );
    let densities = densities_for(&model, density);
    prune::prune_to(&mut model, &densities);
    let calib: Vec<Vec<f32>> = (0..train_s.len().min(500))
        .map(|i| train_s.row(i).to_vec())
        .collect();
    let model = quant::quantize(&model, &calib)?;
    Ok(Case {
        name: case_name(&onnx_file_name(onnx), &model),
        model,
        inputs: test_s,
    })
}

/// `tests/python/check_onnx.py`.
pub fn script_path(root: &Path) -> PathBuf {
    root.join("tests/python/check_onnx.py")
}

fn venv_python(venv: &Path) -> PathBuf {
    if cfg!(windows) {
        venv.join("Scripts/python.exe")
    } else {
        venv.join("bin/python")
    }
}

fn imports_ok(python: &Path) -> bool {
    Command::new(python)
        .args(["-c", "import numpy, onnx, onnxruntime"])
        .output()
        .is_ok_and(|o| o.status.success())
}

fn tail(bytes: &[u8], lines: usize) -> String {
    let text = String::from_utf8_lossy(bytes);
    let all: Vec<&str> = text.trim_end().lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Returns the Python of `<root>/target/onnx-venv`, creating the venv (`python3 -m venv`) and
/// installing [`PIP_PACKAGES`] first when they are missing. Any failure is an error saying what
/// is missing: the onnxruntime checks are never skipped (under `CI=true` the message says so).
pub fn ensure_venv(root: &Path) -> Result<PathBuf> {
    let venv = root.join("target/onnx-venv");
    let python = venv_python(&venv);
    if python.exists() && imports_ok(&python) {
        return Ok(python);
    }
    let why = if std::env::var("CI").is_ok_and(|v| v == "true" || v == "1") {
        "CI=true and the ONNX export checks against onnxruntime are required"
    } else {
        "the ONNX export checks need Python 3 with onnx and onnxruntime (they are never skipped)"
    };
    if !python.exists() {
        let out = Command::new("python3")
            .args(["-m", "venv"])
            .arg(&venv)
            .output()
            .with_context(|| format!("{why}: cannot run `python3`; install Python 3"))?;
        if !out.status.success() {
            bail!(
                "{why}: `python3 -m venv {}` failed (is the venv module installed, e.g. the \
                 python3-venv package?):\n{}",
                venv.display(),
                tail(&out.stderr, 10)
            );
        }
    }
    eprintln!(
        "installing {} into {} …",
        PIP_PACKAGES.join(" "),
        venv.display()
    );
    let out = Command::new(&python)
        .args(["-m", "pip", "install", "--quiet"])
        .args(PIP_PACKAGES)
        .output()
        .with_context(|| format!("{why}: cannot run {}", python.display()))?;
    if !out.status.success() {
        bail!(
            "{why}: `pip install {}` into {} failed (no network or package index?):\n{}",
            PIP_PACKAGES.join(" "),
            venv.display(),
            tail(&out.stderr, 15)
        );
    }
    ensure!(
        imports_ok(&python),
        "{why}: {} still cannot import numpy, onnx and onnxruntime after pip install",
        python.display()
    );
    Ok(python)
}

/// Samples per tract run: a whole MNIST test set in one batch would hold gigabytes of
/// intermediate tensors for a CNN.
const TRACT_BATCH: usize = 500;

/// Runs `bytes` with tract in batches of [`TRACT_BATCH`] rows (a row per sample); one output
/// row per sample.
fn run_tract<I, O>(bytes: &[u8], inputs: &[Vec<I>], n_out: usize) -> Result<Vec<Vec<O>>>
where
    I: tract_onnx::prelude::Datum + Copy,
    O: tract_onnx::prelude::Datum + Copy,
{
    use tract_onnx::prelude::*;
    let n_in = inputs.first().map_or(0, |r| r.len());
    let plan_for = |batch: usize| {
        tract_onnx::onnx()
            .model_for_read(&mut &bytes[..])?
            .with_input_fact(0, InferenceFact::dt_shape(I::datum_type(), [batch, n_in]))?
            .into_optimized()?
            .into_runnable()
    };
    // At most two batch sizes: the full one and the remainder.
    let mut plans = std::collections::HashMap::new();
    let mut rows = Vec::with_capacity(inputs.len());
    for chunk in inputs.chunks(TRACT_BATCH) {
        let batch = chunk.len();
        let plan = match plans.entry(batch) {
            std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::hash_map::Entry::Vacant(e) => e.insert(plan_for(batch)?),
        };
        let x = Tensor::from_shape(&[batch, n_in], &chunk.concat())?;
        let out = plan.run(tvec!(x.into()))?;
        ensure!(out.len() == 1, "tract: {} outputs, expected 1", out.len());
        ensure!(
            out[0].shape() == [batch, n_out],
            "tract: output shape {:?}, expected [{batch}, {n_out}]",
            out[0].shape()
        );
        let flat = out[0].try_as_plain_ram()?.as_slice::<O>()?;
        rows.extend(flat.chunks(n_out).map(|c| c.to_vec()));
    }
    Ok(rows)
}

/// What [`validate`] found for one exported graph.
#[derive(Clone, Debug)]
pub struct ExportCheck {
    pub model: String,
    pub variant: Variant,
    pub onnx_bytes: usize,
    pub checker_ok: bool,
    pub checker_error: Option<String>,
    /// `None` when onnxruntime could not run the graph (see `onnxruntime_error`).
    pub onnxruntime: Option<Comparison>,
    pub onnxruntime_error: Option<String>,
    pub tract: Comparison,
    pub onnx_version: String,
    pub onnxruntime_version: String,
    /// Layer by layer ([`Variant::Int8QdqInt8Io`] only): every single-input node exported on its
    /// own and fed the integer reference's int8 input of that node.
    pub layers: Vec<LayerCheck>,
}

/// One node of a quantized model exported alone ([`single_node_model`], int8 IO) and fed, for
/// every test sample, the integer reference's value of its input; outputs in LSB.
#[derive(Clone, Debug)]
pub struct LayerCheck {
    pub node: String,
    pub op: String,
    pub checker_ok: bool,
    pub checker_error: Option<String>,
    pub onnxruntime: Option<Comparison>,
    pub onnxruntime_error: Option<String>,
    pub tract: Comparison,
}

/// Node `index` of quantized `model` as a model of its own: the node's input tensor (with its
/// quantization) is the input, its output the output. `None` for nodes with several inputs
/// (Add, Concat): exported graphs have one input, and those nodes are covered end to end.
pub fn single_node_model(model: &Model, index: usize) -> Option<Model> {
    let node = &model.nodes[index];
    let [input] = node.inputs[..] else {
        return None;
    };
    let (tin, tout) = (model.tensor(input), model.tensor(node.output));
    let mut m = Model::with_input(
        format!("{}.{}", model.name, node.name),
        tin.shape.clone(),
        Preprocess::identity(),
        vec![],
    );
    m.tensors[m.inputs[0].0].quant = tin.quant;
    let out = m.add_node(
        node.name.clone(),
        node.op.clone(),
        vec![m.inputs[0]],
        tout.shape.clone(),
    );
    m.tensors[out.0].quant = tout.quant;
    m.outputs.push(out);
    Some(m)
}

/// One line of `check_onnx.py`'s output.
#[derive(serde::Deserialize)]
struct ScriptLine {
    name: String,
    checker_ok: bool,
    checker_error: Option<String>,
    runtime_error: Option<String>,
    onnx_version: String,
    onnxruntime_version: String,
    metrics: Option<Comparison>,
}

fn write_raw<T: Copy>(path: &Path, rows: &[Vec<T>], to_le: impl Fn(T) -> Vec<u8>) -> Result<()> {
    let bytes: Vec<u8> = rows.iter().flatten().flat_map(|&v| to_le(v)).collect();
    std::fs::write(path, bytes).with_context(|| format!("cannot write {}", path.display()))
}

fn f32_le(v: f32) -> Vec<u8> {
    v.to_le_bytes().to_vec()
}

fn i8_le(v: i8) -> Vec<u8> {
    v.to_le_bytes().to_vec()
}

/// Exports `case.model` in every [`Variant`] into `work`, runs tract and (through `script`
/// under `python`) the ONNX checker and onnxruntime on every test input, and compares both with
/// the references. Failures to export, to run tract or to run the script are errors; verdicts
/// (checker, onnxruntime errors, differences) are data: see [`problems`].
pub fn validate(
    python: &Path,
    script: &Path,
    work: &Path,
    case: &Case,
) -> Result<Vec<ExportCheck>> {
    let model = &case.model;
    ensure!(
        model.is_quantized(),
        "{}: model.json is not quantized",
        case.name
    );
    std::fs::create_dir_all(work).with_context(|| format!("cannot create {}", work.display()))?;
    let n_out = model.output_len();
    let x: Vec<Vec<f32>> = case.inputs.rows();
    let xq: Vec<Vec<i8>> = x.iter().map(|r| quant::quantize_input(model, r)).collect();
    let ref_float = x
        .iter()
        .map(|r| interp::float::run(model, r))
        .collect::<Result<Vec<_>, _>>()?;
    let ref_int8 = xq
        .iter()
        .map(|r| interp::int8::run(model, r))
        .collect::<Result<Vec<_>, _>>()?;
    let out_q = model
        .tensor(model.outputs[0])
        .quant
        .context("output tensor has no quantization")?;
    let ref_dequant: Vec<Vec<f32>> = ref_int8
        .iter()
        .map(|r| {
            r.iter()
                .map(|&v| out_q.scale * (v as i32 - out_q.zero_point) as f32)
                .collect()
        })
        .collect();
    write_raw(&work.join("input_f32.bin"), &x, f32_le)?;
    write_raw(&work.join("input_i8.bin"), &xq, i8_le)?;
    write_raw(&work.join("reference_float.bin"), &ref_float, f32_le)?;
    write_raw(&work.join("reference_int8.bin"), &ref_int8, i8_le)?;
    write_raw(
        &work.join("reference_int8_dequant.bin"),
        &ref_dequant,
        f32_le,
    )?;

    let float_tol = Tolerance {
        abs_rel: Some((FLOAT_ATOL, FLOAT_RTOL)),
        lsb: None,
    };
    let mut specs = Vec::new();
    let mut partial = Vec::new();
    for v in Variant::ALL {
        let label = format!("{}/{}", case.name, v.name());
        let bytes = v.export(model).with_context(|| format!("export {label}"))?;
        bonsai::onnx::check_with_tract(&bytes).with_context(|| label.clone())?;
        let file = format!("{}.onnx", v.name());
        std::fs::write(work.join(&file), &bytes)?;
        let tract_err = || format!("tract cannot run {label}");
        let (tract, mut spec) = match v {
            Variant::Float => {
                let got: Vec<Vec<f32>> = run_tract(&bytes, &x, n_out).with_context(tract_err)?;
                let spec = serde_json::json!({
                    "input": "input_f32.bin", "input_dtype": "float32",
                    "reference": "reference_float.bin", "output_dtype": "float32",
                    "atol": FLOAT_ATOL, "rtol": FLOAT_RTOL,
                });
                (compare(&got, &ref_float, float_tol), spec)
            }
            Variant::Int8Qdq => {
                let got: Vec<Vec<f32>> = run_tract(&bytes, &x, n_out).with_context(tract_err)?;
                let lsb = out_q.scale as f64;
                let spec = serde_json::json!({
                    "input": "input_f32.bin", "input_dtype": "float32",
                    "reference": "reference_int8_dequant.bin", "output_dtype": "float32",
                    "lsb": lsb,
                });
                let tol = Tolerance {
                    abs_rel: None,
                    lsb: Some(lsb),
                };
                (compare(&got, &ref_dequant, tol), spec)
            }
            Variant::Int8QdqInt8Io => {
                let got: Vec<Vec<i8>> = run_tract(&bytes, &xq, n_out).with_context(tract_err)?;
                let spec = serde_json::json!({
                    "input": "input_i8.bin", "input_dtype": "int8",
                    "reference": "reference_int8.bin", "output_dtype": "int8",
                });
                let tol = Tolerance {
                    abs_rel: None,
                    lsb: Some(1.0),
                };
                (compare(&got, &ref_int8, tol), spec)
            }
        };
        let obj = spec.as_object_mut().expect("a JSON object");
        obj.insert("name".into(), label.clone().into());
        obj.insert("onnx".into(), file.into());
        obj.insert("n_samples".into(), x.len().into());
        obj.insert("n_in".into(), model.input_len().into());
        obj.insert("n_out".into(), n_out.into());
        specs.push(spec);
        partial.push((label, v, bytes.len(), tract));
    }
    // Layer by layer: each single-input node alone, fed the integer reference's own input to
    // it, so a difference is that layer's and not carried in from the layers before.
    let traces = xq
        .iter()
        .map(|r| interp::int8::run_all(model, r))
        .collect::<Result<Vec<_>, _>>()?;
    let lsb1 = Tolerance {
        abs_rel: None,
        lsb: Some(1.0),
    };
    let mut layer_partial = Vec::new();
    for (i, node) in model.nodes.iter().enumerate() {
        let Some(sub) = single_node_model(model, i) else {
            continue;
        };
        let label = format!("{}/layer/{}", case.name, node.name);
        let bytes =
            bonsai::onnx::export_int8_io(&sub).with_context(|| format!("export {label}"))?;
        bonsai::onnx::check_with_tract(&bytes).with_context(|| label.clone())?;
        let ins: Vec<Vec<i8>> = traces.iter().map(|t| t[node.inputs[0].0].clone()).collect();
        let want: Vec<Vec<i8>> = traces.iter().map(|t| t[node.output.0].clone()).collect();
        let got: Vec<Vec<i8>> = run_tract(&bytes, &ins, sub.output_len())
            .with_context(|| format!("tract cannot run {label}"))?;
        let (file, input, reference) = (
            format!("layer{i}.onnx"),
            format!("layer{i}_in.bin"),
            format!("layer{i}_ref.bin"),
        );
        std::fs::write(work.join(&file), &bytes)?;
        write_raw(&work.join(&input), &ins, i8_le)?;
        write_raw(&work.join(&reference), &want, i8_le)?;
        specs.push(serde_json::json!({
            "name": label, "onnx": file,
            "input": input, "input_dtype": "int8",
            "reference": reference, "output_dtype": "int8",
            "n_samples": ins.len(), "n_in": sub.input_len(), "n_out": sub.output_len(),
        }));
        layer_partial.push((label, node, compare(&got, &want, lsb1)));
    }
    let manifest = work.join("manifest.json");
    std::fs::write(
        &manifest,
        serde_json::to_string_pretty(&serde_json::json!({ "models": specs }))?,
    )?;

    let out = Command::new(python)
        .arg(script)
        .arg(&manifest)
        .output()
        .with_context(|| format!("cannot run {}", python.display()))?;
    if !out.status.success() {
        bail!(
            "{} {} failed ({}):\n{}",
            script.display(),
            manifest.display(),
            out.status,
            tail(&out.stderr, 20)
        );
    }
    let lines: Vec<ScriptLine> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).with_context(|| format!("check_onnx.py printed {l:?}")))
        .collect::<Result<_>>()?;
    ensure!(
        lines.len() == partial.len() + layer_partial.len(),
        "check_onnx.py reported {} models, expected {}",
        lines.len(),
        partial.len() + layer_partial.len()
    );
    let mut lines = lines.into_iter();
    let variant_lines: Vec<ScriptLine> = lines.by_ref().take(partial.len()).collect();
    let layers = layer_partial
        .into_iter()
        .zip(lines)
        .map(|((label, node, tract), line)| {
            ensure!(
                line.name == label,
                "check_onnx.py answered for {:?}, expected {label:?}",
                line.name
            );
            Ok(LayerCheck {
                node: node.name.clone(),
                op: node.op.kind().into(),
                checker_ok: line.checker_ok,
                checker_error: line.checker_error,
                onnxruntime: line.metrics,
                onnxruntime_error: line.runtime_error,
                tract,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    partial
        .into_iter()
        .zip(variant_lines)
        .map(|((label, variant, onnx_bytes, tract), line)| {
            ensure!(
                line.name == label,
                "check_onnx.py answered for {:?}, expected {label:?}",
                line.name
            );
            Ok(ExportCheck {
                model: case.name.clone(),
                variant,
                onnx_bytes,
                checker_ok: line.checker_ok,
                checker_error: line.checker_error,
                onnxruntime: line.metrics,
                onnxruntime_error: line.runtime_error,
                tract,
                onnx_version: line.onnx_version,
                onnxruntime_version: line.onnxruntime_version,
                layers: if variant == Variant::Int8QdqInt8Io {
                    layers.clone()
                } else {
                    Vec::new()
                },
            })
        })
        .collect()
}

/// Everything wrong with one export, by the pass criteria of issue #6: the checker accepts the
/// graph; both runtimes run it; the float graph is within [`FLOAT_ATOL`] + [`FLOAT_RTOL`]·|ref|
/// of the float reference; the QDQ graphs agree with the integer reference's top-1 on at least
/// [`MIN_TOP1_AGREEMENT`] of the samples, and, fed the reference's int8 inputs layer by layer
/// ([`ExportCheck::layers`]), every layer's output is within one LSB of the reference's.
///
/// End to end the QDQ outputs may be further than one LSB off: a one-LSB difference in an early
/// layer (runtimes round an average pool half to even, the integer reference half away from
/// zero) can grow through the later ones. That is what the layer-by-layer check isolates.
pub fn problems(c: &ExportCheck) -> Vec<String> {
    let mut p = Vec::new();
    let what = format!("{} {}", c.model, c.variant.name());
    if !c.checker_ok {
        p.push(format!(
            "{what}: onnx.checker rejects it: {}",
            c.checker_error.as_deref().unwrap_or("?")
        ));
    }
    let mut runs = vec![("tract", &c.tract)];
    match &c.onnxruntime {
        Some(m) => runs.push(("onnxruntime", m)),
        None => p.push(format!(
            "{what}: onnxruntime cannot run it: {}",
            c.onnxruntime_error.as_deref().unwrap_or("?")
        )),
    }
    for (rt, m) in runs {
        if let Some(n) = m.tol_violations.filter(|&n| n > 0) {
            p.push(format!(
                "{what}: {rt}: {n}/{} outputs beyond {FLOAT_ATOL:e} + {FLOAT_RTOL:e}·|ref| \
                 (max |diff| {:e})",
                m.n_outputs, m.max_abs_diff
            ));
        }
        if c.variant.is_int8() && m.top1_agreement < MIN_TOP1_AGREEMENT {
            p.push(format!(
                "{what}: {rt}: top-1 agreement with the integer reference {:.4} < {MIN_TOP1_AGREEMENT}",
                m.top1_agreement
            ));
        }
    }
    if c.variant == Variant::Int8QdqInt8Io && c.layers.is_empty() {
        p.push(format!("{what}: no layer was checked on its own"));
    }
    for l in &c.layers {
        let what = format!("{what} layer {} ({})", l.node, l.op);
        if !l.checker_ok {
            p.push(format!(
                "{what}: onnx.checker rejects it: {}",
                l.checker_error.as_deref().unwrap_or("?")
            ));
        }
        let mut runs = vec![("tract", &l.tract)];
        match &l.onnxruntime {
            Some(m) => runs.push(("onnxruntime", m)),
            None => p.push(format!(
                "{what}: onnxruntime cannot run it: {}",
                l.onnxruntime_error.as_deref().unwrap_or("?")
            )),
        }
        for (rt, m) in runs {
            if let Some(n) = m.worse.filter(|&n| n > 0) {
                p.push(format!(
                    "{what}: {rt}: {n}/{} outputs more than 1 LSB from the integer reference \
                     (max {} LSB)",
                    m.n_outputs, m.max_abs_diff
                ));
            }
        }
    }
    p
}

/// One row of `bench/results/onnx.json`'s `exports`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ExportEntry {
    pub model: String,
    pub variant: String,
    pub int8: bool,
    pub reference: String,
    pub n_samples: usize,
    pub onnx_bytes: usize,
    pub checker_ok: bool,
    /// Float logits for `float` and `int8_qdq`; LSB for `int8_qdq_int8_io`.
    pub onnxruntime_max_abs_diff: Option<f64>,
    pub tract_max_abs_diff: f64,
    /// onnxruntime's top-1 agreement with the reference.
    pub top1_agreement: Option<f64>,
    pub tract_top1_agreement: f64,
    /// onnxruntime outputs within one LSB of the integer reference (QDQ graphs).
    pub within_1lsb_fraction: Option<f64>,
    pub exact_fraction: Option<f64>,
    pub tract_within_1lsb_fraction: Option<f64>,
    /// Nodes checked on their own (int8_qdq_int8_io only) and the largest difference from the
    /// integer reference over all of them, in LSB.
    pub layers_checked: usize,
    pub layer_max_lsb_onnxruntime: Option<f64>,
    pub layer_max_lsb_tract: Option<f64>,
    pub problems: Vec<String>,
}

impl ExportEntry {
    pub fn new(c: &ExportCheck) -> ExportEntry {
        let ort = c.onnxruntime.as_ref();
        ExportEntry {
            model: c.model.clone(),
            variant: c.variant.name().into(),
            int8: c.variant.is_int8(),
            reference: c.variant.reference_name().into(),
            n_samples: c.tract.n_samples,
            onnx_bytes: c.onnx_bytes,
            checker_ok: c.checker_ok,
            onnxruntime_max_abs_diff: ort.map(|m| m.max_abs_diff),
            tract_max_abs_diff: c.tract.max_abs_diff,
            top1_agreement: ort.map(|m| m.top1_agreement),
            tract_top1_agreement: c.tract.top1_agreement,
            within_1lsb_fraction: ort.and_then(Comparison::within_1lsb_fraction),
            exact_fraction: ort.and_then(|m| Some(m.exact? as f64 / m.n_outputs.max(1) as f64)),
            tract_within_1lsb_fraction: c.tract.within_1lsb_fraction(),
            layers_checked: c.layers.len(),
            layer_max_lsb_onnxruntime: c
                .layers
                .iter()
                .map(|l| l.onnxruntime.as_ref().map(|m| m.max_abs_diff))
                .reduce(|a, b| Some(a?.max(b?)))
                .flatten(),
            layer_max_lsb_tract: c
                .layers
                .iter()
                .map(|l| l.tract.max_abs_diff)
                .reduce(f64::max),
            problems: problems(c),
        }
    }
}

#[derive(Debug, serde::Serialize)]
struct OnnxResults {
    git_commit: String,
    command: String,
    onnx_version: Option<String>,
    onnxruntime_version: Option<String>,
    exports: Vec<ExportEntry>,
    /// The PyTorch MNIST CNN imported, pruned, quantized, lowered and run (with `--import`).
    import: Option<ImportResult>,
}

/// `cargo xtask bench onnx`: the digits default (seed 1), the digits CNN
/// ([`digits_cnn_options`]), the BasicMotions IMU model of the boards
/// ([`crate::bench_boards::imu_model_options`]), with `mnist` the MNIST 784-300-100-10 MLP
/// dense and pruned to 2 % ([`mnist_sparse_mlp_options`]) and the pruned LeNet-5
/// ([`mnist_lenet5_options`]), and with `import` the imported, pruned and fine-tuned PyTorch
/// CNN ([`import_bench`]); writes `bench/results/onnx.json` and the `onnx` section of
/// BENCHMARKS.md. Failed criteria are recorded (and printed), not fatal.
pub fn bench(
    root: &Path,
    mnist: Option<&Path>,
    import: Option<&Path>,
    command: &str,
) -> Result<()> {
    let import = match (import, mnist) {
        (Some(onnx), Some(dir)) => Some((onnx, dir)),
        (Some(_), None) => bail!("--import needs --mnist DIR (the model is evaluated on MNIST)"),
        (None, _) => None,
    };
    let python = ensure_venv(root)?;
    let script = script_path(root);
    let work = root.join("target/bench/onnx");
    let mut runs = vec![
        ("digits", digits_options(&work.join("digits/synth"), true)),
        (
            "digits-cnn",
            digits_cnn_options(&work.join("digits-cnn/synth"), true)?,
        ),
        (
            "basicmotions",
            crate::bench_boards::imu_model_options(&work.join("basicmotions/synth")),
        ),
    ];
    if let Some(dir) = mnist {
        runs.push(("mnist", mnist_options(dir, &work.join("mnist/synth"), true)));
        runs.push((
            "mnist-sparse",
            mnist_sparse_mlp_options(dir, &work.join("mnist-sparse/synth"), true),
        ));
        runs.push((
            "mnist-lenet5",
            mnist_lenet5_options(root, dir, &work.join("mnist-lenet5/synth"), true),
        ));
    }
    let mut exports = Vec::new();
    let mut versions = (None, None);
    let mut check = |dir: &str, case: &Case| -> Result<()> {
        eprintln!(
            "{}: checking the exports on {} test samples",
            case.name,
            case.inputs.len()
        );
        let checks = validate(&python, &script, &work.join(dir).join("onnx"), case)?;
        for c in &checks {
            let e = ExportEntry::new(c);
            eprintln!(
                "{} {}: checker {}, max |diff| onnxruntime {} / tract {:.3e}, top-1 {}{}",
                e.model,
                e.variant,
                if e.checker_ok { "ok" } else { "REJECTS" },
                e.onnxruntime_max_abs_diff
                    .map_or("–".into(), |d| format!("{d:.3e}")),
                e.tract_max_abs_diff,
                e.top1_agreement
                    .map_or("–".into(), |a| format!("{:.2}%", 100.0 * a)),
                e.within_1lsb_fraction.map_or(String::new(), |f| format!(
                    ", within 1 LSB {:.2}%",
                    100.0 * f
                )),
            );
            for p in &e.problems {
                eprintln!("  problem: {p}");
            }
            versions = (
                Some(c.onnx_version.clone()),
                Some(c.onnxruntime_version.clone()),
            );
            exports.push(e);
        }
        Ok(())
    };
    for (dir, opts) in runs {
        check(dir, &synthesize_case(&opts)?)?;
    }
    let import = match import {
        Some((onnx, dir)) => {
            let (result, case) =
                import_bench(root, onnx, dir, &ImportBenchConfig::default(), true)?;
            check("import", &case)?;
            Some(result)
        }
        None => None,
    };
    let results = OnnxResults {
        git_commit: crate::bench::git_commit(root),
        command: command.into(),
        onnx_version: versions.0,
        onnxruntime_version: versions.1,
        exports,
        import,
    };
    let json = serde_json::to_string_pretty(&results)? + "\n";
    bonsai::util::write_atomic(&root.join("bench/results/onnx.json"), json.as_bytes())?;
    crate::bench::write_section(root, "onnx", &onnx_table(&results))
}

fn pct(v: Option<f64>) -> String {
    v.map_or("–".into(), |v| format!("{:.2}%", 100.0 * v))
}

fn onnx_table(r: &OnnxResults) -> String {
    let mut t = format!(
        "## ONNX export: ONNX checker, onnxruntime and tract vs the compiler's references\n\n\
         Command: `{}` (commit {}; onnx {}, onnxruntime {}, graph optimizations disabled). \
         Models (` pN` = density in %): the digits MLP and CNN; the BasicMotions IMU MLP of the \
         board examples (its official test file, 40 windows); with `--mnist`, the \
         784-300-100-10 MLP dense and pruned toward 2 % (the sparse runtime's model; pruning \
         also drops dead neurons) and LeNet-5 (Caffe variant, `models/seeds/lenet-5.toml`) \
         pruned toward 8 %, on MNIST t10k; with `--import`, the imported PyTorch CNN as pruned \
         and fine-tuned for the import bar below. Every test-split sample goes through each \
         exported graph. `float` is compared with the float \
         interpreter (|diff| in logits); the QDQ graphs with the golden integer model: \
         `int8_qdq` (float in/out) in dequantized logits, `int8_qdq_int8_io` (int8 in/out) in \
         LSB. Top-1 = argmax agreement with that reference; within 1 LSB = fraction of outputs \
         (onnxruntime), end to end. Layer max LSB: every node exported alone (int8 IO) and fed \
         the integer reference's input of that node, largest difference over all nodes and \
         samples (onnxruntime / tract); the criterion is ≤ 1.\n\n\
         | model | variant | samples | checker | max \\|diff\\| onnxruntime | max \\|diff\\| tract | top-1 onnxruntime | top-1 tract | within 1 LSB | layers | layer max LSB |\n\
         |---|---|---:|---|---:|---:|---:|---:|---:|---:|---:|\n",
        r.command,
        r.git_commit,
        r.onnx_version.as_deref().unwrap_or("?"),
        r.onnxruntime_version.as_deref().unwrap_or("?"),
    );
    for e in &r.exports {
        t += &format!(
            "| {} | {} | {} | {} | {} | {:.3e} | {} | {} | {} | {} | {} |\n",
            e.model,
            e.variant,
            e.n_samples,
            if e.checker_ok { "ok" } else { "REJECTED" },
            e.onnxruntime_max_abs_diff
                .map_or("error".into(), |d| format!("{d:.3e}")),
            e.tract_max_abs_diff,
            pct(e.top1_agreement),
            pct(Some(e.tract_top1_agreement)),
            pct(e.within_1lsb_fraction),
            if e.layers_checked == 0 {
                "–".to_string()
            } else {
                e.layers_checked.to_string()
            },
            match (e.layer_max_lsb_onnxruntime, e.layer_max_lsb_tract) {
                (_, None) => "–".to_string(),
                (Some(o), Some(t)) => format!("{o} / {t}"),
                (None, Some(t)) => format!("error / {t}"),
            },
        );
    }
    if let Some(i) = &r.import {
        t += &import_table(i);
    }
    let problems: Vec<&String> = r.exports.iter().flat_map(|e| &e.problems).collect();
    if !problems.is_empty() {
        t += "\nFailed criteria:\n\n";
        for p in problems {
            t += &format!("- {p}\n");
        }
    }
    t
}

/// How [`import_bench`] prunes the imported model.
#[derive(Clone, Debug)]
pub struct ImportBenchConfig {
    /// Overall density of the weights (Dense and Conv2d, biases excluded) to reach.
    pub target_density: f64,
    /// Pruning rounds: the density falls geometrically from 1 to the target.
    pub rounds: usize,
    /// Fine-tuning epochs after each round (best validation epoch kept).
    pub epochs_per_round: usize,
    pub learning_rate: f64,
    pub batch_size: usize,
    /// Test vectors run on QEMU (all of them are compared byte for byte).
    pub qemu_vectors: usize,
    pub seed: u64,
}

impl Default for ImportBenchConfig {
    fn default() -> Self {
        ImportBenchConfig {
            target_density: 0.1,
            rounds: 5,
            epochs_per_round: 3,
            learning_rate: 5e-4,
            batch_size: 64,
            qemu_vectors: 100,
            seed: 1,
        }
    }
}

fn onnx_file_name(onnx: &Path) -> String {
    onnx.file_name()
        .map_or("?".into(), |f| f.to_string_lossy().into_owned())
}

/// Flash and RAM of the target part class (STM32L432: 256 KB flash, 64 KB RAM).
pub const PART_FLASH_BYTES: u64 = 256 << 10;
pub const PART_RAM_BYTES: u64 = 64 << 10;

/// `bench/results/onnx.json`'s `import` object.
#[derive(Clone, Debug, serde::Serialize)]
pub struct ImportResult {
    pub model: String,
    pub onnx_nodes: usize,
    pub import_notes: Vec<String>,
    pub preprocess: bonsai::ir::Preprocess,
    pub n_test: usize,
    pub n_train: usize,
    /// The imported float model on the test set (the original's accuracy, reproduced).
    pub orig_test_accuracy: f64,
    /// The dense imported model quantized to int8, before pruning.
    pub orig_int8_test_accuracy: f64,
    pub pruned_float_test_accuracy: f64,
    /// int8 (integer reference) accuracy of the pruned model: the deployed figure.
    pub pruned_test_accuracy: f64,
    /// Active weights / all weights (Dense and Conv2d; biases excluded).
    pub density: f64,
    pub params_total: usize,
    pub params_nonzero: usize,
    pub layer_densities: Vec<(String, f64)>,
    pub weight_bytes: usize,
    pub arena_bytes: usize,
    /// Firmware image flash (code + weights, test vectors excluded), qemu-mps2-an386 build.
    pub flash_bytes: u64,
    /// Static RAM + measured stack peak.
    pub ram_bytes: u64,
    pub part_flash_bytes: u64,
    pub part_ram_bytes: u64,
    pub fits_part: bool,
    pub qemu_vectors: usize,
    pub qemu_bit_exact: bool,
    pub insns_per_inference: Option<f64>,
    pub rounds: Vec<String>,
    pub wall_seconds: f64,
}

/// The per-layer densities ([`bonsai::synth::prune::layer_densities`]'s rule) whose overall
/// density is `overall`: that rule keeps small layers denser, so its parameter is lowered
/// until the whole model meets the target.
fn densities_for(model: &Model, overall: f64) -> Vec<f64> {
    let sizes: Vec<f64> = model
        .nodes
        .iter()
        .filter_map(|n| n.op.weights().map(|w| w.weight.len() as f64))
        .collect();
    let total: f64 = sizes.iter().sum();
    let achieved = |d: f64| {
        prune::layer_densities(model, d)
            .iter()
            .zip(&sizes)
            .map(|(l, s)| (l * s).round())
            .sum::<f64>()
            / total
    };
    let (mut lo, mut hi) = (0.0, overall);
    for _ in 0..50 {
        let mid = 0.5 * (lo + hi);
        if achieved(mid) <= overall {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    prune::layer_densities(model, lo)
}

/// Issue #6's import bar: imports `onnx` (normalised MNIST input), measures its accuracy on
/// MNIST t10k, prunes it in rounds with fine-tuning on the training split to
/// `cfg.target_density`, quantizes it, lowers it, checks it against the part's flash and RAM,
/// and runs it on qemu-mps2-an386 comparing every output byte with the integer reference.
/// Returns the figures and the deployed (pruned, quantized) model with the test set, for the
/// export checks.
pub fn import_bench(
    root: &Path,
    onnx: &Path,
    mnist: &Path,
    cfg: &ImportBenchConfig,
    show_progress: bool,
) -> Result<(ImportResult, Case)> {
    let start = std::time::Instant::now();
    let say = |s: String| {
        if show_progress {
            eprintln!("{s}");
        }
    };
    let imported = bonsai::onnx::import_file(onnx, &pytorch_mnist_import_options())?;
    let mut model = imported.model;
    let spec = DataSpec::mnist(mnist.to_path_buf());
    let splits = data::load(&spec, cfg.seed)?;
    let train_s = Samples::from_dataset(&splits.train, &model.preprocess);
    let val_s = Samples::from_dataset(&splits.val, &model.preprocess);
    let test_s = Samples::from_dataset(&splits.test, &model.preprocess);
    ensure!(
        test_s.dim == model.input_len(),
        "MNIST has {} features, the model takes {}",
        test_s.dim,
        model.input_len()
    );
    let calib: Vec<Vec<f32>> = (0..train_s.len().min(1000))
        .map(|i| train_s.row(i).to_vec())
        .collect();
    let orig_acc = train::float_accuracy(&model, &test_s);
    let orig_q = quant::quantize(&model, &calib)?;
    let orig_int8 = bonsai::pipeline::int8_accuracy(&orig_q, &test_s)?;
    say(format!(
        "imported {}: float test accuracy {:.2}%, int8 {:.2}%",
        onnx.display(),
        100.0 * orig_acc,
        100.0 * orig_int8
    ));

    let tcfg = TrainConfig {
        max_epochs: cfg.epochs_per_round,
        patience: cfg.epochs_per_round,
        batch_size: cfg.batch_size,
        learning_rate: cfg.learning_rate,
        seed: cfg.seed,
        ..TrainConfig::default()
    };
    let mut rounds = Vec::new();
    for r in 1..=cfg.rounds.max(1) {
        let target = cfg.target_density.powf(r as f64 / cfg.rounds.max(1) as f64);
        let densities = densities_for(&model, target);
        let removed = prune::prune_to(&mut model, &densities);
        let pruned_val = train::float_accuracy(&model, &val_s);
        let report = train::train(&mut model, &train_s, &val_s, &tcfg, |e| {
            say(format!(
                "  round {r} epoch {}: loss {:.4}, val {:.2}%",
                e.epoch,
                e.train_loss,
                100.0 * e.val_accuracy
            ))
        })?;
        let line = format!(
            "round {r}: pruned {removed} -> density {:.4}; val {:.2}% after pruning, {:.2}% after {} epochs of fine-tuning",
            prune::density(&model),
            100.0 * pruned_val,
            100.0 * report.best_val_accuracy,
            report.epochs_run
        );
        say(line.clone());
        rounds.push(line);
    }
    let pruned_float = train::float_accuracy(&model, &test_s);
    let q = quant::quantize(&model, &calib)?;
    let pruned_int8 = bonsai::pipeline::int8_accuracy(&q, &test_s)?;
    say(format!(
        "pruned to density {:.4}: float test {:.2}%, int8 {:.2}%",
        prune::density(&model),
        100.0 * pruned_float,
        100.0 * pruned_int8
    ));

    let work = root.join("target/bench/onnx/import");
    std::fs::create_dir_all(&work)?;
    q.save(&work.join("model.json"))?;
    let lowered = bonsai::lower::lower(&q, &bonsai::lower::LowerOptions::default())?;
    let n_vec = test_s.len().min(cfg.qemu_vectors);
    let vectors: Vec<Vec<i8>> = (0..n_vec)
        .map(|i| quant::quantize_input(&q, test_s.row(i)))
        .collect();
    let vectors_path = work.join("vectors.bin");
    bonsai::vectors::write(&vectors_path, q.input_len(), &vectors)?;
    let reference = crate::flow::reference_outputs(&q, &vectors)?;
    let board = crate::firmware::board("qemu-mps2-an386")?;
    let elf = crate::flow::build_firmware(root, board, &q, &vectors_path)?;
    let run = crate::flow::run_firmware(board, &elf, std::time::Duration::from_secs(900))?;
    let bit_exact = crate::flow::compare("qemu-mps2-an386", &reference, &run.outputs);
    if let Err(e) = &bit_exact {
        say(format!("NOT bit-exact: {e:#}"));
    }
    let ram = elf.static_ram_bytes + run.stack_peak;
    let stats = q.stats();
    let layer_densities = q
        .nodes
        .iter()
        .filter_map(|n| {
            n.op.weights().map(|w| {
                (
                    n.name.clone(),
                    w.mask.count_ones() as f64 / w.weight.len() as f64,
                )
            })
        })
        .collect();
    let result = ImportResult {
        model: onnx_file_name(onnx),
        onnx_nodes: imported.onnx_nodes,
        import_notes: imported.notes,
        preprocess: q.preprocess.clone(),
        n_test: test_s.len(),
        n_train: train_s.len(),
        orig_test_accuracy: orig_acc,
        orig_int8_test_accuracy: orig_int8,
        pruned_float_test_accuracy: pruned_float,
        pruned_test_accuracy: pruned_int8,
        density: prune::density(&q),
        params_total: stats.params_total,
        params_nonzero: stats.params_nonzero,
        layer_densities,
        weight_bytes: lowered.weight_bytes,
        arena_bytes: lowered.arena_bytes,
        flash_bytes: elf.flash_bytes,
        ram_bytes: ram,
        part_flash_bytes: PART_FLASH_BYTES,
        part_ram_bytes: PART_RAM_BYTES,
        fits_part: elf.flash_bytes <= PART_FLASH_BYTES && ram <= PART_RAM_BYTES,
        qemu_vectors: n_vec,
        qemu_bit_exact: bit_exact.is_ok(),
        insns_per_inference: crate::flow::mean_insns(&run),
        rounds,
        wall_seconds: start.elapsed().as_secs_f64(),
    };
    say(format!(
        "lowered: weights {} B, arena {} B; firmware flash {} B, RAM {} B (fits {} KB / {} KB: {}); QEMU bit-exact on {} vectors: {}",
        result.weight_bytes,
        result.arena_bytes,
        result.flash_bytes,
        result.ram_bytes,
        PART_FLASH_BYTES >> 10,
        PART_RAM_BYTES >> 10,
        result.fits_part,
        n_vec,
        result.qemu_bit_exact
    ));
    let case = Case {
        name: case_name(&onnx_file_name(onnx), &q),
        model: q,
        inputs: test_s,
    };
    Ok((result, case))
}

fn import_table(i: &ImportResult) -> String {
    format!(
        "\n## ONNX import: {} (PyTorch MNIST CNN) pruned for a {} KB flash / {} KB RAM part\n\n\
         Imported with input normalisation (x/255 − 0.1307)/0.3081; accuracy on MNIST t10k ({} \
         images); fine-tuning on the {} training images of the shared MNIST sample (10k, not \
         60k). Density counts Dense and Conv2d weights (biases excluded). Flash and RAM are \
         the qemu-mps2-an386 (Cortex-M4) firmware's: code + weights, static RAM + measured \
         stack peak.\n\n\
         | original float | original int8 | pruned float | pruned int8 | density | nonzero / total params | flash | RAM | fits | QEMU bit-exact ({} vectors) | instructions / inference |\n\
         |---:|---:|---:|---:|---:|---:|---:|---:|---|---|---:|\n\
         | {} | {} | {} | {} | {:.4} | {} / {} | {} B | {} B | {} | {} | {} |\n\n\
         Pruning rounds:\n\n{}\n",
        i.model,
        i.part_flash_bytes >> 10,
        i.part_ram_bytes >> 10,
        i.n_test,
        i.n_train,
        i.qemu_vectors,
        pct(Some(i.orig_test_accuracy)),
        pct(Some(i.orig_int8_test_accuracy)),
        pct(Some(i.pruned_float_test_accuracy)),
        pct(Some(i.pruned_test_accuracy)),
        i.density,
        i.params_nonzero,
        i.params_total,
        i.flash_bytes,
        i.ram_bytes,
        if i.fits_part { "yes" } else { "NO" },
        if i.qemu_bit_exact { "yes" } else { "NO" },
        i.insns_per_inference
            .map_or("–".into(), |v| format!("{v:.0}")),
        i.rounds
            .iter()
            .map(|r| format!("- {r}"))
            .collect::<Vec<_>>()
            .join("\n"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compare_counts_lsb_and_tolerance() {
        let want = vec![vec![0i8, 5, -3], vec![1, 1, 0]];
        let got = vec![vec![0i8, 4, -1], vec![1, 2, 0]];
        let m = compare(
            &got,
            &want,
            Tolerance {
                abs_rel: None,
                lsb: Some(1.0),
            },
        );
        assert_eq!((m.exact, m.one_lsb, m.worse), (Some(3), Some(2), Some(1)));
        assert_eq!(m.max_abs_diff, 2.0);
        // Sample 0: argmax 1 in both; sample 1: 0 vs 1.
        assert_eq!(m.top1_agreement, 0.5);
        assert_eq!(m.tol_violations, None);
        assert_eq!(m.within_1lsb_fraction(), Some(5.0 / 6.0));

        let want = vec![vec![1.0f32, 100.0]];
        // Allowed: 2e-4 and 1.01e-2.
        let got = vec![vec![1.0f32 + 3e-4, 100.0 + 9e-3]];
        let m = compare(
            &got,
            &want,
            Tolerance {
                abs_rel: Some((1e-4, 1e-4)),
                lsb: None,
            },
        );
        assert_eq!(m.tol_violations, Some(1));
        assert_eq!(m.exact, None);
        assert_eq!(m.within_1lsb_fraction(), None);
    }
}
