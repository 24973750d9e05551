//! The hardware board examples: `cargo xtask firmware --board <hardware board>` (build one around
//! a synthesized IMU model) and `cargo xtask bench boards` (build all of them, record their
//! sizes in `bench/results/boards.json` and BENCHMARKS.md).

use crate::bench::{git_commit, write_section};
use crate::firmware::{self, ElfInfo, HardwareBoard, HARDWARE_BOARDS};
use crate::flow;
use anyhow::{bail, Context, Result};
use bonsai::data::DataSpec;
use bonsai::ir::Model;
use bonsai::pipeline::{synthesize, OutputFiles, Summary, SynthOptions};
use bonsai_rt::features::N_FEATURES;
use std::path::Path;
use std::time::Duration;

/// Classes the board firmware names (imu-pipeline's `CLASSES`, BasicMotions' order).
pub const IMU_CLASSES: [&str; 4] = ["Standing", "Running", "Walking", "Badminton"];

/// The BasicMotions model the bench and the tests build the boards with (the README's
/// `--hidden 64,32 --batch-size 8 --lr 0.005 --epochs 300 --seed 1`). With 30 training windows
/// and 10 for validation, small batches and a higher learning rate train well before the
/// validation accuracy stops improving; seeds 1-8 gave 90-100% int8 test accuracy (7 of 8 at
/// 95% or more).
pub fn imu_model_options(out: &Path) -> SynthOptions {
    let mut opts = SynthOptions {
        data: DataSpec::BasicMotions,
        out: out.to_path_buf(),
        hidden: vec![64, 32],
        show_progress: false,
        ..SynthOptions::default()
    };
    opts.train.max_epochs = 300;
    opts.train.batch_size = 8;
    opts.train.learning_rate = 5e-3;
    opts.train.seed = 1;
    opts
}

/// An error unless `model` is what the board firmware feeds and reads: the IMU feature vector
/// in, one score per class of [`IMU_CLASSES`] out.
pub fn check_imu_model(model: &Model, path: &Path) -> Result<()> {
    if model.input_len() != N_FEATURES || model.output_len() != IMU_CLASSES.len() {
        bail!(
            "{}: the board firmware needs an IMU activity model ({N_FEATURES} features in, {} classes \
             out: synthesize one with --data basicmotions or --data imu:TRAIN.ts,TEST.ts); this \
             one has {} inputs and {} outputs",
            path.display(),
            IMU_CLASSES.len(),
            model.input_len(),
            model.output_len()
        );
    }
    if model.class_names != IMU_CLASSES {
        eprintln!(
            "warning: {}: classes {:?}; the firmware logs them as {:?}",
            path.display(),
            model.class_names,
            IMU_CLASSES
        );
    }
    Ok(())
}

/// Lowers the model in `out` into the board crate, builds it and checks that it fits.
pub fn deploy(root: &Path, board: &HardwareBoard, out: &Path) -> Result<ElfInfo> {
    let files = OutputFiles::in_dir(out);
    let model = Model::load(&files.model)?;
    check_imu_model(&model, &files.model)?;
    flow::lower_into(&model, &board.model_dir(root))?;
    let elf = firmware::build_hardware(root, board)?;
    println!(
        "{} ({}): flash {} B of {} B, static RAM {} B of {} B (window buffer, model arena and RTT \
         buffer included; the stack comes on top) -> {}",
        board.name,
        board.mcu,
        elf.flash_bytes,
        board.flash_limit,
        elf.static_ram_bytes,
        board.ram_limit,
        elf.path.display()
    );
    Ok(elf)
}

#[derive(Debug, serde::Serialize)]
struct BoardEntry {
    board: String,
    mcu: String,
    target: String,
    flash_bytes: u64,
    ram_bytes: u64,
    flash_limit: u64,
    ram_limit: u64,
    model: String,
    model_int8_accuracy: f64,
    model_weight_bytes: usize,
    model_arena_bytes: usize,
    git_commit: String,
    command: String,
}

/// Synthesizes the BasicMotions model (unless `model` names a synthesize output), checks it
/// bit-exact on QEMU mps2-an386, builds every hardware board with it and records the sizes.
pub fn bench(root: &Path, model: Option<&Path>, command: &str) -> Result<()> {
    let out = match model {
        Some(dir) => dir.to_path_buf(),
        None => {
            let out = root.join("target/bench/boards");
            let s = synthesize(&imu_model_options(&out))?;
            eprintln!(
                "{}: int8 test accuracy {:.2}% on {} windows",
                s.dataset,
                100.0 * s.int8_test_accuracy,
                s.n_test
            );
            out
        }
    };
    let files = OutputFiles::in_dir(&out);
    let summary = Summary::load(&files.summary)?;
    let model_json = Model::load(&files.model)?;
    check_imu_model(&model_json, &files.model)?;

    // The same model on the emulated Cortex-M4, output for output against the reference.
    let qemu_board = firmware::board("qemu-mps2-an386")?;
    let vectors = bonsai::vectors::read(&files.vectors)?;
    let expected = flow::reference_outputs(&model_json, &vectors)?;
    let elf = flow::build_firmware(
        root,
        qemu_board,
        &model_json,
        &std::path::absolute(&files.vectors)?,
    )?;
    let run = flow::run_firmware(qemu_board, &elf, Duration::from_secs(300))?;
    flow::compare("qemu-mps2-an386", &expected, &run.outputs)
        .context("the board model is not bit-exact under QEMU")?;
    eprintln!(
        "qemu-mps2-an386: {} windows bit-exact with the integer reference",
        run.outputs.len()
    );

    let commit = git_commit(root);
    let mut entries = Vec::new();
    for board in &HARDWARE_BOARDS {
        let elf = deploy(root, board, &out)?;
        entries.push(BoardEntry {
            board: board.name.into(),
            mcu: board.mcu.into(),
            target: board.target.into(),
            flash_bytes: elf.flash_bytes,
            ram_bytes: elf.static_ram_bytes,
            flash_limit: board.flash_limit,
            ram_limit: board.ram_limit,
            model: format!(
                "{} {}-{}-{} ({})",
                model_json.name,
                model_json.input_len(),
                hidden_widths(&model_json),
                model_json.output_len(),
                out.strip_prefix(root).unwrap_or(&out).display()
            ),
            model_int8_accuracy: summary.int8_test_accuracy,
            model_weight_bytes: summary.weight_bytes,
            model_arena_bytes: summary.arena_bytes,
            git_commit: commit.clone(),
            command: command.into(),
        });
    }
    let json = serde_json::to_string_pretty(&entries)? + "\n";
    bonsai::util::write_atomic(&root.join("bench/results/boards.json"), json.as_bytes())?;
    write_section(root, "boards", &table(&entries, &summary))
}

/// The hidden layers' widths, dash-separated (`64-32`).
fn hidden_widths(m: &Model) -> String {
    let dense: Vec<usize> = m
        .nodes
        .iter()
        .filter_map(|n| match &n.op {
            bonsai::ir::Op::Dense(d) => Some(d.out_features),
            _ => None,
        })
        .collect();
    let hidden = &dense[..dense.len().saturating_sub(1)];
    hidden
        .iter()
        .map(|w| w.to_string())
        .collect::<Vec<_>>()
        .join("-")
}

fn table(entries: &[BoardEntry], s: &Summary) -> String {
    let Some(first) = entries.first() else {
        return String::new();
    };
    let mut t = format!(
        "## Board examples: the IMU activity classifier on hardware boards\n\n\
         Command: `{}` (commit {}). Model: {} — BasicMotions IMU features ({N_FEATURES} int8 \
         features of 10 s windows), int8 accuracy {:.2}% on the {} official test windows, \
         {} weight bytes, {} arena bytes; bit-exact under QEMU mps2-an386. Flash = text + rodata \
         + data of the release ELF (HAL, defmt logging, MPU-6050 driver, features and model); \
         RAM = data + bss (window ring buffer, model arena, 1 KiB RTT buffer); the stack is not \
         included (no probe here to measure it).\n\n\
         | board | MCU | target | flash B | flash limit | RAM B | RAM limit |\n\
         |---|---|---|---:|---:|---:|---:|\n",
        first.command,
        first.git_commit,
        first.model,
        100.0 * s.int8_test_accuracy,
        s.n_test,
        s.weight_bytes,
        s.arena_bytes
    );
    for e in entries {
        t += &format!(
            "| {} | {} | {} | {} | {} | {} | {} |\n",
            e.board, e.mcu, e.target, e.flash_bytes, e.flash_limit, e.ram_bytes, e.ram_limit
        );
    }
    t
}
