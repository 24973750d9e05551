//! Cortex-M4/M7 DSP-extension dot products (`SXTB16` + `SMLAD`), the hot loops of the dense
//! kernels when `cfg(bonsai_dsp)` is set: automatically on `thumbv7em-*` targets (ARMv7E-M
//! always has the DSP extension), or with the crate's `dsp` feature (see `build.rs`; stable
//! rustc does not expose `target_feature = "dsp"` to `cfg`).
//!
//! One 32-bit load brings four `i8`s; `SXTB16` sign-extends bytes 0 and 2 (and, rotated by 8,
//! bytes 1 and 3) into two `i16` halves, and `SMLAD` adds both halfword products to an
//! accumulator. Doing the same to the weights pairs byte `k` of the input with byte `k` of the
//! weights, so four `SMLAD`-halves are exactly four `x · w` products. The additions wrap
//! modulo 2^32 like the portable loop's `wrapping_add`, and addition modulo 2^32 does not
//! depend on order, so the result equals the portable dot product bit for bit.
//!
//! The loads go through `u32::from_le_bytes` of a 4-byte chunk, which LLVM turns into one
//! `LDR` (ARMv7-M allows unaligned `LDR`). On hosts (tests only) the three instructions are
//! emulated in Rust so that the chunking and tail logic is covered by the host proptests too.

#[cfg(bonsai_dsp)]
mod insn {
    use core::arch::asm;

    /// `SXTB16 r, x`: bytes 0 and 2 of `x`, sign-extended into the two halfwords.
    #[inline(always)]
    pub fn sxtb16(x: u32) -> u32 {
        let r: u32;
        // SAFETY: a register-only ALU instruction.
        unsafe {
            asm!("sxtb16 {r}, {x}", r = lateout(reg) r, x = in(reg) x,
                 options(pure, nomem, nostack, preserves_flags));
        }
        r
    }

    /// `SXTB16 r, x, ROR #8`: bytes 1 and 3 of `x`, sign-extended into the two halfwords.
    #[inline(always)]
    pub fn sxtb16_ror8(x: u32) -> u32 {
        let r: u32;
        // SAFETY: a register-only ALU instruction.
        unsafe {
            asm!("sxtb16 {r}, {x}, ror #8", r = lateout(reg) r, x = in(reg) x,
                 options(pure, nomem, nostack, preserves_flags));
        }
        r
    }

    /// `SMLAD r, a, b, acc`: `acc + a.lo · b.lo + a.hi · b.hi` (signed halfwords), wrapping.
    #[inline(always)]
    pub fn smlad(a: u32, b: u32, acc: i32) -> i32 {
        let r: i32;
        // SAFETY: a register-only ALU instruction. It may set the sticky Q flag on overflow,
        // which nothing reads; flags are therefore not declared preserved.
        unsafe {
            asm!("smlad {r}, {a}, {b}, {acc}", r = lateout(reg) r, a = in(reg) a, b = in(reg) b,
                 acc = in(reg) acc, options(pure, nomem, nostack));
        }
        r
    }
}

/// Host emulation of the three instructions, for the host tests of the chunking logic.
#[cfg(not(bonsai_dsp))]
mod insn {
    fn half(x: u32, byte: u32) -> u32 {
        u32::from((x >> (8 * byte)) as u8 as i8 as i16 as u16)
    }

    pub fn sxtb16(x: u32) -> u32 {
        half(x, 0) | (half(x, 2) << 16)
    }

    pub fn sxtb16_ror8(x: u32) -> u32 {
        half(x, 1) | (half(x, 3) << 16)
    }

    pub fn smlad(a: u32, b: u32, acc: i32) -> i32 {
        let lo = i32::from(a as u16 as i16) * i32::from(b as u16 as i16);
        let hi = i32::from((a >> 16) as u16 as i16) * i32::from((b >> 16) as u16 as i16);
        acc.wrapping_add(lo).wrapping_add(hi)
    }
}

use insn::{smlad, sxtb16, sxtb16_ror8};

#[inline(always)]
fn word(c: &[i8; 4]) -> u32 {
    u32::from_le_bytes(c.map(|b| b as u8))
}

/// Four `x · w` products of one word pair, added to `acc`; `xe`/`xo` are the unpacked input
/// word.
#[inline(always)]
fn mac4(xe: u32, xo: u32, w: &[i8; 4], acc: i32) -> i32 {
    let v = word(w);
    smlad(xo, sxtb16_ror8(v), smlad(xe, sxtb16(v), acc))
}

/// `(acc0 + Σ x[j]·w0[j], acc1 + Σ x[j]·w1[j])` over the common prefix of the three slices:
/// each input word is loaded and unpacked once for two weight rows. The main loop is 16
/// instructions for 8 MACs on the Cortex-M4 (3 `LDR`, 6 `SXTB16`, 4 `SMLAD`, index, compare,
/// branch). Unrolling it further at opt-level "s" measured slower: the extra base registers
/// spill.
#[inline(always)]
pub(crate) fn dot2(x: &[i8], w0: &[i8], w1: &[i8], acc0: i32, acc1: i32) -> (i32, i32) {
    let n = x.len().min(w0.len()).min(w1.len());
    // `as_chunks` gives `[i8; 4]` chunks, whose length the optimiser knows (no per-chunk
    // checks).
    let (x4, xt) = x[..n].as_chunks::<4>();
    let (w04, w0t) = w0[..n].as_chunks::<4>();
    let (w14, w1t) = w1[..n].as_chunks::<4>();
    let (mut a0, mut a1) = (acc0, acc1);
    for ((xq, wq0), wq1) in x4.iter().zip(w04).zip(w14) {
        let xw = word(xq);
        let (xe, xo) = (sxtb16(xw), sxtb16_ror8(xw));
        a0 = mac4(xe, xo, wq0, a0);
        a1 = mac4(xe, xo, wq1, a1);
    }
    for ((&xv, &v0), &v1) in xt.iter().zip(w0t).zip(w1t) {
        a0 = a0.wrapping_add(i32::from(xv) * i32::from(v0));
        a1 = a1.wrapping_add(i32::from(xv) * i32::from(v1));
    }
    (a0, a1)
}

/// `acc + Σ x[j]·w[j]` over the common prefix.
#[inline(always)]
pub(crate) fn dot1(x: &[i8], w: &[i8], acc: i32) -> i32 {
    let n = x.len().min(w.len());
    let (xq, xt) = x[..n].as_chunks::<4>();
    let (wq, wt) = w[..n].as_chunks::<4>();
    let mut a = acc;
    for (xq, wq) in xq.iter().zip(wq) {
        let (xw, v) = (word(xq), word(wq));
        a = smlad(sxtb16(xw), sxtb16(v), a);
        a = smlad(sxtb16_ror8(xw), sxtb16_ror8(v), a);
    }
    for (&xv, &v) in xt.iter().zip(wt) {
        a = a.wrapping_add(i32::from(xv) * i32::from(v));
    }
    a
}
