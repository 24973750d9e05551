//! `bonsai`: the command-line edge of the compiler. Errors become one line on stderr and exit
//! code 2; nothing is left half-written (every output goes through a temp file and a rename).

use anyhow::Context;
use bonsai::energy;
use bonsai::ir::Model;
use bonsai::pipeline::{self, SynthArgs};
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
    Synthesize(SynthArgs),
    /// Architecture search (STEERAGE, AutoShrink or random) under a device's flash/RAM/energy
    /// limits, then grow-and-prune of the winner: writes what synthesize writes plus search.json
    /// and the Pareto front (pareto.json, pareto.svg). Resumable (--state).
    Search(bonsai::search::cli::SearchArgs),
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
    /// Import an ONNX model (PyTorch, Keras via tf2onnx) as a float model.json.
    Import(ImportArgs),
    /// Lower a quantized model.json to a no_std model crate.
    Lower {
        model: PathBuf,
        #[arg(long)]
        out: PathBuf,
    },
    /// List the device profiles the energy estimates can use.
    Devices {
        /// An extra device profile (TOML, same schema as models/devices/*.toml); repeatable.
        #[arg(long)]
        device_file: Vec<PathBuf>,
    },
    /// Estimate energy and latency per inference of a quantized model.json, layer by layer.
    Energy {
        model: PathBuf,
        #[arg(long, default_value = "stm32l4r5")]
        device: String,
        /// An extra device profile (TOML); repeatable.
        #[arg(long)]
        device_file: Vec<PathBuf>,
        /// Inferences per second, sleeping in between: prints average power.
        #[arg(long)]
        rate: Option<f64>,
        /// Battery capacity (at the device's supply voltage): prints battery life (needs --rate).
        #[arg(long, requires = "rate")]
        battery_mah: Option<f64>,
        /// Print the estimate as JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
}

#[derive(clap::Args)]
struct ImportArgs {
    model: PathBuf,
    #[arg(short, long)]
    output: PathBuf,
    /// Input normalisation x = raw·SCALE + OFFSET (with --input-offset).
    #[arg(long, conflicts_with = "normalize")]
    input_scale: Option<f32>,
    #[arg(long, conflicts_with = "normalize", allow_hyphen_values = true)]
    input_offset: Option<f32>,
    /// MEAN,STD for 8-bit pixels: x = (raw/255 - MEAN) / STD (PyTorch's Normalize after ToTensor).
    #[arg(long, value_delimiter = ',', allow_hyphen_values = true)]
    normalize: Option<Vec<f32>>,
    /// H,W,C of an image input whose ONNX dimensions are symbolic.
    #[arg(long, value_delimiter = ',')]
    input_shape: Option<Vec<usize>>,
    /// Class names, comma separated.
    #[arg(long, value_delimiter = ',')]
    class_names: Option<Vec<String>>,
}

impl ImportArgs {
    fn options(&self) -> anyhow::Result<bonsai::onnx::ImportOptions> {
        let preprocess = match (&self.normalize, self.input_scale, self.input_offset) {
            (Some(ms), _, _) => {
                let &[mean, std] = &ms[..] else {
                    anyhow::bail!("--normalize takes MEAN,STD (two numbers)");
                };
                anyhow::ensure!(
                    std.is_finite() && std > 0.0 && mean.is_finite(),
                    "--normalize {mean},{std}: STD must be positive"
                );
                Some(bonsai::ir::Preprocess {
                    scale: vec![1.0 / (255.0 * std)],
                    offset: vec![-mean / std],
                })
            }
            (None, None, None) => None,
            (None, s, o) => Some(bonsai::ir::Preprocess {
                scale: vec![s.unwrap_or(1.0)],
                offset: vec![o.unwrap_or(0.0)],
            }),
        };
        if let Some(s) = &self.input_shape {
            anyhow::ensure!(
                s.len() == 3 && s.iter().all(|&d| d > 0),
                "--input-shape must be H,W,C (three positive numbers)"
            );
        }
        Ok(bonsai::onnx::ImportOptions {
            preprocess,
            input_shape: self.input_shape.clone(),
            name: None,
            class_names: self.class_names.clone(),
        })
    }
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
        Command::Synthesize(args) => {
            let opts = args.to_options()?;
            let out = args.out;
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
            if let (Some(d), Some(e), Some(t)) = (&s.device, s.energy_uj, s.latency_us) {
                println!(
                    "{d}: {:.2}–{:.2} µJ, {:.1}–{:.1} µs per inference (estimated)",
                    e.min, e.max, t.min, t.max
                );
            }
            println!("wrote {}", out.display());
        }
        Command::Search(args) => {
            let job = args.to_job()?;
            let r = bonsai::search::job::run(&job)?;
            let o = &r.outcome;
            let s = &r.summary;
            println!(
                "{} search: {} candidates trained now ({} in all), best {} (val {:.2}%)",
                o.method.as_str(),
                o.evaluated_now,
                o.evaluations.len() + o.heldout.len(),
                o.best.candidate.key(),
                100.0 * o.best.metrics.val_accuracy
            );
            if let Some(q) = &o.predictor {
                println!(
                    "predictor on {} held-out candidates: Spearman {} (90% CI {})",
                    q.n_heldout,
                    q.spearman.map_or("–".into(), |v| format!("{v:.3}")),
                    q.spearman_ci
                        .map_or("–".into(), |(a, b)| format!("{a:.3}–{b:.3}"))
                );
            }
            println!(
                "shipped ({:?}): int8 test accuracy {:.2}%, {} nonzero params, weights {} B, arena {} B, {} µJ; {:.1} s",
                s.method,
                100.0 * s.int8_test_accuracy,
                s.params_nonzero,
                s.weight_bytes,
                s.arena_bytes,
                s.energy_uj
                    .map_or("?".into(), |e| format!("{:.2}–{:.2}", e.min, e.max)),
                r.wall_seconds
            );
            println!("wrote {}", job.synth.out.display());
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
        Command::Import(args) => {
            let imported = bonsai::onnx::import_file(&args.model, &args.options()?)?;
            for note in &imported.notes {
                println!("note: {note}");
            }
            let m = &imported.model;
            m.save(&args.output)?;
            let s = m.stats();
            println!(
                "imported {} ONNX nodes into {} layers: input {:?}, {} outputs, {} params, {} MACs",
                imported.onnx_nodes,
                m.nodes.len(),
                m.tensor(m.inputs[0]).shape,
                m.output_len(),
                s.params_total,
                s.macs
            );
            println!("wrote {}", args.output.display());
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
        Command::Devices { device_file } => {
            let devices = energy::devices_with(&device_file)?;
            println!(
                "{:<12} {:<14} {:<11} {:<9} {:>6} {:>5} {:>7} {:>8} {:>7} {:>7} {:>3} {:<6} source",
                "name",
                "part",
                "core",
                "target",
                "MHz",
                "V",
                "µA/MHz",
                "sleep µA",
                "flash K",
                "SRAM K",
                "ws",
                "icache"
            );
            for d in &devices {
                println!(
                    "{:<12} {:<14} {:<11} {:<9} {:>6} {:>5} {:>7} {:>8} {:>7} {:>7} {:>3} {:<6} {}",
                    d.name,
                    d.part,
                    d.core,
                    d.target.as_str(),
                    d.clock_mhz,
                    d.supply_v,
                    d.run_ua_per_mhz,
                    d.sleep_ua,
                    d.flash_kb,
                    d.sram_kb,
                    d.flash_wait_states,
                    if d.icache { "yes" } else { "no" },
                    d.source
                );
            }
        }
        Command::Energy {
            model,
            device,
            device_file,
            rate,
            battery_mah,
            json,
        } => {
            let devices = energy::devices_with(&device_file)?;
            let dev = energy::find(&devices, &device)?;
            let m = Model::load(&model)?;
            let lowered = bonsai::lower::lower(&m, &bonsai::lower::LowerOptions::default())
                .with_context(|| format!("cannot lower {}", model.display()))?;
            let est = energy::estimate_builtin(&m, &lowered, dev)
                .with_context(|| format!("cannot estimate {}", model.display()))?;
            let duty = rate
                .map(|r| energy::duty_cycle(&est, dev, r, battery_mah))
                .transpose()?;
            if json {
                let v = serde_json::json!({ "estimate": est, "duty_cycle": duty });
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else {
                print_energy(&m, dev, &est, duty.as_ref());
            }
        }
    }
    Ok(())
}

fn print_energy(
    m: &Model,
    dev: &energy::Device,
    est: &energy::Estimate,
    duty: Option<&energy::DutyCycle>,
) {
    println!(
        "{} on {} ({}, {} MHz, {} V, {} µA/MHz CoreMark run current; instruction counts for {})",
        m.name,
        dev.name,
        dev.core,
        dev.clock_mhz,
        dev.supply_v,
        dev.run_ua_per_mhz,
        dev.target.as_str()
    );
    println!(
        "{:<10} {:<9} {:>8} {:>8} {:>8} {:>10} {:>19} {:>15} {:>15} {:>8} {:>6}",
        "layer",
        "kernel",
        "params",
        "nonzero",
        "MACs",
        "insns",
        "cycles",
        "µs",
        "µJ",
        "flash B",
        "RAM B"
    );
    let r = |x: energy::Range, p: usize| format!("{:.p$}–{:.p$}", x.min, x.max);
    for l in &est.layers {
        let w = &l.work;
        println!(
            "{:<10} {:<9} {:>8} {:>8} {:>8} {:>10.0} {:>19} {:>15} {:>15} {:>8} {:>6}",
            w.name,
            w.kernel,
            w.params,
            w.nonzeros,
            w.macs,
            l.insns,
            r(l.cycles, 0),
            r(l.latency_us, 1),
            r(l.energy_uj, 3),
            w.flash_bytes,
            w.ram_bytes
        );
    }
    println!(
        "{:<10} {:<9} {:>8} {:>8} {:>8} {:>10.0} {:>19} {:>15} {:>15} {:>8} {:>6}",
        "total",
        "",
        est.layers.iter().map(|l| l.work.params).sum::<usize>(),
        est.layers.iter().map(|l| l.work.nonzeros).sum::<usize>(),
        est.layers.iter().map(|l| l.work.macs).sum::<usize>(),
        est.insns,
        r(est.cycles, 0),
        r(est.latency_us, 1),
        r(est.energy_uj, 3),
        est.flash_bytes,
        est.arena_bytes
    );
    if est.flash_bytes as u64 > dev.flash_kb * 1024 {
        println!(
            "warning: the parameters alone ({} B) exceed {}'s {} KB of flash",
            est.flash_bytes, dev.name, dev.flash_kb
        );
    }
    if est.arena_bytes as u64 > dev.sram_kb * 1024 {
        println!(
            "warning: the arena ({} B) exceeds {}'s {} KB of SRAM",
            est.arena_bytes, dev.name, dev.sram_kb
        );
    }
    if let Some(d) = duty {
        println!(
            "at {} inferences/s (sleeping at {} µA in between): active {:.4}–{:.4}%, average power {:.2}–{:.2} µW ({:.2}–{:.2} µA)",
            d.rate_hz,
            dev.sleep_ua,
            100.0 * d.active_fraction.min,
            100.0 * d.active_fraction.max,
            d.avg_power_uw.min,
            d.avg_power_uw.max,
            d.avg_current_ua.min,
            d.avg_current_ua.max
        );
        if let Some(h) = d.battery_hours {
            println!(
                "battery life: {:.0}–{:.0} h ({:.1}–{:.1} days)",
                h.min,
                h.max,
                h.min / 24.0,
                h.max / 24.0
            );
        }
    }
}
