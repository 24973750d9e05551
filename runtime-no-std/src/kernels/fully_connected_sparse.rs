//! Sparse (pruned) fully connected int8 layer, same quantization semantics as
//! [`fully_connected_s8`](super::fully_connected::fully_connected_s8).
//!
//! Pruned weights are exactly zero, so a pruned layer only has to store and multiply its
//! nonzero weights. The folded bias is the dense one (zero weights add nothing to
//! `Σ_j w[o][j]`), so per output channel `o`
//!
//! ```text
//! acc[o]    = folded_bias[o] + Σ_{w[o][j] ≠ 0} x[j] · w[o][j]
//! output[o] = requantize(acc[o], multiplier[o], shift[o])        (as in the dense kernel)
//! ```
//!
//! ## Storage format: delta CSR with zero-valued filler entries
//!
//! A matrix of `out` rows (output channels) and `in` columns (inputs) is a list of *entries*,
//! row by row, with columns strictly ascending inside a row. Two arrays describe it:
//!
//! | array | element | length | meaning |
//! |---|---|---|---|
//! | `entries` | `(i8, u8)` | `E` | `(weight, delta)`: the weight and the column step (below) |
//! | `row_lens` | `u8` or `u16` ([`RowLens`]) | `out` | the number of entries of each row |
//!
//! Column steps: each row starts a cursor at column 0; an entry's column is the cursor plus
//! its delta, and becomes the new cursor. So the first entry of a row has `delta = column`
//! and every later one `delta = column − previous column`:
//!
//! ```text
//! col = 0
//! for each entry (w, d) of the row:  col += d;  acc += w · x[col]
//! ```
//!
//! **Gaps of 256 columns or more** do not fit a byte. They are bridged with *filler entries*
//! `(0, 255)`: while the next nonzero is more than 255 columns past the cursor, the encoder
//! emits a filler, which moves the cursor 255 columns on; then the nonzero itself follows
//! with the remaining step (1..=255; 0..=255 for the first entry of a row). A filler lands on
//! a column whose weight is zero anyway and adds `0 · x = 0`, so the inner loop has no escape
//! test at all: fillers are ordinary entries. They cost 2 bytes per 255 skipped columns, at
//! most `⌊(in − 1) / 255⌋` per row (3 for `in = 784`), and are rare unless the density is
//! below ~1 %: a nonzero is followed by a gap of ≥ 256 zeros with probability
//! `(1 − p)^255` at density `p` (0.6 % at `p` = 2 %, 7.7 % at 1 %).
//!
//! The canonical encoding (what the Bonsai compiler emits) stores exactly the nonzero weights
//! plus the fillers. Every delta value 0..=255 is meaningful; none is reserved.
//!
//! Weights and deltas are interleaved so that one pointer walks both. Measured in the
//! release disassembly (`opt-level = "s"`, see the kernel): 7 instructions per entry on
//! thumbv7em either way, but 10 instead of 12 on thumbv6m, where two separate arrays need one
//! pointer more than the eight low registers hold.
//!
//! **Row lengths** are per-row entry counts rather than row pointers: `out` bytes when no row
//! has more than 255 entries ([`RowLens::U8`]), else `2·out` bytes ([`RowLens::U16`]); row
//! pointers would take `2·(out + 1)` or `4·(out + 1)` bytes for the same information.
//!
//! Flash: `2·E + out` bytes (or `2·E + 2·out`), against `out · in` for the dense weights;
//! the per-channel arrays (folded bias, multiplier, shift) are the same for both.
//!
//! Worked example, one row of a layer with `in = 600`, nonzeros `w[2] = 5`, `w[3] = −1`,
//! `w[590] = 7`: entries `(5, 2)`, `(−1, 1)`, filler `(0, 255)` (cursor 258), filler
//! `(0, 255)` (cursor 513), `(7, 77)`: row length 5, 11 bytes with its `u8` row length.
//!
//! ## Invariants and safety
//!
//! [`SparseMatrix`] has private fields and is only built by [`SparseMatrix::try_new`] or
//! [`SparseMatrix::new`], `const fn`s that check, once:
//!
//! 1. the row lengths add up to `entries.len()`;
//! 2. in every non-empty row, the sum of the deltas (the last entry's column) is `< in`.
//!
//! Deltas are unsigned, so (2) bounds every column of the row. The code generator builds its
//! matrices in `static` initialisers, so a malformed table is a *compile-time* error of the
//! model crate, never a run-time check. The kernel checks `input.len() >= in` once per call;
//! with that, every `x[col]` is in bounds, which is why the hot loop reads the input without
//! a bounds check (the one `unsafe` block below, with this argument next to it). A bounds
//! check there would cost 2 of the 7 instructions per entry on thumbv7em.

use crate::requant::requantize;

/// Entries per row, one per output channel: the narrowest type that holds the longest row.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RowLens<'a> {
    /// Every row has at most 255 entries.
    U8(&'a [u8]),
    /// Some row has 256..=65535 entries.
    U16(&'a [u16]),
}

impl RowLens<'_> {
    /// Number of rows (output channels).
    pub const fn len(&self) -> usize {
        match self {
            RowLens::U8(l) => l.len(),
            RowLens::U16(l) => l.len(),
        }
    }

    /// True for a matrix without rows.
    pub const fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Entries of row `row` (0 past the end).
    pub const fn get(&self, row: usize) -> usize {
        match self {
            RowLens::U8(l) if row < l.len() => l[row] as usize,
            RowLens::U16(l) if row < l.len() => l[row] as usize,
            _ => 0,
        }
    }

    /// Bytes of flash the array takes.
    pub const fn bytes(&self) -> usize {
        match self {
            RowLens::U8(l) => l.len(),
            RowLens::U16(l) => 2 * l.len(),
        }
    }
}

/// Why [`SparseMatrix::try_new`] refused its arrays.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SparseError {
    /// The row lengths do not add up to the number of entries.
    RowLensSum,
    /// Some entry's column is `>= in` (the row's deltas add up to too much).
    ColumnOutOfRange {
        /// The first offending row.
        row: usize,
    },
}

impl SparseError {
    /// A fixed message (usable in `const` panics).
    pub const fn message(&self) -> &'static str {
        match self {
            SparseError::RowLensSum => "sparse matrix: row lengths do not add up to the entries",
            SparseError::ColumnOutOfRange { .. } => {
                "sparse matrix: a row's columns reach past the input length"
            }
        }
    }
}

/// A validated delta-CSR matrix (format in the [module docs](self)).
#[derive(Clone, Copy, Debug)]
pub struct SparseMatrix<'a> {
    in_len: usize,
    entries: &'a [(i8, u8)],
    row_lens: RowLens<'a>,
}

impl<'a> SparseMatrix<'a> {
    /// Checks the [invariants](self#invariants-and-safety) and wraps the arrays. `in_len` is the
    /// number of columns (layer inputs); `row_lens.len()` the number of rows (outputs).
    pub const fn try_new(
        in_len: usize,
        entries: &'a [(i8, u8)],
        row_lens: RowLens<'a>,
    ) -> Result<Self, SparseError> {
        // `while` loops: `for` is not allowed in a const fn. Indices stay below
        // `entries.len()` and `row_lens.len()` (checked first), so nothing here can panic.
        let rows = row_lens.len();
        let mut row = 0;
        let mut start = 0;
        while row < rows {
            let n = row_lens.get(row);
            if n > entries.len() - start {
                return Err(SparseError::RowLensSum);
            }
            if n > 0 {
                // At most 255 · 65535: no overflow.
                let mut col = 0usize;
                let mut k = start;
                while k < start + n {
                    col += entries[k].1 as usize;
                    k += 1;
                }
                if col >= in_len {
                    return Err(SparseError::ColumnOutOfRange { row });
                }
            }
            start += n;
            row += 1;
        }
        if start != entries.len() {
            return Err(SparseError::RowLensSum);
        }
        Ok(SparseMatrix {
            in_len,
            entries,
            row_lens,
        })
    }

    /// [`try_new`](Self::try_new) for `static` initialisers: panics on invalid arrays, which in
    /// a `const` or `static` is a compile error.
    pub const fn new(in_len: usize, entries: &'a [(i8, u8)], row_lens: RowLens<'a>) -> Self {
        match Self::try_new(in_len, entries, row_lens) {
            Ok(m) => m,
            Err(e) => panic!("{}", e.message()),
        }
    }

    /// Number of columns (inputs).
    pub const fn in_len(&self) -> usize {
        self.in_len
    }

    /// Number of rows (outputs).
    pub const fn out_len(&self) -> usize {
        self.row_lens.len()
    }

    /// The `(weight, delta)` entries, row by row, fillers included.
    pub const fn entries(&self) -> &'a [(i8, u8)] {
        self.entries
    }

    /// Entries per row.
    pub const fn row_lens(&self) -> RowLens<'a> {
        self.row_lens
    }

    /// Bytes of flash of the two arrays: `2 · entries + row_lens.bytes()`.
    pub const fn bytes(&self) -> usize {
        2 * self.entries.len() + self.row_lens.bytes()
    }
}

/// One output channel's requantization constants, packed so that the row loop walks a single
/// pointer for all of them (three separate `i32` arrays cost three pointers, which LLVM spilled
/// to the stack and reloaded on every row).
///
/// Built only by [`ChannelQuant::new`] from the folded bias, the Q31 multiplier and the shift of
/// [`requantize`]; the shift is stored pre-split into the left shift `clamp(shift, 0, 30)`, the
/// right shift `clamp(-shift, 0, 31)` and the rounding bit's position `(right − 1) mod 32`, so the
/// kernel does no clamping. 12 bytes per channel, as many as the three `i32` arrays.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(C)]
pub struct ChannelQuant {
    bias: i32,
    multiplier: i32,
    left: u8,
    right: u8,
    round: u8,
}

impl ChannelQuant {
    /// `folded_bias` as for the dense kernel, `multiplier` and `shift` as for [`requantize`]
    /// (any `shift`; it is clamped to `-31..=30` as there).
    pub const fn new(folded_bias: i32, multiplier: i32, shift: i32) -> Self {
        let left = if shift > 30 {
            30
        } else if shift < 0 {
            0
        } else {
            shift
        };
        let right = if shift < -31 {
            31
        } else if shift > 0 {
            0
        } else {
            -shift
        };
        ChannelQuant {
            bias: folded_bias,
            multiplier,
            left: left as u8,
            right: right as u8,
            round: ((right + 31) & 31) as u8,
        }
    }

    /// The folded bias.
    pub const fn bias(&self) -> i32 {
        self.bias
    }

    /// The Q31 multiplier.
    pub const fn multiplier(&self) -> i32 {
        self.multiplier
    }

    /// The shift, clamped to `-31..=30` (positive = left).
    pub const fn shift(&self) -> i32 {
        self.left as i32 - self.right as i32
    }

    /// [`requantize`]`(bias + sum, multiplier, shift, …)`, bit for bit, with one 64-bit
    /// multiply-accumulate and no division (proptest `requantize_fast_is_exact`).
    ///
    /// gemmlowp's high multiply adds a sign-dependent nudge and truncates toward zero; that is
    /// `floor((a·b + 2^30) / 2^31)` for either sign (for a negative numerator `n`, truncation is
    /// `floor((n + 2^31 − 1) / 2^31)`, and `1 − 2^30 + 2^31 − 1 = 2^30`). With
    /// `t = a·b + 2^30 = hi·2^32 + lo`, that floor is `2·hi + (lo >> 31)`. The one product whose
    /// result overflows, `(−2^31)²`, is the one where `2·hi` overflows (`hi = 2^30`,
    /// `lo < 2^31`), so a saturating doubling (`QADD`) gives the reference's `i32::MAX`. On the
    /// Cortex-M4 that is `SMLAL`, `QADD`, `ORR` instead of a sign test, two 64-bit adds and a
    /// 64-bit shift; on the Cortex-M0 it saves the sign-dependent 64-bit arithmetic around
    /// `__aeabi_lmul`.
    ///
    /// The rounding right shift by `e` (ties away from zero) is `(z >> e) + ((z >> (e − 1)) & 1)`
    /// with `z = y − [y < 0]`: for `y ≥ 0` that is round-half-up; for `y < 0` subtracting one
    /// turns a remainder of exactly one half into one just below it, so ties round down (away
    /// from zero), and a remainder of 0 borrows from the quotient and adds the one back. `y − 1`
    /// cannot overflow: the high multiply is at least `−2^31 + 1`. For `e = 0` the shift by
    /// `round = 31` yields the sign bit, which adds back the one subtracted: `z >> 0 + 1 = y`.
    #[inline(always)]
    pub fn requantize<const FULL_RANGE: bool>(
        &self,
        sum: i32,
        output_offset: i32,
        act_min: i8,
        act_max: i8,
    ) -> i8 {
        let (left, right, round) = (
            u32::from(self.left),
            u32::from(self.right),
            u32::from(self.round),
        );
        // SAFETY: `new` is the only constructor (the fields are private) and stores
        // `left <= 30`, `right <= 31`, `round <= 31`. Telling LLVM so removes the `& 31` that
        // Rust's shift semantics would otherwise add before each register shift.
        unsafe {
            core::hint::assert_unchecked(left < 32 && right < 32 && round < 32);
        }
        let x = self.bias.wrapping_add(sum) << left;
        let t = i64::from(x) * i64::from(self.multiplier) + (1 << 30);
        let hi = (t >> 32) as i32;
        let high = hi.saturating_add(hi) | ((t as u32) >> 31) as i32;
        let z = high + (high >> 31);
        let scaled = (z >> right) + ((z >> round) & 1);
        let out = scaled.saturating_add(output_offset);
        if FULL_RANGE {
            // `SSAT #8`: the caller checked that `[act_min, act_max]` is the whole i8 range.
            out.clamp(-128, 127) as i8
        } else {
            out.max(i32::from(act_min)).min(i32::from(act_max)) as i8
        }
    }
}

/// A sparse dense-layer's parameters; the code generator emits one as a `static` per layer.
///
/// Like [`FcParams`](super::fully_connected::FcParams) with the weights in delta CSR and the
/// per-channel constants packed into one [`ChannelQuant`] per row of `weights`.
#[derive(Clone, Copy, Debug)]
pub struct SparseFcParams<'a> {
    /// Per-channel symmetric weights, values in `[-127, 127]`.
    pub weights: SparseMatrix<'a>,
    /// Per output channel: the folded bias `bias[o] + input_offset · Σ_j w[o][j]` (as for the
    /// dense kernel), the Q31 multiplier and the shift.
    pub channels: &'a [ChannelQuant],
    /// Output zero point.
    pub output_offset: i32,
    /// Lower clamp (output zero point for a fused ReLU, else -128).
    pub act_min: i8,
    /// Upper clamp (usually 127).
    pub act_max: i8,
}

/// `output[o] = requantize(folded_bias[o] + Σ_{entries (w, col) of row o} w · input[col])`.
///
/// `input.len()` must be at least `weights.in_len()` (it is `in_len` in generated code): if it
/// is shorter, nothing is written (debug builds assert). Rows are processed for
/// `o < min(output.len(), rows, channels.len())`; the rest of `output` is left untouched (debug
/// builds assert that these lengths agree).
///
/// Cost on thumbv7em under QEMU `-icount`: 5 instructions per entry in the pair loop (see
/// [`row_dot_pairs`]) plus the per-row work (row set-up, requantization, store); thumbv6m 10 per
/// entry.
#[inline(never)]
pub fn fully_connected_sparse_s8(p: &SparseFcParams, input: &[i8], output: &mut [i8]) {
    // One compiled copy for every layer (see the `kernels` module docs).
    let (p, input, output) = core::hint::black_box((p, input, output));
    let m = &p.weights;
    debug_assert!(input.len() >= m.in_len, "input shorter than in_len");
    debug_assert_eq!(m.out_len(), output.len(), "rows");
    debug_assert_eq!(p.channels.len(), output.len(), "channels length");
    // The one check that makes every input read in bounds (see the module docs).
    if input.len() < m.in_len {
        return;
    }
    // Layers without a clamp narrower than i8 (no fused ReLU, or a ReLU whose zero point is
    // -128) get a loop whose final clamp is one `SSAT`.
    let full = p.act_min == i8::MIN && p.act_max == i8::MAX;
    match (m.row_lens, full) {
        (RowLens::U8(lens), true) => rows::<_, true>(p, lens, input, output),
        (RowLens::U8(lens), false) => rows::<_, false>(p, lens, input, output),
        (RowLens::U16(lens), true) => rows::<_, true>(p, lens, input, output),
        (RowLens::U16(lens), false) => rows::<_, false>(p, lens, input, output),
    }
}

/// One row at a time: its dot product, then its requantization. (Blocking rows into a dot
/// phase and a requantization phase, to relieve register pressure, measured slower on the
/// Cortex-M4 at `opt-level = "s"`: 64,718 instead of 58,335 instructions for a 2 % LeNet-300-100.)
#[inline(always)]
fn rows<L: Copy + Into<usize>, const FULL_RANGE: bool>(
    p: &SparseFcParams,
    lens: &[L],
    input: &[i8],
    output: &mut [i8],
) {
    let mut entries = p.weights.entries;
    for ((out, q), &n) in output.iter_mut().zip(p.channels).zip(lens) {
        // Never fails for a validated matrix (row lengths add up to the entries); `else`
        // instead of a panic keeps the kernel panic-free.
        let Some((row, rest)) = entries.split_at_checked(n.into()) else {
            return;
        };
        entries = rest;
        *out =
            q.requantize::<FULL_RANGE>(row_dot(row, input), p.output_offset, p.act_min, p.act_max);
    }
}

/// `Σ_k w_k · input[col_k]` with `col_k = Σ_{i ≤ k} d_i` over `row = [(w_0, d_0), …]`: the hot
/// loop, portable version (Cortex-M0/M3, hosts).
///
/// Callers (only [`rows`]) pass one row of a validated [`SparseMatrix`] and an `input` at
/// least `in_len` long, so every `col_k < in_len <= input.len()`.
#[cfg(not(bonsai_dsp))]
#[inline(always)]
fn row_dot(row: &[(i8, u8)], input: &[i8]) -> i32 {
    row_dot_portable(row, input)
}

#[cfg_attr(all(bonsai_dsp, not(test)), allow(dead_code))]
#[inline(always)]
fn row_dot_portable(row: &[(i8, u8)], input: &[i8]) -> i32 {
    let mut col = 0usize;
    let mut sum = 0i32;
    for &(w, d) in row {
        col += usize::from(d);
        // SAFETY: `row` is one row of a `SparseMatrix`, whose constructor checked that the
        // row's delta sum (its last and largest column, deltas being unsigned) is `< in_len`;
        // `fully_connected_sparse_s8` returned early unless `input.len() >= in_len`. So
        // `col < input.len()` here.
        let x = unsafe { *input.get_unchecked(col) };
        sum = sum.wrapping_add(i32::from(x) * i32::from(w));
    }
    sum
}

/// The hot loop on cores with the DSP extension (Cortex-M4/M7): two entries per 32-bit load.
///
/// One `LDR` brings `(w0, d0, w1, d1)`; `SXTB16` sign-extends both weights into the two
/// halfwords of one register at once, `UXTB ROR #8` and `ADD … LSR #24` take the deltas
/// straight from the word, and `SMLABB`/`SMLABT` multiply each input byte by its halfword:
/// 9 instructions per pair instead of 10 for two single entries (the loop's compare and
/// branch come on top of both). Same wrapping sums in the same order as
/// [`row_dot_portable`], so bit-exact. `LDR` may be unaligned on ARMv7-M.
#[cfg(any(bonsai_dsp, test))]
#[inline(always)]
fn row_dot_pairs(row: &[(i8, u8)], input: &[i8]) -> i32 {
    #[allow(clippy::let_unit_value)]
    let () = ENTRY_LAYOUT;
    let mut col = 0usize;
    let mut sum = 0i32;
    let (pairs, rest) = row.as_chunks::<2>();
    for pair in pairs {
        // SAFETY: `[(i8, u8); 2]` is 4 bytes without padding, laid out `w0, d0, w1, d1`
        // (asserted at compile time by `ENTRY_LAYOUT`); `read_unaligned` needs no alignment.
        // (Unrolling to two words per iteration measured slower: the remainder handling costs
        // more per row than the saved loop branches.)
        let v = u32::from_le(unsafe { pair.as_ptr().cast::<u32>().read_unaligned() });
        sum = pair_dot(v, input, &mut col, sum);
    }
    if let [(w, d)] = rest {
        col += usize::from(*d);
        // SAFETY: as in `row_dot_portable`: every column of a validated row is `< in_len`.
        let x = unsafe { *input.get_unchecked(col) };
        sum = sum.wrapping_add(i32::from(x) * i32::from(*w));
    }
    sum
}

/// Two entries `v = (w0, d0, w1, d1)` (one little-endian word) of a validated row.
#[cfg(any(bonsai_dsp, test))]
#[inline(always)]
fn pair_dot(v: u32, input: &[i8], col: &mut usize, sum: i32) -> i32 {
    let ws = pair::sxtb16(v);
    *col += ((v >> 8) & 0xff) as usize;
    // SAFETY: as in `row_dot_portable`: every column of a validated row is `< in_len`.
    let x0 = unsafe { *input.get_unchecked(*col) };
    *col += (v >> 24) as usize;
    // SAFETY: as above.
    let x1 = unsafe { *input.get_unchecked(*col) };
    pair::smlabt(x1, ws, pair::smlabb(x0, ws, sum))
}

/// The pair loop reads two entries as one little-endian word: the tuple must be `(w, d)` in
/// that byte order, which Rust does not promise for tuples in general, so it is checked here.
#[cfg(any(bonsai_dsp, test))]
const ENTRY_LAYOUT: () = assert!(
    core::mem::size_of::<[(i8, u8); 2]>() == 4
        && core::mem::offset_of!((i8, u8), 0) == 0
        && core::mem::offset_of!((i8, u8), 1) == 1
);

/// Cortex-M4: [`row_dot_pairs`]. (The same loop as one `asm!` block, with a 5-instruction
/// row set-up, measured slower, 57,468 against 57,114 instructions for a 2 % LeNet-300-100:
/// the block's fixed register demand made LLVM spill the outer loop's pointers around it.)
#[cfg(bonsai_dsp)]
#[inline(always)]
fn row_dot(row: &[(i8, u8)], input: &[i8]) -> i32 {
    row_dot_pairs(row, input)
}

/// `SXTB16`, `SMLABB`, `SMLABT` for [`row_dot_pairs`]: instructions on ARM (`bonsai_dsp`),
/// emulated on the host so that the host proptests cover the pair logic.
#[cfg(any(bonsai_dsp, test))]
mod pair {
    /// Bytes 0 and 2 of `v`, sign-extended into the low and high halfwords.
    #[cfg(bonsai_dsp)]
    #[inline(always)]
    pub fn sxtb16(v: u32) -> u32 {
        let r: u32;
        // SAFETY: a register-only ALU instruction.
        unsafe {
            core::arch::asm!("sxtb16 {r}, {v}", r = lateout(reg) r, v = in(reg) v,
                 options(pure, nomem, nostack, preserves_flags));
        }
        r
    }

    #[cfg(not(bonsai_dsp))]
    pub fn sxtb16(v: u32) -> u32 {
        let h = |b: u32| u32::from((v >> b) as u8 as i8 as i16 as u16);
        h(0) | (h(16) << 16)
    }

    /// `acc + x · ws.lo` (LLVM selects `SMLABB` for the 16 × 16 product).
    #[inline(always)]
    pub fn smlabb(x: i8, ws: u32, acc: i32) -> i32 {
        acc.wrapping_add(i32::from(x) * i32::from(ws as u16 as i16))
    }

    /// `acc + x · ws.hi` (`SMLABT`).
    #[inline(always)]
    pub fn smlabt(x: i8, ws: u32, acc: i32) -> i32 {
        acc.wrapping_add(i32::from(x) * i32::from((ws >> 16) as u16 as i16))
    }
}

/// Textbook sparse layer, for checking [`fully_connected_sparse_s8`]: with the unfolded `bias`
/// and `input_offset = -input_zero_point`,
/// `output[o] = requantize(bias[o] + Σ_{entries (w, col) of row o} (input[col] + input_offset) · w)`.
///
/// Decodes the columns explicitly and indexes with bounds checks, so it panics on a short
/// `input`, `bias`, `multiplier`, `shift` or `output`. Not for the hot path.
#[expect(
    clippy::too_many_arguments,
    reason = "mirrors the formula term by term; a params struct would hide what is compared"
)]
pub fn fully_connected_sparse_s8_reference(
    input: &[i8],
    weights: &SparseMatrix,
    bias: &[i32],
    input_offset: i32,
    multiplier: &[i32],
    shift: &[i32],
    output_offset: i32,
    act_min: i8,
    act_max: i8,
    output: &mut [i8],
) {
    let entries = weights.entries();
    let mut k = 0;
    for o in 0..weights.out_len() {
        let mut acc = bias[o];
        let mut col = 0;
        for _ in 0..weights.row_lens().get(o) {
            let (w, d) = entries[k];
            col += d as usize;
            let x = i32::from(input[col]) + input_offset;
            acc = acc.wrapping_add(x.wrapping_mul(i32::from(w)));
            k += 1;
        }
        output[o] = requantize(
            acc,
            multiplier[o],
            shift[o],
            output_offset,
            act_min,
            act_max,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::super::fully_connected::{fold_bias, fully_connected_s8_reference};
    use super::*;
    use proptest::prelude::*;
    use std::vec;
    use std::vec::Vec;

    /// Test-side encoder of the canonical format (the compiler has its own, in `lower`).
    struct Encoded {
        entries: Vec<(i8, u8)>,
        lens: Vec<usize>,
        nonzeros: usize,
    }

    fn encode(weights: &[i8], in_len: usize, out_len: usize) -> Encoded {
        let mut e = Encoded {
            entries: vec![],
            lens: vec![],
            nonzeros: 0,
        };
        for o in 0..out_len {
            let before = e.entries.len();
            let mut cursor = 0;
            for (j, &w) in weights[o * in_len..(o + 1) * in_len].iter().enumerate() {
                if w == 0 {
                    continue;
                }
                while j - cursor > 255 {
                    e.entries.push((0, 255));
                    cursor += 255;
                }
                e.entries.push((w, (j - cursor) as u8));
                cursor = j;
                e.nonzeros += 1;
            }
            e.lens.push(e.entries.len() - before);
        }
        e
    }

    /// Independent decoder: back to row-major dense weights.
    fn decode(m: &SparseMatrix) -> Vec<i8> {
        let mut dense = vec![0i8; m.in_len() * m.out_len()];
        let mut k = 0;
        for o in 0..m.out_len() {
            let mut col = 0;
            for _ in 0..m.row_lens().get(o) {
                let (w, d) = m.entries()[k];
                col += d as usize;
                assert!(col < m.in_len());
                dense[o * m.in_len() + col] += w;
                k += 1;
            }
        }
        dense
    }

    fn lens_u8(e: &Encoded) -> Option<Vec<u8>> {
        e.lens.iter().map(|&n| u8::try_from(n).ok()).collect()
    }

    fn lens_u16(e: &Encoded) -> Vec<u16> {
        e.lens.iter().map(|&n| u16::try_from(n).unwrap()).collect()
    }

    const HALF: i32 = 1 << 30;

    /// [`ChannelQuant::requantize`] with the accumulator split between the bias and the sum
    /// (both ways round, since the kernel adds them with wrapping), checked equal and returned.
    fn requantize_fast<const FULL_RANGE: bool>(
        acc: i32,
        multiplier: i32,
        shift: i32,
        output_offset: i32,
        act_min: i8,
        act_max: i8,
    ) -> i8 {
        let a = ChannelQuant::new(acc, multiplier, shift).requantize::<FULL_RANGE>(
            0,
            output_offset,
            act_min,
            act_max,
        );
        let half = acc / 2;
        let b = ChannelQuant::new(half, multiplier, shift).requantize::<FULL_RANGE>(
            acc.wrapping_sub(half),
            output_offset,
            act_min,
            act_max,
        );
        assert_eq!(a, b);
        let q = ChannelQuant::new(acc, multiplier, shift);
        assert_eq!(
            (q.bias(), q.multiplier(), q.shift()),
            (acc, multiplier, shift.clamp(-31, 30))
        );
        a
    }

    #[test]
    fn worked_example_from_the_docs() {
        let mut w = vec![0i8; 600];
        w[2] = 5;
        w[3] = -1;
        w[590] = 7;
        let e = encode(&w, 600, 1);
        assert_eq!(e.entries, [(5, 2), (-1, 1), (0, 255), (0, 255), (7, 77)]);
        assert_eq!(e.lens, [5]);
        let lens = lens_u8(&e).unwrap();
        let m = SparseMatrix::new(600, &e.entries, RowLens::U8(&lens));
        assert_eq!(decode(&m), w);
        assert_eq!(m.bytes(), 11);
    }

    #[test]
    fn by_hand_matches_the_dense_kernel_example() {
        // The dense kernel's example: weights [[1, 2, 3], [−1, 0, 1]], input [1, −2, 3],
        // input zp 1, bias [10, −4] → folded [4, −4] → output [15, 4].
        let m = SparseMatrix::new(
            3,
            &[(1, 0), (2, 1), (3, 1), (-1, 0), (1, 2)],
            RowLens::U8(&[3, 2]),
        );
        let p = SparseFcParams {
            weights: m,
            channels: &[
                ChannelQuant::new(4, HALF, 1),
                ChannelQuant::new(-4, HALF, 0),
            ],
            output_offset: 5,
            act_min: -128,
            act_max: 127,
        };
        let mut out = [0i8; 2];
        fully_connected_sparse_s8(&p, &[1, -2, 3], &mut out);
        assert_eq!(out, [15, 4]);
        let mut out = [0i8; 2];
        fully_connected_sparse_s8_reference(
            &[1, -2, 3],
            &m,
            &[10, -4],
            -1,
            &[HALF, HALF],
            &[1, 0],
            5,
            -128,
            127,
            &mut out,
        );
        assert_eq!(out, [15, 4]);
    }

    #[test]
    fn empty_rows_output_the_requantized_bias() {
        // 20·0.5 = 10, −7·0.5 = −3.5 → −3; offset 1 → [11, −2].
        let m = SparseMatrix::new(5, &[], RowLens::U16(&[0, 0]));
        let p = SparseFcParams {
            weights: m,
            channels: &[
                ChannelQuant::new(20, HALF, 0),
                ChannelQuant::new(-7, HALF, 0),
            ],
            output_offset: 1,
            act_min: -128,
            act_max: 127,
        };
        let mut out = [0i8; 2];
        fully_connected_sparse_s8(&p, &[9; 5], &mut out);
        assert_eq!(out, [11, -2]);
    }

    #[test]
    fn validation_rejects_every_broken_invariant() {
        let e = [(1i8, 0u8), (2, 1), (3, 1)];
        // Too few entries for the rows, and entries left over.
        assert_eq!(
            SparseMatrix::try_new(4, &e, RowLens::U8(&[2, 2])).unwrap_err(),
            SparseError::RowLensSum
        );
        assert_eq!(
            SparseMatrix::try_new(4, &e, RowLens::U8(&[2])).unwrap_err(),
            SparseError::RowLensSum
        );
        // Row 1's columns: 1, then 1 + 3 = 4, which is not < 4.
        let e = [(1i8, 3u8), (2, 1), (3, 3)];
        assert_eq!(
            SparseMatrix::try_new(4, &e, RowLens::U16(&[1, 2])).unwrap_err(),
            SparseError::ColumnOutOfRange { row: 1 }
        );
        // No columns at all: any entry is out of range, empty rows are fine.
        assert!(SparseMatrix::try_new(0, &[(1, 0)], RowLens::U8(&[1])).is_err());
        assert!(SparseMatrix::try_new(0, &[], RowLens::U8(&[0, 0])).is_ok());
        // The largest column is fine.
        let e = [(1i8, 3u8), (2, 1), (3, 2)];
        let m = SparseMatrix::try_new(4, &e, RowLens::U8(&[1, 2])).unwrap();
        assert_eq!(
            (m.in_len(), m.out_len(), m.entries().len(), m.bytes()),
            (4, 2, 3, 8)
        );
    }

    #[test]
    fn validation_runs_at_compile_time() {
        static M: SparseMatrix<'static> =
            SparseMatrix::new(300, &[(0, 255), (4, 44)], RowLens::U8(&[2]));
        assert_eq!(decode(&M)[299], 4);
    }

    #[test]
    #[should_panic(expected = "reach past the input length")]
    fn new_panics_on_invalid_arrays() {
        let _ = SparseMatrix::new(3, &[(1, 3)], RowLens::U8(&[1]));
    }

    #[test]
    #[cfg_attr(debug_assertions, should_panic(expected = "input shorter"))]
    fn short_input_writes_nothing() {
        let m = SparseMatrix::new(3, &[(1, 2)], RowLens::U8(&[1]));
        let p = SparseFcParams {
            weights: m,
            channels: &[ChannelQuant::new(0, HALF, 0)],
            output_offset: 0,
            act_min: -128,
            act_max: 127,
        };
        let mut out = [99i8; 1];
        fully_connected_sparse_s8(&p, &[1, 2], &mut out);
        assert_eq!(out, [99]);
    }

    #[derive(Debug)]
    struct Case {
        n_in: usize,
        input: Vec<i8>,
        weights: Vec<i8>,
        bias: Vec<i32>,
        input_offset: i32,
        multiplier: Vec<i32>,
        shift: Vec<i32>,
        output_offset: i32,
        act_min: i8,
        act_max: i8,
    }

    /// SplitMix64: the bulk of a case (up to 90,000 weights) comes from one seed, which keeps
    /// 10,000 cases fast; proptest still draws (and shrinks) shape, density and seed.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        }
        /// Uniform in `lo..=hi`.
        fn range(&mut self, lo: i64, hi: i64) -> i64 {
            lo + (self.next() % (hi - lo + 1) as u64) as i64
        }
        /// Uniform in [0, 1).
        fn unit(&mut self) -> f64 {
            (self.next() >> 11) as f64 / (1u64 << 53) as f64
        }
    }

    /// Random shapes up to 300 × 300, plus wide ones (500..=1100 inputs, up to 80 outputs) so
    /// that a gap can need two or more fillers; densities 0..=1; random zero points,
    /// multipliers and shifts. A third of the cases (`long_gaps`) are nearly empty rows with
    /// nonzeros at both ends and at columns 255, 256, 510, 511, so that gaps of exactly 255 and
    /// 256 and longer ones come up all the time; the rest still get long gaps at low density.
    fn case() -> impl Strategy<Value = Case> {
        (
            prop_oneof![
                (1usize..=300, 1usize..=300),
                (240usize..=300, 1usize..=300),
                (500usize..=1100, 1usize..=80),
            ],
            prop_oneof![Just(0.0), 0.0f64..0.05, 0.0f64..=1.0, Just(1.0)],
            prop::bool::weighted(1.0 / 3.0),
            any::<u64>(),
        )
            .prop_map(|((n_in, n_out), density, long_gaps, seed)| {
                let mut r = Rng(seed);
                let mut weights: Vec<i8> = (0..n_in * n_out)
                    .map(|_| {
                        let w = r.range(-127, 127) as i8;
                        if r.unit() < density {
                            w
                        } else {
                            0
                        }
                    })
                    .collect();
                if long_gaps {
                    weights.fill(0);
                    for _ in 0..r.range(1, 3 * n_out as i64) {
                        let o = r.range(0, n_out as i64 - 1) as usize;
                        let j = r.range(0, n_in as i64 - 1) as usize;
                        let w = r.range(-127, 127) as i8;
                        for col in [j, n_in - 1 - j, 0, 255, 256, 510, 511, n_in - 1] {
                            if col < n_in && r.unit() < 0.7 {
                                weights[o * n_in + col] = w;
                            }
                        }
                    }
                }
                let (a, b) = (r.range(-128, 127) as i8, r.range(-128, 127) as i8);
                Case {
                    n_in,
                    input: (0..n_in).map(|_| r.range(-128, 127) as i8).collect(),
                    weights,
                    bias: (0..n_out)
                        .map(|_| r.range(-(1 << 20), 1 << 20) as i32)
                        .collect(),
                    input_offset: -r.range(-128, 127) as i32,
                    multiplier: (0..n_out)
                        .map(|_| r.range(1 << 30, i32::MAX as i64) as i32)
                        .collect(),
                    shift: (0..n_out).map(|_| r.range(-20, 2) as i32).collect(),
                    output_offset: r.range(-128, 127) as i32,
                    act_min: a.min(b),
                    act_max: a.max(b),
                }
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(10_000))]

        #[test]
        fn fast_equals_reference_equals_dense(c in case()) {
            let n_out = c.bias.len();
            let e = encode(&c.weights, c.n_in, n_out);
            let l8 = lens_u8(&e);
            let l16 = lens_u16(&e);
            // Both row-length widths (u8 only when every row fits).
            let mut all_lens = vec![RowLens::U16(&l16)];
            if let Some(l8) = &l8 {
                all_lens.push(RowLens::U8(l8));
            }
            let mut dense = vec![0i8; n_out];
            fully_connected_s8_reference(
                &c.input, &c.weights, &c.bias, c.input_offset, &c.multiplier, &c.shift,
                c.output_offset, c.act_min, c.act_max, &mut dense,
            );
            let mut folded = vec![0i32; n_out];
            fold_bias(&c.weights, &c.bias, c.input_offset, &mut folded);
            for lens in all_lens {
                let m = SparseMatrix::try_new(c.n_in, &e.entries, lens).unwrap();
                prop_assert_eq!(decode(&m), c.weights.clone());
                prop_assert_eq!(
                    e.nonzeros,
                    c.weights.iter().filter(|&&w| w != 0).count()
                );

                let mut reference = vec![0i8; n_out];
                fully_connected_sparse_s8_reference(
                    &c.input, &m, &c.bias, c.input_offset, &c.multiplier, &c.shift,
                    c.output_offset, c.act_min, c.act_max, &mut reference,
                );
                prop_assert_eq!(&reference, &dense);

                let channels: Vec<ChannelQuant> = (0..n_out)
                    .map(|o| ChannelQuant::new(folded[o], c.multiplier[o], c.shift[o]))
                    .collect();
                let p = SparseFcParams {
                    weights: m,
                    channels: &channels,
                    output_offset: c.output_offset,
                    act_min: c.act_min,
                    act_max: c.act_max,
                };
                let mut fast = vec![0x55i8; n_out];
                fully_connected_sparse_s8(&p, &c.input, &mut fast);
                prop_assert_eq!(&fast, &dense);

                // The Cortex-M4 pair loop (host-emulated SXTB16), row by row.
                let mut rest = e.entries.as_slice();
                for o in 0..n_out {
                    let (row, r) = rest.split_at(m.row_lens().get(o));
                    rest = r;
                    prop_assert_eq!(
                        row_dot_pairs(row, &c.input),
                        row_dot_portable(row, &c.input)
                    );
                }
            }
        }
    }

    /// [`fully_connected_sparse_s8`] with the Cortex-M4 pair loop (host-emulated `SXTB16`) in
    /// place of the host's portable one, so that the shared generator's cases check it here as
    /// the QEMU harness checks the real instructions.
    fn fc_sparse_pairs(p: &SparseFcParams, input: &[i8], output: &mut [i8]) {
        let m = &p.weights;
        let mut rest = m.entries();
        for (o, (out, q)) in output.iter_mut().zip(p.channels).enumerate() {
            let (row, r) = rest.split_at(m.row_lens().get(o));
            rest = r;
            *out = q.requantize::<false>(
                row_dot_pairs(row, input),
                p.output_offset,
                p.act_min,
                p.act_max,
            );
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(10_000))]

        #[test]
        fn generated_cases_portable_and_pairs_equal_reference(seed in any::<u64>()) {
            use crate::testgen::{check_fc_sparse, Scratch};
            let mut s = std::boxed::Box::new(Scratch::new());
            for f in [fully_connected_sparse_s8, fc_sparse_pairs] {
                if let Err(m) = check_fc_sparse(seed, &mut s, f) {
                    prop_assert!(false, "{:?}", m);
                }
            }
        }
    }

    #[test]
    fn generated_cases_cover_long_gaps_and_both_row_length_widths() {
        // Guards the shared generator (the QEMU harness runs seeds 8·2^32 + i): over 2000
        // seeds, fillers, runs of fillers, u16-only matrices and empty rows all come up.
        use crate::testgen::{check_fc_sparse, Scratch};
        let mut s = std::boxed::Box::new(Scratch::new());
        let (mut fillers, mut many_fillers, mut empty_rows, mut long_rows) = (0, 0, 0, 0);
        for seed in (8u64 << 32)..(8u64 << 32) + 2000 {
            let c = check_fc_sparse(seed, &mut s, fully_connected_sparse_s8).unwrap();
            fillers += c.fillers;
            // A proxy for gaps of 510+ columns (two fillers in a row).
            many_fillers += usize::from(c.fillers > c.outputs);
            empty_rows += c.empty_rows;
            long_rows += usize::from(c.long_rows);
        }
        for (what, n, min) in [
            ("fillers", fillers, 500),
            ("more fillers than rows", many_fillers, 50),
            ("empty rows", empty_rows, 100),
            ("rows of 256+ entries (u16 row lengths only)", long_rows, 20),
        ] {
            std::eprintln!("{what}: {n}");
            assert!(n >= min, "{what}: {n}");
        }
    }

    /// Accumulators, multipliers and shifts over their whole ranges, with the edges (0, ±1,
    /// `i32::MIN`/`MAX`, the shift limits) drawn often.
    fn requant_args() -> impl Strategy<Value = (i32, i32, i32, i32, i8, i8)> {
        let edge = prop_oneof![
            Just(0),
            Just(1),
            Just(-1),
            Just(i32::MIN),
            Just(i32::MAX),
            Just(i32::MIN + 1)
        ];
        (
            prop_oneof![any::<i32>(), edge.clone(), -4096i32..4096],
            prop_oneof![any::<i32>(), edge, (1i32 << 30)..=i32::MAX],
            prop_oneof![
                -31i32..=30,
                Just(-31),
                Just(30),
                Just(0),
                Just(-1),
                any::<i32>()
            ],
            prop_oneof![-128i32..=127, any::<i32>()],
            any::<i8>(),
            any::<i8>(),
        )
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(100_000))]

        #[test]
        fn requantize_fast_is_exact((acc, m, s, off, a, b) in requant_args()) {
            prop_assert_eq!(
                requantize_fast::<false>(acc, m, s, off, a, b),
                requantize(acc, m, s, off, a, b)
            );
            prop_assert_eq!(
                requantize_fast::<true>(acc, m, s, off, -128, 127),
                requantize(acc, m, s, off, -128, 127)
            );
        }
    }

    #[test]
    fn requantize_fast_edges() {
        // Every shift, every multiplier edge, accumulators around every power of two and the
        // exact ties of the rounding shift, both signs.
        let mut accs = vec![0, 1, -1, i32::MIN, i32::MAX, i32::MIN + 1, i32::MAX - 1];
        for k in 0..31 {
            for d in [-1, 0, 1] {
                accs.push((1i32 << k).wrapping_add(d));
                accs.push((-(1i32 << k)).wrapping_add(d));
                accs.push((3i32 << k.min(29)).wrapping_add(d));
                accs.push((-(3i32 << k.min(29))).wrapping_add(d));
            }
        }
        let ms = [
            0,
            1,
            -1,
            1 << 30,
            (1 << 30) + 1,
            i32::MAX,
            i32::MIN,
            3 << 29,
        ];
        for &acc in &accs {
            for &m in &ms {
                for s in -33..=32 {
                    for (off, lo, hi) in
                        [(0, -128, 127), (-128, -128, 127), (5, -3, 100), (0, 5, -5)]
                    {
                        assert_eq!(
                            requantize_fast::<false>(acc, m, s, off, lo, hi),
                            requantize(acc, m, s, off, lo, hi),
                            "acc {acc} m {m} s {s} off {off} [{lo}, {hi}]"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn long_gaps_are_really_generated() {
        // Guards the strategy: over a sample of cases, many rows need fillers (including two
        // or more in a row) and both row-length widths occur.
        use proptest::strategy::ValueTree;
        use proptest::test_runner::TestRunner;
        let mut runner = TestRunner::deterministic();
        let (mut fillers, mut double, mut wide, mut dense_rows) = (0, 0, 0, 0);
        for _ in 0..300 {
            let c = case().new_tree(&mut runner).unwrap().current();
            let e = encode(&c.weights, c.n_in, c.bias.len());
            fillers += e.entries.len() - e.nonzeros;
            double += usize::from(e.entries.windows(2).any(|w| w == [(0, 255), (0, 255)]));
            wide += usize::from(lens_u8(&e).is_none());
            dense_rows += usize::from(e.nonzeros * 10 > 9 * c.weights.len());
        }
        assert!(fillers > 100, "{fillers}");
        assert!(double > 10, "{double}");
        assert!(wide > 10, "{wide}");
        assert!(dense_rows > 10, "{dense_rows}");
    }
}
