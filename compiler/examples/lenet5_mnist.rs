//! Trains LeNet-5 (Caffe variant: conv 5x5x20 → maxpool 2 → conv 5x5x50 → maxpool 2 → flatten →
//! fc 500 ReLU → fc 10) on MNIST with the project's trainer and prints seconds per epoch and
//! accuracies: the figure to compare with the ~5.5 s/epoch measured for burn's flex backend.
//!
//! `target/release/examples/lenet5_mnist [MNIST_DIR] [EPOCHS] [BATCH]`
//! (default `../shared/data/mnist`, 3 epochs, batch 64). Build it with the workspace's test
//! profile (`cargo test --release --workspace --no-run`) so burn is not rebuilt.

use anyhow::{Context, Result};
use bonsai::data::{self, DataSpec};
use bonsai::ir::{Activation, Conv2d, Dense, Model, Op, Pool};
use bonsai::train::{self, Samples, TrainConfig};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::time::Instant;

/// He-uniform weights for `n` connections of fan-in `fan_in`.
fn he(rng: &mut ChaCha8Rng, n: usize, fan_in: usize) -> Vec<f32> {
    let bound = (6.0 / fan_in as f64).sqrt() as f32;
    (0..n).map(|_| rng.random_range(-bound..bound)).collect()
}

fn lenet5(train: &data::Dataset, pre: bonsai::ir::Preprocess, seed: u64) -> Model {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut m = Model::with_input("lenet5", vec![28, 28, 1], pre, train.class_names.clone());
    let conv = |rng: &mut ChaCha8Rng, cin: usize, cout: usize| {
        Conv2d::new(
            cin,
            cout,
            [5, 5],
            [1, 1],
            [0; 4],
            1,
            he(rng, cout * 25 * cin, 25 * cin),
            vec![0.0; cout],
            Activation::None,
        )
    };
    let x = m.inputs[0];
    let x = m.add_node(
        "conv1",
        Op::Conv2d(conv(&mut rng, 1, 20)),
        vec![x],
        vec![24, 24, 20],
    );
    let x = m.add_node(
        "pool1",
        Op::MaxPool(Pool::square(2)),
        vec![x],
        vec![12, 12, 20],
    );
    let x = m.add_node(
        "conv2",
        Op::Conv2d(conv(&mut rng, 20, 50)),
        vec![x],
        vec![8, 8, 50],
    );
    let x = m.add_node(
        "pool2",
        Op::MaxPool(Pool::square(2)),
        vec![x],
        vec![4, 4, 50],
    );
    let x = m.add_node("flatten", Op::Flatten, vec![x], vec![800]);
    let fc1 = Dense::new(
        800,
        500,
        he(&mut rng, 800 * 500, 800),
        vec![0.0; 500],
        Activation::Relu,
    );
    let x = m.add_node("fc1", Op::Dense(fc1), vec![x], vec![500]);
    let fc2 = Dense::new(
        500,
        10,
        he(&mut rng, 500 * 10, 500),
        vec![0.0; 10],
        Activation::None,
    );
    let y = m.add_node("fc2", Op::Dense(fc2), vec![x], vec![10]);
    m.outputs.push(y);
    m
}

/// CPU seconds used by this process so far (all threads), from `/proc/self/stat`; None off
/// Linux. Wall time alone misleads on a shared machine.
fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
    Some(ticks / 100.0)
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let dir = args
        .first()
        .map(String::as_str)
        .unwrap_or("../shared/data/mnist");
    let epochs: usize = args.get(1).map(|s| s.parse()).transpose()?.unwrap_or(3);
    let batch: usize = args.get(2).map(|s| s.parse()).transpose()?.unwrap_or(64);

    let spec: DataSpec = format!("mnist:{dir}").parse()?;
    let splits = data::load(&spec, 1).with_context(|| format!("loading MNIST from {dir}"))?;
    let pre = data::fit_preprocess(&spec, &splits.train);
    let (tr, va, te) = (
        Samples::from_dataset(&splits.train, &pre),
        Samples::from_dataset(&splits.val, &pre),
        Samples::from_dataset(&splits.test, &pre),
    );
    let mut model = lenet5(&splits.train, pre, 1);
    model.validate()?;
    println!(
        "LeNet-5: {} params; train {} / val {} / test {} images; batch {batch}",
        model.stats().params_total,
        tr.len(),
        va.len(),
        te.len()
    );
    let cfg = TrainConfig {
        max_epochs: epochs,
        batch_size: batch,
        learning_rate: 1e-3,
        patience: epochs,
        seed: 1,
        ..TrainConfig::default()
    };
    let mut last = (Instant::now(), cpu_seconds());
    let start = last.0;
    train::train(&mut model, &tr, &va, &cfg, |log| {
        let now = (Instant::now(), cpu_seconds());
        let cpu = match (now.1, last.1) {
            (Some(b), Some(a)) => format!("{:.2} s CPU", b - a),
            _ => "CPU time unknown".into(),
        };
        println!(
            "epoch {}: {:.2} s wall, {cpu} (training + validation), loss {:.4}, val acc {:.2}%",
            log.epoch,
            (now.0 - last.0).as_secs_f64(),
            log.train_loss,
            100.0 * log.val_accuracy
        );
        last = now;
    })?;
    let total = start.elapsed().as_secs_f64();
    let t = Instant::now();
    let test_acc = train::float_accuracy(&model, &te);
    println!(
        "total {total:.1} s for {epochs} epochs; test accuracy {:.2}% ({} images, {:.2} s to evaluate)",
        100.0 * test_acc,
        te.len(),
        t.elapsed().as_secs_f64()
    );
    Ok(())
}
