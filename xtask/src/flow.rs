//! The steps `cargo xtask` chains after synthesis: lower a model into a runner crate, build it,
//! run it (host or QEMU), and compare every output byte with the compiler's integer reference.

use crate::firmware::{self, Board, ElfInfo};
use crate::qemu::{self, QemuRun, RunOptions};
use anyhow::{bail, Context, Result};
use bonsai::ir::Model;
use std::path::{Path, PathBuf};
use std::process::Command;
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
