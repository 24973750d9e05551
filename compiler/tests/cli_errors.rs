//! Bad input at the command line: one line naming the file and the problem, exit code 2, and no
//! output left behind.

use std::io::Write;
use std::path::Path;
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

fn synthesize_fails(data: &str, out: &Path, expect: &str) {
    synthesize_fails_with(&["--data", data], out, expect);
}

/// `bonsai synthesize --quiet ARGS --out OUT` fails with one line containing `expect`.
fn synthesize_fails_with(args: &[&str], out: &Path, expect: &str) {
    let mut argv = vec!["synthesize", "--quiet"];
    argv.extend_from_slice(args);
    argv.extend(["--out", out.to_str().unwrap()]);
    let (code, _, err) = bonsai(&argv);
    assert_eq!(code, 2, "{err}");
    assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
    assert!(err.contains(expect), "expected {expect:?} in {err:?}");
    assert!(!out.exists(), "no output directory may be left behind");
}

#[test]
fn missing_file() {
    let dir = tempfile::tempdir().unwrap();
    synthesize_fails(
        "csv:/no/such/file.csv",
        &dir.path().join("out"),
        "/no/such/file.csv: No such file",
    );
}

#[test]
fn ragged_csv_and_label_out_of_range() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("ragged.csv");
    std::fs::write(&p, "1,2,0\n3,4,1\n5,6\n").unwrap();
    synthesize_fails(
        &format!("csv:{}", p.display()),
        &dir.path().join("out"),
        "ragged.csv: line 3 has 2 fields, expected 3",
    );
    let p = dir.path().join("labels.csv");
    std::fs::write(&p, "3,2,a,b\n1,2,0\n3,4,1\n5,6,2\n").unwrap();
    synthesize_fails(
        &format!("csv:{}", p.display()),
        &dir.path().join("out"),
        "labels.csv: line 4: label 2 is out of range for 2 classes",
    );
}

#[test]
fn corrupt_gzip_and_idx_header() {
    let dir = tempfile::tempdir().unwrap();
    let mnist = dir.path().join("mnist");
    std::fs::create_dir(&mnist).unwrap();
    // not gzip at all, and a bad magic number
    std::fs::write(
        mnist.join("train-images-idx3-ubyte.gz"),
        [0u8, 0, 9, 3, 0, 0, 0, 1],
    )
    .unwrap();
    synthesize_fails(
        &format!("mnist:{}", mnist.display()),
        &dir.path().join("out"),
        "train-images-idx3-ubyte.gz: corrupt IDX header: magic 0x00000903",
    );
    // a truncated gzip stream
    let mut e = gzip(b"\0\0\x08\x03\0\0\0\x01\0\0\0\x02\0\0\0\x02abcd");
    e.truncate(e.len() - 6);
    std::fs::write(mnist.join("train-images-idx3-ubyte.gz"), e).unwrap();
    synthesize_fails(
        &format!("mnist:{}", mnist.display()),
        &dir.path().join("out"),
        "train-images-idx3-ubyte.gz: corrupt gzip data",
    );
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

#[test]
fn unknown_dataset_and_bad_model_file() {
    let dir = tempfile::tempdir().unwrap();
    synthesize_fails(
        "imagenet",
        &dir.path().join("out"),
        "unknown dataset \"imagenet\"",
    );
    let p = dir.path().join("model.json");
    std::fs::write(&p, "{\"ir_version\": 1, \"name\": 3}").unwrap();
    let (code, _, err) = bonsai(&["inspect", p.to_str().unwrap()]);
    assert_eq!(code, 2);
    assert!(err.contains("model.json: not a Bonsai IR file"), "{err}");
}

#[test]
fn label_smoothing_out_of_range() {
    let dir = tempfile::tempdir().unwrap();
    synthesize_fails_with(
        &["--label-smoothing", "1"],
        &dir.path().join("out"),
        "--label-smoothing must be in [0, 1), got 1",
    );
}

#[test]
fn shift_augmentation_of_data_that_is_not_images() {
    let dir = tempfile::tempdir().unwrap();
    synthesize_fails_with(
        &["--data", "digits", "--augment-shift", "2"],
        &dir.path().join("out"),
        "--augment-shift moves images; digits has samples of shape [64]",
    );
}
