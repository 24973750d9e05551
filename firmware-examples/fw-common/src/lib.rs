//! Shared harness of the Bonsai QEMU firmware (`qemu-mps2-an386`, `qemu-microbit`).
//!
//! A board crate's `main` hands this crate the embedded test-vector file, the model's `infer` and
//! its arena; [`run_vectors`] runs every vector, prints the outputs over semihosting and exits QEMU
//! with a status code. The line protocol (parsed by `xtask/src/qemu.rs`):
//!
//! ```text
//! OUT <index> <hex>          one per vector; <hex> = two lowercase hex digits per output byte
//!                            (the i8 as two's complement), no separators
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
#![no_std]

use core::ptr::{addr_of, read_volatile};

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
        sp_at_call = cortex_m::register::msp::read() as usize;
        infer(input, &mut output, arena);
        // SAFETY: same layout argument as above, in the other direction.
        let bytes: &[u8; O] = unsafe { &*(&output as *const [i8; O] as *const [u8; O]) };
        out.str("OUT ")
            .dec(index as u32)
            .str(" ")
            .hex(bytes)
            .end_line();
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
