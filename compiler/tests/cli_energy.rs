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
