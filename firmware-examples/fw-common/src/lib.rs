//! Shared harness of the Bonsai QEMU firmware (`qemu-mps2-an386`, `qemu-microbit`).
//!
//! A board crate's `main` hands this crate the embedded test-vector file, the model's `infer` and
//! its arena; [`run_vectors`] runs every vector, prints the outputs over semihosting and exits QEMU
//! with a status code. The line protocol (parsed by `xtask/src/qemu.rs`):
//!
//! ```text
//! TICKS_BASE <ticks> <h>     once, first: the SysTick measurement around a one-instruction function
//!                            (calibration of the measurement's own cost) and h = instructions that
//!                            one SysTick wrap interrupt adds ([`SYSTICK_HANDLER_INSNS`])
//! OUT <index> <hex>          one per vector; <hex> = two lowercase hex digits per output byte
//!                            (the i8 as two's complement), no separators
//! TICKS <index> <ticks> <w>  after each OUT: SysTick ticks elapsed across the `infer` call, and w =
//!                            SysTick wrap interrupts taken meanwhile
//! LAYER_BASE <ticks>         feature `layer-probes` only, once after TICKS_BASE: SysTick ticks
//!                            between two back-to-back probes (the probe's own cost, see
//!                            [`probes`])
//! LAYER <index> <k> <ticks> <w>
//!                            feature `layer-probes` only, after each TICKS line, k = 1..=n:
//!                            ticks (and wraps) from probe k - 1 to probe k, i.e. layer k
//! LAYER_NAME <k> <name>      feature `layer-probes` only, first, k = 1..=n: the model node
//!                            that layer k is (the rest of the line)
//! STACK_INFER <bytes>        deepest stack use below the `infer` call site (see below)
//! STACK_PEAK <bytes>         deepest stack use of the whole program, from the top of RAM
//! DONE <n>                   n = number of vectors run
//! ```
//!
//! then exit status 0. Errors print `ERROR ...`, `PANIC ...` or `HARDFAULT ...` and exit with
//! [`EXIT_INPUT_LEN`], [`EXIT_BAD_VECTORS`], [`EXIT_NO_CONSOLE`], [`EXIT_STACK_OVERFLOW`],
//! [`EXIT_PANIC`] or [`EXIT_HARDFAULT`].
//!
//! Stack accounting: cortex-m-rt's `paint-stack` feature fills `_stack_end..._stack_start` (all RAM
//! above `.bss`/`.uninit`) with [`STACK_PAINT`] in the reset handler, before any stack is used.
//! After the last vector [`stack_low_water`] scans up from `_stack_end` for the first word that
//! changed. `STACK_PEAK` is then exact for the whole run (reset handler, main, infer, the print
//! path). `STACK_INFER` is measured from the stack pointer just before the `infer` call, so it is
//! `max(infer's own depth, the print path's depth)`; the print path is shallow (its line buffer sits
//! in [`run_vectors`]' frame, above the call site).
//!
//! A call to `infer` that runs longer than 2^24 SysTick ticks takes SysTick wrap interrupts (see
//! [`measure`]); if one lands where the stack is deepest, its exception frame (32 bytes, plus
//! alignment) shows in both stack figures. Shorter calls take none.
//!
//! Instruction counting: see [`measure`]. Always on: the `TICKS*` lines are printed whenever there
//! is a SysTick (QEMU models one on every Cortex-M machine), but they only mean *instructions* when
//! QEMU runs with `-icount shift=N`: virtual time then advances exactly 2^N ns per executed
//! instruction, and SysTick counts virtual time. Without `-icount` they are real-time noise. The
//! firmware cannot know N or the SysTick clock; the host (`xtask/src/qemu.rs`) converts. Without a
//! SysTick (optional on ARMv6-M), no `TICKS*` line is printed.
#![no_std]

use core::arch::{asm, global_asm};
use core::ptr::{addr_of, read_volatile, write_volatile};
use core::sync::atomic::AtomicU32;

use cortex_m_rt::{exception, ExceptionFrame};
use cortex_m_semihosting::hio::{self, HostStream};

/// Exit status when the vectors' input length differs from the model's `INPUT_LEN`.
pub const EXIT_INPUT_LEN: u32 = 3;
/// Exit status when the embedded vector file is malformed (build.rs validates it, so: a bug).
pub const EXIT_BAD_VECTORS: u32 = 4;
/// Exit status when the semihosting console cannot be opened (nothing can be printed then).
pub const EXIT_NO_CONSOLE: u32 = 5;
/// Exit status when the stack reached the end of static RAM (it has overwritten `.bss`, so the
/// outputs cannot be trusted).
pub const EXIT_STACK_OVERFLOW: u32 = 6;
/// Exit status when `infer` made layer probes other than 0, 1, ..., n in order, or more than
/// [`probes::MAX_LAYERS`] (feature `layer-probes`).
pub const EXIT_BAD_PROBES: u32 = 7;
/// Exit status of the panic handler.
pub const EXIT_PANIC: u32 = 101;
/// Exit status of the HardFault handler.
pub const EXIT_HARDFAULT: u32 = 102;

/// The word cortex-m-rt's `paint-stack` writes over the stack region at reset.
pub const STACK_PAINT: u32 = 0xCCCC_CCCC;

/// Vector file magic, version and header size (see `firmware-examples/README.md`).
pub const VECTORS_MAGIC: [u8; 4] = *b"BVEC";
pub const VECTORS_VERSION: u32 = 1;
pub const VECTORS_HEADER_BYTES: usize = 16;

/// Alignment wrapper for the model arena: the contract hands `infer` a `[u8; N]`, and a 16-byte
/// aligned one lets the runtime place wider scratch data without unaligned accesses.
/// Declare it zero-initialised (`Arena::new()`) so that it lands in `.bss`.
#[repr(C, align(16))]
pub struct Arena<const N: usize>(pub [u8; N]);

impl<const N: usize> Arena<N> {
    pub const fn new() -> Self {
        Arena([0; N])
    }
}

impl<const N: usize> Default for Arena<N> {
    fn default() -> Self {
        Self::new()
    }
}

/// Ends the QEMU process with `code` as its exit status (semihosting SYS_EXIT_EXTENDED).
pub fn exit(code: u32) -> ! {
    // SYS_EXIT_EXTENDED (0x20) with reason ADP_Stopped_ApplicationExit (0x20026) and a status code;
    // plain SYS_EXIT (`debug::exit`) can only report 0 or 1.
    let args: [usize; 2] = [0x20026, code as usize];
    unsafe {
        cortex_m_semihosting::syscall(0x20, &args);
    }
    // Only reached without a semihosting host (real hardware without a debugger).
    loop {
        cortex_m::asm::udf();
    }
}

/// Line-buffered semihosting output: one `SYS_WRITE` per line (or per full buffer), never per byte.
pub struct Console {
    stream: HostStream,
    buf: [u8; 96],
    len: usize,
}

impl Console {
    /// Opens the host's stdout; exits with [`EXIT_NO_CONSOLE`] if there is no semihosting host.
    pub fn open() -> Console {
        match hio::hstdout() {
            Ok(stream) => Console {
                stream,
                buf: [0; 96],
                len: 0,
            },
            Err(()) => exit(EXIT_NO_CONSOLE),
        }
    }

    pub fn bytes(&mut self, bytes: &[u8]) -> &mut Self {
        // `get`/`get_mut` instead of indexing: the harness has no panic path (keeps images small).
        for &b in bytes {
            if self.len >= self.buf.len() {
                self.flush();
            }
            if let Some(slot) = self.buf.get_mut(self.len) {
                *slot = b;
                self.len += 1;
            }
        }
        self
    }

    pub fn str(&mut self, s: &str) -> &mut Self {
        self.bytes(s.as_bytes())
    }

    /// Decimal, without `core::fmt` (which would add a few KiB of flash to every measurement).
    pub fn dec(&mut self, mut v: u32) -> &mut Self {
        let mut digits = [0u8; 10];
        let mut n = 0;
        for slot in digits.iter_mut().rev() {
            *slot = b'0' + (v % 10) as u8;
            v /= 10;
            n += 1;
            if v == 0 {
                break;
            }
        }
        self.bytes(digits.get(digits.len() - n..).unwrap_or(&[]))
    }

    /// Decimal of a `u64`, with 32-bit divisions only (a `u64 % 10` would pull in
    /// `__aeabi_uldivmod`): long division by 10 over 16-bit chunks.
    pub fn dec64(&mut self, v: u64) -> &mut Self {
        let mut chunks = [
            (v >> 48) as u32,
            (v >> 32) as u32 & 0xffff,
            (v >> 16) as u32 & 0xffff,
            v as u32 & 0xffff,
        ];
        let mut digits = [0u8; 20];
        let mut n = 0;
        for slot in digits.iter_mut().rev() {
            let mut rem = 0u32;
            for c in chunks.iter_mut() {
                let cur = (rem << 16) | *c;
                *c = cur / 10;
                rem = cur % 10;
            }
            *slot = b'0' + rem as u8;
            n += 1;
            if chunks.iter().all(|&c| c == 0) {
                break;
            }
        }
        self.bytes(digits.get(digits.len() - n..).unwrap_or(&[]))
    }

    /// Two lowercase hex digits per byte, no separators.
    pub fn hex(&mut self, bytes: &[u8]) -> &mut Self {
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        for &b in bytes {
            self.bytes(&[DIGITS[(b >> 4) as usize], DIGITS[(b & 15) as usize]]);
        }
        self
    }

    /// `0x` and eight hex digits.
    pub fn hex32(&mut self, v: u32) -> &mut Self {
        self.str("0x").hex(&v.to_be_bytes())
    }

    /// Ends the line and writes it out.
    pub fn end_line(&mut self) {
        self.bytes(b"\n");
        self.flush();
    }

    pub fn flush(&mut self) {
        if let Some(pending) = self.buf.get(..self.len) {
            if !pending.is_empty() {
                // Nothing useful can be done if the host rejects a write.
                let _ = self.stream.write_all(pending);
            }
        }
        self.len = 0;
    }
}

extern "C" {
    // Both from cortex-m-rt's link.x: the stack grows down from `_stack_start` (top of RAM) towards
    // `_stack_end` (end of `.bss`/`.uninit`, 4-byte aligned).
    static _stack_start: u32;
    static _stack_end: u32;
}

/// Top of the stack (its initial value).
pub fn stack_top() -> usize {
    addr_of!(_stack_start) as usize
}

/// Lowest address the stack may reach (end of static RAM).
pub fn stack_limit() -> usize {
    addr_of!(_stack_end) as usize
}

/// Lowest stack address written since reset: the first word above `_stack_end` that no longer holds
/// the paint. Only meaningful with cortex-m-rt's `paint-stack` feature (enabled by this crate).
pub fn stack_low_water() -> usize {
    let top = stack_top();
    let mut p = stack_limit();
    while p < top && unsafe { read_volatile(p as *const u32) } == STACK_PAINT {
        p += 4;
    }
    p
}

/// Bytes of stack used since reset (exact, the whole program).
pub fn stack_peak() -> usize {
    stack_top() - stack_low_water()
}

// ---------------------------------------------------------------------------------------------
// Instruction counting with SysTick.

const SYST_CSR: *mut u32 = 0xE000_E010 as *mut u32;
const SYST_RVR: *mut u32 = 0xE000_E014 as *mut u32;
const SYST_CVR: *mut u32 = 0xE000_E018 as *mut u32;
const SCB_ICSR: *mut u32 = 0xE000_ED04 as *mut u32;
/// ICSR bit: the SysTick exception is pending (has fired but its handler has not run yet).
const ICSR_PENDSTSET: u32 = 1 << 26;

/// SysTick reload value: the full 24 bits, so the counter wraps every 2^24 ticks.
pub const SYSTICK_RELOAD: u32 = 0x00FF_FFFF;

/// Instructions that one run of the SysTick handler executes (the five of `global_asm!` below,
/// `bx lr` included). Exception entry and return execute no instruction of their own, so under
/// `-icount` a wrap adds exactly this many instructions to whatever region it interrupts; the
/// host subtracts `wraps × this`. Printed on the `TICKS_BASE` line.
pub const SYSTICK_HANDLER_INSNS: u32 = 5;

/// Number of SysTick wraps since [`systick_start`]: incremented by the SysTick handler only.
static SYSTICK_WRAPS: AtomicU32 = AtomicU32::new(0);

// The SysTick handler, in assembly so that its instruction count is fixed on every target
// (cortex-m-rt's vector table takes the strong `SysTick` symbol over its `DefaultHandler`).
// It executes exactly SYSTICK_HANDLER_INSNS = 5 instructions; Thumb-1, so it also runs on ARMv6-M.
global_asm!(
    ".section .text.SysTick,\"ax\",%progbits",
    ".global SysTick",
    ".type SysTick,%function",
    ".thumb_func",
    "SysTick:",
    "    ldr r0, 1f",
    "    ldr r1, [r0]",
    "    adds r1, r1, #1",
    "    str r1, [r0]",
    "    bx lr",
    "    .p2align 2",
    "1:  .word {wraps}",
    ".size SysTick, . - SysTick",
    wraps = sym SYSTICK_WRAPS,
);

/// Starts SysTick on the core clock (CLKSOURCE = 1) with the full 24-bit reload and its wrap
/// interrupt. Returns `false` if there is no SysTick (optional on ARMv6-M: its registers then read
/// as zero, so the reload value does not read back).
pub fn systick_start() -> bool {
    unsafe {
        write_volatile(SYST_CSR, 0);
        write_volatile(SYST_RVR, SYSTICK_RELOAD);
        if read_volatile(SYST_RVR) != SYSTICK_RELOAD {
            return false;
        }
        write_volatile(SYST_CVR, 0); // any write clears the counter; it reloads on the next tick
        write_volatile(SYST_CSR, 0b111); // CLKSOURCE = core clock, TICKINT, ENABLE
    }
    true
}

/// A consistent reading of the SysTick counter: (CVR, ICSR, wraps counted so far), taken with
/// interrupts masked by a fixed instruction sequence.
#[inline(always)]
fn systick_snapshot() -> [u32; 3] {
    let (cvr, icsr, wraps): (u32, u32, u32);
    // SAFETY: reads of SysTick, SCB and a static; PRIMASK is restored to "enabled" (the harness
    // never runs with interrupts masked otherwise).
    unsafe {
        asm!(
            "cpsid i",
            "ldr {c}, [{c}]",
            "ldr {i}, [{i}]",
            "ldr {w}, [{w}]",
            "cpsie i",
            c = inout(reg) SYST_CVR => cvr,
            i = inout(reg) SCB_ICSR => icsr,
            w = inout(reg) SYSTICK_WRAPS.as_ptr() => wraps,
            options(nostack, preserves_flags),
        );
    }
    [cvr, icsr, wraps]
}

/// Wraps that happened before the counter was read in `snap`. A wrap that fired while interrupts
/// were masked is pending (ICSR.PENDSTSET) and not yet counted; it came before the CVR read if the
/// counter had already reloaded (large value), after it otherwise (the window is 2 instructions,
/// the counter takes 2^24 ticks to come down).
fn wraps_before_read(snap: [u32; 3]) -> u32 {
    let [cvr, icsr, wraps] = snap;
    let uncounted = icsr & ICSR_PENDSTSET != 0 && cvr > SYSTICK_RELOAD / 2;
    wraps.wrapping_add(uncounted as u32)
}

/// The raw readings of one measured call (see [`measure`]).
#[derive(Clone, Copy)]
pub struct Readings {
    start: [u32; 3],
    end: [u32; 3],
    /// The stack pointer just before the call.
    pub sp_at_call: usize,
}

impl Readings {
    /// SysTick ticks from the first counter read to the second.
    pub fn ticks(&self) -> u64 {
        let wraps = wraps_before_read(self.end).wrapping_sub(wraps_before_read(self.start));
        // A start reading of 0 means "cleared, not reloaded yet": one tick above SYSTICK_RELOAD.
        // (Under -icount the snapshot comes ticks after the clear; without it all this is noise.)
        let c0 = match self.start[0] {
            0 => SYSTICK_RELOAD as u64 + 1,
            c => c as u64,
        };
        (wraps as u64 * (SYSTICK_RELOAD as u64 + 1) + c0).wrapping_sub(self.end[0] as u64)
    }

    /// SysTick handler runs between the two readings: all of them ran between the two masked
    /// snapshots, i.e. inside the measured region.
    pub fn wraps(&self) -> u32 {
        self.end[2].wrapping_sub(self.start[2])
    }
}

/// Calls `f(input, output, arena)` between two SysTick snapshots. SysTick must be running
/// ([`systick_start`] returned `true`).
///
/// The counter is restarted just before the first snapshot, so the first wrap comes 2^24 ticks
/// later: a call shorter than that takes no SysTick interrupt, whose exception frame (32 bytes, or
/// 104 with an active FP context) would otherwise show in the stack figures if it landed at the
/// deepest point. Longer calls take one interrupt per 2^24 ticks.
///
/// What lies between the two counter reads: `f`'s own instructions (entry to return, everything it
/// calls), one SysTick handler run per wrap ([`SYSTICK_HANDLER_INSNS`] each), and a fixed harness
/// sequence (the rest of the snapshots, the call instruction and its argument set-up). This
/// function is never inlined and takes `f` as a run-time value, so the same machine code measures
/// `infer` and [`null_infer`] (one instruction): the difference is the fixed part. Under
/// `-icount shift=N` the host computes `insns(f) = I(ticks) − wraps × h − (I(base) − 1)`, where
/// `I(t)` converts ticks to instructions, `base` is the `TICKS_BASE` measurement and `h` is
/// [`SYSTICK_HANDLER_INSNS`]. All arithmetic on the readings happens in the caller, after the
/// region ([`Readings::ticks`]): no data-dependent branch can fall inside it.
#[inline(never)]
pub fn measure<const I: usize, const O: usize, const A: usize>(
    f: fn(&[i8; I], &mut [i8; O], &mut [u8; A]),
    input: &[i8; I],
    output: &mut [i8; O],
    arena: &mut [u8; A],
) -> Readings {
    let sp_at_call = cortex_m::register::msp::read() as usize;
    // Any write clears the counter; it reloads from SYST_RVR on the next tick, without an interrupt.
    unsafe { write_volatile(SYST_CVR, 0) };
    let start = systick_snapshot();
    f(input, output, arena);
    let end = systick_snapshot();
    Readings {
        start,
        end,
        sp_at_call,
    }
}

// The empty model: exactly one instruction (`bx lr`: no frame set-up, whatever the codegen
// options). Defined in assembly because a Rust function may get a frame-pointer prologue.
global_asm!(
    ".section .text.fw_common_null_infer,\"ax\",%progbits",
    ".global fw_common_null_infer",
    ".type fw_common_null_infer,%function",
    ".thumb_func",
    "fw_common_null_infer:",
    "    bx lr",
    ".size fw_common_null_infer, . - fw_common_null_infer",
);

extern "Rust" {
    fn fw_common_null_infer(input: *const i8, output: *mut i8, arena: *mut u8);
}

/// `fw_common_null_infer` (assembly, above) as a model `infer`: [`measure`] of it is the measurement's own cost plus
/// one instruction. The call is sound: the signatures are ABI-compatible (same ABI, no return value,
/// and thin pointers are ABI-compatible whatever they point to), and `bx lr` touches no argument.
pub fn null_infer<const I: usize, const O: usize, const A: usize>(
) -> fn(&[i8; I], &mut [i8; O], &mut [u8; A]) {
    let f: unsafe fn(*const i8, *mut i8, *mut u8) = fw_common_null_infer;
    // SAFETY: see above; fn pointers of any signature have the same size.
    unsafe { core::mem::transmute(f) }
}

#[cfg(feature = "layer-probes")]
pub mod probes {
    //! Per-layer instruction counts (feature `layer-probes`).
    //!
    //! The model crate, built with its own `layer-probes` feature, calls `bonsai_layer_probe(k)`
    //! (through `bonsai_rt::probe::layer`) before its first layer (k = 0) and after its k-th.
    //! The board defines that hook to call [`record`], which takes the same masked SysTick
    //! snapshot as [`measure`](super::measure) and stores it in slot k. After each inference
    //! [`report`] prints one `LAYER <index> <k> <ticks> <wraps>` line per layer: the ticks
    //! from snapshot k − 1 to snapshot k. They cover layer k's code, the glue `infer` runs
    //! between the two probes, and a fixed probe cost: the tail of probe k − 1 after its
    //! snapshot, the call of probe k and its head up to the snapshot. Before the first inference
    //! [`print_base`] prints `LAYER_BASE <ticks>`: the ticks between two calls of the hook made back
    //! to back (exactly that fixed cost), so the host's per-layer count is
    //! `I(ticks) − wraps × h − I(LAYER_BASE)`: the instructions from the end of probe k − 1's call
    //! to the start of probe k's, i.e. layer k plus the glue around it (borrows, a register
    //! move or two that the optimiser places between the probes).

    use super::{systick_snapshot, Console, Readings};
    use core::sync::atomic::{AtomicU32, Ordering};

    /// Most probes one inference may make (k = 0..MAX_LAYERS); more end the run with
    /// [`EXIT_BAD_PROBES`](super::EXIT_BAD_PROBES).
    pub const MAX_LAYERS: usize = 128;

    // Array repeat operands must be `Copy` or a constant item.
    #[allow(clippy::declare_interior_mutable_const)]
    const ZERO: AtomicU32 = AtomicU32::new(0);
    #[allow(clippy::declare_interior_mutable_const)]
    const UNSET: [AtomicU32; 3] = [ZERO; 3];
    /// Snapshots of probe k: (CVR, ICSR, wraps), written by [`record`] only.
    static SNAPSHOTS: [[AtomicU32; 3]; MAX_LAYERS + 1] = [UNSET; MAX_LAYERS + 1];
    /// Probes recorded since [`reset`], and whether they came in order 0, 1, 2, ...
    static RECORDED: AtomicU32 = AtomicU32::new(0);
    static IN_ORDER: AtomicU32 = AtomicU32::new(1);

    /// The body of the board's `bonsai_layer_probe`: snapshot first, bookkeeping after, so that
    /// the bookkeeping of probe k − 1 and the call of probe k are the fixed cost in between.
    #[inline(always)]
    pub fn record(layer: u16) {
        let snap = systick_snapshot();
        let k = layer as usize;
        if let Some(slot) = SNAPSHOTS.get(k) {
            for (cell, v) in slot.iter().zip(snap) {
                cell.store(v, Ordering::Relaxed);
            }
        }
        let seen = RECORDED.load(Ordering::Relaxed);
        if seen as usize != k || k > MAX_LAYERS {
            IN_ORDER.store(0, Ordering::Relaxed);
        }
        RECORDED.store(seen.wrapping_add(1), Ordering::Relaxed);
    }

    /// Prints `LAYER_NAME <k> <name>` for each probed layer (the model's `LAYER_NAMES`, whose
    /// entry k − 1 names layer k); the name is the rest of the line.
    pub fn print_names(names: &[&str]) {
        let mut out = Console::open();
        for (k, name) in names.iter().enumerate() {
            out.str("LAYER_NAME ")
                .dec(k as u32 + 1)
                .str(" ")
                .str(name)
                .end_line();
        }
    }

    /// Forgets the previous inference's probes.
    pub fn reset() {
        RECORDED.store(0, Ordering::Relaxed);
        IN_ORDER.store(1, Ordering::Relaxed);
    }

    fn snapshot(k: usize) -> [u32; 3] {
        let mut v = [0; 3];
        if let Some(slot) = SNAPSHOTS.get(k) {
            for (out, cell) in v.iter_mut().zip(slot) {
                *out = cell.load(Ordering::Relaxed);
            }
        }
        v
    }

    fn between(a: usize, b: usize) -> Readings {
        Readings {
            start: snapshot(a),
            end: snapshot(b),
            sp_at_call: 0,
        }
    }

    /// Prints the `LAYER` lines of vector `index`; `layers` remembers the first inference's
    /// probe count, which every inference must repeat.
    pub fn report(out: &mut Console, index: u32, layers: &mut Option<u32>) {
        let recorded = RECORDED.load(Ordering::Relaxed);
        let bad = IN_ORDER.load(Ordering::Relaxed) == 0
            || recorded == 0
            || layers.is_some_and(|n| n + 1 != recorded);
        if bad {
            out.str("ERROR layer probes out of order, more than ")
                .dec(MAX_LAYERS as u32)
                .str(", or a different number per inference (")
                .dec(recorded)
                .str(" probes)")
                .end_line();
            super::exit(super::EXIT_BAD_PROBES);
        }
        let n = recorded - 1;
        *layers = Some(n);
        for k in 1..=n as usize {
            let r = between(k - 1, k);
            out.str("LAYER ")
                .dec(index)
                .str(" ")
                .dec(k as u32)
                .str(" ")
                .dec64(r.ticks())
                .str(" ")
                .dec(r.wraps())
                .end_line();
        }
    }

    extern "Rust" {
        /// The board's hook (`#[no_mangle]`, `#[inline(never)]`, calling [`record`]).
        fn bonsai_layer_probe(layer: u16);
    }

    /// Two calls of the board's hook back to back, into slots 0 and 1: direct calls with a
    /// constant argument, as `infer` makes them. The counter is restarted first, as
    /// [`measure`](super::measure) does, so that no wrap falls between them.
    /// Prints `LAYER_BASE <ticks>` (see [`calibrate`]). Uses probe slots 0 and 1: call it before
    /// the first inference, not between an inference and its [`report`].
    pub fn print_base(out: &mut Console) {
        let base = calibrate();
        out.str("LAYER_BASE ").dec64(base.ticks()).end_line();
    }

    fn calibrate() -> Readings {
        reset();
        // SAFETY: any write clears the counter; it reloads without an interrupt. The hook is the
        // board's Rust-ABI `fn(u16)`, which the model's `layer-probes` build already requires.
        unsafe {
            core::ptr::write_volatile(super::SYST_CVR, 0);
            bonsai_layer_probe(0);
            bonsai_layer_probe(1);
        }
        between(0, 1)
    }
}

/// A parsed vector file: `n` inputs of `input_len` bytes each.
pub struct Vectors<'a> {
    pub n: usize,
    pub input_len: usize,
    pub data: &'a [u8],
}

fn read_u32(blob: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([blob[at], blob[at + 1], blob[at + 2], blob[at + 3]])
}

impl<'a> Vectors<'a> {
    /// Parses the file format of `firmware-examples/README.md`; `None` if it is malformed.
    pub fn parse(blob: &'a [u8]) -> Option<Vectors<'a>> {
        if blob.len() < VECTORS_HEADER_BYTES || blob[..4] != VECTORS_MAGIC {
            return None;
        }
        if read_u32(blob, 4) != VECTORS_VERSION {
            return None;
        }
        let n = read_u32(blob, 8) as usize;
        let input_len = read_u32(blob, 12) as usize;
        let data = &blob[VECTORS_HEADER_BYTES..];
        if n.checked_mul(input_len)? != data.len() {
            return None;
        }
        Some(Vectors { n, input_len, data })
    }
}

/// Runs every vector of `blob` through `infer`, prints the protocol described in the crate docs and
/// exits QEMU. `arena` should be a `static` (see [`Arena`]) so that it is accounted in `.bss`.
pub fn run_vectors<const I: usize, const O: usize, const A: usize>(
    blob: &[u8],
    infer: fn(&[i8; I], &mut [i8; O], &mut [u8; A]),
    arena: &mut [u8; A],
) -> ! {
    let mut out = Console::open();
    let vectors = match Vectors::parse(blob) {
        Some(v) => v,
        None => {
            out.str("ERROR embedded vector file is malformed")
                .end_line();
            exit(EXIT_BAD_VECTORS)
        }
    };
    if vectors.input_len != I {
        out.str("ERROR vector input_len ")
            .dec(vectors.input_len as u32)
            .str(" != model INPUT_LEN ")
            .dec(I as u32)
            .end_line();
        exit(EXIT_INPUT_LEN);
    }

    let mut output = [0i8; O];
    let counting = systick_start();
    // Calibration: the same measurement around `null_infer`, on the first vector's input.
    let first: Option<&[u8; I]> = vectors.data.get(..I).and_then(|c| c.try_into().ok());
    if let (true, Some(first)) = (counting, first) {
        // SAFETY: i8 and u8 have the same size, alignment and validity (every bit pattern).
        let first: &[i8; I] = unsafe { &*(first as *const [u8; I] as *const [i8; I]) };
        let null = core::hint::black_box(null_infer::<I, O, A>());
        let base = measure(null, first, &mut output, arena);
        out.str("TICKS_BASE ")
            .dec64(base.ticks())
            .str(" ")
            .dec(SYSTICK_HANDLER_INSNS)
            .end_line();
        #[cfg(feature = "layer-probes")]
        probes::print_base(&mut out);
    }
    #[cfg(feature = "layer-probes")]
    let mut layers: Option<u32> = None;
    let mut sp_at_call = stack_top();
    for (index, chunk) in vectors.data.chunks_exact(I).enumerate() {
        let input: &[u8; I] = match chunk.try_into() {
            Ok(a) => a,
            Err(_) => exit(EXIT_BAD_VECTORS),
        };
        // SAFETY: i8 and u8 have the same size, alignment and validity (every bit pattern).
        let input: &[i8; I] = unsafe { &*(input as *const [u8; I] as *const [i8; I]) };
        // The vectors are an immutable static: hide them from the optimiser so that it can never
        // specialise or precompute `infer` on known inputs (instruction counts must be real).
        let input = core::hint::black_box(input);
        #[cfg(feature = "layer-probes")]
        probes::reset();
        let m = if counting {
            // `black_box(infer)`: `measure` must run the same code for `infer` as for `null_infer`.
            measure(core::hint::black_box(infer), input, &mut output, arena)
        } else {
            let sp = cortex_m::register::msp::read() as usize;
            infer(input, &mut output, arena);
            Readings {
                start: [0; 3],
                end: [0; 3],
                sp_at_call: sp,
            }
        };
        sp_at_call = m.sp_at_call;
        // SAFETY: same layout argument as above, in the other direction.
        let bytes: &[u8; O] = unsafe { &*(&output as *const [i8; O] as *const [u8; O]) };
        out.str("OUT ")
            .dec(index as u32)
            .str(" ")
            .hex(bytes)
            .end_line();
        if counting {
            out.str("TICKS ")
                .dec(index as u32)
                .str(" ")
                .dec64(m.ticks())
                .str(" ")
                .dec(m.wraps())
                .end_line();
            #[cfg(feature = "layer-probes")]
            probes::report(&mut out, index as u32, &mut layers);
        }
    }

    let low = stack_low_water();
    out.str("STACK_INFER ")
        .dec(sp_at_call.saturating_sub(low) as u32)
        .end_line();
    out.str("STACK_PEAK ")
        .dec((stack_top() - low) as u32)
        .end_line();
    if low <= stack_limit() {
        // Nothing is left unpainted: the stack ran into `.bss` (no MPU guard on these boards).
        out.str("ERROR stack overflow: the stack reached the end of static RAM")
            .end_line();
        exit(EXIT_STACK_OVERFLOW);
    }
    out.str("DONE ").dec(vectors.n as u32).end_line();
    exit(0)
}

/// Replaced by the board's link-time proof handler under `panic-never` (see the board crates).
#[cfg(not(feature = "panic-never"))]
#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    let mut out = Console::open();
    out.str("PANIC");
    if let Some(loc) = info.location() {
        out.str(" at ").str(loc.file()).str(":").dec(loc.line());
    }
    // Only static messages: formatting arguments would pull `core::fmt` into every image.
    if let Some(msg) = info.message().as_str() {
        out.str(": ").str(msg);
    }
    out.end_line();
    exit(EXIT_PANIC)
}

#[exception]
unsafe fn HardFault(frame: &ExceptionFrame) -> ! {
    let mut out = Console::open();
    out.str("HARDFAULT pc=")
        .hex32(frame.pc())
        .str(" lr=")
        .hex32(frame.lr())
        .str(" sp_low_water=")
        .hex32(stack_low_water() as u32)
        .end_line();
    exit(EXIT_HARDFAULT)
}
