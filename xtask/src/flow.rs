//! The steps `cargo xtask` chains after synthesis: lower a model into a runner crate, build it,
//! run it (host or QEMU), and compare every output byte with the compiler's integer reference.

use crate::firmware::{self, Board, ElfInfo};
use crate::qemu::{self, QemuRun, RunOptions};
use anyhow::{bail, Context, Result};
use bonsai::ir::Model;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

/// The workspace root (xtask lives one level below it).
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask is inside the workspace")
        .to_path_buf()
}

/// Lowers `model` into `dir` (replacing what was there).
pub fn lower_into(model: &Model, dir: &Path) -> Result<bonsai::lower::LoweredCrate> {
    let lowered = bonsai::lower::lower(model, &bonsai::lower::LowerOptions::default())?;
    bonsai::lower::write_crate(&lowered, dir)?;
    Ok(lowered)
}

/// The compiler's golden integer outputs for every vector.
pub fn reference_outputs(model: &Model, vectors: &[Vec<i8>]) -> Result<Vec<Vec<i8>>> {
    vectors
        .iter()
        .map(|v| Ok(bonsai::interp::int8::run(model, v)?))
        .collect()
}

/// Outputs of the generated crate + `bonsai-rt` compiled for the host.
pub fn host_outputs(root: &Path, model: &Model, vectors: &Path) -> Result<Vec<Vec<i8>>> {
    let dir = root.join("tests/host-runner");
    lower_into(model, &dir.join("model"))?;
    let out = Command::new(env!("CARGO"))
        .args(["run", "--release", "--quiet", "--"])
        .arg(vectors)
        .current_dir(&dir)
        .output()
        .context("cannot run cargo for tests/host-runner")?;
    if !out.status.success() {
        bail!(
            "host runner failed ({}):\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(qemu::parse_output(&String::from_utf8_lossy(&out.stdout))?.outputs)
}

/// Lowers `model` into the board crate and builds it with `vectors` embedded.
pub fn build_firmware(
    root: &Path,
    board: &Board,
    model: &Model,
    vectors: &Path,
) -> Result<ElfInfo> {
    lower_into(model, &board.model_dir(root))?;
    let elf = firmware::build(root, board, vectors)?;
    if elf.flash_bytes + elf.vectors > board.flash_limit {
        bail!(
            "the model does not fit {}: flash {} B (+ {} B of test vectors) > {} B",
            board.name,
            elf.flash_bytes,
            elf.vectors,
            board.flash_limit
        );
    }
    Ok(elf)
}

/// Lowers `model` into the board crate and builds its per-layer probe image: the board's
/// `layer-probes` feature (which turns on the model crate's), in its own target directory
/// (`<board>/target/layer-probes`) so that it neither replaces nor invalidates the default image.
/// Run it with [`run_firmware`]; [`QemuRun::layer_insns`] then holds per-layer counts. Only boards
/// whose crate defines the probe hook have the feature (qemu-mps2-an386).
pub fn build_probe_firmware(
    root: &Path,
    board: &Board,
    model: &Model,
    vectors: &Path,
) -> Result<ElfInfo> {
    let dir = board.dir(root);
    let manifest = dir.join("Cargo.toml");
    let text = std::fs::read_to_string(&manifest)
        .with_context(|| format!("board {}: cannot read {}", board.name, manifest.display()))?;
    if !text
        .lines()
        .any(|l| l.trim_start().starts_with("layer-probes ="))
    {
        bail!(
            "board {}: {} has no `layer-probes` feature (per-layer counts need the probe hook)",
            board.name,
            manifest.display()
        );
    }
    lower_into(model, &board.model_dir(root))?;
    let vectors = std::fs::canonicalize(vectors).with_context(|| {
        format!(
            "board {}: test-vector file {}",
            board.name,
            vectors.display()
        )
    })?;
    // cargo reads the board's .cargo/config.toml (target, runner) only from the current directory.
    let out = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
        .current_dir(&dir)
        .args([
            "build",
            "--release",
            "--features",
            "layer-probes",
            "--message-format=json-render-diagnostics",
            "--target-dir",
        ])
        .arg(dir.join("target").join("layer-probes"))
        .env("BONSAI_VECTORS", &vectors)
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .with_context(|| format!("board {}: cannot run cargo", board.name))?;
    if !out.status.success() {
        bail!(
            "board {}: cargo build --release --features layer-probes in {} failed ({}); cargo's \
             messages are above",
            board.name,
            dir.display(),
            out.status
        );
    }
    let elf = firmware::executable_from_json(&String::from_utf8_lossy(&out.stdout), board.name)
        .ok_or_else(|| {
            anyhow::anyhow!(
                "board {}: the layer-probes build named no executable",
                board.name
            )
        })?;
    firmware::elf_info(&elf).with_context(|| format!("board {} (layer-probes)", board.name))
}

/// Runs a built image under QEMU (with `-icount`, so `insns` holds exact executed-instruction
/// counts per inference) and checks its RAM use against the board.
pub fn run_firmware(board: &Board, elf: &ElfInfo, timeout: Duration) -> Result<QemuRun> {
    qemu::ensure_qemu()?;
    let run = qemu::run_with(board, &elf.path, &RunOptions::counting(timeout))?;
    let ram = elf.static_ram_bytes + run.stack_peak;
    if ram > board.ram_limit {
        bail!(
            "the model does not fit {}: RAM {} B (static {} + stack {}) > {} B",
            board.name,
            ram,
            elf.static_ram_bytes,
            run.stack_peak,
            board.ram_limit
        );
    }
    Ok(run)
}

/// Errors at the first vector whose outputs differ, showing both.
pub fn compare(what: &str, expected: &[Vec<i8>], found: &[Vec<i8>]) -> Result<()> {
    if expected.len() != found.len() {
        bail!(
            "{what}: {} outputs, expected {}",
            found.len(),
            expected.len()
        );
    }
    if let Some(i) = (0..expected.len()).find(|&i| expected[i] != found[i]) {
        bail!(
            "{what}: vector {i} differs from the integer reference: {:?} vs {:?}",
            found[i],
            expected[i]
        );
    }
    Ok(())
}

/// Mean executed instructions per inference, if the run counted them.
pub fn mean_insns(run: &QemuRun) -> Option<f64> {
    (!run.insns.is_empty()).then(|| run.insns.iter().sum::<u64>() as f64 / run.insns.len() as f64)
}

/// Mean instructions of each probed layer over the vectors of a `layer-probes` run (empty if the
/// run has no per-layer counts).
pub fn mean_layer_insns(run: &QemuRun) -> Vec<f64> {
    let Some(first) = run.layer_insns.first() else {
        return Vec::new();
    };
    let n = run.layer_insns.len() as f64;
    (0..first.len())
        .map(|k| {
            run.layer_insns
                .iter()
                .map(|v| v.get(k).copied().unwrap_or(0))
                .sum::<u64>() as f64
                / n
        })
        .collect()
}
