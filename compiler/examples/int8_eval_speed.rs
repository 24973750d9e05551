//! Times the golden int8 model against the sparse evaluator on one core and checks that they
//! agree on every output byte:
//!
//! ```text
//! cargo run --release -p bonsai --example int8_eval_speed -- MODEL.json MNIST_DIR [N]
//! ```
//!
//! MODEL.json is a quantized model of a synthesis run (its `model.json`), MNIST_DIR holds the
//! four MNIST IDX files (gzipped or not); the first N test images (default 2000) are run.

use anyhow::{bail, Context, Result};
use bonsai::data::{self, DataSpec};
use bonsai::interp::{int8, sparse::SparseInt8};
use bonsai::ir::Model;
use std::time::Instant;

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let [_, model_path, mnist_dir, rest @ ..] = &args[..] else {
        bail!("usage: int8_eval_speed MODEL.json MNIST_DIR [N]");
    };
    let text = std::fs::read_to_string(model_path).with_context(|| model_path.clone())?;
    let model: Model = serde_json::from_str(&text).with_context(|| model_path.clone())?;
    let test = data::load(&DataSpec::mnist(mnist_dir), 1)?.test;
    let n: usize = match rest.first() {
        Some(s) => s.parse().context("N")?,
        None => 2000,
    };
    let inputs: Vec<Vec<i8>> = (0..n.min(test.len()))
        .map(|i| bonsai::quant::quantize_input(&model, &model.preprocess.apply(test.sample(i))))
        .collect();

    let start = Instant::now();
    let golden = inputs
        .iter()
        .map(|x| int8::run(&model, x))
        .collect::<Result<Vec<_>, _>>()?;
    let golden_s = start.elapsed().as_secs_f64();

    let sparse_model = SparseInt8::new(&model);
    let start = Instant::now();
    let sparse = inputs
        .iter()
        .map(|x| sparse_model.run(x))
        .collect::<Result<Vec<_>, _>>()?;
    let sparse_s = start.elapsed().as_secs_f64();

    if golden != sparse {
        bail!("the sparse evaluator disagrees with the golden model on {model_path}");
    }
    println!(
        "{} images, outputs equal: golden {golden_s:.2} s, sparse {sparse_s:.2} s ({:.1}x)",
        inputs.len(),
        golden_s / sparse_s
    );
    Ok(())
}
