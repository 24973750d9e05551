//! Per-layer instruction counts (`layer-probes`): a small model (max-pool, Flatten, a dense and a
//! sparse fully-connected layer) is built twice for qemu-mps2-an386, once as usual and once with
//! the board's `layer-probes` feature, and both run under QEMU with `-icount`. Both builds must
//! be bit-exact with the compiler's integer reference; the probe build must report every layer
//! that executes code (Flatten has none), each with a positive count, summing to less than its
//! own whole-inference count and to within a few percent of the default build's. (Its own test
//! binary: the board's `model/` directory is shared.)

use bonsai::ir::{Activation, Dense, Model, Op, Pool, Preprocess};
use std::time::Duration;
use xtask::{firmware, flow};

/// SplitMix64 in [0, 1): seeded weights and inputs without a dependency.
struct Rng(u64);
impl Rng {
    fn unit(&mut self) -> f32 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        ((z ^ (z >> 31)) >> 40) as f32 / (1u64 << 24) as f32
    }
}

fn dense(rng: &mut Rng, n_in: usize, n_out: usize, density: f32, act: Activation) -> Op {
    let limit = (6.0 / n_in as f32).sqrt();
    let mut w = Vec::with_capacity(n_in * n_out);
    let mut mask = Vec::with_capacity(n_in * n_out);
    for _ in 0..n_in * n_out {
        let v = (rng.unit() * 2.0 - 1.0) * limit;
        let keep = rng.unit() < density;
        w.push(if keep { v } else { 0.0 });
        mask.push(keep);
    }
    let mut d = Dense::new(n_in, n_out, w, vec![0.01; n_out], act);
    for (i, keep) in mask.into_iter().enumerate() {
        d.mask.set(i, keep);
    }
    Op::Dense(d)
}

fn model() -> Model {
    let mut rng = Rng(4);
    let mut m = Model::with_input("probed", vec![16, 16, 1], Preprocess::identity(), vec![]);
    let x = m.inputs[0];
    let x = m.add_node("pool", Op::MaxPool(Pool::square(2)), vec![x], vec![8, 8, 1]);
    let x = m.add_node("flatten", Op::Flatten, vec![x], vec![64]);
    let op = dense(&mut rng, 64, 128, 1.0, Activation::Relu);
    let x = m.add_node("fc_dense", op, vec![x], vec![128]);
    let op = dense(&mut rng, 128, 64, 0.05, Activation::Relu);
    let x = m.add_node("fc_sparse", op, vec![x], vec![64]);
    let op = dense(&mut rng, 64, 10, 1.0, Activation::None);
    let y = m.add_node("out", op, vec![x], vec![10]);
    m.outputs.push(y);
    m
}

#[test]
fn layer_probes_count_every_layer_and_keep_outputs_bit_exact() {
    firmware::ensure_targets().unwrap();
    let root = flow::root();
    let board = firmware::board("qemu-mps2-an386").unwrap();
    let float = model();
    float.validate().unwrap();
    let mut rng = Rng(11);
    let images: Vec<Vec<f32>> = (0..6)
        .map(|_| (0..float.input_len()).map(|_| rng.unit()).collect())
        .collect();
    let model = bonsai::quant::quantize(&float, &images).unwrap();
    let vectors: Vec<Vec<i8>> = images
        .iter()
        .map(|x| bonsai::quant::quantize_input(&model, x))
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("vectors.bin");
    bonsai::vectors::write(&path, model.input_len(), &vectors).unwrap();
    let expected = flow::reference_outputs(&model, &vectors).unwrap();
    let timeout = Duration::from_secs(60);

    let elf = flow::build_firmware(&root, board, &model, &path).unwrap();
    let whole = flow::run_firmware(board, &elf, timeout).unwrap();
    flow::compare("default build", &expected, &whole.outputs).unwrap();
    assert!(whole.layer_insns.is_empty() && whole.layer_names.is_empty());

    let elf = flow::build_probe_firmware(&root, board, &model, &path).unwrap();
    let probed = flow::run_firmware(board, &elf, timeout).unwrap();
    flow::compare("layer-probes build", &expected, &probed.outputs).unwrap();
    // Flatten executes no code, so it has no probe.
    assert_eq!(
        probed.layer_names,
        ["pool", "fc_dense", "fc_sparse", "out"],
        "{}",
        probed.stdout
    );
    assert_eq!(probed.layer_insns.len(), vectors.len());
    for (v, layers) in probed.layer_insns.iter().enumerate() {
        assert_eq!(layers.len(), 4, "vector {v}");
        assert!(layers.iter().all(|&n| n > 0), "vector {v}: {layers:?}");
        let sum: u64 = layers.iter().sum();
        let (own, default) = (probed.insns[v], whole.insns[v]);
        eprintln!(
            "vector {v}: layers {layers:?} sum {sum}, probe build {own}, default build {default}"
        );
        // The probe build's whole count also holds the probes and infer's entry and exit.
        assert!(
            sum < own,
            "vector {v}: layers sum {sum} >= the probe build's {own}"
        );
        let ratio = sum as f64 / default as f64;
        assert!(
            (0.95..=1.03).contains(&ratio),
            "vector {v}: layers sum {sum} vs the default build's {default} ({ratio:.4})"
        );
    }
    // The dense layers run the same instructions whatever the input (no data-dependent branch in
    // the fully-connected kernels' loops), so their counts must agree across vectors.
    let first = &probed.layer_insns[0];
    for layers in &probed.layer_insns {
        assert_eq!(layers[1], first[1], "fc_dense varies with the input");
    }
}
