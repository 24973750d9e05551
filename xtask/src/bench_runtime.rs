//! `cargo xtask bench runtime`: the sparse runtime's figures (issue #4) for LeNet-300-100 on
//! MNIST, pruned to 1, 2, 5 and 10 % density plus the dense model.
//!
//! Per model: instructions per inference on the Cortex-M4 (QEMU mps2-an386, `-icount`, mean over
//! the embedded real test images) with the compiler's storage choice and with every layer dense
//! (the project's dense DSP kernel), flash and RAM from the same build, the arena beside its
//! max-live bound and the naive sum, the sparse tables' bytes per nonzero against the entropy
//! floor and TFLM's prune encoding, and single-sample host latency of the generated crate against
//! tract on the exported float ONNX graph.
//!
//! For the 2 % model also instructions per layer, from a separate `layer-probes` build of the same
//! lowering (probes between layers change the code, so whole-inference figures never come from
//! it): the mean per layer over the same images, beside the compiler's estimate.

use crate::bench::{git_commit, write_section};
use crate::firmware::{self, Board};
use crate::flow;
use anyhow::{bail, Context, Result};
use bonsai::data::DataSpec;
use bonsai::ir::Model;
use bonsai::lower::{LowerOptions, LoweredCrate, Storage, StoragePolicy};
use bonsai::pipeline::{synthesize, OutputFiles, SynthOptions};
use bonsai::synth::schedule::{Method, Schedule};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

/// Density whose model also gets the per-layer table.
const PER_LAYER_DENSITY: f64 = 0.02;

/// One layer of a `layer-probes` build: mean instructions over the test images.
#[derive(Debug, Clone, serde::Serialize)]
pub struct LayerInsns {
    /// The model node.
    pub layer: String,
    /// `dense` or `sparse` for a weighted layer, empty otherwise (e.g. a separate ReLU).
    pub storage: String,
    /// Nonzero weights of a weighted layer.
    pub nonzeros: Option<usize>,
    /// Measured, mean over the images: the layer's code and the glue around it.
    pub insns: f64,
    /// The compiler's thumbv7em estimate for the chosen storage (weighted layers).
    pub insns_estimate: Option<u64>,
}

/// Test images per model (embedded in the firmware and cycled on the host).
const N_INPUTS: usize = 100;

#[derive(Debug, Clone, serde::Serialize)]
pub struct RuntimeEntry {
    pub model: String,
    pub target: String,
    /// Nonzero weights / all weights, over every weighted layer.
    pub density: f64,
    pub nonzero_weights: usize,
    /// Values + indices + row lengths of the layers stored sparse.
    pub weight_index_bytes: usize,
    /// Nonzeros and weights (all elements) of the layers stored sparse.
    pub sparse_nonzeros: usize,
    pub sparse_elements: usize,
    pub bytes_per_nonzero: Option<f64>,
    /// `1 + H(p)/(8p)` bytes per nonzero, `p` the sparse layers' density.
    pub floor_bytes_per_nonzero: Option<f64>,
    /// `1 + 1/(8p)`: one byte per nonzero plus a one-bit mask per element.
    pub tflm_bytes_per_nonzero: Option<f64>,
    pub insns_sparse: f64,
    pub insns_dense_dsp: f64,
    pub insns_per_nonzero: f64,
    pub flash_bytes: u64,
    pub arena_bytes: usize,
    pub ram_maxlive_bytes: usize,
    pub ram_naive_bytes: usize,
    pub ram_total_bytes: u64,
    /// Criterion's median estimate of one inference on the host, ns.
    pub host_ns_bonsai: f64,
    pub host_ns_tract: f64,
    /// Criterion's mean estimate, ns.
    pub host_ns_bonsai_mean: f64,
    pub host_ns_tract_mean: f64,
    pub int8_test_accuracy: f64,
    pub n_inputs: usize,
    pub bit_exact: bool,
    /// Per-layer instructions from a `layer-probes` build (the 2 % model only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub layers: Option<Vec<LayerInsns>>,
    /// Sum of `layers` over the whole-inference `insns_sparse` of the default build.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub layers_sum_ratio: Option<f64>,
    pub git_commit: String,
    pub command: String,
}

/// Binary entropy in bits.
fn entropy(p: f64) -> f64 {
    if p <= 0.0 || p >= 1.0 {
        return 0.0;
    }
    -(p * p.log2() + (1.0 - p) * (1.0 - p).log2())
}

/// `synth`: optionally the output directory of a synthesized LeNet-300-100 (`bonsai
/// synthesize --out DIR`, e.g. the NeST run of `bench synth`), measured like the pruned models:
/// the issue's 2 % row asks for the synthesized model when there is one.
pub fn bench(root: &Path, mnist: &Path, synth: Option<&Path>, command: &str) -> Result<()> {
    if !mnist.is_dir() {
        bail!("--mnist {}: not a directory", mnist.display());
    }
    let board = firmware::board("qemu-mps2-an386")?;
    let commit = git_commit(root);
    let work = root.join("target/bench/runtime");
    let mut entries = Vec::new();
    let mut sources: Vec<(Option<f64>, Option<&Path>)> =
        [Some(0.01), Some(0.02), Some(0.05), Some(0.10), None]
            .into_iter()
            .map(|d| (d, None))
            .collect();
    if let Some(dir) = synth {
        sources.push((None, Some(dir)));
    }
    for (density, given) in sources {
        let name = match (density, given) {
            (_, Some(dir)) => format!(
                "lenet-300-100-synth ({})",
                dir.file_name().unwrap_or_default().to_string_lossy()
            ),
            (Some(d), None) => format!("lenet-300-100-p{:02}", (d * 100.0f64).round() as u32),
            (None, None) => "lenet-300-100-dense".into(),
        };
        let out = match given {
            Some(dir) => dir.to_path_buf(),
            None => work.join(&name),
        };
        let files = OutputFiles::in_dir(&out);
        if given.is_some() {
            anyhow::ensure!(
                files.model.exists() && files.vectors.exists(),
                "--synth {}: no model.json and vectors.bin (the output of `bonsai synthesize`)",
                out.display()
            );
        } else {
            synthesize_pruned(mnist, &out, density, &name)?;
        }
        let summary = bonsai::pipeline::Summary::load(&files.summary)?;
        let model = Model::load(&files.model)?;
        let vectors = bonsai::vectors::read(&files.vectors)?;
        let expected = flow::reference_outputs(&model, &vectors)?;

        let (auto, auto_elf, auto_run) =
            run_on_qemu(root, board, &model, &files.vectors, StoragePolicy::Auto)?;
        let auto_exact = flow::compare(&name, &expected, &auto_run.outputs).is_ok();
        let (_, _, dense_run) =
            run_on_qemu(root, board, &model, &files.vectors, StoragePolicy::Dense)?;
        let dense_exact = flow::compare(&name, &expected, &dense_run.outputs).is_ok();
        let insns_sparse = flow::mean_insns(&auto_run).context("QEMU did not count")?;
        let insns_dense = flow::mean_insns(&dense_run).context("QEMU did not count")?;
        let (layers, layers_exact) = if density == Some(PER_LAYER_DENSITY) {
            let (layers, exact) = per_layer(root, board, &model, &files.vectors, &auto, &expected)
                .with_context(|| format!("{name}: per-layer instructions"))?;
            (Some(layers), exact)
        } else {
            (None, true)
        };
        let layers_sum_ratio = layers
            .as_ref()
            .map(|l| l.iter().map(|l| l.insns).sum::<f64>() / insns_sparse);

        let nonzero: usize = auto.layers.iter().map(|l| l.nonzeros).sum();
        let elements: usize = auto.layers.iter().map(|l| l.in_len * l.out_len).sum();
        let sparse: Vec<_> = auto
            .layers
            .iter()
            .filter(|l| l.storage == Storage::Sparse)
            .collect();
        let wib: usize = sparse.iter().map(|l| l.sparse_weight_bytes).sum();
        let s_nz: usize = sparse.iter().map(|l| l.nonzeros).sum();
        let s_el: usize = sparse.iter().map(|l| l.in_len * l.out_len).sum();
        let (bpn, floor, tflm) = if s_nz > 0 {
            let p = s_nz as f64 / s_el as f64;
            (
                Some(wib as f64 / s_nz as f64),
                Some(1.0 + entropy(p) / (8.0 * p)),
                Some(1.0 + 1.0 / (8.0 * p)),
            )
        } else {
            (None, None, None)
        };

        let criterion_home = out.join("criterion");
        let host_bonsai = host_bonsai_ns(
            root,
            &work,
            &criterion_home.join("bonsai-rt"),
            &model,
            &files.vectors,
        )
        .with_context(|| format!("{name}: bonsai-rt host benchmark"))?;
        let host_tract = host_tract_ns(&model, &vectors, &criterion_home.join("tract"))
            .with_context(|| format!("{name}: tract host benchmark"))?;
        eprintln!(
            "{name}: {insns_sparse:.0} insns ({insns_dense:.0} dense DSP), {wib} B sparse tables, \
             host median {:.0} ns vs tract {:.0} ns",
            host_bonsai.median_ns, host_tract.median_ns
        );
        entries.push(RuntimeEntry {
            model: name,
            target: format!("{} (Cortex-M4, thumbv7em)", board.name),
            density: nonzero as f64 / elements as f64,
            nonzero_weights: nonzero,
            weight_index_bytes: wib,
            sparse_nonzeros: s_nz,
            sparse_elements: s_el,
            bytes_per_nonzero: bpn,
            floor_bytes_per_nonzero: floor,
            tflm_bytes_per_nonzero: tflm,
            insns_sparse,
            insns_dense_dsp: insns_dense,
            insns_per_nonzero: insns_sparse / nonzero.max(1) as f64,
            flash_bytes: auto_elf.flash_bytes,
            arena_bytes: auto.arena_bytes,
            ram_maxlive_bytes: auto.arena_max_live_bytes,
            ram_naive_bytes: auto.arena_naive_bytes,
            ram_total_bytes: auto_elf.static_ram_bytes + auto_run.stack_peak,
            host_ns_bonsai: host_bonsai.median_ns,
            host_ns_tract: host_tract.median_ns,
            host_ns_bonsai_mean: host_bonsai.mean_ns,
            host_ns_tract_mean: host_tract.mean_ns,
            int8_test_accuracy: summary.int8_test_accuracy,
            n_inputs: vectors.len(),
            bit_exact: auto_exact && dense_exact && layers_exact,
            layers,
            layers_sum_ratio,
            git_commit: commit.clone(),
            command: command.into(),
        });
    }
    let json = serde_json::to_string_pretty(&entries)? + "\n";
    bonsai::util::write_atomic(&root.join("bench/results/runtime.json"), json.as_bytes())?;
    write_section(root, "runtime", &table(&entries, command, &commit))
}

/// Per-layer mean instructions of `model` (lowered with the default options, as `auto` was) from
/// the board's `layer-probes` build, and whether its outputs matched `expected`.
fn per_layer(
    root: &Path,
    board: &Board,
    model: &Model,
    vectors: &Path,
    auto: &LoweredCrate,
    expected: &[Vec<i8>],
) -> Result<(Vec<LayerInsns>, bool)> {
    let elf = flow::build_probe_firmware(root, board, model, &std::path::absolute(vectors)?)?;
    let run = flow::run_firmware(board, &elf, Duration::from_secs(600))?;
    let exact = flow::compare("layer-probes build", expected, &run.outputs).is_ok();
    let means = flow::mean_layer_insns(&run);
    if means.is_empty() || means.len() != run.layer_names.len() {
        bail!(
            "the layer-probes build reported {} layer counts for {} layer names",
            means.len(),
            run.layer_names.len()
        );
    }
    let layers = run
        .layer_names
        .iter()
        .zip(means)
        .map(|(name, insns)| {
            let info = auto.layers.iter().find(|l| &l.name == name);
            LayerInsns {
                layer: name.clone(),
                storage: info.map_or(String::new(), |l| match l.storage {
                    Storage::Dense => "dense".into(),
                    Storage::Sparse => "sparse".into(),
                }),
                nonzeros: info.map(|l| l.nonzeros),
                insns,
                insns_estimate: info.map(|l| match l.storage {
                    Storage::Dense => l.dense_insns.thumbv7em,
                    Storage::Sparse => l.sparse_insns.thumbv7em,
                }),
            }
        })
        .collect();
    Ok((layers, exact))
}

/// Lowers `model` with `storage` into the board, builds and runs it under QEMU.
fn run_on_qemu(
    root: &Path,
    board: &Board,
    model: &Model,
    vectors: &Path,
    storage: StoragePolicy,
) -> Result<(LoweredCrate, firmware::ElfInfo, crate::qemu::QemuRun)> {
    let lowered = bonsai::lower::lower(
        model,
        &LowerOptions {
            storage,
            ..LowerOptions::default()
        },
    )?;
    bonsai::lower::write_crate(&lowered, &board.model_dir(root))?;
    let elf = firmware::build(root, board, &std::path::absolute(vectors)?)?;
    let run = flow::run_firmware(board, &elf, Duration::from_secs(600))?;
    Ok((lowered, elf, run))
}

/// Criterion's settings for both host measurements, identical so the two estimates compare
/// like with like: a fixed warm-up and measurement time rather than criterion's defaults, which
/// a later criterion release may change.
const HOST_WARM_UP: Duration = Duration::from_secs(2);
const HOST_MEASUREMENT: Duration = Duration::from_secs(5);
const HOST_SAMPLES: usize = 100;
/// The criterion release both sides use: xtask's dependency and the generated crate's.
const CRITERION_VERSION: &str = "0.8";

/// Criterion's estimates of one benchmark, ns per inference.
#[derive(Debug, Clone, Copy)]
struct HostEstimate {
    median_ns: f64,
    mean_ns: f64,
}

/// The two statistics read from criterion's `new/estimates.json` (the only stable interface to
/// its results: `Criterion` returns none).
#[derive(serde::Deserialize)]
struct Estimates {
    mean: PointEstimate,
    median: PointEstimate,
}

#[derive(serde::Deserialize)]
struct PointEstimate {
    point_estimate: f64,
}

/// Estimates of the benchmark `id` in the criterion output directory `home`.
fn read_estimate(home: &Path, id: &str) -> Result<HostEstimate> {
    let path = home.join(id).join("new/estimates.json");
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("criterion wrote no estimates: {}", path.display()))?;
    let e: Estimates = serde_json::from_str(&text)
        .with_context(|| format!("{}: not criterion's estimates format", path.display()))?;
    Ok(HostEstimate {
        median_ns: e.median.point_estimate,
        mean_ns: e.mean.point_estimate,
    })
}

/// An empty criterion output directory, so a failed run cannot leave an earlier run's
/// estimates to be read back.
fn fresh_dir(dir: &Path) -> Result<()> {
    if dir.exists() {
        std::fs::remove_dir_all(dir).with_context(|| format!("cannot remove {}", dir.display()))?;
    }
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))
}

/// Single-inference latency of the generated crate + `bonsai-rt` on the host: a criterion
/// benchmark in a small crate generated under `work/host-timer` (opt-level 3, LTO; its build
/// cached in its own target dir), one `infer` call per iteration with the test vectors cycled.
/// Criterion writes its results under `criterion_home`.
fn host_bonsai_ns(
    root: &Path,
    work: &Path,
    criterion_home: &Path,
    model: &Model,
    vectors: &Path,
) -> Result<HostEstimate> {
    let dir = work.join("host-timer");
    for sub in ["src", "benches"] {
        std::fs::create_dir_all(dir.join(sub))
            .with_context(|| format!("cannot create {}", dir.join(sub).display()))?;
    }
    // The timing binary of earlier versions would still be built beside the benchmark.
    let stale = dir.join("src/main.rs");
    if stale.exists() {
        std::fs::remove_file(&stale)
            .with_context(|| format!("cannot remove {}", stale.display()))?;
    }
    flow::lower_into(model, &dir.join("model"))?;
    let manifest = format!(
        "[package]\nname = \"host-timer\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\
         publish = false\n\n[dependencies]\nbonsai-model = {{ path = \"model\" }}\n\n\
         [dev-dependencies]\ncriterion = {{ version = \"{CRITERION_VERSION}\", \
         default-features = false }}\n\n[[bench]]\nname = \"infer\"\nharness = false\n\n\
         [workspace]\nexclude = [\"model\"]\n\n[profile.release]\nopt-level = 3\n\
         lto = true\ncodegen-units = 1\n"
    );
    bonsai::util::write_atomic(&dir.join("Cargo.toml"), manifest.as_bytes())?;
    bonsai::util::write_atomic(&dir.join("src/lib.rs"), HOST_LIB.as_bytes())?;
    bonsai::util::write_atomic(&dir.join("benches/infer.rs"), HOST_BENCH.as_bytes())?;
    // The workspace's lock file pins criterion and its dependencies to the versions xtask
    // measures tract with (cargo drops the entries the timer does not use).
    let lock = dir.join("Cargo.lock");
    if !lock.exists() {
        std::fs::copy(root.join("Cargo.lock"), &lock)
            .with_context(|| format!("cannot copy Cargo.lock to {}", lock.display()))?;
    }
    fresh_dir(criterion_home)?;
    let out = Command::new(env!("CARGO"))
        .args(["bench", "--quiet", "--bench", "infer", "--", "--noplot"])
        .args(["--warm-up-time", &HOST_WARM_UP.as_secs_f64().to_string()])
        .args([
            "--measurement-time",
            &HOST_MEASUREMENT.as_secs_f64().to_string(),
        ])
        .args(["--sample-size", &HOST_SAMPLES.to_string()])
        .current_dir(&dir)
        .env("BONSAI_VECTORS", std::path::absolute(vectors)?)
        .env("CRITERION_HOME", criterion_home)
        .env(
            "CARGO_TARGET_DIR",
            root.join("target/bench/runtime/host-timer-target"),
        )
        .output()
        .context("cannot run cargo bench for the host timer")?;
    if !out.status.success() {
        bail!(
            "host timer failed ({}):\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    read_estimate(criterion_home, "bonsai-rt")
}

/// The generated crate's library: the test vectors (same format as `tests/host-runner`).
const HOST_LIB: &str = r#"//! Generated by `cargo xtask bench runtime`: the inputs of the `infer` benchmark.

/// The test vectors in `$BONSAI_VECTORS`.
pub fn inputs() -> Vec<[i8; bonsai_model::INPUT_LEN]> {
    let path = std::env::var_os("BONSAI_VECTORS").expect("BONSAI_VECTORS: the test vectors file");
    let name = path.to_string_lossy().into_owned();
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{name}: {e}"));
    let word = |i: usize| u32::from_le_bytes(bytes[4 * i..4 * i + 4].try_into().unwrap()) as usize;
    assert!(
        bytes.len() >= 16 && &bytes[..4] == b"BVEC" && word(3) == bonsai_model::INPUT_LEN,
        "{name}: not test vectors of this model"
    );
    let inputs: Vec<_> = bytes[16..]
        .chunks_exact(bonsai_model::INPUT_LEN)
        .map(|c| std::array::from_fn(|i| c[i] as i8))
        .collect();
    assert!(!inputs.is_empty(), "{name}: no inputs");
    inputs
}
"#;

/// The generated crate's benchmark.
const HOST_BENCH: &str = r#"//! Generated by `cargo xtask bench runtime`: criterion benchmark of one inference (batch 1),
//! the test vectors cycled so that every call sees a real image.
use criterion::{criterion_group, criterion_main, Criterion};
use std::hint::black_box;

fn infer(c: &mut Criterion) {
    let inputs = host_timer::inputs();
    let mut arena = [0u8; bonsai_model::ARENA_BYTES];
    let mut output = [0i8; bonsai_model::OUTPUT_LEN];
    let mut next = 0;
    c.bench_function("bonsai-rt", |b| {
        b.iter(|| {
            let input = &inputs[next];
            next = (next + 1) % inputs.len();
            bonsai_model::infer(black_box(input), &mut output, &mut arena);
            black_box(&output);
        })
    });
}

criterion_group!(benches, infer);
criterion_main!(benches);
"#;

/// Single-sample latency of tract (`into_optimized().into_runnable()`) on the exported float
/// graph, batch 1, inputs = the test vectors dequantized with the model's input scale, cycled;
/// criterion as a library with the same settings as the bonsai-rt benchmark.
fn host_tract_ns(
    model: &Model,
    vectors: &[Vec<i8>],
    criterion_home: &Path,
) -> Result<HostEstimate> {
    use tract_onnx::prelude::*;
    let bytes = bonsai::onnx::export_float(model)?;
    let n_in = model.input_len();
    let q = model.tensors[model.inputs[0].0]
        .quant
        .context("the model's input is not quantized")?;
    let plan = tract_onnx::onnx()
        .model_for_read(&mut &bytes[..])?
        .with_input_fact(0, InferenceFact::dt_shape(f32::datum_type(), [1, n_in]))?
        .into_optimized()?
        .into_runnable()?;
    // Shared tensors: cloning one into the run's inputs is a reference count, not a copy, so the
    // measurement is tract's inference alone.
    let inputs: Vec<TValue> = vectors
        .iter()
        .map(|v| {
            let x: Vec<f32> = v
                .iter()
                .map(|&b| (i32::from(b) - q.zero_point) as f32 * q.scale)
                .collect();
            Ok(Tensor::from_shape(&[1, n_in], &x)?.into_tvalue())
        })
        .collect::<TractResult<_>>()?;
    if inputs.is_empty() {
        bail!("no test vectors to time tract with");
    }
    // Every input once outside the measurement, so a tract error is reported here, not inside
    // criterion's loop.
    for x in &inputs {
        plan.run(tvec!(x.clone()))?;
    }
    fresh_dir(criterion_home)?;
    let mut c = criterion::Criterion::default()
        .output_directory(criterion_home)
        .without_plots()
        .warm_up_time(HOST_WARM_UP)
        .measurement_time(HOST_MEASUREMENT)
        .sample_size(HOST_SAMPLES);
    let mut failure = None;
    let mut next = 0;
    c.bench_function("tract", |b| {
        b.iter(|| {
            let x = &inputs[next];
            next = (next + 1) % inputs.len();
            match plan.run(tvec!(x.clone())) {
                Ok(out) => drop(std::hint::black_box(out)),
                Err(e) => {
                    failure.get_or_insert(e);
                }
            }
        })
    });
    if let Some(e) = failure {
        return Err(e).context("tract failed during the criterion measurement");
    }
    read_estimate(criterion_home, "tract")
}

/// Trains LeNet-300-100 on MNIST and prunes it to `density` (dense when None) into `out`.
fn synthesize_pruned(mnist: &Path, out: &Path, density: Option<f64>, name: &str) -> Result<()> {
    let mut opts = SynthOptions {
        data: DataSpec::mnist(mnist.to_path_buf()),
        out: out.to_path_buf(),
        hidden: vec![300, 100],
        schedule: Schedule {
            method: if density.is_some() {
                Method::Prune
            } else {
                Method::Dense
            },
            target_density: density.unwrap_or(1.0),
            ..Schedule::default()
        },
        max_vectors: N_INPUTS,
        show_progress: false,
        ..SynthOptions::default()
    };
    opts.train.max_epochs = 15;
    synthesize(&opts).with_context(|| format!("synthesizing {name}"))?;
    Ok(())
}

fn table(entries: &[RuntimeEntry], command: &str, commit: &str) -> String {
    let criterion_version = CRITERION_VERSION;
    let warm = HOST_WARM_UP.as_secs_f64();
    let meas = HOST_MEASUREMENT.as_secs_f64();
    let mut t = format!(
        "## Sparse runtime: LeNet-300-100 on MNIST, Cortex-M4 and host\n\n\
         Command: `{command}` (commit {commit}). Pruned models (`Method::Prune`, 15 epochs) at \
         1, 2, 5, 10 % target density and the dense model; a `synth` row is a synthesized model \
         (`--synth DIR`, e.g. the NeST run of `bench synth`), measured the same way on its own \
         test vectors. Instructions: QEMU mps2-an386 \
         `-icount`, mean over {N_INPUTS} real MNIST test images, bit-exact with the compiler's \
         integer reference; *sparse* = the compiler's per-layer storage choice, *dense DSP* = the \
         same model lowered with `StoragePolicy::Dense` (this project's SMLAD dense kernel). \
         CMSIS-NN dense on these shapes: 519,795 (bar: ≤ 51,979 at 2 %). Flash = text + rodata \
         + data (harness included, test vectors excluded); RAM = data + bss + stack peak. Table \
         bytes = values + indices + row lengths of the sparse layers; floor = 1 B + H(p)/p bits \
         per nonzero, TFLM = 1 B + 1 bit per element. Host: criterion {criterion_version} median \
         estimate of one inference (batch 1, the same images cycled; {warm} s warm-up, {meas} s \
         measurement, {HOST_SAMPLES} samples; the means are in the JSON); bonsai-rt = a \
         criterion benchmark in a crate generated around the lowered model, opt-level 3 with \
         LTO, tract = `into_optimized().into_runnable()` on the exported float ONNX graph, \
         benchmarked in-process with criterion as a library.\n\n\
         | model | density | nonzeros | insns sparse | insns dense DSP | insns/nonzero | table B | B/nonzero | floor | TFLM | flash B | arena B | max-live B | naive B | RAM B | host bonsai ns | host tract ns | speed-up | int8 acc | bit-exact |\n\
         |---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|\n"
    );
    let opt = |v: Option<f64>| v.map_or("–".into(), |v| format!("{v:.2}"));
    for e in entries {
        t += &format!(
            "| {} | {:.2}% | {} | {:.0} | {:.0} | {:.2} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {:.0} | {:.0} | {:.1}× | {:.2}% | {} |\n",
            e.model,
            100.0 * e.density,
            e.nonzero_weights,
            e.insns_sparse,
            e.insns_dense_dsp,
            e.insns_per_nonzero,
            e.weight_index_bytes,
            opt(e.bytes_per_nonzero),
            opt(e.floor_bytes_per_nonzero),
            opt(e.tflm_bytes_per_nonzero),
            e.flash_bytes,
            e.arena_bytes,
            e.ram_maxlive_bytes,
            e.ram_naive_bytes,
            e.ram_total_bytes,
            e.host_ns_bonsai,
            e.host_ns_tract,
            e.host_ns_tract / e.host_ns_bonsai,
            100.0 * e.int8_test_accuracy,
            if e.bit_exact { "yes" } else { "NO" },
        );
    }
    for e in entries {
        if let (Some(layers), Some(ratio)) = (&e.layers, e.layers_sum_ratio) {
            t += &layer_table(&e.model, layers, ratio);
        }
    }
    t
}

fn layer_table(model: &str, layers: &[LayerInsns], ratio: f64) -> String {
    let mut t = format!(
        "\n### Per layer: {model}\n\n\
         A separate build with the board's `layer-probes` feature: the generated `infer` calls a \
         probe before its first layer and after each layer that executes code, and the probe \
         reads the same SysTick instruction counter (`-icount`). Per layer: mean over the same \
         images of the instructions between two probes (the layer's kernel and the glue around \
         it), the probe's own cost subtracted; outputs bit-exact as above. Probes are opaque \
         calls, so that build's code differs: the layers sum to {:.2}% of the whole-inference \
         count in the table above, which stays the reference. *Estimate* = the compiler's \
         thumbv7em model for the storage it chose.\n\n\
         | layer | storage | nonzeros | insns | share | estimate |\n\
         |---|---|---:|---:|---:|---:|\n",
        100.0 * ratio
    );
    let total: f64 = layers.iter().map(|l| l.insns).sum();
    for l in layers {
        t += &format!(
            "| `{}` | {} | {} | {:.0} | {:.1}% | {} |\n",
            l.layer,
            if l.storage.is_empty() {
                "–"
            } else {
                &l.storage
            },
            l.nonzeros.map_or("–".into(), |n| n.to_string()),
            l.insns,
            100.0 * l.insns / total.max(1.0),
            l.insns_estimate.map_or("–".into(), |n| n.to_string()),
        );
    }
    t += &format!("| **sum** | | | {total:.0} | | |\n");
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `read_estimate` against what the pinned criterion really writes, so a release that
    /// moves or renames its estimates fails here rather than in a half-hour benchmark run.
    #[test]
    fn reads_the_estimates_criterion_writes() {
        let home = std::env::temp_dir().join(format!("bonsai-criterion-{}", std::process::id()));
        fresh_dir(&home).unwrap();
        let mut c = criterion::Criterion::default()
            .output_directory(&home)
            .without_plots()
            .warm_up_time(Duration::from_millis(20))
            .measurement_time(Duration::from_millis(200))
            .sample_size(10)
            .nresamples(1000);
        let mut x = 0u64;
        c.bench_function("spin", |b| {
            b.iter(|| {
                x = std::hint::black_box((0..200u64).fold(x, |a, i| a.wrapping_mul(31) ^ i));
            })
        });
        let e = read_estimate(&home, "spin").unwrap();
        assert!(e.median_ns.is_finite() && e.median_ns > 0.0, "{e:?}");
        assert!(e.mean_ns.is_finite() && e.mean_ns > 0.0, "{e:?}");
        let missing = format!("{:#}", read_estimate(&home, "absent").unwrap_err());
        assert!(missing.contains("absent/new/estimates.json"), "{missing}");
        std::fs::remove_dir_all(&home).unwrap();
    }
}
