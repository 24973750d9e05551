//! Least-squares calibration of the per-kernel coefficients on measured microbenchmarks.
//!
//! Each sample is a model (its [`LayerWork`]) with its QEMU-measured mean instructions per
//! inference. The unknowns are one coefficient per `(kernel, feature)` that occurs in the
//! samples; the model is linear in them (Σ coefficient × trip count). Rows are weighted by
//! 1 / measured, so the fit minimises *relative* residuals: a 200-instruction model counts as
//! much as a 2-million-instruction one, which is what a "within 10 %" bar asks for. Solved by
//! Householder QR (the columns span six orders of magnitude: MACs against calls), with a clear
//! error when two unknowns cannot be told apart by the samples.

use super::cost::LayerWork;
use super::tables::KernelTable;
use super::EnergyError;

/// One measured microbenchmark.
#[derive(Clone, Debug)]
pub struct Sample {
    pub label: String,
    pub work: Vec<LayerWork>,
    /// Mean executed instructions per inference (QEMU `-icount`).
    pub measured: f64,
}

/// The fitted table and the largest relative residual over the samples.
pub struct Fit {
    pub table: KernelTable,
    pub max_rel_residual: f64,
}

/// Fits one target's coefficients.
pub fn fit(samples: &[Sample]) -> Result<Fit, EnergyError> {
    let mut columns: Vec<(String, String)> = samples
        .iter()
        .flat_map(|s| s.work.iter())
        .flat_map(|w| {
            w.counts
                .iter()
                .map(|(f, _)| (w.kernel.to_string(), f.to_string()))
        })
        .collect();
    columns.sort();
    columns.dedup();
    let p = columns.len();
    if samples.len() < p {
        return Err(EnergyError::Fit(format!(
            "{} samples for {p} unknowns: add microbenchmarks",
            samples.len()
        )));
    }
    let mut a = vec![vec![0.0; p]; samples.len()];
    let mut b = vec![0.0; samples.len()];
    for (i, s) in samples.iter().enumerate() {
        if !(s.measured.is_finite() && s.measured > 0.0) {
            return Err(EnergyError::Fit(format!(
                "sample {}: measured {} instructions",
                s.label, s.measured
            )));
        }
        let wgt = 1.0 / s.measured;
        for w in &s.work {
            for &(f, n) in &w.counts {
                let j = columns
                    .iter()
                    .position(|(k, ff)| k == w.kernel && ff == f)
                    .expect("collected above");
                a[i][j] += n * wgt;
            }
        }
        b[i] = s.measured * wgt;
    }
    let names: Vec<String> = columns.iter().map(|(k, f)| format!("{k}.{f}")).collect();
    let x = least_squares(a, b, &names)?;
    let mut table = KernelTable::new();
    for ((k, f), v) in columns.iter().zip(&x) {
        table.entry(k.clone()).or_default().insert(f.clone(), *v);
    }
    let t = &table;
    let max_rel_residual = samples
        .iter()
        .map(|s| {
            let pred: f64 = s
                .work
                .iter()
                .flat_map(|w| w.counts.iter().map(move |&(f, n)| t[w.kernel][f] * n))
                .sum();
            ((pred - s.measured) / s.measured).abs()
        })
        .fold(0.0, f64::max);
    Ok(Fit {
        table,
        max_rel_residual,
    })
}

/// Minimises |A x − b| by Householder QR. `names` label the columns in the rank error.
#[expect(
    clippy::needless_range_loop,
    reason = "the reflections index rows and columns of one matrix; index loops mirror the algebra"
)]
pub fn least_squares(
    mut a: Vec<Vec<f64>>,
    mut b: Vec<f64>,
    names: &[String],
) -> Result<Vec<f64>, EnergyError> {
    let m = a.len();
    let p = names.len();
    // Column scaling: QR is scale-invariant in exact arithmetic, but the rank test is not.
    let scale: Vec<f64> = (0..p)
        .map(|j| {
            let n = (0..m).map(|i| a[i][j] * a[i][j]).sum::<f64>().sqrt();
            if n > 0.0 {
                n
            } else {
                1.0
            }
        })
        .collect();
    for row in a.iter_mut() {
        for (v, s) in row.iter_mut().zip(&scale) {
            *v /= s;
        }
    }
    for k in 0..p {
        let norm = (k..m).map(|i| a[i][k] * a[i][k]).sum::<f64>().sqrt();
        if norm < 1e-9 {
            return Err(EnergyError::Fit(format!(
                "the samples cannot separate {} from the other unknowns (rank deficient): \
                 add microbenchmarks that vary it independently",
                names[k]
            )));
        }
        let alpha = if a[k][k] > 0.0 { -norm } else { norm };
        let mut v: Vec<f64> = (k..m).map(|i| a[i][k]).collect();
        v[0] -= alpha;
        let vnorm2: f64 = v.iter().map(|x| x * x).sum();
        if vnorm2 > 0.0 {
            for j in k..p {
                let d: f64 = (k..m).map(|i| v[i - k] * a[i][j]).sum::<f64>() * 2.0 / vnorm2;
                for i in k..m {
                    a[i][j] -= d * v[i - k];
                }
            }
            let d: f64 = (k..m).map(|i| v[i - k] * b[i]).sum::<f64>() * 2.0 / vnorm2;
            for i in k..m {
                b[i] -= d * v[i - k];
            }
        }
        if a[k][k].abs() < 1e-9 {
            return Err(EnergyError::Fit(format!(
                "the samples cannot separate {} from the other unknowns (rank deficient)",
                names[k]
            )));
        }
    }
    let mut x = vec![0.0; p];
    for k in (0..p).rev() {
        let s: f64 = (k + 1..p).map(|j| a[k][j] * x[j]).sum();
        x[k] = (b[k] - s) / a[k][k];
    }
    Ok(x.iter().zip(&scale).map(|(v, s)| v / s).collect())
}
