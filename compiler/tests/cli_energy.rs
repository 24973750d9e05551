//! `bonsai devices`, `bonsai energy`, the energy fields of summary.json and the synthesis budgets.

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

const DEVICES: [&str; 5] = [
    "stm32u083",
    "stm32l4r5",
    "nrf52840",
    "stm32u585",
    "stm32h743",
];

fn synthesize(out: &Path, extra: &[&str]) -> (i32, String, String) {
    let mut args = vec![
        "synthesize",
        "--quiet",
        "--epochs",
        "2",
        "--vectors",
        "8",
        "--out",
        out.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    bonsai(&args)
}

#[test]
fn devices_are_listed_and_a_bad_profile_is_named() {
    let (code, out, err) = bonsai(&["devices"]);
    assert_eq!(code, 0, "{err}");
    for d in DEVICES {
        assert!(out.contains(d), "{d} missing from\n{out}");
    }
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("broken.toml");
    std::fs::write(&bad, "name = \"x\"\nclock_mhz = \"fast\"\n").unwrap();
    let (code, _, err) = bonsai(&["devices", "--device-file", bad.to_str().unwrap()]);
    assert_eq!(code, 2);
    assert!(err.contains("broken.toml"), "{err}");
}

#[test]
fn summary_and_energy_table_for_every_device() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let (code, stdout, err) = synthesize(&out, &["--device", "nrf52840"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        stdout.contains("nrf52840:") && stdout.contains("µJ"),
        "{stdout}"
    );
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["device"], "nrf52840");
    let (lo, hi) = (
        summary["energy_uj"]["min"].as_f64().unwrap(),
        summary["energy_uj"]["max"].as_f64().unwrap(),
    );
    assert!(lo > 0.0 && lo <= hi, "{summary}");
    assert!(summary["latency_us"]["max"].as_f64().unwrap() > 0.0);

    let model = out.join("model.json");
    for d in DEVICES {
        let (code, stdout, err) = bonsai(&["energy", model.to_str().unwrap(), "--device", d]);
        assert_eq!(code, 0, "{d}: {err}");
        assert!(stdout.contains(d) && stdout.contains("total"), "{stdout}");
        // Three Dense layers and infer's frame, each with its own row.
        for layer in ["fc1", "fc2", "fc3", "infer"] {
            assert!(stdout.contains(layer), "{layer} missing:\n{stdout}");
        }
    }
    let (code, stdout, err) = bonsai(&[
        "energy",
        model.to_str().unwrap(),
        "--device",
        "stm32u083",
        "--rate",
        "10",
        "--battery-mah",
        "220",
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(
        stdout.contains("average power") && stdout.contains("battery life"),
        "{stdout}"
    );

    let (code, stdout, _) = bonsai(&["energy", model.to_str().unwrap(), "--json"]);
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(v["estimate"]["device"], "stm32l4r5");

    let (code, _, err) = bonsai(&["energy", model.to_str().unwrap(), "--device", "z80"]);
    assert_eq!(code, 2);
    assert!(
        err.contains("unknown device `z80`") && err.contains("stm32l4r5"),
        "{err}"
    );
}

#[test]
fn budgets_that_cannot_be_met_fail_and_write_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let (code, _, err) = synthesize(&out, &["--energy-budget-uj", "0.001"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--energy-budget-uj"), "{err}");
    assert!(err.contains("best figure reached"), "{err}");
    assert!(!out.exists(), "nothing may be written");
    let (code, _, err) = synthesize(&out, &["--flash-budget-kb", "1"]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("--flash-budget-kb") && err.contains("KB of parameters"),
        "{err}"
    );
    assert!(!out.exists());
    // A device typo fails before any training.
    let (code, _, err) = synthesize(&out, &["--device", "nope"]);
    assert_eq!(code, 2);
    assert!(err.contains("unknown device `nope`"), "{err}");
}

/// A quantized CNN: dense conv, pruned conv (sparse storage), depthwise conv, max pool, flatten
/// and a Dense head.
fn cnn_model() -> bonsai::ir::Model {
    use bonsai::ir::{Activation, Conv2d, Dense, Model, Op, Pool, Preprocess};
    let mut m = Model::with_input("cnn", vec![10, 10, 1], Preprocess::identity(), vec![]);
    let mut k = 3u64;
    let mut next = move || {
        k = k
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (k >> 33) as f32 / (1u64 << 31) as f32 - 0.5
    };
    let mut conv = |cin: usize, cout: usize, pad: usize, groups: usize, keep: f32| {
        let n = cout * 9 * cin / groups;
        let w: Vec<f32> = (0..n)
            .map(|i| {
                if (i * 7919 % 100) as f32 / 100.0 < keep {
                    next()
                } else {
                    0.0
                }
            })
            .collect();
        let mut c = Conv2d::new(
            cin,
            cout,
            [3, 3],
            [1, 1],
            [pad; 4],
            groups,
            w,
            vec![0.0; cout],
            Activation::Relu,
        );
        for i in 0..n {
            if c.weight[i] == 0.0 {
                c.mask.set(i, false);
            }
        }
        Op::Conv2d(c)
    };
    let x = m.inputs[0];
    let x = m.add_node("conv1", conv(1, 8, 1, 1, 1.0), vec![x], vec![10, 10, 8]);
    let x = m.add_node("conv2", conv(8, 16, 0, 1, 0.05), vec![x], vec![8, 8, 16]);
    let x = m.add_node("dw", conv(16, 16, 1, 16, 1.0), vec![x], vec![8, 8, 16]);
    let x = m.add_node(
        "pool",
        Op::MaxPool(Pool::square(2)),
        vec![x],
        vec![4, 4, 16],
    );
    let x = m.add_node("flatten", Op::Flatten, vec![x], vec![256]);
    let w = (0..256 * 4)
        .map(|i| ((i % 13) as f32 - 6.0) / 40.0)
        .collect();
    let d = Dense::new(256, 4, w, vec![0.0; 4], Activation::None);
    let y = m.add_node("fc", Op::Dense(d), vec![x], vec![4]);
    m.outputs.push(y);
    m.class_names = (0..4).map(|i| format!("c{i}")).collect();
    let samples: Vec<Vec<f32>> = (0..8)
        .map(|s| {
            (0..100)
                .map(|i| ((i * 7 + s * 3) % 11) as f32 / 11.0)
                .collect()
        })
        .collect();
    bonsai::quant::quantize(&m, &samples).unwrap()
}

#[test]
fn energy_of_a_cnn_for_every_device() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("model.json");
    cnn_model().save(&path).unwrap();
    for d in DEVICES {
        let (code, stdout, err) = bonsai(&["energy", path.to_str().unwrap(), "--device", d]);
        assert_eq!(code, 0, "{d}: {err}");
        for layer in ["conv1", "conv2", "dw", "pool", "fc", "total"] {
            assert!(
                stdout.contains(layer),
                "{d}: {layer} missing from\n{stdout}"
            );
        }
    }
    let (code, stdout, err) = bonsai(&[
        "energy",
        path.to_str().unwrap(),
        "--device",
        "stm32l4r5",
        "--json",
    ]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let layers = v["estimate"]["layers"].as_array().unwrap();
    let kernel = |name: &str| {
        layers
            .iter()
            .find(|l| l["work"]["name"] == name)
            .map(|l| l["work"]["kernel"].as_str().unwrap().to_string())
            .unwrap()
    };
    // Every conv kernel is called out of line, so each layer names the fitted loop it runs.
    assert_eq!(kernel("conv1"), "conv_dense");
    assert_eq!(kernel("conv2"), "conv_sparse");
    assert_eq!(kernel("dw"), "dw_conv");
    assert_eq!(kernel("flatten"), "flatten");
    // `infer`'s own frame is a fitted intercept (it may be slightly negative); every node
    // that runs code costs something.
    for l in layers
        .iter()
        .filter(|l| !l["work"]["index"].is_null() && l["work"]["kernel"] != "flatten")
    {
        assert!(l["insns"].as_f64().unwrap() > 0.0, "{l}");
    }
}
