//! Pareto fronts of accuracy against a cost (energy per inference, flash), as JSON rows and an
//! SVG plot.

use super::Metrics;
use plotters::prelude::*;
use serde::{Deserialize, Serialize};
use std::path::Path;

/// Indices of the points no other point dominates, where a point is `(cost, accuracy)`: lower
/// cost and higher accuracy are better. A point is dominated when another is at least as good
/// on both and better on one; of exact duplicates the first is kept. Sorted by cost.
pub fn front(points: &[(f64, f64)]) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..points.len()).collect();
    // Cost ascending, accuracy descending: a point is on the front iff it beats the best
    // accuracy seen at lower or equal cost.
    idx.sort_by(|&a, &b| {
        points[a]
            .0
            .total_cmp(&points[b].0)
            .then(points[b].1.total_cmp(&points[a].1))
            .then(a.cmp(&b))
    });
    let mut best = f64::NEG_INFINITY;
    let mut out = Vec::new();
    for i in idx {
        if points[i].1 > best {
            best = points[i].1;
            out.push(i);
        }
    }
    out
}

/// One evaluated candidate on the plot, with its place on the two fronts.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ParetoPoint {
    pub key: String,
    pub val_accuracy: f64,
    /// Middle of the estimated range, µJ per inference.
    pub energy_uj: f64,
    pub flash_bytes: usize,
    pub ram_bytes: usize,
    pub params: usize,
    pub insns_predicted: f64,
    /// Measured under QEMU (`cargo xtask bench search`); None until then.
    pub insns_measured: Option<f64>,
    pub on_energy_front: bool,
    pub on_flash_front: bool,
}

/// Every feasible trained candidate of `evals`, marked with the fronts it is on.
pub fn points(evals: &[&Metrics]) -> Vec<ParetoPoint> {
    let ok: Vec<&Metrics> = evals
        .iter()
        .copied()
        .filter(|m| m.feasible && m.trained)
        .collect();
    let e_front = front(
        &ok.iter()
            .map(|m| (m.energy_mid(), m.val_accuracy))
            .collect::<Vec<_>>(),
    );
    let f_front = front(
        &ok.iter()
            .map(|m| (m.flash_bytes as f64, m.val_accuracy))
            .collect::<Vec<_>>(),
    );
    ok.iter()
        .enumerate()
        .map(|(i, m)| ParetoPoint {
            key: m.key.clone(),
            val_accuracy: m.val_accuracy,
            energy_uj: m.energy_mid(),
            flash_bytes: m.flash_bytes,
            ram_bytes: m.ram_bytes,
            params: m.params,
            insns_predicted: m.insns_predicted,
            insns_measured: None,
            on_energy_front: e_front.contains(&i),
            on_flash_front: f_front.contains(&i),
        })
        .collect()
}

#[derive(Debug, thiserror::Error)]
#[error("{path}: cannot draw the Pareto plot: {msg}")]
pub struct PlotError {
    path: String,
    msg: String,
}

/// Two panels, validation error (%) against energy per inference and against parameter flash:
/// every candidate as a grey dot, the front as a line. Written atomically.
pub fn svg(path: &Path, title: &str, pts: &[ParetoPoint]) -> Result<(), PlotError> {
    let err = |msg: String| PlotError {
        path: path.display().to_string(),
        msg,
    };
    if pts.is_empty() {
        return Err(err("no feasible trained candidate to plot".into()));
    }
    let mut text = String::new();
    {
        let root = SVGBackend::with_string(&mut text, (1100, 460)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| err(e.to_string()))?;
        let root = root
            .titled(title, ("sans-serif", 18))
            .map_err(|e| err(e.to_string()))?;
        let (left, right) = root.split_horizontally(550);
        type Get = fn(&ParetoPoint) -> (f64, bool);
        let panels: [(&_, &str, Get); 2] = [
            (&left, "energy per inference (µJ, estimate, log)", |p| {
                (p.energy_uj, p.on_energy_front)
            }),
            (&right, "parameter flash (KB, log)", |p| {
                (p.flash_bytes as f64 / 1024.0, p.on_flash_front)
            }),
        ];
        for (area, x_desc, get) in panels {
            let xs: Vec<f64> = pts.iter().map(|p| get(p).0.max(1e-6)).collect();
            let ys: Vec<f64> = pts.iter().map(|p| 100.0 * (1.0 - p.val_accuracy)).collect();
            let (x_lo, x_hi) = xs
                .iter()
                .fold((f64::MAX, f64::MIN), |(a, b), &x| (a.min(x), b.max(x)));
            let y_hi = ys.iter().fold(0.0f64, |a, &y| a.max(y));
            let mut chart = ChartBuilder::on(area)
                .margin(12)
                .x_label_area_size(40)
                .y_label_area_size(56)
                .build_cartesian_2d((x_lo * 0.8..x_hi * 1.25).log_scale(), 0.0..y_hi * 1.1 + 0.5)
                .map_err(|e| err(e.to_string()))?;
            chart
                .configure_mesh()
                .x_desc(x_desc)
                .y_desc("validation error (%)")
                .draw()
                .map_err(|e| err(e.to_string()))?;
            chart
                .draw_series(
                    xs.iter()
                        .zip(&ys)
                        .map(|(&x, &y)| Circle::new((x, y), 3, RGBColor(160, 160, 160).filled())),
                )
                .map_err(|e| err(e.to_string()))?;
            let mut on: Vec<(f64, f64)> = pts
                .iter()
                .zip(xs.iter().zip(&ys))
                .filter(|(p, _)| get(p).1)
                .map(|(_, (&x, &y))| (x, y))
                .collect();
            on.sort_by(|a, b| a.0.total_cmp(&b.0));
            chart
                .draw_series(LineSeries::new(on.clone(), RED.stroke_width(2)))
                .map_err(|e| err(e.to_string()))?;
            chart
                .draw_series(on.into_iter().map(|p| Circle::new(p, 4, RED.filled())))
                .map_err(|e| err(e.to_string()))?;
        }
        root.present().map_err(|e| err(e.to_string()))?;
    }
    crate::util::write_atomic(path, text.as_bytes()).map_err(|e| err(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::energy::Range;

    #[test]
    fn front_keeps_exactly_the_non_dominated_points() {
        let pts = [
            (1.0, 0.80), // 0: cheapest
            (2.0, 0.85), // 1: front
            (2.0, 0.84), // 2: dominated by 1 (same cost, lower accuracy)
            (3.0, 0.83), // 3: dominated by 1
            (4.0, 0.90), // 4: front
            (5.0, 0.90), // 5: dominated by 4 (same accuracy, higher cost)
            (0.5, 0.10), // 6: cheapest of all: front
            (4.0, 0.90), // 7: duplicate of 4: the first is kept
        ];
        assert_eq!(front(&pts), vec![6, 0, 1, 4]);
        // Brute force agrees on every point.
        let on = front(&pts);
        for (i, p) in pts.iter().enumerate() {
            let dominated = pts.iter().enumerate().any(|(j, q)| {
                j != i && q.0 <= p.0 && q.1 >= p.1 && (q.0 < p.0 || q.1 > p.1 || j < i)
            });
            assert_eq!(on.contains(&i), !dominated, "point {i}");
        }
        assert!(front(&[]).is_empty());
    }

    fn m(key: &str, acc: f64, e: f64, flash: usize, feasible: bool) -> Metrics {
        Metrics {
            key: key.into(),
            val_accuracy: acc,
            val_accuracy_runs: Vec::new(),
            params: flash,
            macs: flash,
            flash_bytes: flash,
            ram_bytes: 100,
            energy_uj: Range { min: e, max: e },
            insns_predicted: e * 1000.0,
            feasible,
            infeasible: None,
            trained: feasible,
            train_seconds: 1.0,
        }
    }

    #[test]
    fn points_mark_both_fronts_and_plot() {
        let evals = [
            m("a", 0.9, 10.0, 5000, true),
            m("b", 0.8, 2.0, 9000, true),
            m("c", 0.7, 5.0, 1000, true),
            m("d", 0.99, 1.0, 100, false),
        ];
        let refs: Vec<&Metrics> = evals.iter().collect();
        let p = points(&refs);
        assert_eq!(p.len(), 3, "infeasible candidates are not plotted");
        let on = |f: fn(&ParetoPoint) -> bool| {
            p.iter()
                .filter(|x| f(x))
                .map(|x| x.key.as_str())
                .collect::<Vec<_>>()
        };
        assert_eq!(on(|x| x.on_energy_front), vec!["a", "b"]);
        assert_eq!(on(|x| x.on_flash_front), vec!["a", "c"]);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pareto.svg");
        svg(&path, "test", &p).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.starts_with("<svg"));
        // 3 grey dots per panel, plus 2 front dots per panel.
        assert_eq!(text.matches("<circle").count(), 2 * 3 + 2 * 2);
        assert!(svg(&path, "empty", &[]).is_err());
    }
}
