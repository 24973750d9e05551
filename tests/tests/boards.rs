//! The board examples: the board-independent application's host tests (embedded-hal-mock), the
//! BasicMotions activity model (accuracy through the firmware's feature code, bit-exact under
//! QEMU), and every hardware board crate built in release for its target around that model and
//! checked against the board's flash and RAM.

use bonsai::data::{self, DataSpec};
use bonsai::ir::Model;
use bonsai::pipeline::{synthesize, OutputFiles};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::time::Duration;
use xtask::bench_boards::{self, imu_model_options};
use xtask::{firmware, flow};

/// The stand-in crate's input (one window: 100 samples × 6 axes × 2 bytes) and output lengths.
const WINDOW_BYTES: usize = 100 * 6 * 2;
const N_FEATURES: usize = 18;

/// Tests here that put a crate into a board's `model/` directory take turns.
static BOARD_MODEL_DIRS: Mutex<()> = Mutex::new(());

/// Removes a hand-written stand-in model crate however the test ends (the lowering refuses to
/// replace a crate it did not generate).
struct RemoveOnDrop(PathBuf);
impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A stand-in for a model crate (the same contract) whose `infer` is the firmware's feature
/// extraction: input one window of samples (`i16` little-endian, sample-major), output the
/// 18 features.
fn write_feature_crate(dir: &Path, runtime: &Path) {
    std::fs::create_dir_all(dir.join("src")).unwrap();
    std::fs::write(
        dir.join("Cargo.toml"),
        format!(
            "[package]\nname = \"bonsai-model\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n\
             [dependencies]\nbonsai-rt = {{ path = {:?} }}\n\n\
             # Part of the model-crate contract: the firmware's probe build enables it.\n\
             [features]\nlayer-probes = []\n\n[workspace]\n",
            runtime.display().to_string()
        ),
    )
    .unwrap();
    std::fs::write(
        dir.join("src/lib.rs"),
        format!(
            "#![no_std]\n\
             use bonsai_rt::features::{{extract, AXES}};\n\
             pub const INPUT_LEN: usize = {WINDOW_BYTES};\n\
             pub const OUTPUT_LEN: usize = {N_FEATURES};\n\
             pub const ARENA_BYTES: usize = 16;\n\
             pub fn infer(x: &[i8; INPUT_LEN], y: &mut [i8; OUTPUT_LEN], _arena: &mut [u8; ARENA_BYTES]) {{\n\
             \x20   let at = |i: usize| i16::from_le_bytes([x[2 * i] as u8, x[2 * i + 1] as u8]);\n\
             \x20   *y = extract((0..INPUT_LEN / (2 * AXES)).map(|t| core::array::from_fn(|a| at(t * AXES + a))));\n\
             }}\n"
        ),
    )
    .unwrap();
}

#[test]
fn features_are_identical_on_the_cortex_m4() {
    let _turn = BOARD_MODEL_DIRS.lock().unwrap_or_else(|e| e.into_inner());
    let root = flow::root();
    let board = firmware::board("qemu-mps2-an386").unwrap();
    let model_dir = board.model_dir(&root);
    if model_dir.exists() {
        std::fs::remove_dir_all(&model_dir).unwrap();
    }
    let _cleanup = RemoveOnDrop(model_dir.clone());
    write_feature_crate(&model_dir, &root.join("runtime-no-std"));

    // The 40 official test windows, as the compiler's loader sees them.
    let path = root.join("models/data/BasicMotions_TEST.ts.gz");
    let f = data::ts::parse(&std::fs::read(&path).unwrap(), &path).unwrap();
    let mut inputs = Vec::new();
    let mut host = Vec::new();
    for series in &f.series {
        let samples = data::ts::imu_samples(series);
        let bytes: Vec<i8> = samples
            .iter()
            .flat_map(|s| s.iter().flat_map(|v| v.to_le_bytes()))
            .map(|b| b as i8)
            .collect();
        assert_eq!(bytes.len(), WINDOW_BYTES);
        inputs.push(bytes);
        host.push(data::ts::imu_features(series).to_vec());
    }
    let dir = tempfile::tempdir().unwrap();
    let vectors = dir.path().join("windows.bin");
    bonsai::vectors::write(&vectors, WINDOW_BYTES, &inputs).unwrap();
    let elf = firmware::build(&root, board, &vectors).unwrap();
    let run = flow::run_firmware(board, &elf, Duration::from_secs(300)).unwrap();
    flow::compare("features on the Cortex-M4 (QEMU)", &host, &run.outputs).unwrap();
    assert_eq!(run.outputs.len(), 40);
}

#[test]
fn imu_pipeline_host_tests_pass() {
    let dir = flow::root().join("firmware-examples/imu-pipeline");
    let out = Command::new(env!("CARGO"))
        .args(["test", "--quiet"])
        .current_dir(&dir)
        .env_remove("CARGO_TARGET_DIR")
        .output()
        .expect("run cargo test in firmware-examples/imu-pipeline");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "imu-pipeline host tests failed:\n{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The failure cases the boards rely on ran (and were not filtered out).
    assert!(text.contains("test result: ok. 9 passed"), "{text}");
}

#[test]
fn basicmotions_model_is_accurate_bit_exact_and_fits_every_board() {
    let _turn = BOARD_MODEL_DIRS.lock().unwrap_or_else(|e| e.into_inner());
    let root = flow::root();
    let out = tempfile::tempdir().unwrap();
    let s = synthesize(&imu_model_options(out.path())).expect("synthesize the BasicMotions model");
    assert_eq!(s.n_test, 40);
    assert!(
        s.int8_test_accuracy >= 0.95,
        "int8 accuracy {:.4} < 0.95 on the 40 test windows",
        s.int8_test_accuracy
    );

    // The test vectors are the firmware's own features of the test windows, unchanged by the
    // model's input quantization (scale 1/128, zero point 0).
    let files = OutputFiles::in_dir(out.path());
    let model = Model::load(&files.model).unwrap();
    let vectors = bonsai::vectors::read(&files.vectors).unwrap();
    let splits = data::load(&DataSpec::BasicMotions, 1).unwrap();
    for (i, v) in vectors.iter().enumerate() {
        let codes: Vec<i8> = splits.test.sample(i).iter().map(|&c| c as i8).collect();
        assert_eq!(v, &codes, "vector {i}");
    }

    let qemu = firmware::board("qemu-mps2-an386").unwrap();
    let expected = flow::reference_outputs(&model, &vectors).unwrap();
    let elf = flow::build_firmware(&root, qemu, &model, &files.vectors).unwrap();
    let run = flow::run_firmware(qemu, &elf, Duration::from_secs(300)).unwrap();
    flow::compare("qemu-mps2-an386", &expected, &run.outputs).unwrap();

    for board in &firmware::HARDWARE_BOARDS {
        let elf = bench_boards::deploy(&root, board, out.path())
            .unwrap_or_else(|e| panic!("{}: {e:#}", board.name));
        assert!(elf.flash_bytes > 0 && elf.flash_bytes <= board.flash_limit);
        // The window buffer (100 samples × 6 axes × 2 bytes) is a static.
        assert!(elf.static_ram_bytes >= 1200, "{}: {elf}", board.name);
    }
}

#[test]
fn a_model_that_is_not_an_imu_classifier_is_refused() {
    let _turn = BOARD_MODEL_DIRS.lock().unwrap_or_else(|e| e.into_inner());
    let out = tempfile::tempdir().unwrap();
    let mut opts = imu_model_options(out.path());
    opts.data = DataSpec::Digits;
    opts.train.max_epochs = 1;
    synthesize(&opts).unwrap();
    let err = bench_boards::deploy(&flow::root(), &firmware::HARDWARE_BOARDS[0], out.path())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("IMU activity model") && err.contains("64 inputs and 10 outputs"),
        "{err}"
    );
}
