//! Plots people look at: an SVG of test error against nonzero parameters, one curve per method
//! (what `cargo xtask bench synth` puts in BENCHMARKS.md).

use plotters::prelude::*;
use std::path::Path;

/// One curve: a name and its (nonzero parameters, test error in percent) points.
pub struct Curve {
    pub name: String,
    pub points: Vec<(f64, f64)>,
    /// Standard error over seeds of each point's error, drawn as a bar of ± one of it; empty
    /// (or 0 for a point) where there is none to show, e.g. a single seed.
    pub std_errors: Vec<f64>,
}

impl Curve {
    /// The points with their standard errors (0 where unknown), in order of nonzeros.
    fn sorted(&self) -> Vec<(f64, f64, f64)> {
        let mut pts: Vec<(f64, f64, f64)> = self
            .points
            .iter()
            .enumerate()
            .map(|(i, &(x, y))| (x, y, self.std_errors.get(i).copied().unwrap_or(0.0)))
            .collect();
        pts.sort_by(|a, b| a.0.total_cmp(&b.0));
        pts
    }
}

#[derive(Debug, thiserror::Error)]
#[error("{path}: cannot draw the plot: {msg}")]
pub struct PlotError {
    path: String,
    msg: String,
}

/// Draws the curves with a logarithmic x axis into an SVG at `path` (written atomically).
pub fn error_vs_nonzeros_svg(path: &Path, title: &str, curves: &[Curve]) -> Result<(), PlotError> {
    let err = |msg: String| PlotError {
        path: path.display().to_string(),
        msg,
    };
    let with_bars: Vec<(f64, f64, f64)> = curves.iter().flat_map(Curve::sorted).collect();
    if with_bars.is_empty() {
        return Err(err("no points".into()));
    }
    let all: Vec<(f64, f64)> = with_bars.iter().map(|&(x, y, _)| (x, y)).collect();
    let (x_lo, x_hi) = all.iter().fold((f64::MAX, f64::MIN), |(lo, hi), &(x, _)| {
        (lo.min(x), hi.max(x))
    });
    // The axis holds the error bars too, so the best point's bar is not cut off.
    let (y_lo, y_max) = with_bars
        .iter()
        .fold((f64::MAX, f64::MIN), |(lo, hi), &(_, y, se)| {
            (lo.min(y - se), hi.max(y + se))
        });
    let y_hi = y_axis_top(y_lo, y_max);
    let pad = ((y_hi - y_lo) * 0.1).max(0.1);
    // Points above the axis sit on its top edge (triangles, labelled where there is room), so
    // one far point (a dense net at 2.5% width) does not squeeze the compared curves together.
    let y_top = y_hi + pad;
    let x_range = (log_axis_start(x_lo), x_hi * 1.25);
    let labelled = spaced_labels(&all, y_top, x_range);
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (760, 480)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| err(e.to_string()))?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 18))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(56)
            .build_cartesian_2d(
                (x_range.0..x_range.1).log_scale(),
                (y_lo - pad).max(0.0)..y_top,
            )
            .map_err(|e| err(e.to_string()))?;
        chart
            .configure_mesh()
            .x_desc("nonzero parameters (int8 weights + biases, log scale)")
            .x_labels(20)
            .x_max_light_lines(1)
            .x_label_formatter(&|x| log_tick_label(*x))
            .y_desc("test error (%)")
            .draw()
            .map_err(|e| err(e.to_string()))?;
        for (i, c) in curves.iter().enumerate() {
            let color = curve_color(i);
            let sorted = c.sorted();
            let pts: Vec<(f64, f64)> = sorted.iter().map(|&(x, y, _)| (x, y)).collect();
            let (shown, above): (Vec<_>, Vec<_>) = pts.iter().partition(|p| p.1 <= y_top);
            let clamped: Vec<(f64, f64)> = pts.iter().map(|&(x, y)| (x, y.min(y_top))).collect();
            // Error bars as a line with a cap at each end: plotters' ErrorBar also draws a
            // circle at the mean, which would hide the point's own marker.
            let bars: Vec<(f64, f64, f64)> = sorted
                .iter()
                .filter(|&&(_, y, se)| se > 0.0 && y <= y_top)
                .map(|&(x, y, se)| (x, y - se, (y + se).min(y_top)))
                .collect();
            chart
                .draw_series(
                    bars.iter()
                        .map(|&(x, lo, hi)| PathElement::new(vec![(x, lo), (x, hi)], color)),
                )
                .map_err(|e| err(e.to_string()))?;
            chart
                .draw_series(bars.iter().flat_map(|&(x, lo, hi)| {
                    [lo, hi].map(|y| {
                        EmptyElement::at((x, y)) + PathElement::new(vec![(-3, 0), (3, 0)], color)
                    })
                }))
                .map_err(|e| err(e.to_string()))?;
            chart
                .draw_series(above.iter().map(|&&(x, y)| {
                    let label = if labelled.contains(&(x.to_bits(), y.to_bits())) {
                        format!("{y:.1}%")
                    } else {
                        String::new()
                    };
                    EmptyElement::at((x, y_top))
                        + TriangleMarker::new((0, 0), 5, color.filled())
                        + Text::new(label, (7, 2), ("sans-serif", 11).into_font().color(&color))
                }))
                .map_err(|e| err(e.to_string()))?;
            let pts: Vec<(f64, f64)> = shown.into_iter().copied().collect();
            chart
                .draw_series(LineSeries::new(clamped, color.stroke_width(2)))
                .map_err(|e| err(e.to_string()))?
                .label(c.name.clone())
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 16, y)], color.stroke_width(2))
                });
            chart
                .draw_series(pts.into_iter().map(|p| Circle::new(p, 3, color.filled())))
                .map_err(|e| err(e.to_string()))?;
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .border_style(BLACK)
            .background_style(WHITE.mix(0.9))
            .draw()
            .map_err(|e| err(e.to_string()))?;
        root.present().map_err(|e| err(e.to_string()))?;
    }
    crate::util::write_atomic(path, svg.as_bytes()).map_err(|e| err(e.to_string()))
}

/// The top of the error axis: the largest error, unless that is more than twice the smallest
/// plus a point, when the axis stops there (the points above are marked on its top edge).
fn y_axis_top(y_lo: f64, y_max: f64) -> f64 {
    y_max.min(2.0 * y_lo + 1.0)
}

/// Which points above the axis get their value written beside them: from the left, each one at
/// least 8% of the (log) axis width right of the last labelled, so labels do not overlap.
fn spaced_labels(points: &[(f64, f64)], y_top: f64, x_range: (f64, f64)) -> Vec<(u64, u64)> {
    let min_gap = 0.08 * (x_range.1 / x_range.0).ln();
    let mut above: Vec<(f64, f64)> = points.iter().copied().filter(|p| p.1 > y_top).collect();
    above.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mut last: Option<f64> = None;
    let mut out = Vec::new();
    for (x, y) in above {
        if last.is_none_or(|l| x.ln() - l >= min_gap) {
            last = Some(x.ln());
            out.push((x.to_bits(), y.to_bits()));
        }
    }
    out
}

/// Line colours: Palette99's first five without its yellow, then black, magenta and brown in
/// place of its cyan and lime: light colours cannot be read on white.
fn curve_color(i: usize) -> RGBAColor {
    const COLORS: [RGBColor; 8] = [
        RGBColor(0xE6, 0x19, 0x4B),
        RGBColor(0x3C, 0xB4, 0x4B),
        RGBColor(0x00, 0x82, 0xC8),
        RGBColor(0xF5, 0x82, 0x30),
        RGBColor(0x91, 0x1E, 0xB4),
        RGBColor(0x00, 0x00, 0x00),
        RGBColor(0xF0, 0x32, 0xE6),
        RGBColor(0xAA, 0x6E, 0x28),
    ];
    COLORS[i % COLORS.len()].to_rgba()
}

/// Where a log axis holding `x_lo` starts: a little below it, but not above the power of ten
/// under it when that power is the only one near: plotters puts key points (and labels) from the
/// first power of ten in range upward, so a range starting at 2.2k would be unlabelled to 10k.
fn log_axis_start(x_lo: f64) -> f64 {
    let start = (x_lo * 0.8).max(1.0);
    let next_power = 10f64.powf(start.log10().ceil());
    if next_power > x_lo {
        10f64.powf(x_lo.max(1.0).log10().floor())
    } else {
        start
    }
}

/// Labels a log axis at 1, 2 and 5 times a power of ten only: plotters puts a key point at
/// every integer multiple, whose labels overlap near the top of each decade.
fn log_tick_label(x: f64) -> String {
    if x.is_nan() || x <= 0.0 {
        return String::new();
    }
    let decade = 10f64.powf(x.log10().floor());
    let m = x / decade;
    let on_tick = [1.0, 2.0, 5.0, 10.0]
        .iter()
        .any(|t| (m - t).abs() < 1e-6 * t);
    match (on_tick, x >= 1000.0) {
        (false, _) => String::new(),
        (true, true) => format!("{}k", x / 1000.0),
        (true, false) => format!("{}", x.round()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_axes_start_at_or_below_a_power_of_ten_they_show() {
        assert_eq!(log_axis_start(2762.0), 1000.0);
        assert_eq!(log_axis_start(108.0), 108.0 * 0.8);
        assert_eq!(log_axis_start(10_000.0), 8000.0);
    }

    #[test]
    fn log_axis_labels_only_one_two_five() {
        let labels: Vec<String> = [1.0, 3.0, 20.0, 500.0, 700.0, 1000.0, 2000.0, 50_000.0, 4e5]
            .iter()
            .map(|&x| log_tick_label(x))
            .collect();
        assert_eq!(labels, ["1", "", "20", "500", "", "1k", "2k", "50k", ""]);
    }

    #[test]
    fn draws_every_curve_into_an_svg() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.svg");
        let curves = vec![
            Curve {
                name: "prune".into(),
                points: vec![(266_000.0, 4.0), (20_000.0, 3.8), (5_000.0, 4.6)],
                std_errors: vec![],
            },
            Curve {
                name: "nest".into(),
                points: vec![(21_000.0, 4.2), (5_500.0, 4.9)],
                std_errors: vec![],
            },
        ];
        error_vs_nonzeros_svg(&path, "LeNet-300-100", &curves).unwrap();
        let svg = std::fs::read_to_string(&path).unwrap();
        assert!(svg.starts_with("<svg"), "{}", &svg[..50.min(svg.len())]);
        assert!(svg.contains("prune") && svg.contains("nest"));
        // 5 points drawn as circles.
        assert_eq!(svg.matches("<circle").count(), 5);
        assert!(error_vs_nonzeros_svg(&path, "x", &[]).is_err());
    }

    #[test]
    fn errors_far_above_the_rest_are_marked_on_the_axis_top() {
        assert_eq!(y_axis_top(3.0, 5.0), 5.0);
        assert_eq!(y_axis_top(3.0, 14.0), 7.0);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.svg");
        let curves = vec![Curve {
            name: "dense (narrower seeds)".into(),
            points: vec![(266_000.0, 3.4), (24_000.0, 5.9), (6_000.0, 14.2)],
            std_errors: vec![],
        }];
        error_vs_nonzeros_svg(&path, "LeNet-300-100", &curves).unwrap();
        let svg = std::fs::read_to_string(&path).unwrap();
        assert_eq!(
            svg.matches("<circle").count(),
            2,
            "the far point is not a circle"
        );
        assert!(svg.contains("14.2%"), "the far point's value is written");
    }

    #[test]
    fn standard_errors_are_drawn_as_capped_bars_with_their_points() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.svg");
        let curve = |std_errors: Vec<f64>| Curve {
            name: "nest".into(),
            // Given out of order: each error must stay with its point when sorted.
            points: vec![(5_000.0, 4.6), (20_000.0, 3.8), (266_000.0, 4.0)],
            std_errors,
        };
        assert_eq!(
            curve(vec![0.3, 0.0, 0.1]).sorted(),
            [
                (5_000.0, 4.6, 0.3),
                (20_000.0, 3.8, 0.0),
                (266_000.0, 4.0, 0.1)
            ]
        );
        // Bars are the only thin lines in the curve's colour (its own line is 2 wide).
        let bar_lines = |c: Curve| {
            error_vs_nonzeros_svg(&path, "t", &[c]).unwrap();
            std::fs::read_to_string(&path)
                .unwrap()
                .matches(r##"stroke="#E6194B" stroke-width="1""##)
                .count()
        };
        assert_eq!(bar_lines(curve(vec![])), 0);
        // Two bars (the zero draws none), each a line and two caps.
        assert_eq!(bar_lines(curve(vec![0.3, 0.0, 0.1])), 6);
    }

    #[test]
    fn labels_above_the_axis_are_spaced_apart() {
        // Axis 1k..100k: two decades, so 8% is about 0.37 in ln units (a factor of 1.45).
        let pts = [
            (1_000.0, 9.0),
            (1_200.0, 9.5),
            (2_000.0, 8.0),
            (50_000.0, 3.0),
        ];
        let l = spaced_labels(&pts, 5.0, (1_000.0, 100_000.0));
        let xs: Vec<f64> = l.iter().map(|&(x, _)| f64::from_bits(x)).collect();
        assert_eq!(xs, [1_000.0, 2_000.0]);
    }
}
