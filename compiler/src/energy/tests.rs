use super::cost::LayerWork;
use super::fit::{fit, least_squares, Sample};
use super::*;
use crate::ir::{Model, Op, Preprocess};
use crate::lower::{self, LowerOptions, StoragePolicy};
use crate::quant;

fn device(name: &str) -> Device {
    let all = builtin_devices().unwrap();
    find(&all, name).unwrap().clone()
}

/// A quantized random MLP; `keep` of the weights survive (the rest are pruned to exact zeros).
fn model(input: usize, hidden: &[usize], keep: f64) -> Model {
    let classes = (0..4).map(|i| format!("c{i}")).collect();
    let mut m = crate::synth::seed::mlp("t", input, hidden, classes, Preprocess::identity(), 5);
    let mut k = 0u64;
    for n in m.nodes.iter_mut() {
        if let Op::Dense(d) = &mut n.op {
            for i in 0..d.weight.len() {
                // A fixed pseudo-random pattern: prune where the hash falls above `keep`.
                k = k
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                if ((k >> 33) as f64 / (1u64 << 31) as f64) >= keep {
                    d.weight[i] = 0.0;
                    d.mask.set(i, false);
                }
            }
        }
    }
    let samples: Vec<Vec<f32>> = (0..16)
        .map(|s| {
            (0..input)
                .map(|i| ((i * 7 + s * 13) % 17) as f32 / 17.0)
                .collect()
        })
        .collect();
    quant::quantize(&m, &samples).unwrap()
}

fn lowered(m: &Model, storage: StoragePolicy) -> lower::LoweredCrate {
    lower::lower(
        m,
        &LowerOptions {
            storage,
            ..LowerOptions::default()
        },
    )
    .unwrap()
}

#[test]
fn builtin_profiles_parse_and_cover_the_required_cores() {
    let all = builtin_devices().unwrap();
    let cores: Vec<&str> = all.iter().map(|d| d.core.as_str()).collect();
    for core in ["cortex-m0+", "cortex-m4", "cortex-m7", "cortex-m33"] {
        assert!(cores.contains(&core), "no {core} profile in {cores:?}");
    }
    let l4 = find(&all, "STM32L4R5").unwrap();
    assert_eq!(l4.clock_mhz, 120.0);
    assert_eq!(l4.target, Target::Thumbv7em);
    assert_eq!(find(&all, "stm32u083").unwrap().target, Target::Thumbv6m);
    let mut names: Vec<&str> = all.iter().map(|d| d.name.as_str()).collect();
    names.sort();
    names.dedup();
    assert_eq!(names.len(), all.len(), "duplicate device names");
}

#[test]
fn bad_profiles_are_refused_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let good = include_str!("../../../models/devices/stm32l4r5.toml");
    let cases = [
        (
            "syntax.toml",
            "name = \"x\"\nclock_mhz = = 3\n",
            "syntax.toml",
        ),
        (
            "missing.toml",
            &good.replace("clock_mhz = 120.0\n", "")[..],
            "clock_mhz",
        ),
        (
            "range.toml",
            &good.replace("load = [1.0, 2.0]", "load = [3.0, 2.0]")[..],
            "cycles.load",
        ),
        (
            "unknown.toml",
            &format!("{good}\nvoltage_typo = 3\n")[..],
            "voltage_typo",
        ),
        (
            "target.toml",
            &good.replace("\"thumbv7em\"", "\"riscv32\"")[..],
            "riscv32",
        ),
    ];
    for (file, text, needle) in cases {
        let path = dir.path().join(file);
        std::fs::write(&path, text).unwrap();
        let err = Device::load(&path).unwrap_err().to_string();
        assert!(err.contains(file), "{err}");
        assert!(err.contains(needle), "{err} should mention {needle}");
    }
    let err = Device::load(&dir.path().join("absent.toml"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("absent.toml"), "{err}");
}

#[test]
fn a_user_profile_is_listed_and_replaces_a_builtin_of_the_same_name() {
    let dir = tempfile::tempdir().unwrap();
    let text = include_str!("../../../models/devices/stm32l4r5.toml")
        .replace("name = \"stm32l4r5\"", "name = \"my-board\"")
        .replace("clock_mhz = 120.0", "clock_mhz = 80.0");
    let path = dir.path().join("my.toml");
    std::fs::write(&path, text).unwrap();
    let all = devices_with(&[&path]).unwrap();
    let mine = find(&all, "my-board").unwrap();
    assert_eq!(mine.clock_mhz, 80.0);
    assert!(mine.source.contains("my.toml"));
    let err = find(&all, "nope").unwrap_err().to_string();
    assert!(
        err.contains("my-board") && err.contains("stm32l4r5"),
        "{err}"
    );
}

#[test]
fn builtin_tables_parse_and_bad_tables_are_refused() {
    let c = Coefficients::builtin().unwrap();
    for t in Target::all() {
        for (k, f) in [
            ("fc_dense", "mac"),
            ("fc_dense", "row"),
            ("fc_sparse", "entry"),
            ("infer", "call"),
        ] {
            assert!(c.get(t, k, f).is_ok(), "{k}.{f} missing for {t:?}");
        }
    }
    Mixes::builtin().unwrap();
    let err = Coefficients::from_toml("[targets.z80.fc_dense]\nmac = 1\n[fit]\ncommand=\"\"\ngit_commit=\"\"\n[fit.samples]\n[fit.max_rel_residual]\n", "x.toml")
        .unwrap_err()
        .to_string();
    assert!(err.contains("x.toml") && err.contains("z80"), "{err}");
    let err = Mixes::from_toml("[thumbv6m.fc_dense.mac]\nload = 1\n", "m.toml")
        .unwrap_err()
        .to_string();
    assert!(err.contains("m.toml") && err.contains("default"), "{err}");
    // A round trip keeps every coefficient.
    let again = Coefficients::from_toml(&c.to_toml(), "round trip").unwrap();
    assert_eq!(again, c);
}

#[test]
fn predicted_instructions_follow_the_loop_structure() {
    let c = Coefficients::builtin().unwrap();
    let m = model(64, &[32], 1.0);
    let low = lowered(&m, StoragePolicy::Dense);
    let work = model_work(&m, &low).unwrap();
    assert_eq!(work.len(), 3, "two Dense layers and infer's frame");
    assert_eq!(work[0].kernel, "fc_dense");
    assert_eq!(work[0].macs, 64 * 32);
    let t = Target::Thumbv7em;
    let g = |k: &str, f: &str| c.get(t, k, f).unwrap();
    let expected = g("infer", "call")
        + 2.0 * g("fc_dense", "call")
        + (32.0 + 4.0) * g("fc_dense", "row")
        + (64.0 * 32.0 + 32.0 * 4.0) * g("fc_dense", "mac");
    let got = predict_insns(&work, &c, t).unwrap();
    assert!((got - expected).abs() < 1e-6, "{got} vs {expected}");
}

#[test]
fn cost_model_sanity() {
    let dev = device("stm32l4r5");
    let dense = model(256, &[64], 1.0);
    let pruned = model(256, &[64], 0.05);
    let e_dense = estimate_builtin(&dense, &lowered(&dense, StoragePolicy::Auto), &dev).unwrap();
    let low = lowered(&pruned, StoragePolicy::Auto);
    assert_eq!(low.layers[0].storage, lower::Storage::Sparse);
    let e_sparse = estimate_builtin(&pruned, &low, &dev).unwrap();
    // 5 % of the connections: the sparse kernel is several times cheaper.
    assert!(e_sparse.insns * 4.0 < e_dense.insns);
    for e in [&e_dense, &e_sparse] {
        assert!(e.cycles.min > 0.0 && e.cycles.min <= e.cycles.max);
        // Never fewer cycles than the cheapest instruction class allows, and on the M4 at most a
        // few cycles per instruction plus flash stalls.
        assert!(e.cycles.min >= e.insns * 0.99);
        assert!(e.cycles.max <= e.insns * 4.0);
        let sum: f64 = e.layers.iter().map(|l| l.energy_uj.max).sum();
        assert!((sum - e.energy_uj.max).abs() < 1e-9 * sum.max(1.0));
        assert!((e.latency_us.max - e.cycles.max / 120.0).abs() < 1e-6);
        let pj = dev.run_ua_per_mhz * dev.supply_v;
        assert!((e.energy_uj.min - e.cycles.min * pj * 1e-6).abs() < 1e-9);
    }
    // Same model on a part without an instruction cache pays refetch stalls on every taken
    // branch, so its cycles per instruction are higher.
    let u0 = device("stm32u083");
    let e_u0 = estimate_builtin(&dense, &lowered(&dense, StoragePolicy::Auto), &u0).unwrap();
    assert!(e_u0.cycles.min / e_u0.insns > e_dense.cycles.min / e_dense.insns);
    // A larger layer costs more.
    let bigger = model(512, &[64], 1.0);
    let e_big = estimate_builtin(&bigger, &lowered(&bigger, StoragePolicy::Dense), &dev).unwrap();
    assert!(e_big.energy_uj.min > e_dense.energy_uj.min * 1.8);
}

fn synthetic(
    label: &str,
    layers: &[(&'static str, Vec<(&'static str, f64)>)],
    truth: &dyn Fn(&str, &str) -> f64,
) -> Sample {
    let work: Vec<LayerWork> = layers
        .iter()
        .map(|(k, counts)| LayerWork {
            index: None,
            name: k.to_string(),
            op: k.to_string(),
            kernel: k,
            counts: counts.clone(),
            params: 0,
            nonzeros: 0,
            macs: 0,
            flash_bytes: 0,
            sram_read_bytes: 0,
            sram_write_bytes: 0,
            ram_bytes: 0,
        })
        .collect();
    let measured = work
        .iter()
        .flat_map(|w| w.counts.iter().map(|&(f, n)| truth(w.kernel, f) * n))
        .sum();
    Sample {
        label: label.into(),
        work,
        measured,
    }
}

#[test]
fn the_fit_recovers_known_coefficients() {
    let truth = |k: &str, f: &str| match (k, f) {
        ("infer", "call") => 31.0,
        ("fc_dense", "call") => 12.0,
        ("fc_dense", "row") => 70.0,
        ("fc_dense", "mac") => 5.0,
        ("fc_sparse", "call") => 20.0,
        ("fc_sparse", "row") => 80.0,
        ("fc_sparse", "entry") => 7.0,
        _ => unreachable!(),
    };
    let dense = |r: f64, c: f64| ("fc_dense", vec![("call", 1.0), ("row", r), ("mac", r * c)]);
    let sparse = |r: f64, e: f64| ("fc_sparse", vec![("call", 1.0), ("row", r), ("entry", e)]);
    let infer = || ("infer", vec![("call", 1.0)]);
    let samples = vec![
        synthetic("a", &[dense(8.0, 16.0), infer()], &truth),
        synthetic("b", &[dense(32.0, 64.0), infer()], &truth),
        synthetic("c", &[dense(10.0, 300.0), infer()], &truth),
        synthetic("d", &[dense(8.0, 16.0), dense(4.0, 8.0), infer()], &truth),
        synthetic("e", &[sparse(64.0, 500.0), infer()], &truth),
        synthetic("f", &[sparse(16.0, 900.0), infer()], &truth),
        synthetic(
            "g",
            &[sparse(64.0, 100.0), sparse(8.0, 10.0), infer()],
            &truth,
        ),
        synthetic("h", &[sparse(5.0, 10.0), dense(3.0, 5.0), infer()], &truth),
    ];
    let f = fit(&samples).unwrap();
    for (k, feats) in &f.table {
        for (feat, v) in feats {
            assert!((v - truth(k, feat)).abs() < 1e-6, "{k}.{feat} = {v}");
        }
    }
    assert!(f.max_rel_residual < 1e-9);
    // Every model has exactly one infer call and one dense call: they cannot be told apart.
    let err = fit(&samples[..3]).map(|_| ()).unwrap_err().to_string();
    assert!(err.contains("samples"), "{err}");
    let ambiguous = vec![
        synthetic("a", &[dense(8.0, 16.0), infer()], &truth),
        synthetic("b", &[dense(32.0, 64.0), infer()], &truth),
        synthetic("c", &[dense(10.0, 300.0), infer()], &truth),
        synthetic("d", &[dense(12.0, 30.0), infer()], &truth),
        synthetic("e", &[dense(2.0, 3.0), infer()], &truth),
    ];
    let err = fit(&ambiguous).map(|_| ()).unwrap_err().to_string();
    assert!(err.contains("rank deficient"), "{err}");
}

#[test]
fn least_squares_matches_a_hand_solution() {
    // A line through (0, 2), (1, 5), (2, 8.5), (3, 10.5): mean x 1.5, mean y 6.5,
    // Sxy = 14.5, Sxx = 5, so slope 2.9 and intercept 6.5 - 2.9 * 1.5 = 2.15.
    let a = vec![
        vec![1.0, 0.0],
        vec![1.0, 1.0],
        vec![1.0, 2.0],
        vec![1.0, 3.0],
    ];
    let b = vec![2.0, 5.0, 8.5, 10.5];
    let x = least_squares(a, b, &["c".into(), "x".into()]).unwrap();
    assert!(
        (x[0] - 2.15).abs() < 1e-12 && (x[1] - 2.9).abs() < 1e-12,
        "{x:?}"
    );
}

fn fixed_estimate(energy_uj: f64, latency_us: f64) -> Estimate {
    Estimate {
        device: "d".into(),
        target: Target::Thumbv7em,
        layers: vec![],
        insns: 0.0,
        cycles: Range::point(0.0),
        latency_us: Range::point(latency_us),
        energy_uj: Range {
            min: energy_uj / 2.0,
            max: energy_uj,
        },
        flash_bytes: 0,
        arena_bytes: 0,
    }
}

#[test]
fn duty_cycle_by_hand() {
    let mut dev = device("stm32l4r5");
    dev.sleep_ua = 2.0;
    dev.supply_v = 3.0;
    // 10 µJ in 100 µs, ten times a second: 100 µW inferring + 0.999 × 6 µW asleep.
    let d = duty_cycle(&fixed_estimate(10.0, 100.0), &dev, 10.0, Some(1000.0)).unwrap();
    assert!((d.active_fraction.max - 1e-3).abs() < 1e-12);
    assert!(
        (d.avg_power_uw.max - 105.994).abs() < 1e-9,
        "{:?}",
        d.avg_power_uw
    );
    assert!((d.avg_power_uw.min - 55.994).abs() < 1e-9);
    let i = 105.994 / 3.0;
    let h = d.battery_hours.unwrap();
    assert!((h.min - 1000.0 * 1000.0 / i).abs() < 1e-6, "{h:?}");
    assert!(h.max > h.min);
    let err = duty_cycle(&fixed_estimate(10.0, 100.0), &dev, 20_000.0, None)
        .unwrap_err()
        .to_string();
    assert!(err.contains("cannot be sustained"), "{err}");
    assert!(duty_cycle(&fixed_estimate(1.0, 1.0), &dev, 0.0, None).is_err());
    assert!(duty_cycle(&fixed_estimate(1.0, 1.0), &dev, 1.0, Some(-5.0)).is_err());
}

#[test]
fn budgets_refuse_with_the_budget_and_the_figure() {
    let f = Figures {
        energy_uj_max: 12.345,
        flash_bytes: 300 * 1024,
        ram_bytes: 2048,
    };
    assert!(check_budgets(&Budgets::default(), &f, "stm32l4r5").is_ok());
    let ok = Budgets {
        energy_uj: Some(20.0),
        flash_kb: Some(512.0),
        ram_kb: Some(2.0),
    };
    assert!(check_budgets(&ok, &f, "stm32l4r5").is_ok());
    let err = check_budgets(
        &Budgets {
            energy_uj: Some(5.0),
            ..Budgets::default()
        },
        &f,
        "stm32l4r5",
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("--energy-budget-uj") && err.contains("12.35 µJ"),
        "{err}"
    );
    assert!(err.contains("stm32l4r5"), "{err}");
    let err = check_budgets(
        &Budgets {
            flash_kb: Some(256.0),
            ram_kb: Some(1.0),
            ..Budgets::default()
        },
        &f,
        "x",
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("--flash-budget-kb") && err.contains("300.0 KB"),
        "{err}"
    );
    assert!(
        err.contains("--ram-budget-kb") && err.contains("2.0 KB"),
        "{err}"
    );
}

#[test]
fn unsupported_ops_are_reported_not_guessed() {
    let m = model(8, &[4], 1.0);
    let low = lowered(&m, StoragePolicy::Dense);
    let mut broken = low.clone();
    broken.layers.clear();
    let err = model_work(&m, &broken).unwrap_err().to_string();
    assert!(err.contains("fc1"), "{err}");
}

/// The storage decision in `lower/sparse.rs` uses its own disassembly-read constants; they must
/// stay close to what the fitted table measures, or the decision is made on stale figures.
#[test]
fn lowering_constants_agree_with_the_fitted_table() {
    let c = Coefficients::builtin().unwrap();
    for (t, cm) in [
        (Target::Thumbv7em, lower::THUMBV7EM),
        (Target::Thumbv6m, lower::THUMBV6M),
    ] {
        let close = |fitted: f64, constant: u64, tol: f64| {
            ((fitted - constant as f64) / constant as f64).abs() <= tol
        };
        let mac = c.get(t, "fc_dense", "mac").unwrap();
        let entry = c.get(t, "fc_sparse", "entry").unwrap();
        // One compiled copy of each kernel: the fit recovers the inner loops' instruction
        // counts read off the disassembly (within 1 % when last fitted).
        assert!(
            close(mac, cm.dense_per_mac, 0.05),
            "{t:?} mac {mac} vs {}",
            cm.dense_per_mac
        );
        assert!(
            close(entry, cm.sparse_per_entry, 0.05),
            "{t:?} entry {entry} vs {}",
            cm.sparse_per_entry
        );
    }
}

/// A quantized CNN with one node of every op the lowering supports: dense and sparse conv
/// (one padded, so it has border windows), depthwise conv, max and average pooling, Add (with a
/// ReLU that must copy), flatten, Concat and Dense.
pub(crate) fn every_op_cnn() -> Model {
    use crate::ir::{Activation, Conv2d, Dense, Pool};
    let mut m = Model::with_input("cnn", vec![8, 8, 2], Preprocess::identity(), vec![]);
    let mut k = 7u64;
    let mut next = move || {
        k = k
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (k >> 33) as f32 / (1u64 << 31) as f32
    };
    let mut conv = |cin, cout, kk, pad, groups, keep: f32| {
        let fan = kk * kk * cin / groups;
        let w: Vec<f32> = (0..cout * fan)
            .map(|_| {
                let w = next() - 0.5;
                if next() < keep {
                    w
                } else {
                    0.0
                }
            })
            .collect();
        let mut c = Conv2d::new(
            cin,
            cout,
            [kk, kk],
            [1, 1],
            [pad; 4],
            groups,
            w,
            vec![0.01; cout],
            Activation::Relu,
        );
        for i in 0..c.weight.len() {
            if c.weight[i] == 0.0 {
                c.mask.set(i, false);
            }
        }
        Op::Conv2d(c)
    };
    let x = m.inputs[0];
    let c1 = m.add_node("conv1", conv(2, 4, 3, 1, 1, 1.0), vec![x], vec![8, 8, 4]);
    let c2 = m.add_node("conv2", conv(4, 6, 3, 0, 1, 0.1), vec![c1], vec![6, 6, 6]);
    let dw = m.add_node("dw", conv(6, 6, 3, 1, 6, 1.0), vec![c2], vec![6, 6, 6]);
    let r = m.add_node("relu", Op::Relu, vec![dw], vec![6, 6, 6]);
    let a = m.add_node("add", Op::Add, vec![dw, r], vec![6, 6, 6]);
    let p = m.add_node("max", Op::MaxPool(Pool::square(2)), vec![a], vec![3, 3, 6]);
    let av = m.add_node(
        "avg",
        Op::AvgPool(Pool {
            kernel: [2, 2],
            stride: [1, 1],
            padding: [0; 4],
        }),
        vec![p],
        vec![2, 2, 6],
    );
    let f = m.add_node("flatten", Op::Flatten, vec![av], vec![24]);
    let cat = m.add_node("cat", Op::Concat, vec![f, f], vec![48]);
    let w: Vec<f32> = (0..48 * 4)
        .map(|i| ((i * 37 % 11) as f32 - 5.0) / 20.0)
        .collect();
    let d = Dense::new(48, 4, w, vec![0.0; 4], Activation::None);
    let y = m.add_node("fc", Op::Dense(d), vec![cat], vec![4]);
    m.outputs.push(y);
    m.class_names = (0..4).map(|i| format!("c{i}")).collect();
    m.validate().unwrap();
    let samples: Vec<Vec<f32>> = (0..16)
        .map(|s| {
            (0..128)
                .map(|i| ((i * 7 + s * 13) % 17) as f32 / 17.0)
                .collect()
        })
        .collect();
    quant::quantize(&m, &samples).unwrap()
}

#[test]
fn every_lowered_op_has_a_cost() {
    let m = every_op_cnn();
    let low = lowered(&m, StoragePolicy::Auto);
    let work = model_work(&m, &low).unwrap();
    let kernels: Vec<&str> = work.iter().map(|w| w.kernel).collect();
    // Called once each, the kernels are still the shared out-of-line copies (bonsai-rt's
    // kernels are never inlined): no single-call variant.
    assert_eq!(
        kernels,
        [
            "conv_dense",
            "conv_sparse",
            "dw_conv",
            "relu",
            "add",
            "max_pool",
            "avg_pool",
            "flatten",
            "concat",
            "fc_dense",
            "infer"
        ]
    );
    assert!(work
        .iter()
        .filter(|w| w.kernel != "flatten" && w.kernel != "concat" && w.kernel != "infer")
        .all(|w| w.counts.iter().any(|&(f, n)| f == "call" && n == 1.0)));
    let count = |w: &LayerWork, f: &str| {
        w.counts
            .iter()
            .find(|(g, _)| *g == f)
            .map_or(0.0, |&(_, n)| n)
    };
    // conv1: 8×8 positions, "same" padding: the 6×6 centre is interior, 28 border windows;
    // 3×3×2 filters of 18 bytes, short enough to gather each interior window (3 rows of 6
    // bytes) into one run: one dot product of 4 words and a 2-byte tail per filter.
    let c1 = &work[0];
    assert_eq!(count(c1, "pos"), 64.0);
    assert_eq!(count(c1, "row_in"), 36.0 * 4.0);
    assert_eq!(count(c1, "quad_in"), 36.0 * 4.0 * 4.0);
    assert_eq!(count(c1, "tail_in"), 36.0 * 4.0 * 2.0);
    assert_eq!(count(c1, "gather_row"), 36.0 * 3.0);
    assert_eq!(count(c1, "gather_byte"), 36.0 * 18.0);
    assert_eq!(count(c1, "tap_b"), 28.0 * 4.0 * 9.0);
    assert_eq!(count(c1, "mac_b"), 28.0 * 4.0 * 18.0);
    assert_eq!(c1.macs, 64 * 4 * 18);
    // conv2 is sparse and unpadded: every window interior.
    let c2 = &work[1];
    assert_eq!(low.layers[1].storage, lower::Storage::Sparse);
    assert_eq!(
        count(c2, "entry_in"),
        36.0 * low.layers[1].sparse_entries as f64
    );
    assert_eq!(count(c2, "entry_b"), 0.0);
    // The ReLU's input is read again by the Add: it copies first.
    assert_eq!(count(&work[3], "copy_elem"), 216.0);
    // Max pool 2×2/2 over 6×6×6: 9 windows of 2 rows and 4 taps per channel.
    assert_eq!(count(&work[5], "welem"), 9.0 * 6.0 * 4.0);
    assert_eq!(count(&work[5], "wrow"), 9.0 * 6.0 * 2.0);
    assert!(work[7].counts.is_empty(), "flatten runs no code");
    // Concat of a tensor with itself: two parts of 24, copied or requantized depending on
    // whether calibration gave the output the same quantization.
    let cat = &work[8];
    assert_eq!(count(cat, "copy") + count(cat, "requant"), 2.0);
    assert_eq!(count(cat, "copy_elem") + count(cat, "requant_elem"), 48.0);

    for name in ["stm32l4r5", "stm32u083", "stm32h743"] {
        let e = estimate_builtin(&m, &low, &device(name)).unwrap();
        assert!(e.insns > 0.0 && e.energy_uj.min > 0.0, "{name}");
        // Every node that runs code costs something (`infer`'s own frame is a fitted intercept
        // and may be slightly negative).
        assert!(e
            .layers
            .iter()
            .filter(|l| l.work.index.is_some() && l.work.kernel != "flatten")
            .all(|l| l.insns > 0.0));
    }
}

/// The dense convolution's interior counts follow the window layout bonsai-rt's `conv2d_s8`
/// picks: one run per filter when the window is contiguous or gathered (with the gather's rows
/// and bytes), `kh` runs when the filter is longer than the gather buffer.
#[test]
fn conv_counts_follow_the_runtime_window_layout() {
    use crate::ir::{Activation, Conv2d};
    let single_conv = |h: usize, w: usize, cin: usize, cout: usize| {
        let mut m = Model::with_input("c", vec![h, w, cin], Preprocess::identity(), vec![]);
        let fan = 9 * cin;
        let wts: Vec<f32> = (0..cout * fan)
            .map(|i| ((i * 37 % 23) as f32 - 11.0) / (20.0 * fan as f32).sqrt())
            .collect();
        let c = Conv2d::new(
            cin,
            cout,
            [3, 3],
            [1, 1],
            [0; 4],
            1,
            wts,
            vec![0.0; cout],
            Activation::Relu,
        );
        let (oh, ow) = (h - 2, w - 2);
        let x = m.inputs[0];
        let y = m.add_node("conv", Op::Conv2d(c), vec![x], vec![oh, ow, cout]);
        m.outputs.push(y);
        m.class_names = (0..oh * ow * cout).map(|i| format!("y{i}")).collect();
        let n = h * w * cin;
        let samples: Vec<Vec<f32>> = (0..4)
            .map(|s| (0..n).map(|i| ((i * 7 + s) % 13) as f32 / 13.0).collect())
            .collect();
        let q = quant::quantize(&m, &samples).unwrap();
        let low = lowered(&q, StoragePolicy::Dense);
        let work = model_work(&q, &low).unwrap();
        work[0].counts.clone()
    };
    let count = |c: &[(&str, f64)], f: &str| c.iter().find(|(g, _)| *g == f).map(|&(_, n)| n);
    // 5×5×8, 3×3: 9 interior windows of 72 bytes, gathered from 3 rows of 24.
    let g = single_conv(5, 5, 8, 2);
    assert_eq!(count(&g, "row_in"), Some(9.0 * 2.0));
    assert_eq!(count(&g, "quad_in"), Some(9.0 * 2.0 * 18.0));
    assert_eq!(count(&g, "gather_row"), Some(9.0 * 3.0));
    assert_eq!(count(&g, "gather_byte"), Some(9.0 * 72.0));
    // 5×3×8: the window spans the input's width, so its rows are adjacent: read in place.
    let c = single_conv(5, 3, 8, 2);
    assert_eq!(count(&c, "row_in"), Some(3.0 * 2.0));
    assert_eq!(count(&c, "quad_in"), Some(3.0 * 2.0 * 18.0));
    assert_eq!(count(&c, "gather_row"), None);
    // 4×4×65: filters of 585 bytes exceed the 576-byte buffer: 3 rows of 195 bytes per filter.
    let r = single_conv(4, 4, 65, 2);
    assert_eq!(count(&r, "row_in"), Some(4.0 * 2.0 * 3.0));
    assert_eq!(count(&r, "quad_in"), Some(4.0 * 2.0 * 3.0 * 48.0));
    assert_eq!(count(&r, "tail_in"), Some(4.0 * 2.0 * 3.0 * 3.0));
    assert_eq!(count(&r, "gather_byte"), None);
}

#[test]
fn border_windows_follow_the_runtime_clip() {
    use crate::ir::{Activation, Conv2d, Pool};
    // 5×5 input, 3×3 kernel, stride 2, padding 1: outputs 3×3; only the centre window is whole.
    let mut m = Model::with_input("b", vec![5, 5, 1], Preprocess::identity(), vec![]);
    let c = Conv2d::new(
        1,
        2,
        [3, 3],
        [2, 2],
        [1; 4],
        1,
        vec![0.1; 18],
        vec![0.0; 2],
        Activation::None,
    );
    let x = m.add_node("c", Op::Conv2d(c), vec![m.inputs[0]], vec![3, 3, 2]);
    let pool = Pool {
        kernel: [3, 3],
        stride: [2, 2],
        padding: [1; 4],
    };
    let y = m.add_node("p", Op::AvgPool(pool), vec![x], vec![2, 2, 2]);
    m.outputs.push(y);
    m.class_names = (0..8).map(|i| format!("c{i}")).collect();
    let samples: Vec<Vec<f32>> = (0..8)
        .map(|s| (0..25).map(|i| ((i + s) % 5) as f32 / 5.0).collect())
        .collect();
    let m = quant::quantize(&m, &samples).unwrap();
    let work = model_work(&m, &lowered(&m, StoragePolicy::Dense)).unwrap();
    let count = |w: &LayerWork, f: &str| w.counts.iter().find(|(g, _)| *g == f).unwrap().1;
    // The one interior window is gathered into a single run of 9 bytes per filter.
    assert_eq!(count(&work[0], "row_in"), 2.0);
    assert_eq!(count(&work[0], "gather_row"), 3.0);
    assert_eq!(count(&work[0], "tap_b"), 8.0 * 2.0 * 9.0);
    // Pool 3×3/2 with padding 1 over the 3×3 conv output: windows start at -1 (taps 1..3 inside)
    // and at 1 (taps 0..2 inside), so 2 rows and 2 columns each. Σ rows = (2 + 2) × 2 column
    // clips, Σ taps = (2 + 2)², per channel.
    assert_eq!(count(&work[1], "wrow"), 8.0 * 2.0);
    assert_eq!(count(&work[1], "welem"), 16.0 * 2.0);
}

/// A quantized 6x6x1 -> conv 3x3 (4 filters) -> flatten -> Dense 4 model with partial areas on
/// the conv, for the storage the lowering is told to use.
fn area_model() -> Model {
    use crate::ir::{Activation, Area, Conv2d, Dense};
    let mut m = Model::with_input("areas", vec![6, 6, 1], Preprocess::identity(), vec![]);
    // Every weight nonzero (in int8 too), so each filter has 9 entries.
    let w: Vec<f32> = (0..36)
        .map(|i| ((i * 7 % 11) as f32 + 1.0) / 10.0)
        .collect();
    let mut c = Conv2d::new(
        1,
        4,
        [3, 3],
        [1, 1],
        [0; 4],
        1,
        w,
        vec![0.1; 4],
        Activation::Relu,
    );
    let areas = [(0, 0, 4, 4), (1, 1, 3, 4), (2, 2, 2, 2), (0, 3, 4, 4)];
    c.area = Some(
        areas
            .iter()
            .map(|&(y0, x0, y1, x1)| Area { y0, x0, y1, x1 })
            .collect(),
    );
    let x = m.inputs[0];
    let x = m.add_node("conv", Op::Conv2d(c), vec![x], vec![4, 4, 4]);
    let x = m.add_node("flatten", Op::Flatten, vec![x], vec![64]);
    let d = Dense::new(64, 4, vec![0.01; 256], vec![0.0; 4], Activation::None);
    let y = m.add_node("fc", Op::Dense(d), vec![x], vec![4]);
    m.outputs.push(y);
    m.class_names = (0..4).map(|i| format!("c{i}")).collect();
    let samples: Vec<Vec<f32>> = (0..8)
        .map(|s| (0..36).map(|i| ((i + s) % 5) as f32 / 5.0).collect())
        .collect();
    quant::quantize(&m, &samples).unwrap()
}

#[test]
fn partial_areas_are_counted_by_hand() {
    let m = area_model();
    // Rectangles of 16, 6, 0 and 4 positions: 26 of the 4x4x4 = 64 outputs inside.
    let count = |w: &LayerWork, f: &str| {
        w.counts
            .iter()
            .find(|(g, _)| *g == f)
            .map(|&(_, n)| n)
            .unwrap_or_else(|| panic!("{} has no {f}: {:?}", w.kernel, w.counts))
    };
    // Stored dense: the conv computes whole maps, then the zeroing pass runs over its output.
    let work = model_work(&m, &lowered(&m, StoragePolicy::Dense)).unwrap();
    assert_eq!(work[0].kernel, "conv_dense");
    let zero = &work[1];
    assert_eq!(
        (zero.kernel, zero.name.as_str()),
        ("zero_areas", "conv (areas)")
    );
    assert_eq!(count(zero, "row"), 16.0);
    assert_eq!(count(zero, "outside"), 64.0 - 26.0);
    // Stored sparse: every channel-position is tested, those outside skip their work, and the
    // entries are counted over the rectangles only (all 9 taps of every filter are nonzero and
    // every window is interior, so 26 positions x 9 entries).
    let work = model_work(&m, &lowered(&m, StoragePolicy::Sparse)).unwrap();
    let conv = &work[0];
    assert_eq!(conv.kernel, "conv_sparse");
    assert!(work.iter().all(|w| w.kernel != "zero_areas"));
    assert_eq!(count(conv, "filt"), 64.0);
    assert_eq!(count(conv, "filt_area"), 64.0);
    assert_eq!(count(conv, "filt_out"), 64.0 - 26.0);
    assert_eq!(count(conv, "entry_in"), 26.0 * 9.0);
    assert_eq!(conv.macs, 26 * 9);
    // Without areas neither feature appears.
    let mut whole = m.clone();
    for n in whole.nodes.iter_mut() {
        if let Op::Conv2d(c) = &mut n.op {
            c.area = None;
        }
    }
    let work = model_work(&whole, &lowered(&whole, StoragePolicy::Sparse)).unwrap();
    assert!(work[0].counts.iter().all(|(f, _)| !f.starts_with("filt_")));
    assert_eq!(work.len(), 4, "conv, flatten, fc and infer's frame");
}
