//! Sparse weight storage for Dense layers: the encoder of `bonsai-rt`'s delta-CSR format and the
//! cost model that chooses between dense and sparse storage per layer.
//!
//! The format is specified in `bonsai_rt::kernels::fully_connected_sparse` (module docs): per
//! row, `(weight, column step)` entries where the first step is the column itself and later
//! ones the distance from the previous entry, gaps over 255 bridged by filler entries `(0, 255)`,
//! plus one entry count per row (`u8` if every row has at most 255 entries, else `u16`). The
//! generated crate builds each matrix with the runtime's `const` validating constructor, so an
//! encoding mistake here is a compile error of the model crate rather than a wrong answer.
//!
//! ## Cost model
//!
//! Instructions per inference of one layer with `out` rows, `in` columns and `E` sparse entries:
//!
//! ```text
//! dense  = out · (in · DENSE_PER_MAC + DENSE_PER_ROW)
//! sparse = out · SPARSE_PER_ROW + E · SPARSE_PER_ENTRY
//! ```
//!
//! The constants ([`THUMBV7EM`], [`THUMBV6M`]) were read off the release disassembly
//! (`opt-level = "s"`, `lto`, `codegen-units = 1`, `llvm-objdump -d`) of the current
//! `fully_connected_s8` and `fully_connected_sparse_s8` wrapped in a tiny staticlib:
//!
//! | target | dense / MAC | dense / row | sparse / entry | sparse / row |
//! |---|---:|---:|---:|---:|
//! | thumbv7em | 2 (`SXTB16`/`SMLAD` path) | 80 | 5 (pair loop: `ldr`, `uxtab`, 2 `ldrsb`, `add`, `sxtb16`, `smlabb`, `smlatb`, `subs`, `bne` per 2 entries) | 45 |
//! | thumbv6m | 10 (two of them stack reloads) | 135 | 10 (`ldrsb`, `ldrb`, `adds`, `ldrsb`, `muls`, `adds`, `adds`, `ldr`, `cmp`, `bne`) | 155 |
//!
//! thumbv7em re-measured under QEMU `-icount` (exact instruction counts): the dense DSP kernel
//! runs 784→300 at 2.10 instructions per MAC (`kernels_qemu`: 2 per MAC + 80 per row); the
//! sparse kernel ran a 2 % LeNet-300-100 (5,999 entries, 410 rows) in 48,465 instructions per
//! inference, 5 per entry + 45 per row (66 per row before the per-channel constants were packed
//! into one `ChannelQuant` array with the shift pre-split, which ended LLVM's stack spills of
//! the three array pointers). thumbv6m figures predate the fast requantization and are
//! an upper bound for sparse (its entry loop is unchanged, its per-row work shrank).
//!
//! Per-row figures include requantization on the common path; on thumbv6m that calls
//! `__aeabi_lmul` (37 instructions, counted). The model crate does not know its target, so
//! sparse must be estimated no slower on **both** targets. They are instruction counts, not
//! cycles (loads take 2 cycles on Cortex-M4, 1–2 on M0), and must be re-measured when a kernel
//! changes: in particular a DSP dense kernel (CMSIS-NN reaches ≈ 2 instructions per MAC on M4)
//! moves the thumbv7em break-even from ≈ 70 % density down to ≈ 28 %.
//!
//! [`StoragePolicy::Auto`] picks sparse when its weight table is strictly smaller in flash
//! (`2·E + out·w` bytes against `out·in`; the per-channel arrays are the same for both) **and** it
//! is estimated no slower. With the constants above sparse wins below roughly 40 % density on
//! thumbv7em (speed binds there now), and flash binds elsewhere (≈ 50 %).

use super::{LowerError, Storage, StoragePolicy};

/// Instruction estimates of the two kernels on one target (see the module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CostModel {
    pub target: &'static str,
    pub dense_per_mac: u64,
    pub dense_per_row: u64,
    pub sparse_per_entry: u64,
    pub sparse_per_row: u64,
}

/// Cortex-M4/M7 (`thumbv7em`), measured at `opt-level = "s"`.
pub const THUMBV7EM: CostModel = CostModel {
    target: "thumbv7em",
    dense_per_mac: 2,
    dense_per_row: 80,
    sparse_per_entry: 5,
    sparse_per_row: 45,
};

/// Cortex-M0/M0+ (`thumbv6m`), measured at `opt-level = "s"`.
pub const THUMBV6M: CostModel = CostModel {
    target: "thumbv6m",
    dense_per_mac: 10,
    dense_per_row: 135,
    sparse_per_entry: 10,
    sparse_per_row: 155,
};

/// The targets whose estimates [`StoragePolicy::Auto`] consults.
pub const TARGETS: [CostModel; 2] = [THUMBV7EM, THUMBV6M];

impl CostModel {
    pub fn dense_insns(&self, in_len: usize, out_len: usize) -> u64 {
        out_len as u64 * (in_len as u64 * self.dense_per_mac + self.dense_per_row)
    }

    pub fn sparse_insns(&self, entries: usize, out_len: usize) -> u64 {
        out_len as u64 * self.sparse_per_row + entries as u64 * self.sparse_per_entry
    }
}

/// Width of the per-row entry counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RowLenWidth {
    U8,
    U16,
    /// A row has more than 65535 entries: the runtime cannot store this layer sparsely.
    TooLong,
}

impl RowLenWidth {
    pub fn bytes(self) -> usize {
        match self {
            RowLenWidth::U8 => 1,
            RowLenWidth::U16 => 2,
            // What a u32 count would take; only used to report the (unavailable) option.
            RowLenWidth::TooLong => 4,
        }
    }
}

/// A weight matrix in delta CSR.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SparseWeights {
    /// `(weight, column step)`, row by row, fillers included.
    pub entries: Vec<(i8, u8)>,
    /// Entries per row.
    pub row_lens: Vec<usize>,
    /// Nonzero weights (entries minus fillers).
    pub nonzeros: usize,
}

impl SparseWeights {
    /// Encodes row-major `[out][in]` weights canonically: every nonzero weight, in column order,
    /// with a filler `(0, 255)` for each 255 columns a gap cannot be spanned in one step.
    pub fn encode(weights: &[i8], in_len: usize, out_len: usize) -> SparseWeights {
        assert_eq!(weights.len(), in_len * out_len, "weights length");
        let mut s = SparseWeights {
            entries: Vec::new(),
            row_lens: Vec::with_capacity(out_len),
            nonzeros: 0,
        };
        if in_len == 0 {
            s.row_lens.resize(out_len, 0);
            return s;
        }
        for row in weights.chunks_exact(in_len) {
            let start = s.entries.len();
            let mut cursor = 0;
            for (col, &w) in row.iter().enumerate().filter(|(_, &w)| w != 0) {
                while col - cursor > 255 {
                    s.entries.push((0, 255));
                    cursor += 255;
                }
                s.entries.push((w, (col - cursor) as u8));
                cursor = col;
                s.nonzeros += 1;
            }
            s.row_lens.push(s.entries.len() - start);
        }
        s
    }

    pub fn fillers(&self) -> usize {
        self.entries.len() - self.nonzeros
    }

    pub fn row_len_width(&self) -> RowLenWidth {
        match self.row_lens.iter().max().copied().unwrap_or(0) {
            0..=255 => RowLenWidth::U8,
            256..=65535 => RowLenWidth::U16,
            _ => RowLenWidth::TooLong,
        }
    }

    /// Flash of the entries and row lengths.
    pub fn bytes(&self) -> usize {
        2 * self.entries.len() + self.row_lens.len() * self.row_len_width().bytes()
    }

    /// Back to row-major dense weights (for tests and checks).
    #[cfg(test)]
    pub fn decode(&self, in_len: usize) -> Vec<i8> {
        let mut dense = vec![0i8; in_len * self.row_lens.len()];
        let mut entries = self.entries.iter();
        for (o, &n) in self.row_lens.iter().enumerate() {
            let mut col = 0;
            for &(w, d) in entries.by_ref().take(n) {
                col += d as usize;
                dense[o * in_len + col] += w;
            }
        }
        dense
    }
}

/// Estimated instructions per inference of one layer on each target (see [`THUMBV7EM`] and
/// [`THUMBV6M`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Insns {
    pub thumbv7em: u64,
    pub thumbv6m: u64,
}

impl Insns {
    /// `n` calls' worth (a convolution runs its filters once per output position).
    pub fn times(self, n: usize) -> Insns {
        Insns {
            thumbv7em: self.thumbv7em * n as u64,
            thumbv6m: self.thumbv6m * n as u64,
        }
    }
}

/// What the choice was based on, for one Dense layer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Choice {
    pub storage: Storage,
    pub sparse: SparseWeights,
    pub dense_bytes: usize,
    pub sparse_bytes: usize,
    pub dense_insns: Insns,
    pub sparse_insns: Insns,
}

/// Encodes the layer and applies `policy` (see the module docs for `Auto`).
pub fn choose(
    node: &str,
    weights: &[i8],
    in_len: usize,
    out_len: usize,
    policy: StoragePolicy,
) -> Result<Choice, LowerError> {
    let sparse = SparseWeights::encode(weights, in_len, out_len);
    let insns = |f: &dyn Fn(&CostModel) -> u64| Insns {
        thumbv7em: f(&THUMBV7EM),
        thumbv6m: f(&THUMBV6M),
    };
    let dense_insns = insns(&|c| c.dense_insns(in_len, out_len));
    let sparse_insns = insns(&|c| c.sparse_insns(sparse.entries.len(), out_len));
    let dense_bytes = weights.len();
    let sparse_bytes = sparse.bytes();
    let encodable = sparse.row_len_width() != RowLenWidth::TooLong;
    let storage = match policy {
        StoragePolicy::Dense => Storage::Dense,
        StoragePolicy::Sparse if encodable => Storage::Sparse,
        StoragePolicy::Sparse => {
            return Err(LowerError::Unsupported {
                node: node.into(),
                msg: "sparse storage was requested, but a row has more than 65535 entries \
                      (the runtime counts row entries in u16)"
                    .into(),
            })
        }
        StoragePolicy::Auto => {
            let smaller = sparse_bytes < dense_bytes;
            let not_slower = TARGETS.iter().all(|c| {
                c.sparse_insns(sparse.entries.len(), out_len) <= c.dense_insns(in_len, out_len)
            });
            if encodable && smaller && not_slower {
                Storage::Sparse
            } else {
                Storage::Dense
            }
        }
    };
    Ok(Choice {
        storage,
        sparse,
        dense_bytes,
        sparse_bytes,
        dense_insns,
        sparse_insns,
    })
}
