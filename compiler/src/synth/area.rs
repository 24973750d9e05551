//! NeST's partial-area convolution: each output channel of a convolution computes only the part
//! of its map that matters, and its output is 0 elsewhere. It removes multiply-accumulates, not
//! weights: on a Cortex-M it is the convolutions' MACs that cost the time and energy of a
//! pruned CNN (a pruned LeNet-5 spends over 90% of them there).
//!
//! The record leaves the region's shape open. Bonsai keeps one rectangle per channel, so a
//! kernel loops over it with no per-position test and it costs 4 numbers of flash per channel
//! (a per-position bitmap would cost LeNet-5's conv1 1.4 KB, 8% of the parameter flash of a
//! LeNet-5 pruned 57x).
//! A rectangle shrinks one edge line at a time, the line whose positions matter least
//! ([`crate::train::area_importance`], first-order loss change of zeroing them, averaged over
//! the line), across all channels of a layer, until the layer keeps its share of positions.

use crate::ir::{Area, Model, Op};

/// Shrinks the areas of every convolution until
/// each keeps at most `keep` of its `C·OH·OW` output positions. `importance[k]` is the
/// k-th weighted node's `[C][OH][OW]` importance (None for Dense), as
/// [`crate::train::area_importance`] returns it. A channel keeps at least one position.
/// Returns the positions removed.
pub fn shrink_areas(model: &mut Model, importance: &[Option<Vec<f32>>], keep: f64) -> usize {
    let mut removed = 0;
    let mut k = 0;
    for n in 0..model.nodes.len() {
        if model.nodes[n].op.weights().is_none() {
            continue;
        }
        k += 1;
        let shape = model.tensor(model.nodes[n].output).shape.clone();
        let (Op::Conv2d(c), Some(Some(imp))) = (&mut model.nodes[n].op, importance.get(k - 1))
        else {
            continue;
        };
        let (oh, ow) = (shape[0], shape[1]);
        let mut areas: Vec<Area> = (0..c.out_channels).map(|o| c.area_of(o, oh, ow)).collect();
        let goal = (keep.clamp(0.0, 1.0) * (c.out_channels * oh * ow) as f64).ceil() as usize;
        let mut kept: usize = areas.iter().map(Area::len).sum();
        while kept > goal {
            let Some((o, edge)) = weakest_edge(&areas, imp, oh, ow) else {
                break;
            };
            let before = areas[o].len();
            cut(&mut areas[o], edge);
            kept -= before - areas[o].len();
            removed += before - areas[o].len();
        }
        let full = Area::full(oh, ow);
        c.area = (!areas.iter().all(|a| *a == full)).then_some(areas);
    }
    removed
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Edge {
    Top,
    Bottom,
    Left,
    Right,
}

/// The channel and edge line with the least mean importance among the areas that can still
/// shrink (more than one row, or more than one column). Ties go to the lowest channel, then
/// the order Top, Bottom, Left, Right, so the choice is deterministic.
fn weakest_edge(areas: &[Area], imp: &[f32], oh: usize, ow: usize) -> Option<(usize, Edge)> {
    let at = |o: usize, y: usize, x: usize| imp[(o * oh + y) * ow + x] as f64;
    let mut best: Option<(f64, usize, Edge)> = None;
    for (o, a) in areas.iter().enumerate() {
        let (h, w) = (a.y1 - a.y0, a.x1 - a.x0);
        let mut consider = |score: f64, edge: Edge| {
            if best.is_none_or(|(s, ..)| score < s) {
                best = Some((score, o, edge));
            }
        };
        if h > 1 {
            let row = |y: usize| (a.x0..a.x1).map(|x| at(o, y, x)).sum::<f64>() / w as f64;
            consider(row(a.y0), Edge::Top);
            consider(row(a.y1 - 1), Edge::Bottom);
        }
        if w > 1 {
            let col = |x: usize| (a.y0..a.y1).map(|y| at(o, y, x)).sum::<f64>() / h as f64;
            consider(col(a.x0), Edge::Left);
            consider(col(a.x1 - 1), Edge::Right);
        }
    }
    best.map(|(_, o, e)| (o, e))
}

fn cut(a: &mut Area, edge: Edge) {
    match edge {
        Edge::Top => a.y0 += 1,
        Edge::Bottom => a.y1 -= 1,
        Edge::Left => a.x0 += 1,
        Edge::Right => a.x1 -= 1,
    }
}

/// Fraction of the convolutions' output positions (all conv layers together) that are computed.
pub fn area_fraction(model: &Model) -> f64 {
    let (mut kept, mut all) = (0usize, 0usize);
    for n in &model.nodes {
        if let Op::Conv2d(c) = &n.op {
            let s = &model.tensor(n.output).shape;
            all += c.out_channels * s[0] * s[1];
            kept += c.positions_inside(s[0], s[1]);
        }
    }
    if all == 0 {
        1.0
    } else {
        kept as f64 / all as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::tests::tiny_cnn;

    fn conv_nodes(m: &Model) -> Vec<usize> {
        (0..m.nodes.len())
            .filter(|&n| matches!(m.nodes[n].op, Op::Conv2d(_)))
            .collect()
    }

    /// Importance per weighted node: for convs, `f(o, y, x)`.
    fn importance(m: &Model, f: impl Fn(usize, usize, usize) -> f32) -> Vec<Option<Vec<f32>>> {
        m.nodes
            .iter()
            .filter(|n| n.op.weights().is_some())
            .map(|n| match &n.op {
                Op::Conv2d(c) => {
                    let s = &m.tensor(n.output).shape;
                    let mut v = Vec::new();
                    for o in 0..c.out_channels {
                        for y in 0..s[0] {
                            for x in 0..s[1] {
                                v.push(f(o, y, x));
                            }
                        }
                    }
                    Some(v)
                }
                _ => None,
            })
            .collect()
    }

    #[test]
    fn areas_shrink_toward_the_important_positions_and_keep_the_share() {
        let mut m = tiny_cnn();
        let convs = conv_nodes(&m);
        // Importance peaks at output position (1, 1) and falls off with distance.
        let imp = importance(&m, |_, y, x| {
            1.0 / (1.0 + (y as f32 - 1.0).abs() + (x as f32 - 1.0).abs())
        });
        let removed = shrink_areas(&mut m, &imp, 0.5);
        m.validate().unwrap();
        assert!(removed > 0);
        for &n in &convs {
            let Op::Conv2d(c) = &m.nodes[n].op else {
                unreachable!()
            };
            let s = &m.tensor(m.nodes[n].output).shape;
            let areas = c.area.as_ref().expect("shrunk");
            let kept: usize = areas.iter().map(Area::len).sum();
            assert!(2 * kept <= c.out_channels * s[0] * s[1], "{kept}");
            for a in areas {
                assert!(!a.is_empty());
                if s[0] > 1 && s[1] > 1 {
                    assert!(a.contains(1, 1), "{a:?} lost the peak");
                }
            }
        }
        assert!(area_fraction(&m) <= 0.5 + 1e-9);
    }

    #[test]
    fn keeping_everything_changes_nothing() {
        let mut m = tiny_cnn();
        let imp = importance(&m, |o, y, x| (o + y + x) as f32);
        assert_eq!(shrink_areas(&mut m, &imp, 1.0), 0);
        assert_eq!(m, tiny_cnn());
        assert_eq!(area_fraction(&m), 1.0);
    }
}
