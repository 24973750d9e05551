//! Rank correlation of predicted against measured accuracy, with a bootstrap interval.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Ranks from 1, ties sharing their average rank (what Spearman's coefficient needs).
pub fn ranks(v: &[f64]) -> Vec<f64> {
    let mut idx: Vec<usize> = (0..v.len()).collect();
    idx.sort_by(|&a, &b| v[a].total_cmp(&v[b]));
    let mut r = vec![0.0; v.len()];
    let mut i = 0;
    while i < idx.len() {
        let mut j = i;
        while j + 1 < idx.len() && v[idx[j + 1]] == v[idx[i]] {
            j += 1;
        }
        // Positions i..=j (0-based) hold equal values: each gets the mean of ranks i+1..=j+1.
        let avg = (i + j) as f64 / 2.0 + 1.0;
        for &k in &idx[i..=j] {
            r[k] = avg;
        }
        i = j + 1;
    }
    r
}

fn pearson(a: &[f64], b: &[f64]) -> Option<f64> {
    let n = a.len() as f64;
    let (ma, mb) = (a.iter().sum::<f64>() / n, b.iter().sum::<f64>() / n);
    let (mut sab, mut saa, mut sbb) = (0.0, 0.0, 0.0);
    for (x, y) in a.iter().zip(b) {
        sab += (x - ma) * (y - mb);
        saa += (x - ma) * (x - ma);
        sbb += (y - mb) * (y - mb);
    }
    (saa > 0.0 && sbb > 0.0).then(|| sab / (saa * sbb).sqrt())
}

/// Spearman's rank correlation: Pearson's on the (tie-averaged) ranks. None with fewer than two
/// pairs, or when either side is constant.
pub fn spearman(a: &[f64], b: &[f64]) -> Option<f64> {
    assert_eq!(a.len(), b.len(), "paired samples");
    if a.len() < 2 {
        return None;
    }
    pearson(&ranks(a), &ranks(b))
}

/// Percentile bootstrap interval of Spearman's coefficient: `level` (e.g. 0.9) of `resamples`
/// resamplings of the pairs with replacement (seeded). Resamples where the coefficient is
/// undefined (a constant side) are skipped.
pub fn spearman_bootstrap(
    a: &[f64],
    b: &[f64],
    resamples: usize,
    level: f64,
    seed: u64,
) -> Option<(f64, f64)> {
    let n = a.len();
    if n < 2 {
        return None;
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut stats = Vec::with_capacity(resamples);
    let (mut ra, mut rb) = (vec![0.0; n], vec![0.0; n]);
    for _ in 0..resamples {
        for k in 0..n {
            let i = rng.random_range(0..n);
            ra[k] = a[i];
            rb[k] = b[i];
        }
        if let Some(s) = spearman(&ra, &rb) {
            stats.push(s);
        }
    }
    if stats.is_empty() {
        return None;
    }
    stats.sort_by(f64::total_cmp);
    let tail = (1.0 - level) / 2.0;
    let at = |q: f64| {
        let pos = q * (stats.len() - 1) as f64;
        stats[pos.round() as usize]
    };
    Some((at(tail), at(1.0 - tail)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranks_average_ties() {
        assert_eq!(ranks(&[10.0, 30.0, 20.0, 30.0]), vec![1.0, 3.5, 2.0, 3.5]);
    }

    #[test]
    fn spearman_matches_hand_computed_values() {
        // Monotone but not linear: exactly 1 (Pearson's would not be).
        let x = [1.0, 2.0, 3.0, 4.0, 5.0];
        let y = [1.0, 8.0, 27.0, 64.0, 125.0];
        assert!((spearman(&x, &y).unwrap() - 1.0).abs() < 1e-12);
        let rev: Vec<f64> = y.iter().rev().copied().collect();
        assert!((spearman(&x, &rev).unwrap() + 1.0).abs() < 1e-12);
        // Without ties rho = 1 - 6 Σd² / (n(n²-1)): ranks of y are [2,1,4,3,5], Σd² = 4, so
        // rho = 1 - 24/120 = 0.8.
        let y2 = [20.0, 10.0, 40.0, 30.0, 50.0];
        assert!((spearman(&x, &y2).unwrap() - 0.8).abs() < 1e-12);
        // With ties (scipy.stats.spearmanr([1,2,3,4],[1,2,2,3]) = 0.9486832980505138).
        let r = spearman(&[1.0, 2.0, 3.0, 4.0], &[1.0, 2.0, 2.0, 3.0]).unwrap();
        assert!((r - 0.948_683_298_050_513_8).abs() < 1e-12, "{r}");
        assert_eq!(spearman(&[1.0, 2.0], &[3.0, 3.0]), None);
        assert_eq!(spearman(&[1.0], &[3.0]), None);
    }

    #[test]
    fn bootstrap_interval_brackets_the_estimate_and_narrows_with_data() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let mk = |n: usize, rng: &mut ChaCha8Rng| {
            let a: Vec<f64> = (0..n).map(|i| i as f64).collect();
            let b: Vec<f64> = a
                .iter()
                .map(|x| x + rng.random_range(0.0..n as f64 * 0.5))
                .collect();
            (a, b)
        };
        let (a, b) = mk(30, &mut rng);
        let rho = spearman(&a, &b).unwrap();
        let (lo, hi) = spearman_bootstrap(&a, &b, 2000, 0.9, 1).unwrap();
        assert!(lo <= rho && rho <= hi, "{lo} {rho} {hi}");
        assert!(hi <= 1.0 && lo > 0.0, "{lo} {hi}");
        let (a2, b2) = mk(300, &mut rng);
        let (lo2, hi2) = spearman_bootstrap(&a2, &b2, 2000, 0.9, 1).unwrap();
        assert!(hi2 - lo2 < hi - lo, "{lo2}..{hi2} vs {lo}..{hi}");
        // Seeded: the same interval again.
        assert_eq!(spearman_bootstrap(&a, &b, 2000, 0.9, 1), Some((lo, hi)));
    }
}
