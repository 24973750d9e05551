use super::plan::{self, StepKind};
use super::*;
use crate::interp;
use crate::ir::{Activation, Dense, Model, Op, Preprocess};
use crate::quant;
use std::path::{Path, PathBuf};
use std::process::Command;

// ---------------------------------------------------------------------------------------------
// Models

/// Deterministic pseudo-random values in [-1, 1).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> f32 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((self.0 >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    }
}

enum L {
    Dense(usize, Activation),
    Relu,
}

/// A chain `n_in -> layers...`, random weights, with every 5th connection of each Dense dormant.
fn chain(name: &str, n_in: usize, layers: &[L], seed: u64) -> Model {
    let mut rng = Lcg(seed);
    let mut m = Model::with_input(name, vec![n_in], Preprocess::identity(), vec![]);
    let mut x = m.inputs[0];
    let mut width = n_in;
    for (k, l) in layers.iter().enumerate() {
        x = match *l {
            L::Dense(out, act) => {
                let mut weight: Vec<f32> = (0..out * width).map(|_| rng.next()).collect();
                let bias: Vec<f32> = (0..out).map(|_| rng.next() * 0.5).collect();
                let mut d = Dense::new(width, out, vec![0.0; out * width], bias, act);
                for (i, w) in weight.iter_mut().enumerate() {
                    if i % 5 == 3 {
                        d.mask.set(i, false);
                        *w = 0.0;
                    }
                }
                d.weight = weight;
                let x2 = m.add_node(format!("fc{k}"), Op::Dense(d), vec![x], vec![out]);
                width = out;
                x2
            }
            L::Relu => m.add_node(format!("relu{k}"), Op::Relu, vec![x], vec![width]),
        };
    }
    m.outputs.push(x);
    m.class_names = (0..width).map(|i| format!("class {i}")).collect();
    m.validate().unwrap();
    m
}

fn samples(n_in: usize, n: usize, seed: u64) -> Vec<Vec<f32>> {
    let mut rng = Lcg(seed);
    (0..n)
        .map(|_| (0..n_in).map(|_| rng.next() * 2.0).collect())
        .collect()
}

fn quantized(m: &Model) -> Model {
    quant::quantize(m, &samples(m.input_len(), 32, 7)).unwrap()
}

/// Edge inputs plus quantized calibration-like samples.
fn int8_inputs(m: &Model) -> Vec<Vec<i8>> {
    let n = m.input_len();
    let mut v = vec![
        vec![0i8; n],
        vec![-128; n],
        vec![127; n],
        (0..n)
            .map(|i| if i % 2 == 0 { 127 } else { -128 })
            .collect(),
        (0..n).map(|i| (i as i32 * 37 % 256 - 128) as i8).collect(),
    ];
    for s in samples(n, 6, 99) {
        v.push(quant::quantize_input(m, &s));
    }
    v
}

fn tiny() -> Model {
    let mut m = crate::ir::tests::tiny_mlp();
    m.preprocess = Preprocess {
        scale: vec![1.0 / 255.0],
        offset: vec![-0.5],
    };
    quant::quantize(&m, &samples(4, 16, 3)).unwrap()
}

fn file<'a>(c: &'a LoweredCrate, path: &str) -> &'a str {
    &c.files
        .iter()
        .find(|(p, _)| p == Path::new(path))
        .unwrap_or_else(|| {
            panic!(
                "no {path} in {:?}",
                c.files.iter().map(|f| &f.0).collect::<Vec<_>>()
            )
        })
        .1
}

// ---------------------------------------------------------------------------------------------
// Relative paths

#[test]
fn relative_path_cases() {
    let r = |a: &str, b: &str| relative_path(Path::new(a), Path::new(b));
    assert_eq!(
        r(
            "/w/firmware-examples/qemu-microbit/model",
            "/w/runtime-no-std"
        ),
        Path::new("../../../runtime-no-std")
    );
    assert_eq!(
        r("/w/tests/host-runner/model", "/w/runtime-no-std"),
        Path::new("../../../runtime-no-std")
    );
    assert_eq!(r("/a/b", "/a/b"), Path::new("."));
    assert_eq!(r("/a/b", "/a/b/c/d"), Path::new("c/d"));
    assert_eq!(r("/a/b/c", "/a"), Path::new("../.."));
    assert_eq!(r("/a", "/b"), Path::new("../b"));
    assert_eq!(r("/", "/x/y"), Path::new("x/y"));
    assert_eq!(r("/x/y", "/"), Path::new("../.."));
    // A shared prefix of characters is not a shared component.
    assert_eq!(r("/tmp/abc", "/tmp/abd/rt"), Path::new("../abd/rt"));
    // No common root: the target itself.
    assert_eq!(r("rel/dir", "/abs/rt"), Path::new("/abs/rt"));
}

#[test]
fn relative_path_round_trips() {
    for (from, to) in [
        ("/w/a/b/c", "/w/x"),
        ("/w", "/w/x/y"),
        ("/p/q", "/r/s/t"),
        ("/p/q", "/p/q"),
    ] {
        let rel = relative_path(Path::new(from), Path::new(to));
        // Resolve lexically: each ".." drops one component.
        let mut p = PathBuf::from(from);
        for c in rel.components() {
            match c {
                std::path::Component::ParentDir => {
                    p.pop();
                }
                std::path::Component::CurDir => {}
                c => p.push(c),
            }
        }
        assert_eq!(p, Path::new(to), "{from} -> {to} via {rel:?}");
    }
}

// ---------------------------------------------------------------------------------------------
// Generated text, without building

#[test]
fn tiny_crate_layout_and_contents() {
    let m = tiny();
    let c = lower(&m, &LowerOptions::default()).unwrap();
    let paths: Vec<_> = c.files.iter().map(|f| f.0.clone()).collect();
    assert_eq!(
        paths,
        [
            PathBuf::from("Cargo.toml"),
            "src/lib.rs".into(),
            "src/weights.rs".into()
        ]
    );
    // Chain input -> region A (3) -> output.
    assert_eq!(c.arena_bytes, 3);
    // fc1: 12 weights + 3·3·4; fc2: 6 weights + 2·3·4.
    assert_eq!(c.weight_bytes, 12 + 36 + 6 + 24);

    let toml = file(&c, "Cargo.toml");
    assert!(toml.starts_with("# generated by bonsai lower from \"tiny\"; do not edit\n"));
    assert!(toml.contains("name = \"bonsai-model\""));
    assert!(toml.contains("edition = \"2021\""));
    assert!(toml.contains("\n[workspace]\n"));
    let rt = default_runtime_path();
    assert!(toml.contains(&format!("bonsai-rt = {{ path = \"{}\" }}", rt.display())));

    let lib = file(&c, "src/lib.rs");
    assert!(lib.starts_with("// generated by bonsai lower from \"tiny\"; do not edit\n"));
    assert!(lib.contains("#![no_std]"));
    let public: Vec<&str> = lib
        .lines()
        .filter(|l| l.starts_with("pub "))
        .map(|l| l.split(['=', '(']).next().unwrap().trim())
        .collect();
    assert_eq!(
        public,
        [
            "pub const INPUT_LEN: usize",
            "pub const OUTPUT_LEN: usize",
            "pub const ARENA_BYTES: usize",
            "pub const INPUT_SCALE: f32",
            "pub const INPUT_ZERO_POINT: i32",
            "pub const OUTPUT_SCALE: f32",
            "pub const OUTPUT_ZERO_POINT: i32",
            "pub static CLASS_NAMES: [&str; OUTPUT_LEN]",
            "pub const LAYER_PROBES: usize", // feature `layer-probes` only
            "pub static LAYER_NAMES: [&str; LAYER_PROBES]", // feature `layer-probes` only
            "pub fn infer",
            "pub fn predict",
        ]
    );
    // Docs carry the preprocessing and the classes.
    assert!(
        lib.contains("`scale` = `0.003921569` for every feature"),
        "{lib}"
    );
    assert!(lib.contains("`offset` = `-0.5` for every feature"));
    assert!(lib.contains("| 1 | `b` |"));
    // The first layer reads `input`, the last writes `output`: no copies.
    assert!(
        lib.contains("fully_connected_s8(&weights::LAYER0, input, out);"),
        "{lib}"
    );
    assert!(
        lib.contains("fully_connected_s8(&weights::LAYER1, as_i8(&arena[0..3]), output);"),
        "{lib}"
    );

    for l in lib
        .lines()
        .filter(|l| l.starts_with("//!") && !l.starts_with("//! |"))
    {
        assert!(l.chars().count() <= 100, "long doc line: {l}");
    }

    let w = file(&c, "src/weights.rs");
    assert!(w.starts_with("// generated by bonsai lower from \"tiny\"; do not edit\n"));
    assert!(!w.contains("const "), "arrays must be statics");
    assert!(w.contains("static LAYER0_WEIGHTS: [i8; 12] = ["));
    assert!(w.contains("pub(crate) static LAYER1: FcParams<'static> = FcParams {"));
}

#[test]
fn folded_bias_and_requant_match_the_formulas() {
    let m = tiny();
    let p = plan::plan(&m, StoragePolicy::Auto).unwrap();
    for (step, d) in p.weighted_layers() {
        let node = &m.nodes[step.index];
        let Op::Dense(dense) = &node.op else { panic!() };
        let q = dense.quant.as_ref().unwrap();
        let qin = m.tensor(node.inputs[0]).quant.unwrap();
        let qout = m.tensor(node.output).quant.unwrap();
        for o in 0..d.out_len {
            let sum: i64 = q.weight_q[o * d.in_len..(o + 1) * d.in_len]
                .iter()
                .map(|&w| w as i64)
                .sum();
            assert_eq!(
                d.folded_bias[o] as i64,
                q.bias_q[o] as i64 - qin.zero_point as i64 * sum
            );
        }
        let rq = quant::dense_requant(qin.scale, qout.scale, &q.weight_scale);
        assert_eq!(d.multiplier, rq.iter().map(|r| r.0).collect::<Vec<_>>());
        assert_eq!(d.shift, rq.iter().map(|r| r.1).collect::<Vec<_>>());
        let range = quant::ActRange::for_output(qout, dense.activation);
        assert_eq!((d.act_min, d.act_max), (range.min, range.max));
        assert_eq!(d.output_offset, qout.zero_point);
    }
}

#[test]
fn memory_plan_reuses_the_arena_and_writes_output_directly() {
    use super::plan::Place::*;
    let m = quantized(&chain(
        "pp",
        6,
        &[
            L::Relu,
            L::Dense(8, Activation::None),
            L::Dense(7, Activation::Relu),
            L::Relu,
            L::Dense(5, Activation::None),
            L::Dense(4, Activation::None),
            L::Relu,
        ],
        1,
    ));
    let p = plan::plan(&m, StoragePolicy::Auto).unwrap();
    let places: Vec<_> = p
        .steps
        .iter()
        .map(|s| (s.inputs[0].place, s.output.place))
        .collect();
    // Buffers 6 (steps 0-1), 8 (1-2), 7 (2-4), 5 (4-5): the busiest step holds 8 + 7 bytes, and
    // the greedy placement needs no more. The ReLU after fc2 and the last one work in place;
    // the first copies the read-only input.
    assert_eq!(
        places,
        [
            (Input, Arena(8)),
            (Arena(8), Arena(0)),
            (Arena(0), Arena(8)),
            (Arena(8), Arena(8)),
            (Arena(8), Arena(0)),
            (Arena(0), Output),
            (Output, Output)
        ]
    );
    assert_eq!(p.memory.max_live_bytes, 15);
    assert_eq!(p.arena_bytes(), 15);
    assert_eq!(p.memory.naive_bytes, 26);
    assert!(matches!(p.steps[0].kind, StepKind::Relu { .. }));
}

#[test]
fn doc_wrapping_never_starts_a_markdown_block() {
    let w = |s: &str, n| super::emit::wrap(s, n);
    assert_eq!(w("short line", 20), ["short line"]);
    assert_eq!(w("aaa bbb ccc ddd", 7), ["aaa bbb", "ccc ddd"]);
    assert_eq!(
        w("- item that wraps here", 12),
        ["- item that", "  wraps here"]
    );
    // `- (-16)` and `1.` would start a list, `#` a heading: kept on the previous line.
    assert_eq!(w("xx `q - (-16)` yy", 5), ["xx `q -", "(-16)`", "yy"]);
    assert_eq!(w("aaaa 1. bbbb # cc", 4), ["aaaa 1.", "bbbb #", "cc"]);
    // Tables and code are never wrapped.
    let row = "| a | b | c | d |";
    assert_eq!(w(row, 4), [row]);
}

// ---------------------------------------------------------------------------------------------
// Errors

#[test]
fn unquantized_model_is_refused() {
    let err = lower(&crate::ir::tests::tiny_mlp(), &LowerOptions::default()).unwrap_err();
    assert!(matches!(err, LowerError::NotQuantized { .. }), "{err}");
    assert!(err.to_string().contains("not quantized"), "{err}");
}

fn add_dag(op: Op) -> Model {
    let mut m = chain("dag", 4, &[], 0);
    let x = m.inputs[0];
    let d = |seed| {
        let mut r = Lcg(seed);
        Dense::new(
            4,
            3,
            (0..12).map(|_| r.next()).collect(),
            vec![0.0; 3],
            Activation::None,
        )
    };
    let h = m.add_node("left", Op::Dense(d(1)), vec![x], vec![3]);
    let g = m.add_node("right", Op::Dense(d(2)), vec![x], vec![3]);
    let shape = if op == Op::Add { vec![3] } else { vec![6] };
    let y = m.add_node("merge", op, vec![h, g], shape);
    m.outputs = vec![y];
    m.class_names = vec![];
    m.validate().unwrap();
    m
}

#[test]
fn concat_dag_matches_the_integer_reference() {
    let m = quantized(&add_dag(Op::Concat));
    let lib = end_to_end(
        "concat",
        &m,
        Check {
            host_build: false,
            storage: AUTO,
        },
    );
    assert!(lib.contains("Concat of"), "{lib}");
}

#[test]
fn dag_with_residual_add_and_cross_layer_concat() {
    let m = crate::ir::tests::tiny_dag();
    let q = quant::quantize(&m, &samples(4, 64, 3)).unwrap();
    let lib = end_to_end(
        "dag",
        &q,
        Check {
            host_build: false,
            storage: AUTO,
        },
    );
    assert!(lib.contains("add_s8(&weights::LAYER2, "), "{lib}");
    assert!(lib.contains("Concat of"), "{lib}");
}

/// tiny_cnn with its weights scaled so that a fraction of each conv filter is pruned.
fn cnn_samples(n: usize, seed: u64) -> Vec<Vec<f32>> {
    samples(36, n, seed)
}

#[test]
fn cnn_with_conv_depthwise_pools_and_flatten_matches_the_reference() {
    let m = crate::ir::tests::tiny_cnn();
    let q = quant::quantize(&m, &cnn_samples(64, 9)).unwrap();
    for (case, storage) in [
        ("cnn-dense", StoragePolicy::Dense),
        ("cnn-sparse", StoragePolicy::Sparse),
    ] {
        let lib = end_to_end(
            case,
            &q,
            Check {
                host_build: case == "cnn-sparse",
                storage,
            },
        );
        assert!(lib.contains("max_pool_s8(&weights::LAYER1, "), "{lib}");
        assert!(
            lib.contains("depthwise_conv2d_s8(&weights::LAYER2, "),
            "{lib}"
        );
        assert!(lib.contains("avg_pool_s8(&weights::LAYER3, "), "{lib}");
        assert!(lib.contains("flat: Flatten, no code"), "{lib}");
        let conv = if storage == StoragePolicy::Sparse {
            "conv2d_sparse_s8"
        } else {
            "conv2d_s8"
        };
        assert!(
            lib.contains(&format!("{conv}(&weights::LAYER0, input, ")),
            "{lib}"
        );
    }
    let p = plan::plan(&q, StoragePolicy::Auto).unwrap();
    // conv1 144 B (steps 0-1), pool1 36 (1-2), dw2 36 (2-3), pool2/flat 16 (3-4): 180 at step 1.
    assert_eq!(p.memory.max_live_bytes, 180);
    assert_eq!(p.arena_bytes(), 180);
    assert_eq!(p.memory.naive_bytes, 232);
}

#[test]
fn branches_and_skips_lower_and_match_the_reference() {
    // fc0's output is never read: fc1 reads the input again.
    let mut m = chain(
        "b",
        4,
        &[L::Dense(3, Activation::Relu), L::Dense(2, Activation::None)],
        2,
    );
    m.nodes[1].inputs = vec![m.inputs[0]];
    m.nodes[1].op = Op::Dense(Dense::new(
        4,
        2,
        vec![0.1, -0.2, 0.3, 0.05, -0.1, 0.2, 0.0, 0.4],
        vec![0.0; 2],
        Activation::None,
    ));
    let m = quantized(&m);
    end_to_end(
        "branch",
        &m,
        Check {
            host_build: false,
            storage: AUTO,
        },
    );

    // The model output is not the last node's: the trailing ReLU still runs, on its own copy.
    let mut m = quantized(&chain("o", 4, &[L::Dense(3, Activation::Relu), L::Relu], 2));
    m.outputs = vec![m.nodes[0].output];
    m.class_names = vec![];
    let p = plan::plan(&m, StoragePolicy::Auto).unwrap();
    assert_eq!(p.steps[0].output.place, super::plan::Place::Output);
    assert_ne!(p.steps[1].output.place, super::plan::Place::Output);
}

#[test]
fn empty_model_and_bad_crate_names_are_refused() {
    let m = chain("empty", 4, &[], 0);
    let m = Model {
        class_names: vec![],
        ..m
    };
    assert!(matches!(
        lower(&m, &LowerOptions::default()),
        Err(LowerError::Empty(_))
    ));
    for name in ["", "9lives", "has space", "bonsai-rt", "core", "a/b"] {
        let opts = LowerOptions {
            crate_name: name.into(),
            ..LowerOptions::default()
        };
        assert!(
            matches!(lower(&tiny(), &opts), Err(LowerError::CrateName { .. })),
            "{name:?}"
        );
    }
    let opts = LowerOptions {
        crate_name: "my_model-2".into(),
        ..LowerOptions::default()
    };
    let c = lower(&tiny(), &opts).unwrap();
    assert!(file(&c, "Cargo.toml").contains("name = \"my_model-2\""));
    assert!(file(&c, "src/lib.rs").contains("my_model_2::predict"));
}

fn dense_quant_mut(m: &mut Model, node: usize) -> &mut crate::ir::WeightQuant {
    match &mut m.nodes[node].op {
        Op::Dense(d) => d.quant.as_mut().unwrap(),
        _ => panic!("not dense"),
    }
}

#[test]
fn bias_and_accumulator_overflow_are_refused() {
    let base = tiny();
    let zp = base
        .tensor(base.nodes[1].inputs[0])
        .quant
        .unwrap()
        .zero_point as i64;
    let row_sum: i64 = match &base.nodes[1].op {
        Op::Dense(d) => d.quant.as_ref().unwrap().weight_q[..3]
            .iter()
            .map(|&w| w as i64)
            .sum(),
        _ => unreachable!(),
    };
    assert_ne!(zp * row_sum, 0, "the test needs a nonzero fold term");

    let mut m = base.clone();
    dense_quant_mut(&mut m, 1).bias_q[0] = if zp * row_sum < 0 { i32::MAX } else { i32::MIN };
    let err = lower(&m, &LowerOptions::default()).unwrap_err();
    assert!(
        matches!(&err, LowerError::BiasOverflow { node, channel: 0, .. } if node == "fc2"),
        "{err}"
    );

    // Folded bias just fits, but x·w can push the accumulator past i32::MAX.
    let mut m = base.clone();
    dense_quant_mut(&mut m, 1).bias_q[0] = (i32::MAX as i64 - 10 + zp * row_sum) as i32;
    let err = lower(&m, &LowerOptions::default()).unwrap_err();
    assert!(
        matches!(&err, LowerError::AccumulatorOverflow { node, channel: 0, .. } if node == "fc2"),
        "{err}"
    );

    // A huge weight scale gives a multiplier > 1 (left shift) that overflows.
    let mut m = base.clone();
    dense_quant_mut(&mut m, 0).weight_scale[1] = 1e6;
    let err = lower(&m, &LowerOptions::default()).unwrap_err();
    assert!(
        matches!(&err, LowerError::ShiftOverflow { node, channel: 1, .. } if node == "fc1"),
        "{err}"
    );

    let mut m = base.clone();
    m.tensors[1].quant.as_mut().unwrap().scale = 0.0;
    assert!(matches!(
        lower(&m, &LowerOptions::default()),
        Err(LowerError::BadQuant(_))
    ));
}

#[test]
fn relu_with_different_output_quantization_is_refused() {
    let mut m = quantized(&chain("r", 4, &[L::Dense(3, Activation::None), L::Relu], 4));
    let out = m.nodes[1].output.0;
    m.tensors[out].quant.as_mut().unwrap().zero_point += 1;
    let err = lower(&m, &LowerOptions::default()).unwrap_err();
    assert!(
        matches!(&err, LowerError::Unsupported { node, .. } if node == "relu1"),
        "{err}"
    );
}

// ---------------------------------------------------------------------------------------------
// write_crate

/// A stand-in for runtime-no-std (write_crate only needs its Cargo.toml to exist).
fn fake_runtime(root: &Path) -> PathBuf {
    let rt = root.join("rt");
    std::fs::create_dir_all(&rt).unwrap();
    std::fs::write(rt.join("Cargo.toml"), "[package]\nname = \"bonsai-rt\"\n").unwrap();
    rt.canonicalize().unwrap()
}

fn siblings(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn write_crate_uses_a_relative_runtime_path_and_replaces_its_own_output() {
    let tmp = tempfile::tempdir().unwrap();
    let opts = LowerOptions {
        runtime_path: fake_runtime(tmp.path()),
        ..LowerOptions::default()
    };
    let c = lower(&tiny(), &opts).unwrap();
    let out = tmp.path().join("fw/board/model");
    write_crate(&c, &out).unwrap();
    let toml = std::fs::read_to_string(out.join("Cargo.toml")).unwrap();
    assert!(
        toml.contains("bonsai-rt = { path = \"../../../rt\" }"),
        "{toml}"
    );
    assert_eq!(
        std::fs::read_to_string(out.join("src/lib.rs")).unwrap(),
        file(&c, "src/lib.rs")
    );

    // Again, over the first one (with a stray file that must disappear), via a relative path.
    std::fs::write(out.join("stray"), "x").unwrap();
    let c2 = lower(
        &quantized(&chain("other", 4, &[L::Dense(2, Activation::None)], 5)),
        &opts,
    )
    .unwrap();
    write_crate(&c2, &out).unwrap();
    assert_eq!(siblings(&out), ["Cargo.toml", "src"]);
    assert!(std::fs::read_to_string(out.join("Cargo.toml"))
        .unwrap()
        .contains("\"other\""));
    assert_eq!(siblings(&tmp.path().join("fw/board")), ["model"]);
}

#[test]
fn write_crate_refuses_foreign_directories_and_cleans_up_on_error() {
    let tmp = tempfile::tempdir().unwrap();
    let rt = fake_runtime(tmp.path());
    let opts = LowerOptions {
        runtime_path: rt.clone(),
        ..LowerOptions::default()
    };
    let c = lower(&tiny(), &opts).unwrap();

    // Not ours: left untouched.
    let precious = tmp.path().join("precious");
    std::fs::create_dir_all(&precious).unwrap();
    std::fs::write(precious.join("Cargo.toml"), "[package]\nname = \"mine\"\n").unwrap();
    let err = write_crate(&c, &precious).unwrap_err();
    assert!(err.to_string().contains("refusing to replace"), "{err}");
    assert_eq!(siblings(&precious), ["Cargo.toml"]);

    // An empty directory is fine.
    let empty = tmp.path().join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    write_crate(&c, &empty).unwrap();

    // A file that would escape the crate: error, and neither the target nor a temp dir remains.
    let mut bad = c.clone();
    bad.files.push(("../escape.rs".into(), String::new()));
    let target = tmp.path().join("bad");
    assert!(write_crate(&bad, &target).is_err());
    // A missing runtime: error before anything is written.
    let mut no_rt = c.clone();
    no_rt.runtime_path = tmp.path().join("nowhere");
    let err = write_crate(&no_rt, &target).unwrap_err();
    assert!(err.to_string().contains("bonsai-rt not found"), "{err}");
    assert_eq!(siblings(tmp.path()), ["empty", "precious", "rt"]);

    // A failing write over an existing generated crate keeps the old crate.
    write_crate(&c, &target).unwrap();
    let before = std::fs::read_to_string(target.join("src/lib.rs")).unwrap();
    assert!(write_crate(&bad, &target).is_err());
    assert_eq!(
        std::fs::read_to_string(target.join("src/lib.rs")).unwrap(),
        before
    );
    assert_eq!(siblings(tmp.path()), ["bad", "empty", "precious", "rt"]);
}

// ---------------------------------------------------------------------------------------------
// Building and running the generated crate

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .canonicalize()
        .unwrap()
}

/// Runs cargo in `dir` with a shared target directory under the workspace's `target/`, so that
/// `bonsai-rt` is compiled once across tests and runs.
fn cargo(dir: &Path, args: &[&str]) -> String {
    cargo_env(dir, args, &[])
}

fn cargo_env(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> String {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let out = Command::new(cargo)
        .args(args)
        .envs(env.iter().copied())
        .current_dir(dir)
        .env(
            "CARGO_TARGET_DIR",
            workspace_root().join("target/lower-test"),
        )
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_BUILD_TARGET")
        .output()
        .expect("cannot run cargo");
    assert!(
        out.status.success(),
        "cargo {args:?} in {} failed:\n{}",
        dir.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

struct Check {
    /// `cargo build`, `cargo test --doc` and `cargo doc` (warnings denied) of the model crate.
    host_build: bool,
    /// [`LowerOptions::storage`] for the generated crate.
    storage: StoragePolicy,
}

const AUTO: StoragePolicy = StoragePolicy::Auto;

/// Lowers `m`, writes it (replacing the previous run's crate), checks it with clippy, builds it for thumbv6m (checking that `infer`
/// and `predict` contain no panic path), and runs it through a throwaway harness against
/// [`interp::int8::run`]. Returns the generated lib.rs.
fn end_to_end(case: &str, m: &Model, check: Check) -> String {
    // Fixed directories (not temporary ones) under the shared target directory: a crate at a new
    // path is a new package to cargo, and every run would leave megabytes of artifacts behind.
    let dir = workspace_root().join("target/lower-test/crates").join(case);
    std::fs::create_dir_all(&dir).unwrap();
    let opts = LowerOptions {
        storage: check.storage,
        ..LowerOptions::default()
    };
    let lowered = lower(m, &opts).unwrap();
    let model_dir = dir.join("model");
    write_crate(&lowered, &model_dir).unwrap();

    cargo(&model_dir, &["clippy", "--quiet", "--", "-D", "warnings"]);
    // The per-layer probe build (firmware-only: it does not link without the hook) must be as clean.
    cargo(
        &model_dir,
        &[
            "clippy",
            "--quiet",
            "--features",
            "layer-probes",
            "--",
            "-D",
            "warnings",
        ],
    );
    if check.host_build {
        cargo(&model_dir, &["build", "--quiet"]);
        cargo(&model_dir, &["test", "--quiet", "--doc"]);
        cargo_env(
            &model_dir,
            &["doc", "--quiet", "--no-deps"],
            &[("RUSTDOCFLAGS", "-D warnings")],
        );
    }

    // Cortex-M0, optimised as the firmware is; keep the assembly to inspect `infer`.
    let asm = dir.join("model.s");
    cargo(
        &model_dir,
        &[
            "rustc",
            "--quiet",
            "--release",
            "--lib",
            "--target",
            "thumbv6m-none-eabi",
            "--",
            "-C",
            "codegen-units=1",
            &format!("--emit=asm={}", asm.display()),
        ],
    );
    let asm = std::fs::read_to_string(&asm).unwrap();
    for f in ["infer", "predict"] {
        check_no_panic(&asm, f);
    }

    // The harness: infer + predict on literal inputs, with a dirty arena and output.
    let inputs = int8_inputs(m);
    let harness = dir.join("harness");
    std::fs::create_dir_all(harness.join("src")).unwrap();
    std::fs::write(
        harness.join("Cargo.toml"),
        format!(
            "[package]\nname = \"lower-harness-{case}\"\nversion = \"0.1.0\"\nedition = \"2021\"\npublish = false\n\n\
             [dependencies]\nbonsai-model = {{ path = \"../model\" }}\n\n[workspace]\n"
        ),
    )
    .unwrap();
    let literals: Vec<String> = inputs.iter().map(|v| format!("{v:?}")).collect();
    std::fs::write(
        harness.join("src/main.rs"),
        format!(
            "use bonsai_model as m;\n\
             const INPUTS: [[i8; m::INPUT_LEN]; {n}] = [{lits}];\n\
             fn main() {{\n\
             \x20   let mut arena = [0x5au8; m::ARENA_BYTES];\n\
             \x20   for input in &INPUTS {{\n\
             \x20       let mut out = [0x33i8; m::OUTPUT_LEN];\n\
             \x20       m::infer(input, &mut out, &mut arena);\n\
             \x20       let class = m::predict(input, &mut arena);\n\
             \x20       let vals: Vec<String> = out.iter().map(|v| v.to_string()).collect();\n\
             \x20       println!(\"OUT {{class}} {{}}\", vals.join(\" \"));\n\
             \x20   }}\n\
             \x20   println!(\"META {{}} {{}} {{}} {{}} {{}} {{}} {{}}\", m::INPUT_LEN, m::OUTPUT_LEN, m::ARENA_BYTES,\n\
             \x20       m::INPUT_SCALE.to_bits(), m::INPUT_ZERO_POINT, m::OUTPUT_SCALE.to_bits(), m::OUTPUT_ZERO_POINT);\n\
             \x20   println!(\"CLASSES {{:?}}\", m::CLASS_NAMES);\n\
             }}\n",
            n = inputs.len(),
            lits = literals.join(", ")
        ),
    )
    .unwrap();
    let stdout = cargo(&harness, &["run", "--quiet"]);

    let mut lines = stdout.lines();
    for (i, input) in inputs.iter().enumerate() {
        let expected = interp::int8::run(m, input).unwrap();
        let line = lines.next().unwrap();
        let mut parts = line.split(' ');
        assert_eq!(parts.next(), Some("OUT"));
        let class: usize = parts.next().unwrap().parse().unwrap();
        let found: Vec<i8> = parts.map(|p| p.parse().unwrap()).collect();
        assert_eq!(found, expected, "{case}: vector {i} ({input:?})");
        let best = *expected.iter().max().unwrap();
        assert_eq!(
            class,
            expected.iter().position(|&v| v == best).unwrap(),
            "{case}: vector {i}"
        );
    }
    let qin = m.tensor(m.inputs[0]).quant.unwrap();
    let qout = m.tensor(m.outputs[0]).quant.unwrap();
    assert_eq!(
        lines.next().unwrap(),
        format!(
            "META {} {} {} {} {} {} {}",
            m.input_len(),
            m.output_len(),
            lowered.arena_bytes,
            qin.scale.to_bits(),
            qin.zero_point,
            qout.scale.to_bits(),
            qout.zero_point
        )
    );
    let names = if m.class_names.is_empty() {
        (0..m.output_len()).map(|i| i.to_string()).collect()
    } else {
        m.class_names.clone()
    };
    assert_eq!(lines.next().unwrap(), format!("CLASSES {names:?}"));
    file(&lowered, "src/lib.rs").to_string()
}

/// The body of function `name` in rustc's assembly calls nothing that can panic: every call goes
/// to a kernel, a `bonsai_rt::arena` view, another function of the crate, or a memory builtin.
fn check_no_panic(asm: &str, name: &str) {
    let needle = format!("bonsai_model{}{name}", name.len());
    let lines: Vec<&str> = asm.lines().collect();
    let start = lines
        .iter()
        .position(|l| {
            l.contains(&needle) && l.ends_with(':') && !l.starts_with('.') && !l.starts_with('\t')
        })
        .unwrap_or_else(|| panic!("no `{name}` in the assembly:\n{asm}"));
    let body: Vec<&str> = lines[start..]
        .iter()
        .take_while(|l| !l.starts_with(".Lfunc_end"))
        .copied()
        .collect();
    let allowed = [
        "fully_connected_s8",
        "fully_connected_sparse_s8",
        "relu_s8",
        "requantize_s8",
        "conv2d",
        "pool_s8",
        "add_s8",
        "copy_s8",
        "as_i8",
        "argmax_s8",
        "bonsai_model",
        "__aeabi_mem",
        "memcpy",
        "memset",
    ];
    for l in &body {
        let t = l.trim();
        assert!(
            !t.contains("panic") && !t.contains("_fail"),
            "`{name}` has a panic path: {t}\n{}",
            body.join("\n")
        );
        let mut words = t.split_whitespace();
        let (op, target) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
        let call = matches!(op, "bl" | "blx" | "b");
        let local = target.starts_with(".L") || target.starts_with('r') || target == "lr";
        if call && !local {
            assert!(
                allowed.iter().any(|a| t.contains(a)),
                "`{name}` calls something unexpected: {t}\n{}",
                body.join("\n")
            );
        }
    }
}

#[test]
fn tiny_mlp_builds_lints_and_matches_the_integer_reference() {
    let mut m = tiny();
    // Names that need escaping in Rust, TOML and Markdown.
    m.name = "tiny \"q\" \\ `mlp` | x".into();
    m.class_names = vec!["a \"quoted\" | pipe".into(), "b\\nl\n€".into()];
    end_to_end(
        "tiny",
        &m,
        Check {
            host_build: true,
            storage: AUTO,
        },
    );
}

#[test]
fn three_layers_with_a_standalone_relu() {
    let m = quantized(&chain(
        "three",
        10,
        &[
            L::Dense(8, Activation::None),
            L::Relu,
            L::Dense(6, Activation::Relu),
            L::Dense(3, Activation::None),
        ],
        11,
    ));
    let lib = end_to_end(
        "three",
        &m,
        Check {
            host_build: false,
            storage: AUTO,
        },
    );
    assert!(lib.contains("ReLU in place on arena["), "{lib}");
    assert!(lib.contains("relu_s8(out, "), "{lib}");
    // Buffers 8 (steps 0-2, the ReLU in place) and 6 (2-3) are live together.
    assert!(lib.contains("pub const ARENA_BYTES: usize = 14;"), "{lib}");
}

#[test]
fn last_op_relu_applies_in_place_on_output() {
    let m = quantized(&chain(
        "tail",
        7,
        &[
            L::Dense(5, Activation::Relu),
            L::Dense(4, Activation::None),
            L::Relu,
            L::Relu,
        ],
        12,
    ));
    let lib = end_to_end(
        "tail",
        &m,
        Check {
            host_build: false,
            storage: AUTO,
        },
    );
    assert!(lib.contains("relu_s8(output, "), "{lib}");
    assert!(lib.contains(", output);"), "{lib}");
}

#[test]
fn first_op_relu_and_long_ping_pong() {
    let m = quantized(&chain(
        "pingpong",
        6,
        &[
            L::Relu,
            L::Dense(8, Activation::None),
            L::Dense(7, Activation::Relu),
            L::Dense(5, Activation::None),
            L::Dense(4, Activation::None),
        ],
        13,
    ));
    let lib = end_to_end(
        "pingpong",
        &m,
        Check {
            host_build: false,
            storage: AUTO,
        },
    );
    assert!(lib.contains("copy_s8(input, out);"), "{lib}");
}

#[test]
fn single_layer_and_relu_only_models_need_no_arena() {
    let m = quantized(&chain("single", 5, &[L::Dense(3, Activation::Relu)], 14));
    let lib = end_to_end(
        "single",
        &m,
        Check {
            host_build: false,
            storage: AUTO,
        },
    );
    assert!(lib.contains("pub const ARENA_BYTES: usize = 0;"), "{lib}");

    let mut m = quantized(&chain("relus", 5, &[L::Relu], 15));
    m.class_names = vec![];
    let lib = end_to_end(
        "relus",
        &m,
        Check {
            host_build: false,
            storage: AUTO,
        },
    );
    assert!(lib.contains("copy_s8(input, output);"), "{lib}");
    assert!(!lib.contains("mod weights"), "{lib}");
}

// ---------------------------------------------------------------------------------------------
// Sparse storage

use super::sparse::{self as sp, RowLenWidth, SparseWeights};

/// Redefines Dense node `node` of float model `m`: connection `(o, j)` keeps weight `w` when
/// `f(o, j)` is `Some(w)` and is pruned (mask off, weight exactly 0) when it is `None`.
fn set_connections(m: &mut Model, node: usize, mut f: impl FnMut(usize, usize) -> Option<f32>) {
    let Op::Dense(d) = &mut m.nodes[node].op else {
        panic!("node {node} is not Dense")
    };
    let n_in = d.in_features;
    for i in 0..d.weight.len() {
        let w = f(i / n_in, i % n_in);
        d.mask.set(i, w.is_some());
        d.weight[i] = w.unwrap_or(0.0);
    }
}

/// 600 → 64 → 32 → 10 at about 10 % density, with rows that stress the sparse format:
///
/// * layer 0 (600 inputs): empty rows; rows whose only nonzeros are 587 columns apart (two
///   fillers) or whose single nonzero is column 599 (two fillers before the first entry); a row
///   with nonzeros at columns 0, 255 and 511 (steps 0, 255 and 256: exactly one filler); two
///   full rows (600 entries, so row lengths need u16);
/// * layer 1: every 8th row empty, the rest random;
/// * layer 2: random at 10 %, or every connection when `dense_head` (Auto then keeps it dense).
fn sparse_model(name: &str, dense_head: bool) -> Model {
    let mut m = chain(
        name,
        600,
        &[
            L::Dense(64, Activation::Relu),
            L::Dense(32, Activation::Relu),
            L::Dense(10, Activation::None),
        ],
        21,
    );
    let mut rng = Lcg(77);
    let mut random = move |p: f32| {
        let keep = rng.next() * 0.5 + 0.5 < p;
        let w = rng.next();
        keep.then_some(if w.abs() < 0.05 { 0.5 } else { w })
    };
    set_connections(&mut m, 0, |o, j| match o % 9 {
        _ if o == 5 || o == 50 => Some(if j % 2 == 0 { 0.3 } else { -0.2 }),
        0 => None,
        1 => [3, 590].contains(&j).then_some(0.8),
        2 => (j == 599).then_some(-0.9),
        3 => [0, 255, 511].contains(&j).then_some(0.6),
        _ => random(0.1),
    });
    set_connections(
        &mut m,
        1,
        |o, _| if o % 8 == 0 { None } else { random(0.1) },
    );
    set_connections(&mut m, 2, |_, _| {
        if dense_head {
            Some(random(1.0).unwrap_or(0.5))
        } else {
            random(0.1)
        }
    });
    m.validate().unwrap();
    m
}

/// Row-major weights with a fraction `density` of nonzeros, values in ±1..=127.
fn random_weights(in_len: usize, out_len: usize, density: f32, seed: u64) -> Vec<i8> {
    let mut rng = Lcg(seed);
    (0..in_len * out_len)
        .map(|_| {
            let keep = rng.next() * 0.5 + 0.5 < density;
            let w = (rng.next() * 127.0) as i8;
            if keep {
                if w == 0 {
                    1
                } else {
                    w
                }
            } else {
                0
            }
        })
        .collect()
}

#[test]
fn sparse_encoding_of_gaps_and_row_starts() {
    // One row per case, 600 columns: nonzeros at the given columns.
    type Case = (&'static [usize], &'static [(i8, u8)]);
    let cases: [Case; 7] = [
        (&[], &[]),
        (&[0], &[(1, 0)]),
        (&[255], &[(1, 255)]),
        (&[256], &[(0, 255), (1, 1)]),
        (&[599], &[(0, 255), (0, 255), (1, 89)]),
        (&[0, 255, 511], &[(1, 0), (1, 255), (0, 255), (1, 1)]),
        (&[2, 3, 590], &[(1, 2), (1, 1), (0, 255), (0, 255), (1, 77)]),
    ];
    for (cols, expected) in cases {
        let mut row = vec![0i8; 600];
        for &c in cols {
            row[c] = 1;
        }
        let e = SparseWeights::encode(&row, 600, 1);
        assert_eq!(e.entries, expected, "{cols:?}");
        assert_eq!(e.row_lens, [expected.len()]);
        assert_eq!(e.nonzeros, cols.len());
        assert_eq!(e.fillers(), expected.len() - cols.len());
        assert_eq!(e.decode(600), row);
        assert_eq!(e.bytes(), 2 * expected.len() + 1);
    }
    // No inputs at all.
    let e = SparseWeights::encode(&[], 0, 3);
    assert_eq!((e.entries.len(), e.row_lens.clone()), (0, vec![0, 0, 0]));
}

#[test]
fn sparse_encoding_round_trips_and_picks_the_row_length_width() {
    for (in_len, out_len, density, seed) in [
        (784, 300, 0.02, 1),
        (784, 30, 0.3, 2),
        (1000, 7, 0.005, 3),
        (5, 4, 0.5, 4),
    ] {
        let w = random_weights(in_len, out_len, density, seed);
        let e = SparseWeights::encode(&w, in_len, out_len);
        assert_eq!(e.decode(in_len), w);
        assert_eq!(e.nonzeros, w.iter().filter(|&&x| x != 0).count());
        assert!(e.entries.iter().all(|&(w, d)| w != 0 || d == 255));
    }
    // 255 entries fit u8 counts, 256 need u16.
    let e = SparseWeights::encode(&vec![3i8; 255], 255, 1);
    assert_eq!(
        (e.row_len_width(), e.bytes()),
        (RowLenWidth::U8, 2 * 255 + 1)
    );
    let e = SparseWeights::encode(&vec![3i8; 512], 256, 2);
    assert_eq!(
        (e.row_len_width(), e.bytes()),
        (RowLenWidth::U16, 2 * 512 + 4)
    );
}

/// Bytes per nonzero of a 784 × 300 layer, against the information-theoretic floor
/// (1 B + H(p)/p bits) and TFLM's 1 B + 1 bit per element.
#[test]
fn bytes_per_nonzero_of_a_784_by_300_layer() {
    for (density, max_bytes_per_nz) in [(0.02, 2.1), (0.05, 2.05), (0.10, 2.03)] {
        let w = random_weights(784, 300, density, 5);
        let e = SparseWeights::encode(&w, 784, 300);
        let per_nz = e.bytes() as f64 / e.nonzeros as f64;
        let p = e.nonzeros as f64 / w.len() as f64;
        let h = -(p * p.log2() + (1.0 - p) * (1.0 - p).log2());
        let floor = 1.0 + h / p / 8.0;
        let tflm = 1.0 + 1.0 / p / 8.0;
        eprintln!(
            "784x300 at {:.1} %: {} nonzeros, {} fillers, {} B = {per_nz:.3} B/nonzero \
             (floor {floor:.3}, TFLM {tflm:.3}, dense {:.3})",
            100.0 * p,
            e.nonzeros,
            e.fillers(),
            e.bytes(),
            1.0 / p
        );
        assert!(per_nz < max_bytes_per_nz, "{per_nz}");
        assert!(per_nz > floor);
    }
}

#[test]
fn auto_storage_follows_flash_and_the_instruction_estimates() {
    let mut picked = vec![];
    for density in [0.0, 0.02, 0.05, 0.1, 0.3, 0.45, 0.55, 0.7, 1.0] {
        let w = random_weights(784, 300, density, 6);
        let c = sp::choose("fc", &w, 784, 300, AUTO).unwrap();
        let faster = sp::TARGETS
            .iter()
            .all(|t| t.sparse_insns(c.sparse.entries.len(), 300) <= t.dense_insns(784, 300));
        let expected = if c.sparse_bytes < c.dense_bytes && faster {
            Storage::Sparse
        } else {
            Storage::Dense
        };
        assert_eq!(c.storage, expected, "density {density}");
        assert_eq!(c.dense_insns.thumbv7em, THUMBV7EM.dense_insns(784, 300));
        assert_eq!(
            c.sparse_insns.thumbv6m,
            THUMBV6M.sparse_insns(c.sparse.entries.len(), 300)
        );
        picked.push(c.storage);
        // Forcing overrides the estimates.
        for (policy, storage) in [
            (StoragePolicy::Dense, Storage::Dense),
            (StoragePolicy::Sparse, Storage::Sparse),
        ] {
            assert_eq!(
                sp::choose("fc", &w, 784, 300, policy).unwrap().storage,
                storage
            );
        }
    }
    use Storage::{Dense as D, Sparse as S};
    // 45 %: sparse is smaller but, against the DSP dense kernel (2 instructions per MAC on
    // thumbv7em), estimated slower, so dense.
    assert_eq!(picked, [S, S, S, S, S, D, D, D, D]);
    // A tiny half-dense layer: 2 bytes per entry plus a count per row is no smaller than the
    // dense table, so it stays dense.
    let w = random_weights(4, 3, 0.5, 7);
    let c = sp::choose("fc", &w, 4, 3, AUTO).unwrap();
    assert!(c.sparse_bytes >= c.dense_bytes, "{c:?}");
    assert_eq!(c.storage, Storage::Dense);
}

#[test]
fn layer_infos_record_the_choice_and_add_up() {
    let m = quantized(&sparse_model("infos", true));
    let c = lower(&m, &LowerOptions::default()).unwrap();
    let storages: Vec<Storage> = c.layers.iter().map(|l| l.storage).collect();
    assert_eq!(
        storages,
        [Storage::Sparse, Storage::Sparse, Storage::Dense],
        "{:#?}",
        c.layers
    );
    assert_eq!(
        c.weight_bytes,
        c.layers.iter().map(|l| l.weight_bytes).sum::<usize>()
    );
    for (l, node) in c.layers.iter().zip([0, 1, 2]) {
        let Op::Dense(d) = &m.nodes[node].op else {
            panic!()
        };
        let q = d.quant.as_ref().unwrap();
        assert_eq!(
            (l.index, l.name.as_str()),
            (node, m.nodes[node].name.as_str())
        );
        assert_eq!((l.in_len, l.out_len), (d.in_features, d.out_features));
        assert_eq!(l.nonzeros, q.weight_q.iter().filter(|&&w| w != 0).count());
        assert_eq!(l.dense_weight_bytes, q.weight_q.len());
        let stored = match l.storage {
            Storage::Dense => l.dense_weight_bytes,
            Storage::Sparse => l.sparse_weight_bytes,
        };
        assert_eq!(l.weight_bytes, stored + 12 * l.out_len);
    }
    // Layer 0 needs fillers (long gaps) and u16 row lengths (two full rows).
    let l0 = &c.layers[0];
    assert!(l0.sparse_entries >= l0.nonzeros + 8, "{l0:?}");
    assert_eq!(
        l0.sparse_weight_bytes,
        2 * l0.sparse_entries + 2 * l0.out_len
    );
    let w = file(&c, "src/weights.rs");
    assert!(w.contains(
        "weights: SparseMatrix::new(600, &LAYER0_ENTRIES, RowLens::U16(&LAYER0_ROW_LENS)),"
    ));
    assert!(w.contains("static LAYER0_ROW_LENS: [u16; 64] = ["));
    assert!(w.contains("RowLens::U8(&LAYER1_ROW_LENS)"));
    assert!(w.contains(&format!(
        "static LAYER0_ENTRIES: [(i8, u8); {}] = [",
        l0.sparse_entries
    )));
    assert!(w.contains("pub(crate) static LAYER2: FcParams<'static> = FcParams {"));
    assert!(w.contains("static LAYER2_WEIGHTS: [i8; 320] = ["));
    let lib = file(&c, "src/lib.rs");
    assert!(
        lib.contains(&format!(
            "| sparse, {} entries ({} fillers) | {} |",
            l0.sparse_entries,
            l0.sparse_entries - l0.nonzeros,
            l0.weight_bytes
        )),
        "{lib}"
    );
    assert!(lib.contains(&format!("| dense | {} |", c.layers[2].weight_bytes)));

    // Forced dense: the same model with every table dense, as before sparse storage existed.
    let opts = LowerOptions {
        storage: StoragePolicy::Dense,
        ..LowerOptions::default()
    };
    let dense = lower(&m, &opts).unwrap();
    assert!(dense.layers.iter().all(|l| l.storage == Storage::Dense));
    assert_eq!(
        dense.weight_bytes,
        600 * 64 + 64 * 32 + 32 * 10 + 12 * (64 + 32 + 10)
    );
    assert!(!file(&dense, "src/lib.rs").contains("    fully_connected_sparse_s8("));
    assert!(!file(&dense, "src/lib.rs").contains("use bonsai_rt::kernels::fully_connected_sparse"));
    assert!(!file(&dense, "src/weights.rs").contains("Sparse"));
}

#[test]
fn high_density_models_stay_dense_under_auto() {
    // `chain` keeps 80 % of the connections.
    let m = quantized(&chain(
        "dense80",
        100,
        &[
            L::Dense(30, Activation::Relu),
            L::Dense(10, Activation::None),
        ],
        8,
    ));
    let c = lower(&m, &LowerOptions::default()).unwrap();
    assert!(c.layers.iter().all(|l| l.storage == Storage::Dense));
    assert!(c
        .layers
        .iter()
        .all(|l| l.sparse_weight_bytes > l.dense_weight_bytes));
}

#[test]
fn sparse_model_forced_sparse_matches_the_integer_reference() {
    let m = quantized(&sparse_model("sparse", false));
    let lib = end_to_end(
        "sparse",
        &m,
        Check {
            host_build: true,
            storage: StoragePolicy::Sparse,
        },
    );
    assert_eq!(
        lib.matches("    fully_connected_sparse_s8(").count(),
        3,
        "{lib}"
    );
    assert!(!lib.contains("fully_connected_s8"), "{lib}");
}

#[test]
fn sparse_model_auto_mixes_sparse_and_weighted_layers() {
    let m = quantized(&sparse_model("mixed", true));
    let lib = end_to_end(
        "mixed",
        &m,
        Check {
            host_build: false,
            storage: AUTO,
        },
    );
    assert_eq!(
        lib.matches("    fully_connected_sparse_s8(").count(),
        2,
        "{lib}"
    );
    assert_eq!(lib.matches("    fully_connected_s8(").count(), 1, "{lib}");
}
