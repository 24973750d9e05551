use super::*;
use crate::ir::{Op, Preprocess};
use crate::synth::seed::mlp;

/// Two Gaussian-ish blobs per class in 6 dimensions, deterministic.
fn blobs(n: usize, seed: u64) -> Samples {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut x = Vec::new();
    let mut y = Vec::new();
    for i in 0..n {
        let c = (i % 3) as u32;
        for j in 0..6 {
            let centre = if j as u32 % 3 == c { 1.5 } else { -0.5 };
            x.push(centre + rand::Rng::random_range(&mut rng, -0.6..0.6));
        }
        y.push(c);
    }
    Samples { x, y, dim: 6 }
}

fn seed_model(seed: u64) -> Model {
    let names = vec!["a".into(), "b".into(), "c".into()];
    mlp("blobs", 6, &[8], names, Preprocess::identity(), seed)
}

fn quick() -> TrainConfig {
    TrainConfig {
        max_epochs: 15,
        batch_size: 16,
        learning_rate: 1e-2,
        patience: 5,
        seed: 3,
        ..TrainConfig::default()
    }
}

#[test]
fn learns_a_separable_problem() {
    let mut m = seed_model(1);
    let before = float_accuracy(&m, &blobs(90, 2));
    let report = train(&mut m, &blobs(300, 1), &blobs(90, 2), &quick(), |_| {}).unwrap();
    let after = float_accuracy(&m, &blobs(90, 2));
    assert!(after >= 0.95, "accuracy {after} (before {before})");
    assert_eq!(report.best_val_accuracy, after);
    assert!(report.history[0].train_loss > report.history.last().unwrap().train_loss);
}

#[test]
fn cosine_schedule_anneals_from_the_rate_to_its_floor() {
    let s = LrSchedule::Cosine { floor: 0.01 };
    assert_eq!(s.rate(2e-3, 0, 100), 2e-3);
    assert!((s.rate(2e-3, 50, 100) - 0.5 * (2e-3 + 2e-5)).abs() < 1e-12);
    assert!((s.rate(2e-3, 100, 100) - 2e-5).abs() < 1e-12);
    let rates: Vec<f64> = (0..=100).map(|k| s.rate(1.0, k, 100)).collect();
    assert!(rates.windows(2).all(|w| w[1] <= w[0]));
    assert_eq!(LrSchedule::Constant.rate(2e-3, 70, 100), 2e-3);
    assert_eq!("cosine".parse::<LrSchedule>(), Ok(s));
    assert!("linear".parse::<LrSchedule>().is_err());
}

#[test]
fn weight_decay_shrinks_the_weights() {
    let norm = |m: &Model| -> f64 {
        m.nodes
            .iter()
            .filter_map(|n| n.op.weights())
            .flat_map(|w| w.weight.iter())
            .map(|&x| f64::from(x) * f64::from(x))
            .sum()
    };
    let cfg = |weight_decay| TrainConfig {
        patience: 100,
        weight_decay,
        ..quick()
    };
    let (mut plain, mut decayed) = (seed_model(1), seed_model(1));
    train(&mut plain, &blobs(120, 1), &blobs(30, 2), &cfg(0.0), |_| {}).unwrap();
    train(
        &mut decayed,
        &blobs(120, 1),
        &blobs(30, 2),
        &cfg(0.05),
        |_| {},
    )
    .unwrap();
    assert!(
        norm(&decayed) < 0.9 * norm(&plain),
        "{} vs {}",
        norm(&decayed),
        norm(&plain)
    );
}

#[test]
fn label_smoothing_spreads_a_of_the_target_over_the_classes() {
    // -Σ_k t_k ln p_k with t = 1 - a + a/K at the label and a/K elsewhere (K = 3).
    let device = Device::flex();
    let z = [2.0f32, -1.0, 0.5];
    let lse = z.iter().map(|&v| f64::from(v).exp()).sum::<f64>().ln();
    let logp: Vec<f64> = z.iter().map(|&v| f64::from(v) - lse).collect();
    let expected = |a: f64| {
        -(0..3)
            .map(|k| (if k == 1 { 1.0 - a + a / 3.0 } else { a / 3.0 }) * logp[k])
            .sum::<f64>()
    };
    for a in [0.0, 0.3] {
        let logits = Tensor::<2>::from_data(TensorData::new(z.to_vec(), [1, 3]), &device);
        let label = Tensor::<1, Int>::from_data(TensorData::new(vec![1i64], [1]), &device);
        let loss = cross_entropy(a, &device)
            .forward(logits, label)
            .into_scalar::<f32>();
        assert!(
            (f64::from(loss) - expected(a)).abs() < 1e-5,
            "a = {a}: {loss} vs {}",
            expected(a)
        );
    }
}

#[test]
fn same_seed_same_weights() {
    let mut a = seed_model(1);
    let mut b = seed_model(1);
    train(&mut a, &blobs(120, 1), &blobs(30, 2), &quick(), |_| {}).unwrap();
    train(&mut b, &blobs(120, 1), &blobs(30, 2), &quick(), |_| {}).unwrap();
    assert_eq!(a, b);
}

#[test]
fn dormant_connections_stay_zero_and_active_ones_train() {
    let mut m = seed_model(1);
    if let Op::Dense(d) = &mut m.nodes[0].op {
        for i in (0..d.weight.len()).step_by(2) {
            d.mask.set(i, false);
            d.weight[i] = 0.0;
        }
    }
    let before = m.clone();
    train(&mut m, &blobs(120, 1), &blobs(30, 2), &quick(), |_| {}).unwrap();
    m.validate().unwrap(); // validation rejects nonzero dormant weights
    let (Op::Dense(d0), Op::Dense(d1)) = (&before.nodes[0].op, &m.nodes[0].op) else {
        panic!()
    };
    let moved = (1..d0.weight.len())
        .step_by(2)
        .filter(|&i| d0.weight[i] != d1.weight[i])
        .count();
    assert!(
        moved > d0.weight.len() / 4,
        "only {moved} active weights moved"
    );
}

#[test]
fn bad_shapes_and_labels_are_errors() {
    let mut m = seed_model(1);
    let mut s = blobs(10, 1);
    s.y[3] = 7;
    let err = train(&mut m, &s, &blobs(5, 2), &quick(), |_| {}).unwrap_err();
    assert!(err.to_string().contains("label 7 is out of range"), "{err}");
    let s = Samples {
        x: vec![0.0; 8],
        y: vec![0, 1],
        dim: 4,
    };
    let err = train(&mut m, &s, &s, &quick(), |_| {}).unwrap_err();
    assert!(matches!(err, TrainError::Shape { .. }));
}

#[test]
fn dense_gradient_matches_finite_differences_at_dormant_positions() {
    let mut m = seed_model(4);
    if let Op::Dense(d) = &mut m.nodes[1].op {
        d.mask.set(5, false);
        d.weight[5] = 0.0;
    }
    let s = blobs(16, 9);
    let g = weight_gradients(&m, &s, 16, 1);
    // mean cross-entropy loss in f64 through the float reference
    let loss = |m: &Model| -> f64 {
        (0..s.len())
            .map(|i| {
                let z = crate::interp::float::run(m, s.row(i)).unwrap();
                let mx = z.iter().cloned().fold(f32::MIN, f32::max) as f64;
                let lse = z.iter().map(|&v| (v as f64 - mx).exp()).sum::<f64>().ln() + mx;
                lse - z[s.y[i] as usize] as f64
            })
            .sum::<f64>()
            / s.len() as f64
    };
    let h = 1e-3;
    let mut plus = m.clone();
    if let Op::Dense(d) = &mut plus.nodes[1].op {
        d.weight[5] = h as f32; // probing the dormant connection directly
    }
    let mut minus = m.clone();
    if let Op::Dense(d) = &mut minus.nodes[1].op {
        d.weight[5] = -h as f32;
    }
    let fd = (loss(&plus) - loss(&minus)) / (2.0 * h);
    assert!(
        fd.abs() > 1e-4,
        "the test needs a nonzero gradient, got {fd}"
    );
    assert!(
        (g[1][5] as f64 - fd).abs() < 1e-3 + 1e-2 * fd.abs(),
        "{} vs {fd}",
        g[1][5]
    );
}

/// 6x6x1 images (HWC, flat): a bright 2x2 blob whose column band (left, middle, right) is the
/// class, at a random row, on noise.
fn blob_images(n: usize, seed: u64) -> Samples {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut x = Vec::with_capacity(n * 36);
    let mut y = Vec::with_capacity(n);
    for i in 0..n {
        let c = i % 3;
        let row = rand::Rng::random_range(&mut rng, 0..5usize);
        let mut img: Vec<f32> = (0..36)
            .map(|_| rand::Rng::random_range(&mut rng, -0.3..0.3))
            .collect();
        for dy in 0..2 {
            for dx in 0..2 {
                img[(row + dy) * 6 + 2 * c + dx] += 1.5;
            }
        }
        x.extend(img);
        y.push(c as u32);
    }
    Samples { x, y, dim: 36 }
}

/// Strided convolution with asymmetric ("SAME", stride 2) padding and a depthwise multiplier of
/// 2, a max pool with padding, a Dense reading an image directly (no Flatten) and an Add of
/// images: the layouts and paddings tiny_cnn does not cover.
pub(crate) fn strided_cnn() -> Model {
    use crate::ir::{Activation, Conv2d, Dense, Pool};
    let det = |k: usize, scale: f32| ((k * 29 + 7) % 19) as f32 / 19.0 * scale - scale / 2.0;
    let mut m = Model::with_input("strided", vec![8, 8, 2], Preprocess::identity(), vec![]);
    let c1 = Conv2d::new(
        2,
        3,
        [3, 3],
        [2, 2],
        [0, 0, 1, 1],
        1,
        (0..3 * 9 * 2).map(|k| det(k, 1.0)).collect(),
        vec![0.1, -0.1, 0.2],
        Activation::None,
    );
    let a = m.add_node("c1", Op::Conv2d(c1), vec![m.inputs[0]], vec![4, 4, 3]);
    let mut dw = Conv2d::new(
        3,
        6,
        [2, 3],
        [1, 1],
        [1, 1, 0, 1],
        3,
        (0..6 * 6).map(|k| det(k + 3, 1.5)).collect(),
        vec![0.0; 6],
        Activation::Relu6,
    );
    dw.mask.set(4, false);
    dw.weight[4] = 0.0;
    let b = m.add_node("dw", Op::Conv2d(dw), vec![a], vec![4, 4, 6]);
    let r = m.add_node("relu", Op::Relu, vec![b], vec![4, 4, 6]);
    let s = m.add_node("sum", Op::Add, vec![b, r], vec![4, 4, 6]);
    let p = Pool {
        kernel: [3, 3],
        stride: [2, 2],
        padding: [1, 0, 1, 0],
    };
    let p = m.add_node("mp", Op::MaxPool(p), vec![s], vec![2, 1, 6]);
    let d = Dense::new(
        12,
        4,
        (0..48).map(|k| det(k + 1, 1.0)).collect(),
        vec![0.0; 4],
        Activation::None,
    );
    let y = m.add_node("fc", Op::Dense(d), vec![p], vec![4]);
    m.outputs.push(y);
    m.validate().unwrap();
    m
}

fn max_forward_diff(m: &Model, inputs: &Samples) -> f32 {
    let device = Device::flex().autodiff();
    let (net, masks) = Net::from_model(m, &device);
    let x = Tensor::<2>::from_data(
        TensorData::new(inputs.x.clone(), [inputs.len(), inputs.dim]),
        &device,
    );
    let got = net.forward(m, &masks, x).into_data();
    let got = got.as_slice::<f32>().unwrap();
    let n_out = m.output_len();
    let mut worst = 0f32;
    for i in 0..inputs.len() {
        let want = crate::interp::float::run(m, inputs.row(i)).unwrap();
        for (a, b) in got[i * n_out..(i + 1) * n_out].iter().zip(&want) {
            worst = worst.max((a - b).abs());
        }
    }
    worst
}

fn random_samples(n: usize, dim: usize, seed: u64) -> Samples {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    Samples {
        x: (0..n * dim)
            .map(|_| rand::Rng::random_range(&mut rng, -2.0..2.0))
            .collect(),
        y: vec![0; n],
        dim,
    }
}

#[test]
fn conv_net_forward_matches_float_reference() {
    let m = crate::ir::tests::tiny_cnn();
    let d = max_forward_diff(&m, &random_samples(20, 36, 1));
    assert!(d < 1e-4, "tiny_cnn: max |diff| {d}");
    let m = strided_cnn();
    let d2 = max_forward_diff(&m, &random_samples(20, 128, 2));
    assert!(d2 < 1e-4, "strided_cnn: max |diff| {d2}");
    let m = crate::ir::tests::tiny_cnn_with_areas();
    let d3 = max_forward_diff(&m, &random_samples(20, 36, 3));
    assert!(d3 < 1e-4, "tiny_cnn with areas: max |diff| {d3}");
    eprintln!("net vs interp::float: tiny_cnn {d:e}, strided_cnn {d2:e}, with areas {d3:e}");
}

#[test]
fn area_importance_is_zero_outside_the_areas_and_ranks_what_is_inside() {
    let m = crate::ir::tests::tiny_cnn_with_areas();
    let imp = crate::train::area_importance(&m, &blob_images(64, 4), 16, 4);
    assert_eq!(imp.len(), 3, "conv1, dw2, fc");
    assert!(imp[2].is_none(), "a Dense layer has no area");
    for (k, node) in [(0, 0), (1, 2)] {
        let Op::Conv2d(c) = &m.nodes[node].op else {
            unreachable!()
        };
        let s = &m.tensor(m.nodes[node].output).shape;
        let v = imp[k].as_ref().unwrap();
        assert_eq!(v.len(), c.out_channels * s[0] * s[1]);
        for o in 0..c.out_channels {
            let a = c.area_of(o, s[0], s[1]);
            for y in 0..s[0] {
                for x in 0..s[1] {
                    let i = (o * s[0] + y) * s[1] + x;
                    assert!(v[i] >= 0.0);
                    if !a.contains(y, x) {
                        assert_eq!(v[i], 0.0, "node {node} channel {o} ({y}, {x})");
                    }
                }
            }
        }
        assert!(
            v.iter().any(|&g| g > 0.0),
            "node {node}: no position matters"
        );
    }
}

#[test]
fn write_back_of_an_untrained_net_is_the_identity() {
    let device = Device::flex().autodiff();
    for m in [
        crate::ir::tests::tiny_cnn(),
        strided_cnn(),
        crate::ir::tests::tiny_mlp(),
    ] {
        let (net, _) = Net::from_model(&m, &device);
        let mut back = m.clone();
        // Scramble first so that the comparison sees what write_back wrote.
        for node in &mut back.nodes {
            if let Some(lw) = node.op.weights_mut() {
                lw.weight.iter_mut().for_each(|w| *w = 9.0);
                lw.bias.iter_mut().for_each(|b| *b = 9.0);
            }
        }
        net.write_back(&mut back);
        assert_eq!(back, m, "{}", m.name);
    }
}

#[test]
fn conv_gradient_matches_finite_differences_at_dormant_and_active_positions() {
    let m = crate::ir::tests::tiny_cnn();
    let s = blob_images(12, 4);
    let g = weight_gradients(&m, &s, 12, 1);
    assert_eq!(g.len(), 3);
    assert_eq!(g[0].len(), 36);
    assert_eq!(g[1].len(), 36);
    assert_eq!(g[2].len(), 48);
    let loss = |m: &Model| -> f64 {
        (0..s.len())
            .map(|i| {
                let z = crate::interp::float::run(m, s.row(i)).unwrap();
                let mx = z.iter().cloned().fold(f32::MIN, f32::max) as f64;
                let lse = z.iter().map(|&v| (v as f64 - mx).exp()).sum::<f64>().ln() + mx;
                lse - z[s.y[i] as usize] as f64
            })
            .sum::<f64>()
            / s.len() as f64
    };
    let h = 1e-3f32;
    let mut checked = 0;
    // (weighted layer, node, IR weight index): conv1's dormant 5 and 13, active conv1 and
    // depthwise (node 2) weights.
    for (layer, node, idx) in [(0, 0, 5), (0, 0, 13), (0, 0, 7), (1, 2, 10), (1, 2, 33)] {
        let w0 = m.nodes[node].op.weights().unwrap().weight[idx];
        let at = |v: f32| {
            let mut p = m.clone();
            p.nodes[node].op.weights_mut().unwrap().weight[idx] = v;
            loss(&p)
        };
        let fd = (at(w0 + h) - at(w0 - h)) / (2.0 * h as f64);
        let got = g[layer][idx] as f64;
        assert!(
            (got - fd).abs() < 2e-3 + 2e-2 * fd.abs(),
            "node {node} weight {idx}: {got} vs finite difference {fd}"
        );
        checked += usize::from(fd.abs() > 1e-3);
    }
    assert!(checked >= 3, "too few nonzero gradients to compare");
}

#[test]
fn conv_net_learns_and_keeps_dormant_weights_zero() {
    let mut m = crate::ir::tests::tiny_cnn();
    m.class_names = vec!["left".into(), "middle".into(), "right".into()];
    let before = m.clone();
    let (tr, va) = (blob_images(240, 1), blob_images(60, 2));
    let cfg = TrainConfig {
        max_epochs: 12,
        batch_size: 16,
        learning_rate: 1e-2,
        patience: 6,
        seed: 5,
        ..TrainConfig::default()
    };
    let acc0 = float_accuracy(&m, &va);
    let report = train(&mut m, &tr, &va, &cfg, |_| {}).unwrap();
    m.validate().unwrap(); // nonzero dormant weights are invalid
    let acc = float_accuracy(&m, &va);
    assert!(acc >= 0.9, "accuracy {acc} (before {acc0})");
    assert_eq!(report.best_val_accuracy, acc);
    let (Op::Conv2d(c0), Op::Conv2d(c1)) = (&before.nodes[0].op, &m.nodes[0].op) else {
        panic!()
    };
    assert_eq!(c1.mask, c0.mask);
    let moved = (0..36)
        .filter(|&i| c0.mask.get(i) && c0.weight[i] != c1.weight[i])
        .count();
    assert!(moved >= 30, "only {moved} active conv weights moved");
}

#[test]
fn batched_accuracy_agrees_with_the_reference_interpreter() {
    let m = crate::ir::tests::tiny_cnn();
    // More samples than one evaluation batch, so the batching is exercised.
    let s = blob_images(300, 7);
    let fast = float_accuracy(&m, &s);
    assert_eq!(fast, float_accuracy_reference(&m, &s));
    let mlp = seed_model(2);
    let b = blobs(300, 3);
    assert_eq!(float_accuracy(&mlp, &b), float_accuracy_reference(&mlp, &b));
    assert!(fast > 0.0 && fast < 1.0, "degenerate accuracy {fast}");
}

#[test]
fn a_connection_regrown_at_zero_takes_its_first_step_against_the_dense_gradient() {
    // Regrowth turns dormant connections on at exactly zero; the next training call must move
    // them as it moves any active weight: Adam's first step is lr · sign(−g).
    let s = blobs(48, 5);
    let mut m = seed_model(6);
    if let Op::Dense(d) = &mut m.nodes[0].op {
        for i in (0..d.weight.len()).step_by(3) {
            d.weight[i] = 0.0; // "regrown": on in the mask, at zero
        }
    }
    let g = weight_gradients(&m, &s, s.len(), 1);
    let lr = 1e-3;
    let cfg = TrainConfig {
        max_epochs: 1,
        batch_size: s.len(),
        learning_rate: lr,
        ..quick()
    };
    train(&mut m, &s, &blobs(12, 7), &cfg, |_| {}).unwrap();
    let Op::Dense(d1) = &m.nodes[0].op else {
        panic!()
    };
    let mut checked = 0;
    for i in (0..d1.weight.len()).step_by(3) {
        if g[0][i].abs() < 1e-3 {
            continue;
        }
        let step = f64::from(d1.weight[i]);
        assert!(
            step * f64::from(g[0][i]) < 0.0,
            "weight {i}: step {step} along gradient {}",
            g[0][i]
        );
        assert!(
            (step.abs() - lr).abs() < 0.05 * lr,
            "weight {i}: |step| {} vs lr {lr}",
            step.abs()
        );
        checked += 1;
    }
    assert!(
        checked >= 5,
        "only {checked} regrown weights had a usable gradient"
    );
}

#[test]
fn a_shift_moves_every_pixel_and_fills_what_it_uncovers() {
    // 3 x 4 image, 2 channels: pixel (y, x) channel k holds 100y + 10x + k.
    let shift = Shift {
        max: 1,
        shape: [3, 4, 2],
        fill: -7.0,
    };
    let src: Vec<f32> = (0..3)
        .flat_map(|y| (0..4).flat_map(move |x| (0..2).map(move |k| (100 * y + 10 * x + k) as f32)))
        .collect();
    let mut dst = vec![0.0; src.len()];
    shift.apply(&src, 0, 0, &mut dst);
    assert_eq!(dst, src);
    // Down one row, left one column: output (y, x) reads input (y - 1, x + 1).
    shift.apply(&src, 1, -1, &mut dst);
    for y in 0..3 {
        for x in 0..4 {
            for k in 0..2 {
                let got = dst[(y * 4 + x) * 2 + k];
                let want = if y == 0 || x == 3 {
                    -7.0
                } else {
                    (100 * (y - 1) + 10 * (x + 1) + k) as f32
                };
                assert_eq!(got, want, "pixel ({y}, {x}) channel {k}");
            }
        }
    }
}

/// 5 x 5 images of a dot (class 0), a plus (class 1) or a 3 x 3 square (class 2) at the centre,
/// with pixel noise: a one-pixel shift keeps every shape inside the image.
fn shapes(n: usize, seed: u64) -> Samples {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut x = Vec::new();
    let mut y = Vec::new();
    for i in 0..n {
        let c = (i % 3) as u32;
        for r in 0..5i32 {
            for q in 0..5i32 {
                let (dr, dq) = ((r - 2).abs(), (q - 2).abs());
                let on = match c {
                    0 => dr + dq == 0,
                    1 => dr + dq <= 1,
                    _ => dr <= 1 && dq <= 1,
                };
                x.push(f32::from(u8::from(on)) + rand::Rng::random_range(&mut rng, -0.2..0.2));
            }
        }
        y.push(c);
    }
    Samples { x, y, dim: 25 }
}

/// [`quick`] with one-pixel shifts of images of `shape`, background 0.
fn shifted(shape: [usize; 3]) -> TrainConfig {
    TrainConfig {
        augment: Some(Shift {
            max: 1,
            shape,
            fill: 0.0,
        }),
        ..quick()
    }
}

#[test]
fn augmentation_trains_and_is_refused_for_the_wrong_geometry() {
    let cfg = shifted([5, 5, 1]);
    let names: Vec<String> = ["dot", "plus", "square"].map(String::from).to_vec();
    let seed = mlp("shapes", 25, &[8], names, Preprocess::identity(), 2);
    let mut m = seed.clone();
    let report = train(&mut m, &shapes(150, 1), &shapes(60, 2), &cfg, |_| {}).unwrap();
    assert!(report.best_val_accuracy > 0.9, "{report:?}");
    // The same seed and data without augmentation follow a different trajectory.
    let mut plain = seed.clone();
    train(
        &mut plain,
        &shapes(150, 1),
        &shapes(60, 2),
        &quick(),
        |_| {},
    )
    .unwrap();
    assert_ne!(plain, m);

    let wrong = shifted([2, 2, 1]);
    let e = train(
        &mut seed_model(2),
        &blobs(30, 1),
        &blobs(9, 2),
        &wrong,
        |_| {},
    )
    .unwrap_err();
    assert!(
        matches!(
            e,
            TrainError::Shape {
                expected: 4,
                found: 6
            }
        ),
        "{e}"
    );
}
