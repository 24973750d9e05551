//! The whole path on the embedded default: synthesize, then run the same test vectors through
//! (a) the compiler's integer reference, (b) the generated crate + bonsai-rt on the host, and
//! (c) the firmware under QEMU on a Cortex-M4 (mps2-an386) and a Cortex-M0 (micro:bit).
//! All must agree byte for byte. QEMU is required: `cargo xtask test` checks for it first.

use bonsai::ir::Model;
use bonsai::pipeline::{synthesize, OutputFiles, SynthOptions};
use std::time::Duration;
use xtask::{firmware, flow};

#[test]
fn default_model_is_accurate_and_bit_exact_on_host_and_qemu() {
    let root = flow::root();
    let out = tempfile::tempdir().unwrap();
    let opts = SynthOptions {
        out: out.path().to_path_buf(),
        show_progress: false,
        ..SynthOptions::default()
    };
    let s = synthesize(&opts).expect("synthesize the default");
    assert!(
        s.int8_test_accuracy >= 0.95,
        "int8 test accuracy {:.4} < 0.95",
        s.int8_test_accuracy
    );
    assert!(
        (s.float_test_accuracy - s.int8_test_accuracy).abs() <= 0.01,
        "int8 {:.4} vs float {:.4}: more than 1 point apart",
        s.int8_test_accuracy,
        s.float_test_accuracy
    );

    let files = OutputFiles::in_dir(out.path());
    let model = Model::load(&files.model).unwrap();
    let vectors = bonsai::vectors::read(&files.vectors).unwrap();
    assert_eq!(vectors.len(), s.n_vectors);
    assert_eq!(
        s.n_vectors, s.n_test,
        "the default writes every test sample"
    );
    let reference = flow::reference_outputs(&model, &vectors).unwrap();

    // The reference's argmax over the vectors reproduces the reported int8 accuracy.
    let labels: Vec<u32> = serde_json::from_slice(&std::fs::read(&files.labels).unwrap()).unwrap();
    let correct = reference
        .iter()
        .zip(&labels)
        .filter(|(y, &l)| bonsai::train::argmax(y) == l as usize)
        .count();
    assert_eq!(correct as f64 / labels.len() as f64, s.int8_test_accuracy);

    let host = flow::host_outputs(&root, &model, &files.vectors).expect("host runner");
    flow::compare("bonsai-rt on the host", &reference, &host).unwrap();

    for board in &firmware::BOARDS {
        let elf = flow::build_firmware(&root, board, &model, &files.vectors)
            .unwrap_or_else(|e| panic!("build {}: {e:#}", board.name));
        let run = flow::run_firmware(board, &elf, Duration::from_secs(300))
            .unwrap_or_else(|e| panic!("run {}: {e:#}", board.name));
        flow::compare(
            &format!("{} under QEMU", board.name),
            &reference,
            &run.outputs,
        )
        .unwrap();
        assert!(run.stack_peak > 0 && run.stack_peak < board.ram_limit);
    }
}
