//! Size and work counts over the IR: what `bonsai inspect` prints and what summaries report.

use super::{Model, Op};

#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct NodeStats {
    pub name: String,
    pub op: &'static str,
    pub output_shape: Vec<usize>,
    /// Weights + biases as if every connection existed.
    pub params_total: usize,
    /// Weights that exist (mask on) + biases.
    pub params_nonzero: usize,
    /// Multiply-accumulates of the dense computation.
    pub macs_dense: usize,
    /// Multiply-accumulates a sparse kernel executes (one per existing connection).
    pub macs: usize,
}

#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct ModelStats {
    pub nodes: Vec<NodeStats>,
    pub params_total: usize,
    pub params_nonzero: usize,
    pub macs_dense: usize,
    pub macs: usize,
}

impl Model {
    pub fn stats(&self) -> ModelStats {
        let nodes: Vec<NodeStats> = self
            .nodes
            .iter()
            .map(|n| {
                // A weight is used once per output position its channel computes: once for
                // Dense, OH*OW times for a convolution filter (fewer with a partial area).
                let (params_total, params_nonzero, macs_dense, macs) = match n.op.weights() {
                    Some(w) => {
                        let nz = w.mask.count_ones();
                        let (positions, macs) = match &n.op {
                            Op::Conv2d(c) => {
                                let s = &self.tensor(n.output).shape;
                                let fan = c.fan_in();
                                let macs = (0..c.out_channels)
                                    .map(|o| {
                                        let live = (o * fan..(o + 1) * fan)
                                            .filter(|&j| w.mask.get(j))
                                            .count();
                                        live * c.area_of(o, s[0], s[1]).len()
                                    })
                                    .sum();
                                (s[0] * s[1], macs)
                            }
                            _ => (1, nz),
                        };
                        (
                            w.weight.len() + w.bias.len(),
                            nz + w.bias.len(),
                            w.weight.len() * positions,
                            macs,
                        )
                    }
                    None => (0, 0, 0, 0),
                };
                NodeStats {
                    name: n.name.clone(),
                    op: n.op.kind(),
                    output_shape: self.tensor(n.output).shape.clone(),
                    params_total,
                    params_nonzero,
                    macs_dense,
                    macs,
                }
            })
            .collect();
        ModelStats {
            params_total: nodes.iter().map(|n| n.params_total).sum(),
            params_nonzero: nodes.iter().map(|n| n.params_nonzero).sum(),
            macs_dense: nodes.iter().map(|n| n.macs_dense).sum(),
            macs: nodes.iter().map(|n| n.macs).sum(),
            nodes,
        }
    }
}

impl std::fmt::Display for ModelStats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "{:<16} {:<7} {:<14} {:>10} {:>10} {:>10}",
            "node", "op", "output", "params", "nonzero", "MACs"
        )?;
        for n in &self.nodes {
            writeln!(
                f,
                "{:<16} {:<7} {:<14} {:>10} {:>10} {:>10}",
                n.name,
                n.op,
                format!("{:?}", n.output_shape),
                n.params_total,
                n.params_nonzero,
                n.macs
            )?;
        }
        write!(
            f,
            "{:<16} {:<7} {:<14} {:>10} {:>10} {:>10}",
            "total", "", "", self.params_total, self.params_nonzero, self.macs
        )
    }
}
