//! A LeNet-5-shaped sparse convolutional model (Caffe variant: conv 5x5 20 → max pool 2 → conv
//! 5x5 50 → max pool 2 → flatten → fc 500 ReLU → fc 10) runs on the Cortex-M4 under QEMU
//! byte-identical with the compiler's integer reference and with bonsai-rt on the host.
//!
//! The same model with partial-area convolutions (NeST: each channel computes a rectangle of its
//! map, 0 elsewhere) runs byte-identical too: conv1 is stored dense (whole maps computed, then
//! zeroed outside the rectangles), conv2 sparse (the kernel skips the positions outside).
//!
//! The weights are seeded pseudo-random and pruned, not trained: bit-exactness does not depend on
//! accuracy, and building the model takes milliseconds instead of a training run. (Its own test
//! binary, and one test, because the firmware crate's generated `model/` directory is shared
//! state.)

mod common;

use bonsai::ir::Model;
use bonsai::lower::Storage;
use common::{lenet5, with_areas, Rng};
use std::time::Duration;
use xtask::{firmware, flow};

#[test]
fn sparse_lenet5_with_and_without_partial_areas_is_bit_exact_on_host_and_qemu_m4() {
    let float = lenet5();
    let whole = check_on_qemu(&float, "sparse LeNet-5");
    let areas = check_on_qemu(&with_areas(float), "sparse LeNet-5, partial areas");
    // The sparse conv2 skips what lies outside its rectangles.
    assert!(areas < whole, "{areas:.0} vs {whole:.0} instructions");
}

/// Quantizes `float`, lowers it (conv2 and fc1 sparse), and checks bonsai-rt on the host and
/// the Cortex-M4 firmware under QEMU against the integer reference; returns the firmware's
/// mean instructions per inference.
fn check_on_qemu(float: &Model, what: &str) -> f64 {
    let root = flow::root();
    // Calibration on pixel-like inputs in [0, 1], with blobs so that activations vary.
    let mut rng = Rng(7);
    let images: Vec<Vec<f32>> = (0..24)
        .map(|_| {
            (0..784)
                .map(|_| if rng.unit() < 0.3 { rng.unit() } else { 0.0 })
                .collect()
        })
        .collect();
    let model = bonsai::quant::quantize(float, &images[..16]).unwrap();
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
        storage.contains(&("conv1", Storage::Dense))
            && storage.contains(&("conv2", Storage::Sparse))
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
    // What the energy model predicts for it (printed for BENCHMARKS.md; not a pass criterion).
    let work = bonsai::energy::model_work(&model, &lowered).unwrap();
    let coeffs = bonsai::energy::Coefficients::builtin().unwrap();
    let predicted =
        bonsai::energy::predict_insns(&work, &coeffs, bonsai::energy::Target::Thumbv7em).unwrap();
    println!(
        "{what} on Cortex-M4: flash {} B, arena {} B (max-live {} B, naive {} B), {insns:.0} instructions per inference (energy model: {predicted:.0})",
        elf.flash_bytes, lowered.arena_bytes, lowered.arena_max_live_bytes, lowered.arena_naive_bytes
    );
    insns
}
