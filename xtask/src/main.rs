//! `cargo xtask <command>`: the pipeline a user runs, top to bottom.
//!
//! - `synthesize`: train + quantize + lower (the compiler), then build the Cortex-M4 firmware, run it
//!   under QEMU, check it bit-exact against the integer reference and record flash/RAM.
//! - `firmware`: build a board crate around a synthesized model and report its size.
//! - `qemu`: build and run a board under QEMU and compare with the reference.
//! - `test`: check the toolchain, then run every test (including QEMU ones).

use anyhow::{bail, Context, Result};
use bonsai::ir::Model;
use bonsai::pipeline::{OutputFiles, Summary, SynthArgs};
use clap::{Parser, Subcommand};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;
use xtask::{firmware, flow, qemu};

#[derive(Parser)]
#[command(name = "cargo xtask")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Synthesize a model (default: the embedded digits data) and run it on the Cortex-M4 under QEMU.
    Synthesize {
        // Boxed: SynthArgs is much larger than the other commands' arguments.
        #[command(flatten)]
        args: Box<SynthArgs>,
        #[arg(long, default_value = "qemu-mps2-an386")]
        board: String,
        #[command(flatten)]
        search: Box<SearchFlags>,
    },
    /// Build a board's firmware around a synthesized model and print its flash/RAM use. Hardware
    /// boards (nucleo-f401re, nrf52840-dk, rp-pico) take an IMU model (--data basicmotions).
    Firmware {
        #[arg(long, default_value = "qemu-mps2-an386")]
        board: String,
        /// A synthesize output directory (model.json + vectors.bin).
        #[arg(long, default_value = "out")]
        model: PathBuf,
    },
    /// Build and run a board under QEMU; compare every output with the integer reference.
    Qemu {
        #[arg(long, default_value = "qemu-mps2-an386")]
        board: String,
        #[arg(long, default_value = "out")]
        model: PathBuf,
    },
    /// Check the toolchain (targets, QEMU) and run all tests.
    Test,
    /// Measure (not test): writes bench/results/<name>.json and BENCHMARKS.md.
    Bench {
        #[command(subcommand)]
        what: BenchCmd,
    },
}

#[derive(Subcommand)]
enum BenchCmd {
    /// Default pipeline on digits (3 seeds), plus an MNIST MLP with --mnist DIR.
    Pipeline {
        /// Directory with MNIST's gzipped IDX files (e.g. ../shared/data/mnist).
        #[arg(long)]
        mnist: Option<PathBuf>,
    },
    /// Grow-and-prune vs prune-only vs dense on MNIST LeNet-300-100 (curves, SVG plot).
    Synth {
        /// Directory with MNIST's gzipped IDX files (the dataset, unless --data is given).
        #[arg(long, required_unless_present = "data")]
        mnist: Option<PathBuf>,
        /// Another dataset, as `bonsai synthesize --data` takes it (e.g.
        /// `csv:pendigits.csv:train-rows=7494`); name it with --dataset.
        #[arg(long, requires = "dataset", conflicts_with = "mnist")]
        data: Option<String>,
        /// Name of the --data dataset in results files and titles.
        #[arg(long)]
        dataset: Option<String>,
        /// Seed architecture: lenet-300-100, lenet-5 or tabular-mlp.
        #[arg(long, default_value = "lenet-300-100")]
        arch: String,
        /// Seeds per method (1..=N).
        #[arg(long, default_value_t = 3)]
        seeds: u64,
        /// Methods, comma separated: dense, prune, nest, nest-area, scann-a, scann-b, scann-c,
        /// dr-scann (on lenet-5 SCANN rewires the fully connected head; the convolutions are
        /// kept). scann-a grows a quarter-width seed, scann-b a 30% random one, scann-c prunes
        /// the dense DAG. nest-area is NeST with partial-area convolution (seeds with
        /// convolutions only; a table row, no curve).
        /// dr-scann is SCANN C behind an input reduction (PCA or random projection) chosen per
        /// seed on validation (tabular-mlp only).
        #[arg(long, value_delimiter = ',', default_value = "dense,prune,nest")]
        methods: Vec<String>,
        /// Syntheses run at once (each trains on about one core).
        #[arg(long, default_value_t = 1)]
        jobs: usize,
        /// Reuse runs already done with the same command line (their energy estimates are redone
        /// with the current cost model).
        #[arg(long)]
        resume: bool,
        /// Target densities of the error-vs-nonzeros curves, comma separated: each is a
        /// separate run of every pruning method with the whole epoch budget (default: the
        /// points along each run's own schedule).
        #[arg(long, value_delimiter = ',')]
        curve_densities: Vec<f64>,
        /// Seeds of the curve runs (1..=N; default: --seeds).
        #[arg(long)]
        curve_seeds: Option<u64>,
    },
    /// Redraw a `bench synth` plot from its results files in bench/results, running nothing.
    SynthPlot {
        /// Dataset name of the results files (mnist, fashion-mnist, pendigits, letter).
        #[arg(long, default_value = "mnist")]
        dataset: String,
        /// Seed architecture: lenet-300-100, lenet-5 or tabular-mlp.
        #[arg(long, default_value = "lenet-300-100")]
        arch: String,
    },
    /// Architecture search (issue 7): STEERAGE and random search on MNIST under a device's
    /// flash/RAM budget, the shipped models and Pareto-front points measured under QEMU, against
    /// a pruned seed architecture (LeNet-5); writes bench/results/search-<method>.json.
    // Boxed: the search options are much larger than the other benches'.
    Search(Box<SearchBench>),
    /// Hardware board crates built around the BasicMotions model: flash/RAM per board.
    Boards {
        /// A synthesize output directory with an IMU model (default: synthesize one).
        #[arg(long)]
        model: Option<PathBuf>,
    },
    /// Energy cost model: measure the microbenchmarks (and with --fit refit the coefficient
    /// table), validate on held-out trained models; writes bench/results/energy.json.
    Energy {
        /// Refit compiler/src/energy/coefficients.toml from the microbenchmarks first.
        #[arg(long)]
        fit: bool,
        /// Directory with MNIST's gzipped IDX files (default: ../shared/data/mnist if present).
        #[arg(long)]
        mnist: Option<PathBuf>,
    },
    /// Sparse runtime (issue #4): LeNet-300-100 on MNIST at 1, 2, 5, 10 % density and dense on
    /// the Cortex-M4 under QEMU, plus host latency against tract; writes bench/results/runtime.json.
    Runtime {
        /// Directory with MNIST's gzipped IDX files (e.g. ../shared/data/mnist).
        #[arg(long)]
        mnist: PathBuf,
        /// Also measure a synthesized LeNet-300-100: the output directory of `bonsai synthesize`
        /// (e.g. target/bench/synth/lenet-300-100-nest-1 after `bench synth`).
        #[arg(long)]
        synth: Option<PathBuf>,
    },
    /// ONNX export checks (ONNX checker, onnxruntime, tract) on the digits and BasicMotions
    /// models, plus the MNIST MLP (dense and 2 %) and the pruned LeNet-5 with --mnist DIR; with
    /// --import MODEL.onnx (needs --mnist) also the import bar (import, prune, int8, QEMU) and
    /// the exports of the imported model.
    Onnx {
        /// Directory with MNIST's gzipped IDX files (e.g. ../shared/data/mnist).
        #[arg(long)]
        mnist: Option<PathBuf>,
        /// A PyTorch MNIST CNN (e.g. ../shared/data/onnx/pytorch-mnist-cnn.onnx).
        #[arg(long)]
        import: Option<PathBuf>,
    },
}

/// `cargo xtask synthesize --search`.
#[derive(clap::Args)]
struct SearchFlags {
    /// Architecture search first: steerage, autoshrink (with a cell --space) or random
    /// (`bonsai search`); --method is then the local search on the winner (dense, prune, nest).
    #[arg(long)]
    search: Option<String>,
    #[command(flatten)]
    tuning: bonsai::search::cli::SearchTuning,
}

/// `cargo xtask bench search`.
#[derive(clap::Args)]
struct SearchBench {
    /// Directory with MNIST's gzipped IDX files (e.g. ../shared/data/mnist).
    #[arg(long, conflicts_with = "data")]
    mnist: Option<PathBuf>,
    /// Any other dataset (`--data` of synthesize), e.g. digits for a smoke run.
    #[arg(long)]
    data: Option<String>,
    /// Methods, comma separated (steerage, random, autoshrink; autoshrink takes
    /// models/spaces/cell.toml unless --space is a cell space).
    #[arg(long, value_delimiter = ',', default_value = "steerage,random")]
    method: Vec<String>,
    #[command(flatten)]
    tuning: bonsai::search::cli::SearchTuning,
    #[arg(long, default_value = "stm32l4r5")]
    device: String,
    #[arg(long, default_value_t = 64.0)]
    flash_budget_kb: f64,
    #[arg(long, default_value_t = 16.0)]
    ram_budget_kb: f64,
    /// Energy per inference, µJ (worst case of the estimate); default: the baseline's, so the
    /// searched model spends no more than the model it must beat.
    #[arg(long)]
    energy_budget_uj: Option<f64>,
    /// Seed architecture of the baseline (trained, then pruned to fit the budget).
    #[arg(long, default_value = "models/seeds/lenet-5.toml")]
    baseline_seed: PathBuf,
    /// No baseline run.
    #[arg(long)]
    no_baseline: bool,
    /// Measure only the shipped model under QEMU, not the Pareto-front architectures.
    #[arg(long)]
    no_front_qemu: bool,
}

fn main() {
    if let Err(e) = run(Cli::parse()) {
        eprintln!("error: {e:#}");
        std::process::exit(2);
    }
}

fn run(cli: Cli) -> Result<()> {
    let root = flow::root();
    match cli.command {
        Cmd::Synthesize {
            args,
            board,
            search,
        } => {
            let board = firmware::board(&board)?;
            firmware::ensure_targets()?;
            let s = match &search.search {
                Some(method) => {
                    let job =
                        bonsai::search::cli::job_from_synth_args(&args, method, &search.tuning)?;
                    let r = bonsai::search::job::run(&job)?;
                    println!(
                        "{method} search: best {} (val {:.2}%), {} candidates trained now",
                        r.outcome.best.candidate.key(),
                        100.0 * r.outcome.best.metrics.val_accuracy,
                        r.outcome.evaluated_now
                    );
                    r.summary
                }
                None => bonsai::pipeline::synthesize(&args.to_options()?)?,
            };
            let out = args.out;
            println!(
                "{}: float test accuracy {:.2}%, int8 {:.2}% on {} test samples; {} params, {} MACs",
                s.dataset,
                100.0 * s.float_test_accuracy,
                100.0 * s.int8_test_accuracy,
                s.n_test,
                s.params_nonzero,
                s.macs
            );
            let qemu_ok = qemu::ensure_qemu();
            if let Err(e) = &qemu_ok {
                eprintln!("warning: {e}; building the firmware without running it (no stack peak, no bit-exact check)");
            }
            deploy(&root, board, &out, qemu_ok.is_ok())?;
            let s = Summary::load(&OutputFiles::in_dir(&out).summary)?;
            println!("{}", serde_json::to_string_pretty(&s)?);
        }
        Cmd::Firmware { board, model } => {
            if let Some(hw) = firmware::hardware_board(&board) {
                firmware::ensure_targets()?;
                xtask::bench_boards::deploy(&root, hw, &model)?;
                return Ok(());
            }
            let board = firmware::board(&board)?;
            firmware::ensure_targets()?;
            deploy(&root, board, &model, false)?;
        }
        Cmd::Qemu { board, model } => {
            let board = firmware::board(&board)?;
            firmware::ensure_targets()?;
            qemu::ensure_qemu()?;
            deploy(&root, board, &model, true)?;
        }
        Cmd::Test => test(&root)?,
        Cmd::Bench { what } => {
            if matches!(
                what,
                BenchCmd::Pipeline { .. }
                    | BenchCmd::Boards { .. }
                    | BenchCmd::Runtime { .. }
                    | BenchCmd::Search { .. }
            ) {
                firmware::ensure_targets()?;
                qemu::ensure_qemu()?;
            }
            let command = format!(
                "cargo xtask {}",
                std::env::args().skip(1).collect::<Vec<_>>().join(" ")
            );
            match what {
                BenchCmd::Pipeline { mnist } => {
                    xtask::bench::pipeline(&root, mnist.as_deref(), &command)?
                }
                BenchCmd::Boards { model } => {
                    xtask::bench_boards::bench(&root, model.as_deref(), &command)?
                }
                BenchCmd::Runtime { mnist, synth } => {
                    xtask::bench_runtime::bench(&root, &mnist, synth.as_deref(), &command)?
                }

                BenchCmd::SynthPlot { dataset, arch } => {
                    let svg = xtask::bench_synth::replot(&root, &dataset, &arch)?;
                    println!("wrote {}", svg.display());
                }
                BenchCmd::Synth {
                    mnist,
                    data,
                    dataset,
                    arch,
                    seeds,
                    methods,
                    jobs,
                    resume,
                    curve_densities,
                    curve_seeds,
                } => xtask::bench_synth::bench(
                    &root,
                    &xtask::bench_synth::Options {
                        data: &match (&data, &mnist) {
                            (Some(d), _) => d.clone(),
                            (None, Some(dir)) => format!("mnist:{}", dir.display()),
                            (None, None) => unreachable!("clap requires one"),
                        },
                        dataset: dataset.as_deref().unwrap_or("mnist"),
                        arch: &arch,
                        seeds,
                        methods: &methods,
                        jobs,
                        resume,
                        curve_densities: &curve_densities,
                        curve_seeds: curve_seeds.unwrap_or(seeds),
                        command: &command,
                    },
                )?,
                BenchCmd::Search(b) => {
                    let SearchBench {
                        mnist,
                        data,
                        method,
                        tuning,
                        device,
                        flash_budget_kb,
                        ram_budget_kb,
                        energy_budget_uj,
                        baseline_seed,
                        no_baseline,
                        no_front_qemu,
                    } = *b;
                    let data = match (mnist, data) {
                        (Some(dir), _) => format!("mnist:{}", dir.display()),
                        (None, Some(d)) => d,
                        (None, None) => bail!("give --mnist DIR (or --data SPEC)"),
                    };
                    let args = xtask::bench_search::BenchArgs {
                        data,
                        methods: method,
                        tuning,
                        device,
                        flash_kb: flash_budget_kb,
                        ram_kb: ram_budget_kb,
                        energy_uj: energy_budget_uj,
                        baseline_seed: (!no_baseline).then(|| root.join(baseline_seed)),
                        no_front_qemu,
                    };
                    xtask::bench_search::bench(&root, &args, &command)?
                }
                BenchCmd::Onnx { mnist, import } => {
                    xtask::bench_onnx::bench(&root, mnist.as_deref(), import.as_deref(), &command)?
                }
                BenchCmd::Energy { fit, mnist } => {
                    let mnist = mnist.or_else(|| xtask::bench_energy::default_mnist(&root));
                    xtask::bench_energy::bench(&root, fit, mnist.as_deref(), &command)?
                }
            }
        }
    }
    Ok(())
}

/// Builds `board` around the model in `out`, copies the ELF beside it, optionally runs it under
/// QEMU (bit-exact check + stack peak), and records the sizes in `summary.json`.
fn deploy(root: &Path, board: &firmware::Board, out: &Path, run: bool) -> Result<()> {
    let files = OutputFiles::in_dir(out);
    let model = Model::load(&files.model)?;
    let vectors_path = std::path::absolute(&files.vectors)?;
    let elf = flow::build_firmware(root, board, &model, &vectors_path)?;
    let elf_copy = out.join(format!("firmware-{}.elf", board.name));
    std::fs::copy(&elf.path, &elf_copy)
        .with_context(|| format!("cannot copy the firmware to {}", elf_copy.display()))?;
    println!(
        "{}: flash {} B of {} B (+{} B test vectors), static RAM {} B of {} B -> {}",
        board.name,
        elf.flash_bytes,
        board.flash_limit,
        elf.vectors,
        elf.static_ram_bytes,
        board.ram_limit,
        elf_copy.display()
    );
    let mut summary = Summary::load(&files.summary)?;
    summary.flash_bytes = Some(elf.flash_bytes);
    summary.firmware_elf = Some(elf_copy.display().to_string());
    summary.board = Some(board.name.to_string());
    if run {
        let vectors = bonsai::vectors::read(&files.vectors)?;
        let expected = flow::reference_outputs(&model, &vectors)?;
        let got = flow::run_firmware(board, &elf, Duration::from_secs(120))?;
        flow::compare(
            &format!("{} under QEMU", board.name),
            &expected,
            &got.outputs,
        )?;
        let insns = flow::mean_insns(&got);
        println!(
            "{}: {} vectors bit-exact with the integer reference; stack peak {} B, RAM {} B; {} instructions per inference (mean, QEMU -icount)",
            board.name,
            got.outputs.len(),
            got.stack_peak,
            elf.static_ram_bytes + got.stack_peak,
            insns.map_or("?".into(), |v| format!("{v:.0}"))
        );
        summary.insns_per_inference = insns;
        summary.stack_peak_bytes = Some(got.stack_peak);
        summary.ram_bytes = Some(elf.static_ram_bytes + got.stack_peak);
    }
    summary.save(&files.summary)
}

fn test(root: &Path) -> Result<()> {
    firmware::ensure_targets()?;
    firmware::llvm_size().context("the firmware size checks need llvm-size")?;
    if let Err(e) = qemu::ensure_qemu() {
        bail!("{e:#}\n(the bit-exact firmware tests run under QEMU; they are not skipped)");
    }
    let status = Command::new(env!("CARGO"))
        .args(["test", "--workspace", "--release", "--no-fail-fast"])
        .current_dir(root)
        .status()
        .context("cannot run cargo test")?;
    if !status.success() {
        bail!("tests failed");
    }
    Ok(())
}
