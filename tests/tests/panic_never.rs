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

use bonsai::ir::{Activation, Conv2d, Dense, Model, Op, Pool, Preprocess};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use xtask::{firmware, flow};

const SYMBOL: &str = "bonsai_panic_path_survived_link_time_proof";

/// SplitMix64 in [0, 1): seeded weights without a dependency.
struct Rng(u64);
impl Rng {
    fn unit(&mut self) -> f32 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        ((z ^ (z >> 31)) >> 40) as f32 / (1u64 << 24) as f32
    }
    /// `n` weights in ±sqrt(6 / fan_in), each kept with probability `density`.
    fn weights(&mut self, n: usize, fan_in: usize, density: f32) -> (Vec<f32>, Vec<bool>) {
        let limit = (6.0 / fan_in as f32).sqrt();
        (0..n)
            .map(|_| {
                let w = (self.unit() * 2.0 - 1.0) * limit;
                let keep = self.unit() < density;
                (if keep { w } else { 0.0 }, keep)
            })
            .unzip()
    }
}

fn dense(rng: &mut Rng, n_in: usize, n_out: usize, density: f32, act: Activation) -> Op {
    let (w, mask) = rng.weights(n_in * n_out, n_in, density);
    let mut d = Dense::new(n_in, n_out, w, vec![0.01; n_out], act);
    for (i, keep) in mask.into_iter().enumerate() {
        d.mask.set(i, keep);
    }
    Op::Dense(d)
}

fn conv(rng: &mut Rng, cin: usize, cout: usize, density: f32) -> Op {
    let (w, mask) = rng.weights(cout * 25 * cin, 25 * cin, density);
    let b = (0..cout).map(|_| rng.unit() * 0.1 - 0.05).collect();
    let mut c = Conv2d::new(cin, cout, [5, 5], [1, 1], [0; 4], 1, w, b, Activation::Relu);
    for (i, keep) in mask.into_iter().enumerate() {
        c.mask.set(i, keep);
    }
    Op::Conv2d(c)
}

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

/// LeNet-5 (Caffe variant), conv2 and fc1 pruned to 10 % and 5 % so that they lower sparse.
fn lenet5() -> Model {
    let mut rng = Rng(5);
    let mut m = Model::with_input("lenet5", vec![28, 28, 1], Preprocess::identity(), vec![]);
    let x = m.inputs[0];
    let x = m.add_node(
        "conv1",
        conv(&mut rng, 1, 20, 1.0),
        vec![x],
        vec![24, 24, 20],
    );
    let x = m.add_node(
        "pool1",
        Op::MaxPool(Pool::square(2)),
        vec![x],
        vec![12, 12, 20],
    );
    let x = m.add_node(
        "conv2",
        conv(&mut rng, 20, 50, 0.1),
        vec![x],
        vec![8, 8, 50],
    );
    let x = m.add_node(
        "pool2",
        Op::MaxPool(Pool::square(2)),
        vec![x],
        vec![4, 4, 50],
    );
    let x = m.add_node("flatten", Op::Flatten, vec![x], vec![800]);
    let op = dense(&mut rng, 800, 500, 0.05, Activation::Relu);
    let x = m.add_node("fc1", op, vec![x], vec![500]);
    let op = dense(&mut rng, 500, 10, 0.5, Activation::None);
    let y = m.add_node("fc2", op, vec![x], vec![10]);
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
    for float in [mlp(), lenet5()] {
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
    let vectors = dir.path().join("lenet5.bin");
    let out = build(&root, &vectors, "thumbv7em-none-eabihf", true);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && stderr.contains(SYMBOL),
        "with overflow checks the link should fail on {SYMBOL}:\n{stderr}"
    );
}
