//! `bonsai`: the command-line edge of the compiler. Errors become one line on stderr and exit
//! code 2; nothing is left half-written (every output goes through a temp file and a rename).

use anyhow::Context;
use bonsai::data::DataSpec;
use bonsai::ir::Model;
use bonsai::pipeline::{self, SynthOptions};
use bonsai::train::TrainConfig;
use clap::{Parser, Subcommand};
use std::path::PathBuf;

#[derive(Parser)]
#[command(
    name = "bonsai",
    version,
    about = "Grow and prune neural networks until they fit a microcontroller, then lower them to no_std Rust"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Train, quantize and lower a model: writes model.json, model/ (crate), vectors.bin, summary.json.
    Synthesize {
        /// `digits` (embedded default), `mnist:DIR`, `fashion-mnist:DIR` or `csv:FILE[:label=COLUMN]`.
        #[arg(long, default_value = "digits")]
        data: String,
        #[arg(long, default_value = "out")]
        out: PathBuf,
        /// Hidden layer widths of the seed MLP, comma separated.
        #[arg(long, value_delimiter = ',', default_value = "64,32")]
        hidden: Vec<usize>,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        #[arg(long, default_value_t = 60)]
        epochs: usize,
        #[arg(long, default_value_t = 32)]
        batch_size: usize,
        #[arg(long, default_value_t = 2e-3)]
        lr: f64,
        /// Test samples written as firmware test vectors.
        #[arg(long, default_value_t = 400)]
        vectors: usize,
        /// dense, prune (magnitude prune + retrain) or nest (sparse seed, grow, prune).
        #[arg(long, default_value = "dense")]
        method: String,
        /// Overall density of Dense weights for prune/nest.
        #[arg(long, default_value_t = 0.1)]
        target_density: f64,
        /// Pruning rounds (prune/nest).
        #[arg(long, default_value_t = 5)]
        rounds: usize,
        /// Retraining epochs after each round (prune/nest).
        #[arg(long, default_value_t = 8)]
        retrain_epochs: usize,
        /// NeST: density of the random sparse seed.
        #[arg(long, default_value_t = 0.2)]
        seed_density: f64,
        /// NeST: fraction of dormant connections grown.
        #[arg(long, default_value_t = 0.1)]
        grow_fraction: f64,
        /// No progress bars.
        #[arg(long)]
        quiet: bool,
    },
    /// Print a model's nodes, parameters (total / nonzero) and MACs.
    Inspect { model: PathBuf },
    /// Export a model to ONNX (float graph, or with --int8 a QDQ graph of the quantized model).
    ExportOnnx {
        model: PathBuf,
        #[arg(short, long)]
        output: PathBuf,
        #[arg(long)]
        int8: bool,
    },
    /// Lower a quantized model.json to a no_std model crate.
    Lower {
        model: PathBuf,
        #[arg(long)]
        out: PathBuf,
    },
}

fn main() {
    let cli = Cli::parse();
    if let Err(e) = run(cli) {
        eprintln!("error: {e:#}");
        std::process::exit(2);
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Synthesize {
            data,
            out,
            hidden,
            seed,
            epochs,
            batch_size,
            lr,
            vectors,
            method,
            target_density,
            rounds,
            retrain_epochs,
            seed_density,
            grow_fraction,
            quiet,
        } => {
            let data: DataSpec = data.parse()?;
            let opts = SynthOptions {
                data,
                out: out.clone(),
                hidden,
                train: TrainConfig {
                    max_epochs: epochs,
                    batch_size,
                    learning_rate: lr,
                    seed,
                    ..TrainConfig::default()
                },
                schedule: bonsai::synth::schedule::Schedule {
                    method: method.parse().map_err(anyhow::Error::msg)?,
                    target_density,
                    rounds,
                    retrain_epochs,
                    seed_density,
                    grow_fraction,
                },
                max_vectors: vectors,
                show_progress: !quiet,
                ..SynthOptions::default()
            };
            let s = pipeline::synthesize(&opts)?;
            println!(
                "{}: float test accuracy {:.2}%, int8 {:.2}% ({} test samples); {} params, {} MACs; weights {} B, arena {} B; {:.1} s",
                s.dataset,
                100.0 * s.float_test_accuracy,
                100.0 * s.int8_test_accuracy,
                s.n_test,
                s.params_nonzero,
                s.macs,
                s.weight_bytes,
                s.arena_bytes,
                s.wall_seconds
            );
            println!("wrote {}", out.display());
        }
        Command::Inspect { model } => {
            let m = Model::load(&model)?;
            println!(
                "{} (IR v{}, {}quantized), input {:?}, {} classes",
                m.name,
                m.ir_version,
                if m.is_quantized() { "" } else { "not " },
                m.tensor(m.inputs[0]).shape,
                m.output_len()
            );
            println!("{}", m.stats());
        }
        Command::ExportOnnx {
            model,
            output,
            int8,
        } => {
            let m = Model::load(&model)?;
            let bytes = if int8 {
                bonsai::onnx::export_int8(&m)
            } else {
                bonsai::onnx::export_float(&m)
            }
            .with_context(|| format!("cannot export {}", model.display()))?;
            bonsai::onnx::check_with_tract(&bytes).context("tract rejects the exported model")?;
            bonsai::util::write_atomic(&output, &bytes)
                .with_context(|| format!("cannot write {}", output.display()))?;
            println!("wrote {} ({} bytes)", output.display(), bytes.len());
        }
        Command::Lower { model, out } => {
            let m = Model::load(&model)?;
            let lowered = bonsai::lower::lower(&m, &bonsai::lower::LowerOptions::default())
                .with_context(|| format!("cannot lower {}", model.display()))?;
            bonsai::lower::write_crate(&lowered, &out)?;
            println!(
                "wrote {} (weights {} B, arena {} B)",
                out.display(),
                lowered.weight_bytes,
                lowered.arena_bytes
            );
        }
    }
    Ok(())
}
