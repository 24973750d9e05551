//! bonsai-rt's kernels on a Cortex-M4 under QEMU (mps2-an386): builds
//! `firmware-examples/qemu-kernel-harness`, which runs 10,000 seeded cases per kernel (the
//! shared generator `bonsai_rt::testgen`) comparing every fast path, the SXTB16/SMLAD ones
//! (the sparse fully connected layer's two-entries loop among them) included, with its reference, and counts the instructions of the dense fully connected and
//! convolution kernels, portable against DSP.
//!
//! QEMU is required under CI (`CI` set): the test then fails without it. Elsewhere a missing
//! QEMU skips the test with a message.

use std::collections::BTreeMap;
use std::env;
use std::process::{Command, Stdio};
use std::time::Duration;

use xtask::{firmware, flow, qemu};

const KERNELS: [&str; 10] = [
    "fully_connected_s8",
    "fully_connected_s8_portable",
    "conv2d_s8",
    "conv2d_s8_portable",
    "depthwise_conv2d_s8",
    "conv2d_sparse_s8",
    "fully_connected_sparse_s8",
    "max_pool_s8",
    "avg_pool_s8",
    "add_s8",
];

fn ci() -> bool {
    env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0")
}

#[test]
fn kernels_match_their_references_on_cortex_m4() {
    if let Err(e) = qemu::ensure_qemu() {
        if ci() {
            panic!("CI is set, so QEMU is required: {e:#}");
        }
        eprintln!("skipping kernels_qemu: {e:#} (CI is not set)");
        return;
    }
    let board = firmware::board("qemu-mps2-an386").unwrap();
    let dir = flow::root().join("firmware-examples/qemu-kernel-harness");

    // cargo reads the harness' .cargo/config.toml (target) only from the current directory.
    let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let build = Command::new(cargo)
        .current_dir(&dir)
        .args([
            "build",
            "--release",
            "--message-format=json-render-diagnostics",
        ])
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .expect("run cargo");
    assert!(
        build.status.success(),
        "cargo build --release in {} failed ({}); its messages are above",
        dir.display(),
        build.status
    );
    let elf = firmware::executable_from_json(
        &String::from_utf8_lossy(&build.stdout),
        "qemu-kernel-harness",
    )
    .expect("cargo reported no qemu-kernel-harness executable");

    // A mismatch exits with code 7 after a MISMATCH line, which the error shows.
    let run = qemu::run_with(
        board,
        &elf,
        &qemu::RunOptions::counting(Duration::from_secs(240)),
    )
    .unwrap_or_else(|e| panic!("{e:#}"));

    let mut cases = BTreeMap::new();
    let mut base = None;
    let mut measured = BTreeMap::new();
    for line in run.stdout.lines() {
        match line.split_whitespace().collect::<Vec<_>>()[..] {
            ["KERNEL", name, n, _outputs] => {
                cases.insert(name.to_string(), n.parse::<u32>().unwrap());
            }
            ["MEASURE_BASE", ticks] => base = Some(ticks.parse::<u64>().unwrap()),
            ["MEASURE", name, macs, ticks, wraps] => {
                let v: [u64; 3] = [macs, ticks, wraps].map(|s| s.parse().unwrap());
                measured.insert(name.to_string(), v);
            }
            _ => {}
        }
    }
    for k in KERNELS {
        assert!(
            cases.get(k).is_some_and(|&n| n >= 10_000),
            "kernel {k}: no or too few cases in\n{}",
            run.stdout
        );
    }

    // Instructions: I(ticks) − 5·wraps − (I(base) − 1), as `qemu::insns_per_vector` computes.
    let hz = board.systick_hz.unwrap();
    let shift = qemu::COUNT_SHIFT;
    let overhead = qemu::ticks_to_insns(base.expect("no MEASURE_BASE line"), hz, shift) - 1;
    let insns = |name: &str| -> (u64, f64) {
        let [macs, ticks, wraps] = measured[name];
        let n = qemu::ticks_to_insns(ticks, hz, shift) - 5 * wraps - overhead;
        (n, n as f64 / macs as f64)
    };
    eprintln!("instructions per call on mps2-an386 (Cortex-M4), exact under -icount:");
    for layer in [
        "fc_784x300",
        "fc_300x100",
        "fc_100x10",
        "conv_28x28x1_5x5x20",
        "conv_12x12x20_5x5x50",
    ] {
        let (p, pm) = insns(&format!("{layer}_portable"));
        let (d, dm) = insns(&format!("{layer}_dsp"));
        eprintln!("  {layer:22} portable {p:>9} ({pm:.2}/MAC)   dsp {d:>9} ({dm:.2}/MAC)");
        assert!(
            d < p,
            "{layer}: the DSP path ({d}) is not faster than the portable one ({p})"
        );
    }
    // Regression guards for the large dense layers (measured 2.10 and 2.39 per MAC).
    assert!(insns("fc_784x300_dsp").1 < 2.3);
    assert!(insns("conv_12x12x20_5x5x50_dsp").1 < 2.6);
}
