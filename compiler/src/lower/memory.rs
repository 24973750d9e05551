//! Static memory planning: every intermediate tensor gets a fixed offset in one arena.
//!
//! Buffers whose lifetimes overlap must not overlap in memory; a kernel's inputs and output are
//! all live at its step, so they never alias. Offsets are assigned greedily, largest buffer
//! first, each at the lowest offset that clears every already placed buffer it is live with
//! (the heuristic TFLite Micro's `GreedyMemoryPlanner` uses). The result is compared with two
//! figures that bracket it: the largest total of buffers live at one step (no placement can
//! beat it) and the sum of all buffers (what giving each tensor its own memory would cost).

/// One arena buffer: `size` bytes written at step `first` and last read at step `last`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Buffer {
    pub size: usize,
    pub first: usize,
    pub last: usize,
}

impl Buffer {
    fn live_with(&self, other: &Buffer) -> bool {
        self.first <= other.last && other.first <= self.last
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemoryPlan {
    /// Offset of each buffer, in the order given.
    pub offsets: Vec<usize>,
    /// Bytes the arena needs: the end of the highest placed buffer.
    pub arena_bytes: usize,
    /// Lower bound: the largest sum of sizes of buffers live at one step.
    pub max_live_bytes: usize,
    /// The sum of all buffer sizes.
    pub naive_bytes: usize,
}

pub fn plan(buffers: &[Buffer]) -> MemoryPlan {
    let mut order: Vec<usize> = (0..buffers.len()).collect();
    // Largest first; among equals, the earliest first, so results do not depend on sort details.
    order.sort_by(|&a, &b| {
        buffers[b]
            .size
            .cmp(&buffers[a].size)
            .then(buffers[a].first.cmp(&buffers[b].first))
            .then(a.cmp(&b))
    });
    let mut offsets = vec![0; buffers.len()];
    let mut placed: Vec<usize> = Vec::with_capacity(buffers.len());
    for &i in &order {
        let b = buffers[i];
        // Occupied intervals of buffers live at the same time, sorted by offset.
        let mut busy: Vec<(usize, usize)> = placed
            .iter()
            .filter(|&&j| buffers[j].live_with(&b) && buffers[j].size > 0)
            .map(|&j| (offsets[j], offsets[j] + buffers[j].size))
            .collect();
        busy.sort_unstable();
        let mut offset = 0;
        for (start, end) in busy {
            if start >= offset + b.size {
                break; // the gap before this interval fits
            }
            offset = offset.max(end);
        }
        offsets[i] = offset;
        placed.push(i);
    }
    let arena_bytes = buffers
        .iter()
        .zip(&offsets)
        .map(|(b, &o)| o + b.size)
        .max()
        .unwrap_or(0);
    let steps = buffers.iter().map(|b| b.last + 1).max().unwrap_or(0);
    let max_live_bytes = (0..steps)
        .map(|s| {
            buffers
                .iter()
                .filter(|b| b.first <= s && s <= b.last)
                .map(|b| b.size)
                .sum::<usize>()
        })
        .max()
        .unwrap_or(0);
    MemoryPlan {
        offsets,
        arena_bytes,
        max_live_bytes,
        naive_bytes: buffers.iter().map(|b| b.size).sum(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn buf(size: usize, first: usize, last: usize) -> Buffer {
        Buffer { size, first, last }
    }

    #[test]
    fn a_chain_needs_two_buffers_at_a_time() {
        // 784 -> 300 -> 100 -> 10 with input/output outside the arena: the 300 and 100 buffers
        // are live together at step 1.
        let p = plan(&[buf(300, 0, 1), buf(100, 1, 2)]);
        assert_eq!(p.arena_bytes, 400);
        assert_eq!(p.max_live_bytes, 400);
        assert_eq!(p.naive_bytes, 400);
        // A longer chain reuses memory: a, b, c with a and c never live together.
        let p = plan(&[buf(64, 0, 1), buf(32, 1, 2), buf(64, 2, 3)]);
        assert_eq!(p.arena_bytes, 96);
        assert_eq!(p.offsets[0], p.offsets[2]);
        assert_eq!(p.naive_bytes, 160);
    }

    #[test]
    fn fills_gaps_between_placed_buffers() {
        // Big buffers at [0,100) and [150,250) live throughout; a 50-byte buffer fits between.
        let p = plan(&[buf(100, 0, 9), buf(50, 0, 9), buf(100, 0, 9), buf(40, 3, 4)]);
        assert_eq!(p.arena_bytes, 290);
        let p2 = plan(&[buf(100, 0, 1), buf(100, 0, 9), buf(30, 2, 3), buf(30, 2, 3)]);
        // After step 1 the first buffer is dead: both 30-byte buffers reuse its space.
        assert_eq!(p2.arena_bytes, 200);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]
        #[test]
        fn live_buffers_never_overlap(spec in proptest::collection::vec((0usize..200, 0usize..12, 0usize..4), 0..14)) {
            let buffers: Vec<Buffer> = spec.iter().map(|&(size, first, len)| buf(size, first, first + len)).collect();
            let p = plan(&buffers);
            for i in 0..buffers.len() {
                prop_assert!(p.offsets[i] + buffers[i].size <= p.arena_bytes);
                for j in 0..i {
                    if buffers[i].live_with(&buffers[j]) && buffers[i].size > 0 && buffers[j].size > 0 {
                        let (a, b) = (p.offsets[i], p.offsets[j]);
                        prop_assert!(a + buffers[i].size <= b || b + buffers[j].size <= a,
                            "buffers {i} and {j} overlap");
                    }
                }
            }
            prop_assert!(p.max_live_bytes <= p.arena_bytes);
            prop_assert!(p.arena_bytes <= p.naive_bytes);
        }
    }
}
