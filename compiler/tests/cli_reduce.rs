//! DR+SCANN's input reduction on CSV data, whose preprocessing scales every raw feature on its
//! own: the reduction reads the scaled raw features, the seed behind it the reduced ones.

use std::fmt::Write as _;
use std::process::Command;

/// Two classes split by `a + b > 0`, where `b` is `a` plus a little noise: the informative
/// direction is the top principal component once the features are standardized. The features
/// sit on scales 100 apart and a third one is pure noise 1000 times larger, so the fitted
/// preprocessing has one scale per feature, and without it PCA would keep the noise.
fn csv() -> String {
    let mut s = String::new();
    let mut state = 12345u64;
    let mut uniform = || {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((state >> 11) as f64 / (1u64 << 53) as f64) * 2.0 - 1.0
    };
    for _ in 0..600 {
        let (a, e, noise) = (uniform(), uniform(), uniform());
        let b = a + 0.3 * e;
        let label = u8::from(a + b > 0.0);
        writeln!(s, "{},{},{},{label}", 100.0 * a, b, 1000.0 * noise).unwrap();
    }
    s
}

#[test]
fn a_reduction_in_front_of_a_seed_file_on_standardized_csv() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("two.csv");
    std::fs::write(&data, csv()).unwrap();
    let out = dir.path().join("out");
    let seed = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../models/seeds/tabular-mlp.toml"
    );
    let run = Command::new(env!("CARGO_BIN_EXE_bonsai"))
        .args(["synthesize", "--quiet", "--seed", seed, "--data"])
        .arg(format!("csv:{}", data.display()))
        .args(["--reduce", "pca:1", "--method", "scann-c", "--epochs", "20"])
        .args([
            "--rounds",
            "1",
            "--retrain-epochs",
            "2",
            "--target-density",
            "0.5",
        ])
        .args(["--vectors", "8", "--out"])
        .arg(&out)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "{err}");

    let model: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("model.json")).unwrap()).unwrap();
    let scale = model["preprocess"]["scale"].as_array().unwrap();
    assert_eq!(scale.len(), 3, "one scale per raw feature: {scale:?}");
    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("summary.json")).unwrap()).unwrap();
    assert!(
        summary["seed_arch"].as_str().unwrap().starts_with("pca1+"),
        "{}",
        summary["seed_arch"]
    );
    let acc = summary["int8_test_accuracy"].as_f64().unwrap();
    assert!(acc >= 0.9, "int8 test accuracy {acc}");
}
