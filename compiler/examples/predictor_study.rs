//! Offline study of the search's accuracy predictor on a saved search state: no training, only
//! refits on the candidates the search already measured.
//!
//! ```text
//! cargo run --release --example predictor_study -- STATE.json SPACE.toml [--heldout]
//! ```
//!
//! For each predictor variant it reports cross-validated Spearman on the search's own training
//! points: out-of-fold predictions of the random `sample` candidates (the kind the held-out set
//! is drawn from), fitted on every `proposed` point plus the other folds. The held-out set is
//! scored only with `--heldout`, so a variant is chosen on the training points and the held-out
//! figure stays a test, not a fit.

use anyhow::{bail, Context, Result};
use bonsai::search::stats::spearman;
use bonsai::search::{
    state::{Role, SearchState},
    Candidate, Hardware, Predictor, PredictorParams, Space,
};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

struct Point {
    key: String,
    x: Vec<f64>,
    y: f64,
    role: Role,
}

/// Extra whole-model columns a variant may add: pools of each kind and the flattened width.
fn extras(c: &Candidate) -> Vec<f64> {
    let Candidate::Cnn { stages, fc } = c else {
        return vec![0.0; 4];
    };
    use bonsai::search::PoolKind;
    let max = stages.iter().filter(|s| s.pool == PoolKind::Max).count();
    let avg = stages.iter().filter(|s| s.pool == PoolKind::Avg).count();
    let side = 28usize >> (max + avg);
    let flat = side * side * stages.last().map_or(1, |s| s.channels);
    vec![
        max as f64,
        avg as f64,
        (flat as f64).ln(),
        fc.first().map_or(0.0, |&w| (w as f64).ln()),
    ]
}

struct Variant {
    name: &'static str,
    hp: PredictorParams,
    extra: bool,
    all_linear: bool,
}

fn design(p: &[&Point], v: &Variant, n_base: usize) -> (Vec<Vec<f64>>, Vec<usize>) {
    let x: Vec<Vec<f64>> = p
        .iter()
        .map(|q| {
            if v.extra {
                q.x.clone()
            } else {
                q.x[..n_base].to_vec()
            }
        })
        .collect();
    let n = x[0].len();
    let mut lin = Space::linear_columns(n_base);
    if v.extra {
        lin.extend(n_base..n);
    }
    if v.all_linear {
        lin = (0..n).collect();
    }
    (x, lin)
}

fn fit_predict(train: &[&Point], test: &[&Point], v: &Variant, n_base: usize) -> Result<Vec<f64>> {
    let (x, lin) = design(train, v, n_base);
    let y: Vec<f64> = train.iter().map(|q| q.y).collect();
    let (xt, _) = design(test, v, n_base);
    let p = Predictor::fit_with(&x, &y, &lin, 7, &v.hp)?;
    Ok(p.predict(&xt)?)
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 3 {
        bail!("usage: predictor_study STATE.json SPACE.toml [--heldout]");
    }
    let heldout = args.iter().any(|a| a == "--heldout");
    let residuals = args.iter().any(|a| a == "--residuals");
    let text = std::fs::read_to_string(&args[1]).with_context(|| args[1].clone())?;
    let state: SearchState = serde_json::from_str(&text).with_context(|| args[1].clone())?;
    let space = Space::load(std::path::Path::new(&args[2]))?;
    let mut n_base = 0;
    let points: Vec<Point> = state
        .evaluations
        .values()
        .filter(|e| e.metrics.trained && e.metrics.feasible)
        .map(|e| {
            let m = &e.metrics;
            let hw = Hardware {
                params: m.params,
                macs: m.macs,
                flash_bytes: m.flash_bytes,
                ram_bytes: m.ram_bytes,
                energy_uj: m.energy_uj,
                insns_predicted: m.insns_predicted,
                infeasible: None,
            };
            let mut x = space.features(&e.candidate, &hw);
            n_base = x.len();
            x.extend(extras(&e.candidate));
            Point {
                key: e.candidate.key(),
                x,
                y: m.val_accuracy,
                role: e.role,
            }
        })
        .collect();
    let fitted: Vec<&Point> = points.iter().filter(|p| p.role != Role::Heldout).collect();
    let samples: Vec<&Point> = fitted
        .iter()
        .copied()
        .filter(|p| p.role == Role::Sample)
        .collect();
    let proposed: Vec<&Point> = fitted
        .iter()
        .copied()
        .filter(|p| p.role == Role::Proposed)
        .collect();
    let held: Vec<&Point> = points.iter().filter(|p| p.role == Role::Heldout).collect();
    println!(
        "{} samples, {} proposed, {} held-out",
        samples.len(),
        proposed.len(),
        held.len()
    );
    let d = PredictorParams::default();
    let with = |f: &dyn Fn(&mut PredictorParams)| {
        let mut h = d.clone();
        f(&mut h);
        h
    };
    let variant = |name, hp, extra, all_linear| Variant {
        name,
        hp,
        extra,
        all_linear,
    };
    let variants = vec![
        variant("current", d.clone(), false, false),
        variant("ridge only", with(&|h| h.n_trees = 0), false, false),
        variant("alpha 3", with(&|h| h.ridge_alpha = 3.0), false, false),
        variant("alpha 30", with(&|h| h.ridge_alpha = 30.0), false, false),
        variant("50 stumps", with(&|h| h.n_trees = 50), false, false),
        variant(
            "50 depth-2, lr .1",
            with(&|h| {
                h.n_trees = 50;
                h.max_depth = 2;
                h.learning_rate = 0.1
            }),
            false,
            false,
        ),
        variant("all columns linear", d.clone(), false, true),
        variant(
            "all linear, alpha 30",
            with(&|h| h.ridge_alpha = 30.0),
            false,
            true,
        ),
        variant("+pools/flat", d.clone(), true, false),
        variant(
            "+pools/flat, alpha 30",
            with(&|h| h.ridge_alpha = 30.0),
            true,
            false,
        ),
        variant(
            "+pools/flat, ridge only",
            with(&|h| h.n_trees = 0),
            true,
            false,
        ),
    ];
    let folds = 4;
    let shuffles = 25;
    for v in &variants {
        let mut rhos = vec![];
        for s in 0..shuffles {
            let mut idx: Vec<usize> = (0..samples.len()).collect();
            idx.shuffle(&mut ChaCha8Rng::seed_from_u64(s));
            let mut oof = vec![0.0; samples.len()];
            for f in 0..folds {
                let test: Vec<usize> = idx.iter().copied().skip(f).step_by(folds).collect();
                let train: Vec<&Point> = proposed
                    .iter()
                    .copied()
                    .chain(
                        idx.iter()
                            .filter(|i| !test.contains(i))
                            .map(|&i| samples[i]),
                    )
                    .collect();
                let t: Vec<&Point> = test.iter().map(|&i| samples[i]).collect();
                for (i, p) in test.iter().zip(fit_predict(&train, &t, v, n_base)?) {
                    oof[*i] = p;
                }
            }
            let y: Vec<f64> = samples.iter().map(|p| p.y).collect();
            if s == 0 && residuals && v.name == "current" {
                let mut r: Vec<(f64, &str, f64)> = oof
                    .iter()
                    .zip(&samples)
                    .map(|(p, q)| (q.y - p, q.key.as_str(), q.y))
                    .collect();
                r.sort_by(|a, b| a.0.total_cmp(&b.0));
                for (d, k, y) in r {
                    println!("  {d:+.4} measured {y:.4} {k}");
                }
            }
            rhos.push(spearman(&oof, &y).unwrap_or(0.0));
        }
        let mean = rhos.iter().sum::<f64>() / rhos.len() as f64;
        let mut line = format!("{:<26} CV spearman {mean:.3}", v.name);
        if heldout {
            let pred = fit_predict(&fitted, &held, v, n_base)?;
            let y: Vec<f64> = held.iter().map(|p| p.y).collect();
            line += &format!("   held-out {:.3}", spearman(&pred, &y).unwrap_or(0.0));
        }
        println!("{line}");
    }
    Ok(())
}
