//! Link-time proof that the generated model crate, bonsai-rt and the firmware harness contain no
//! reachable panic: `qemu-mps2-an386` built with its `panic-never` feature installs a panic
//! handler that calls an undefined extern function, so the release link (fat LTO) fails unless
//! every panic path was optimised away. Built for the Cortex-M4 (`thumbv7em-none-eabihf`) and the
//! Cortex-M0 (`thumbv6m-none-eabi`), for a dense MLP of the default shape (64-64-32-10) and a
//! sparse LeNet-5-shaped CNN. (Its own test binary: the board's `model/` directory is shared.)
//!
//! A negative control builds the same image with debug assertions and overflow checks on, which
//! do leave panic paths, and expects the link to fail on exactly that symbol, so the proof
//! cannot pass vacuously.

mod common;

use bonsai::ir::{Activation, Model, Preprocess};
use common::{dense, lenet5, with_areas, Rng};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use xtask::{firmware, flow};

const SYMBOL: &str = "bonsai_panic_path_survived_link_time_proof";

/// The default pipeline's shape (digits, hidden 64, 32), dense.
fn mlp() -> Model {
    let mut rng = Rng(1);
    let mut m = Model::with_input("mlp", vec![64], Preprocess::identity(), vec![]);
    let mut x = m.inputs[0];
    for (i, (n_in, n_out)) in [(64, 64), (64, 32)].into_iter().enumerate() {
        let op = dense(&mut rng, n_in, n_out, 1.0, Activation::Relu);
        x = m.add_node(format!("fc{i}"), op, vec![x], vec![n_out]);
    }
    let op = dense(&mut rng, 32, 10, 1.0, Activation::None);
    let y = m.add_node("out", op, vec![x], vec![10]);
    m.outputs.push(y);
    m
}

/// Quantizes `float` on seeded inputs, lowers it into the board crate and writes one vector.
fn install(root: &Path, float: &Model, dir: &Path) -> std::path::PathBuf {
    float.validate().unwrap();
    let mut rng = Rng(9);
    let n = float.input_len();
    let images: Vec<Vec<f32>> = (0..8)
        .map(|_| (0..n).map(|_| rng.unit()).collect())
        .collect();
    let model = bonsai::quant::quantize(float, &images).unwrap();
    let vectors: Vec<Vec<i8>> = images
        .iter()
        .map(|x| bonsai::quant::quantize_input(&model, x))
        .collect();
    let path = dir.join(format!("{}.bin", float.name));
    bonsai::vectors::write(&path, model.input_len(), &vectors[..1]).unwrap();
    let board = firmware::board("qemu-mps2-an386").unwrap();
    flow::lower_into(&model, &board.model_dir(root)).unwrap();
    path
}

fn build(root: &Path, vectors: &Path, target: &str, checks: bool) -> Output {
    let board = firmware::board("qemu-mps2-an386").unwrap();
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    // cargo reads the board's .cargo/config.toml only from the current directory.
    cmd.current_dir(board.dir(root))
        .args([
            "build",
            "--release",
            "--features",
            "panic-never",
            "--target",
            target,
        ])
        .env("BONSAI_VECTORS", vectors)
        .stdin(Stdio::null());
    if checks {
        cmd.env("CARGO_PROFILE_RELEASE_DEBUG_ASSERTIONS", "true")
            .env("CARGO_PROFILE_RELEASE_OVERFLOW_CHECKS", "true");
    }
    cmd.output().expect("run cargo")
}

#[test]
fn no_panic_path_survives_in_the_firmware() {
    firmware::ensure_targets().unwrap();
    let root = flow::root();
    let dir = tempfile::tempdir().unwrap();
    let mut partial = with_areas(lenet5());
    partial.name = "lenet5-areas".into();
    for float in [mlp(), lenet5(), partial] {
        let vectors = install(&root, &float, dir.path());
        for target in ["thumbv7em-none-eabihf", "thumbv6m-none-eabi"] {
            let out = build(&root, &vectors, target, false);
            assert!(
                out.status.success(),
                "{} for {target}: the panic-never build failed (a panic path survived?):\n{}",
                float.name,
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
    // Negative control (last model, Cortex-M4): checked arithmetic must break the link on the
    // proof's symbol.
    let vectors = dir.path().join("lenet5-areas.bin");
    let out = build(&root, &vectors, "thumbv7em-none-eabihf", true);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && stderr.contains(SYMBOL),
        "with overflow checks the link should fail on {SYMBOL}:\n{stderr}"
    );
}
