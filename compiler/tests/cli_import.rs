//! `bonsai import`: an ONNX file becomes a validated float model.json; bad files give one line
//! naming the file, exit code 2, and no output.

use bonsai::ir::Model;
use std::process::Command;

fn bonsai(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_bonsai"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A 4x4x1 image → conv 3x3 (2 channels, ReLU) → flatten → dense 3, exported by Bonsai.
fn small_onnx() -> (Model, Vec<u8>) {
    use bonsai::ir::{Activation, Conv2d, Dense, Op, Preprocess};
    let mut m = Model::with_input("cli-import", vec![4, 4, 1], Preprocess::identity(), vec![]);
    let w: Vec<f32> = (0..18).map(|k| (k as f32 - 9.0) / 10.0).collect();
    let c = Conv2d::new(
        1,
        2,
        [3, 3],
        [1, 1],
        [0; 4],
        1,
        w,
        vec![0.1, -0.1],
        Activation::Relu,
    );
    let x = m.add_node("conv", Op::Conv2d(c), vec![m.inputs[0]], vec![2, 2, 2]);
    let x = m.add_node("flat", Op::Flatten, vec![x], vec![8]);
    let w: Vec<f32> = (0..24).map(|k| ((k * 7) % 5) as f32 / 5.0 - 0.4).collect();
    let d = Dense::new(8, 3, w, vec![0.0; 3], Activation::None);
    let y = m.add_node("fc", Op::Dense(d), vec![x], vec![3]);
    m.outputs.push(y);
    let bytes = bonsai::onnx::export_float(&m).unwrap();
    (m, bytes)
}

#[test]
fn imports_with_normalisation() {
    let dir = tempfile::tempdir().unwrap();
    let (orig, bytes) = small_onnx();
    let onnx = dir.path().join("small.onnx");
    std::fs::write(&onnx, &bytes).unwrap();
    let out = dir.path().join("model.json");
    let (code, stdout, err) = bonsai(&[
        "import",
        onnx.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "--normalize",
        "0.1307,0.3081",
        "--class-names",
        "a,b,c",
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(stdout.contains("wrote"), "{stdout}");
    let m = Model::load(&out).unwrap();
    assert_eq!(m.class_names, ["a", "b", "c"]);
    assert!((m.preprocess.scale[0] - 1.0 / (255.0 * 0.3081)).abs() < 1e-9);
    assert!((m.preprocess.offset[0] + 0.1307 / 0.3081).abs() < 1e-6);
    let x: Vec<f32> = (0..16).map(|k| k as f32 / 16.0).collect();
    assert_eq!(
        bonsai::interp::float::run(&m, &x).unwrap(),
        bonsai::interp::float::run(&orig, &x).unwrap()
    );

    // Scale/offset form; negative offset is a value, not a flag.
    let (code, _, err) = bonsai(&[
        "import",
        onnx.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "--input-scale",
        "0.5",
        "--input-offset",
        "-1",
    ]);
    assert_eq!(code, 0, "{err}");
    let m = Model::load(&out).unwrap();
    assert_eq!((m.preprocess.scale[0], m.preprocess.offset[0]), (0.5, -1.0));
}

#[test]
fn truncated_and_garbage_files_fail_with_one_line_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let (_, bytes) = small_onnx();
    let cases: [(&str, Vec<u8>); 3] = [
        ("truncated.onnx", bytes[..bytes.len() * 2 / 3].to_vec()),
        (
            "garbage.onnx",
            (0..4096u32)
                .map(|k| (k.wrapping_mul(2_654_435_761) >> 13) as u8)
                .collect(),
        ),
        ("empty.onnx", vec![]),
    ];
    for (name, content) in cases {
        let onnx = dir.path().join(name);
        std::fs::write(&onnx, content).unwrap();
        let out = dir.path().join("out.json");
        let (code, _, err) = bonsai(&[
            "import",
            onnx.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
        ]);
        assert_eq!(code, 2, "{name}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "{name}: one line: {err}");
        assert!(err.contains(name), "{name}: {err}");
        assert!(!err.contains("panicked"), "{err}");
        assert!(!out.exists(), "{name}: no output may be left behind");
    }
}
