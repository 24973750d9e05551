//! A LeNet-5-shaped sparse convolutional model (Caffe variant: conv 5x5 20 → max pool 2 → conv
//! 5x5 50 → max pool 2 → flatten → fc 500 ReLU → fc 10) runs on the Cortex-M4 under QEMU
//! byte-identical with the compiler's integer reference and with bonsai-rt on the host.
//!
//! The weights are seeded pseudo-random and pruned, not trained: bit-exactness does not depend on
//! accuracy, and building the model takes milliseconds instead of a training run. (Its own test
//! binary, because the firmware crate's generated `model/` directory is shared state.)

use bonsai::ir::{Activation, Conv2d, Dense, Model, Op, Pool, Preprocess};
use bonsai::lower::Storage;
use std::time::Duration;
use xtask::{firmware, flow};

/// xorshift64*: deterministic numbers without a dependency.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> f32 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        let v = self.0.wrapping_mul(0x2545_f491_4f6c_dd1d);
        (v >> 40) as f32 / (1u64 << 24) as f32
    }
}

/// He-uniform weights with a seeded `density` of them kept.
fn weights(rng: &mut Rng, n: usize, fan_in: usize, density: f32) -> (Vec<f32>, Vec<bool>) {
    let limit = (6.0 / fan_in as f32).sqrt();
    (0..n)
        .map(|_| {
            let w = (rng.next() * 2.0 - 1.0) * limit;
            if rng.next() < density {
                (w, true)
            } else {
                (0.0, false)
            }
        })
        .unzip()
}

fn lenet5(density: f32) -> Model {
    let mut rng = Rng(0x0005_eed1_e7e5_u64);
    let mut m = Model::with_input(
        "lenet5-sparse",
        vec![28, 28, 1],
        Preprocess::identity(),
        vec![],
    );
    let conv = |rng: &mut Rng, cin: usize, cout: usize, density: f32| {
        let (w, mask) = weights(rng, cout * 25 * cin, 25 * cin, density);
        let b = (0..cout).map(|_| rng.next() * 0.1 - 0.05).collect();
        let mut c = Conv2d::new(cin, cout, [5, 5], [1, 1], [0; 4], 1, w, b, Activation::Relu);
        for (i, keep) in mask.into_iter().enumerate() {
            c.mask.set(i, keep);
        }
        Op::Conv2d(c)
    };
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
        conv(&mut rng, 20, 50, density),
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
    let dense = |rng: &mut Rng, n_in: usize, n_out: usize, density: f32, act| {
        let (w, mask) = weights(rng, n_in * n_out, n_in, density);
        let mut d = Dense::new(n_in, n_out, w, vec![0.01; n_out], act);
        for (i, keep) in mask.into_iter().enumerate() {
            d.mask.set(i, keep);
        }
        Op::Dense(d)
    };
    let x = m.add_node(
        "fc1",
        dense(&mut rng, 800, 500, density / 2.0, Activation::Relu),
        vec![x],
        vec![500],
    );
    let y = m.add_node(
        "fc2",
        dense(&mut rng, 500, 10, 0.5, Activation::None),
        vec![x],
        vec![10],
    );
    m.outputs.push(y);
    m.validate().unwrap();
    m
}

#[test]
fn sparse_lenet5_is_bit_exact_on_host_and_qemu_m4() {
    let root = flow::root();
    let float = lenet5(0.1);
    // Calibration on pixel-like inputs in [0, 1], with blobs so that activations vary.
    let mut rng = Rng(7);
    let images: Vec<Vec<f32>> = (0..24)
        .map(|_| {
            (0..784)
                .map(|_| if rng.next() < 0.3 { rng.next() } else { 0.0 })
                .collect()
        })
        .collect();
    let model = bonsai::quant::quantize(&float, &images[..16]).unwrap();
    let vectors: Vec<Vec<i8>> = images
        .iter()
        .map(|x| bonsai::quant::quantize_input(&model, x))
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let vectors_path = dir.path().join("vectors.bin");
    bonsai::vectors::write(&vectors_path, model.input_len(), &vectors).unwrap();

    let lowered = bonsai::lower::lower(&model, &bonsai::lower::LowerOptions::default()).unwrap();
    let storage: Vec<(&str, Storage)> = lowered
        .layers
        .iter()
        .map(|l| (l.name.as_str(), l.storage))
        .collect();
    assert!(
        storage.contains(&("conv2", Storage::Sparse))
            && storage.contains(&("fc1", Storage::Sparse)),
        "{storage:?}"
    );
    assert!(
        lowered.arena_bytes <= lowered.arena_max_live_bytes * 11 / 10,
        "arena {} vs bound {}",
        lowered.arena_bytes,
        lowered.arena_max_live_bytes
    );

    let reference = flow::reference_outputs(&model, &vectors).unwrap();
    // Not all logits equal: the model computes something input-dependent.
    assert!(reference.iter().any(|r| r != &reference[0]));
    let host = flow::host_outputs(&root, &model, &vectors_path).expect("host runner");
    flow::compare("bonsai-rt on the host", &reference, &host).unwrap();

    let board = firmware::board("qemu-mps2-an386").unwrap();
    let elf = flow::build_firmware(&root, board, &model, &vectors_path).expect("build firmware");
    let run = flow::run_firmware(board, &elf, Duration::from_secs(300)).expect("run firmware");
    flow::compare("qemu-mps2-an386", &reference, &run.outputs).unwrap();
    let insns = flow::mean_insns(&run).unwrap();
    println!(
        "sparse LeNet-5 on Cortex-M4: flash {} B, arena {} B (max-live {} B, naive {} B), {insns:.0} instructions per inference",
        elf.flash_bytes, lowered.arena_bytes, lowered.arena_max_live_bytes, lowered.arena_naive_bytes
    );
}
