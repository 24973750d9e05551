//! Runs bonsai-rt's kernels on QEMU mps2-an386 (Cortex-M4F, DSP extension on) against their
//! `*_reference` versions over the shared seeded case generator (`bonsai_rt::testgen`), and
//! counts the instructions of the dense kernels, portable against DSP. Same target and
//! codegen options as the `qemu-mps2-an386` board (no `target-cpu`): what a model gets.
//!
//! Output (semihosting stdout, one line each):
//!
//! ```text
//! KERNEL <name> <cases> <outputs>      after all cases of a kernel passed
//! MISMATCH <kernel> seed <s> ...       first failing case (then exit code EXIT_MISMATCH)
//! MEASURE_BASE <ticks>                 SysTick ticks of the measurement around a one-instruction
//!                                      function (its own cost; see fw_common::measure)
//! MEASURE <name> <macs> <ticks> <wraps>  one measured call
//! STACK_PEAK <bytes>, DONE 0           so that xtask's `qemu::run_with` accepts the run
//! ```
//!
//! Instruction counts need `-icount shift=N` (`.cargo/config.toml`'s runner and
//! `tests/tests/kernels_qemu.rs` use 7); the host converts ticks (`xtask::qemu::ticks_to_insns`)
//! and subtracts `wraps × 5` and the base: `insns = I(ticks) − 5·wraps − (I(base) − 1)`.
#![no_std]
#![no_main]

use bonsai_rt::kernels::add::add_s8;
use bonsai_rt::kernels::conv2d::{conv2d_s8, conv2d_s8_portable, Conv2dParams};
use bonsai_rt::kernels::fully_connected::{
    fully_connected_s8, fully_connected_s8_portable, FcParams,
};
use bonsai_rt::kernels::fully_connected_sparse::fully_connected_sparse_s8;
use bonsai_rt::kernels::shape::Shape2d;
use bonsai_rt::testgen::{self, CaseInfo, Mismatch, Rng, Scratch};
use cortex_m_rt::entry;
use fw_common::{exit, measure, null_infer, systick_start, Console};

/// Exit status of a kernel that disagreed with its reference.
const EXIT_MISMATCH: u32 = 7;
/// Exit status when SysTick is missing (cannot happen on mps2-an386).
const EXIT_NO_SYSTICK: u32 = 8;

/// Cases per kernel.
const CASES: u32 = 10_000;

fn report(out: &mut Console, m: &Mismatch) -> ! {
    out.str("MISMATCH ")
        .str(m.kernel)
        .str(" seed ")
        .dec64(m.seed);
    if let Some(s) = m.shape {
        out.str(" in ")
            .dec(s.in_h as u32)
            .str("x")
            .dec(s.in_w as u32)
            .str("x")
            .dec(s.in_c as u32)
            .str(" out ")
            .dec(s.out_h as u32)
            .str("x")
            .dec(s.out_w as u32)
            .str("x")
            .dec(s.out_c as u32)
            .str(" kernel ")
            .dec(s.kernel_h as u32)
            .str("x")
            .dec(s.kernel_w as u32)
            .str(" stride ")
            .dec(s.stride_h as u32)
            .str(",")
            .dec(s.stride_w as u32)
            .str(" pad ")
            .dec(s.pad_top as u32)
            .str(",")
            .dec(s.pad_left as u32);
    }
    out.str(" len ")
        .dec(m.len as u32)
        .str(" index ")
        .dec(m.index as u32)
        .str(" expected ")
        .dec(m.expected as u8 as u32)
        .str(" actual ")
        .dec(m.actual as u8 as u32)
        .str(" (u8 bit patterns)")
        .end_line();
    exit(EXIT_MISMATCH)
}

/// Runs `CASES` cases of one kernel; seeds `base + i`, the same as the host can replay.
fn cases(
    out: &mut Console,
    s: &mut Scratch,
    name: &str,
    base: u64,
    check: impl Fn(u64, &mut Scratch) -> Result<CaseInfo, Mismatch>,
) {
    let mut outputs = 0u64;
    for i in 0..CASES {
        match check(base + u64::from(i), s) {
            Ok(info) => outputs += info.outputs as u64,
            Err(m) => report(out, &m),
        }
    }
    out.str("KERNEL ")
        .str(name)
        .str(" ")
        .dec(CASES)
        .str(" ")
        .dec64(outputs)
        .end_line();
}

// ---------------------------------------------------------------------------------------------
// Instruction counts. `fw_common::measure` calls `fn(&[i8; I], &mut [i8; O], &mut [u8; A])`; the
// weights travel in the third argument (a RAM buffer filled at run time), the per-channel arrays
// are constants.

const MULT: [i32; 300] = [1 << 30; 300];
const SHIFT: [i32; 300] = [-8; 300];
const BIAS: [i32; 300] = [0; 300];

fn as_i8(w: &[u8]) -> &[i8] {
    // SAFETY: i8 and u8 have the same size, alignment and validity.
    unsafe { &*(w as *const [u8] as *const [i8]) }
}

fn fc_params(w: &[u8], n_out: usize) -> FcParams<'_> {
    FcParams {
        weights: as_i8(w),
        folded_bias: &BIAS[..n_out],
        multiplier: &MULT[..n_out],
        shift: &SHIFT[..n_out],
        output_offset: 0,
        act_min: -128,
        act_max: 127,
    }
}

fn fc_portable<const I: usize, const O: usize, const A: usize>(
    x: &[i8; I],
    y: &mut [i8; O],
    w: &mut [u8; A],
) {
    fully_connected_s8_portable(&fc_params(w, O), x, y);
}

fn fc_dsp<const I: usize, const O: usize, const A: usize>(
    x: &[i8; I],
    y: &mut [i8; O],
    w: &mut [u8; A],
) {
    fully_connected_s8(&fc_params(w, O), x, y);
}

/// Square input `H × H × C`, `KxK` kernel, stride 1, no padding, `CO` output channels.
fn conv_params<const H: usize, const C: usize, const K: usize, const CO: usize>(
    w: &[u8],
) -> Conv2dParams<'_> {
    Conv2dParams {
        shape: Shape2d {
            in_h: H,
            in_w: H,
            in_c: C,
            out_h: H - K + 1,
            out_w: H - K + 1,
            out_c: CO,
            kernel_h: K,
            kernel_w: K,
            stride_h: 1,
            stride_w: 1,
            pad_top: 0,
            pad_left: 0,
        },
        weights: as_i8(w),
        folded_bias: &BIAS[..CO],
        multiplier: &MULT[..CO],
        shift: &SHIFT[..CO],
        input_offset: 3,
        output_offset: 0,
        act_min: -128,
        act_max: 127,
    }
}

macro_rules! conv_fns {
    ($portable:ident, $dsp:ident, $h:literal, $c:literal, $k:literal, $co:literal) => {
        fn $portable<const I: usize, const O: usize, const A: usize>(
            x: &[i8; I],
            y: &mut [i8; O],
            w: &mut [u8; A],
        ) {
            conv2d_s8_portable(&conv_params::<$h, $c, $k, $co>(w), x, y);
        }
        fn $dsp<const I: usize, const O: usize, const A: usize>(
            x: &[i8; I],
            y: &mut [i8; O],
            w: &mut [u8; A],
        ) {
            conv2d_s8(&conv_params::<$h, $c, $k, $co>(w), x, y);
        }
    };
}

// LeNet-5's two convolutions (the CMSIS-NN figures in the shared notes are for these).
conv_fns!(conv1_portable, conv1_dsp, 28, 1, 5, 20);
conv_fns!(conv2_portable, conv2_dsp, 12, 20, 5, 50);

type Kernel<const I: usize, const O: usize, const A: usize> =
    fn(&[i8; I], &mut [i8; O], &mut [u8; A]);

/// Measures `portable` and `dsp` on random data and checks that they agree.
fn compare_and_measure<const I: usize, const O: usize, const A: usize>(
    out: &mut Console,
    name: &str,
    macs: u32,
    buf: &mut [u8],
    input: &mut [i8],
    portable: Kernel<I, O, A>,
    dsp: Kernel<I, O, A>,
) {
    let (Some(w), Some(x)) = (buf.get_mut(..A), input.get_mut(..I)) else {
        out.str("ERROR measurement buffers too small").end_line();
        exit(EXIT_MISMATCH);
    };
    let mut r = Rng(u64::from(macs));
    for b in w.iter_mut() {
        *b = r.range(-127, 127) as u8;
    }
    for v in x.iter_mut() {
        *v = r.range(-128, 127) as i8;
    }
    let w: &mut [u8; A] = w.try_into().unwrap_or_else(|_| exit(EXIT_MISMATCH));
    let x: &[i8; I] = (&*x).try_into().unwrap_or_else(|_| exit(EXIT_MISMATCH));
    let (mut y0, mut y1) = ([0i8; O], [0x55i8; O]);
    let mut line = |what: &str, f: Kernel<I, O, A>, y: &mut [i8; O]| {
        let m = measure(core::hint::black_box(f), x, y, w);
        out.str("MEASURE ")
            .str(name)
            .str(what)
            .str(" ")
            .dec(macs)
            .str(" ")
            .dec64(m.ticks())
            .str(" ")
            .dec(m.wraps())
            .end_line();
    };
    line("_portable", portable, &mut y0);
    line("_dsp", dsp, &mut y1);
    if y0 != y1 {
        out.str("MISMATCH ")
            .str(name)
            .str(": portable and DSP outputs differ")
            .end_line();
        exit(EXIT_MISMATCH);
    }
}

#[entry]
fn main() -> ! {
    // `#[entry]` turns these into `&'static mut`s; zero-initialised, so they sit in `.bss`.
    static mut SCRATCH: Scratch = Scratch::new();
    static mut WEIGHTS: [u8; 235_200] = [0; 235_200];
    static mut INPUT: [i8; 2880] = [0; 2880];
    let s: &mut Scratch = SCRATCH;
    let mut out = Console::open();
    if !bonsai_rt::kernels::DSP_FAST_PATHS {
        out.str("ERROR bonsai-rt was built without its DSP fast paths")
            .end_line();
        exit(EXIT_MISMATCH);
    }

    cases(&mut out, s, "fully_connected_s8", 1 << 32, |seed, s| {
        testgen::check_fc(seed, s, fully_connected_s8)
    });
    cases(
        &mut out,
        s,
        "fully_connected_s8_portable",
        1 << 32,
        |seed, s| testgen::check_fc(seed, s, fully_connected_s8_portable),
    );
    cases(&mut out, s, "conv2d_s8", 2 << 32, |seed, s| {
        testgen::check_conv2d(seed, s, conv2d_s8)
    });
    cases(&mut out, s, "conv2d_s8_portable", 2 << 32, |seed, s| {
        testgen::check_conv2d(seed, s, conv2d_s8_portable)
    });
    cases(
        &mut out,
        s,
        "depthwise_conv2d_s8",
        3 << 32,
        testgen::check_depthwise_conv2d,
    );
    cases(
        &mut out,
        s,
        "conv2d_sparse_s8",
        4 << 32,
        testgen::check_conv2d_sparse,
    );
    // The SXTB16 two-entries loop (`bonsai_dsp`), fillers and odd row lengths included.
    cases(
        &mut out,
        s,
        "fully_connected_sparse_s8",
        8 << 32,
        |seed, s| testgen::check_fc_sparse(seed, s, fully_connected_sparse_s8),
    );
    cases(&mut out, s, "max_pool_s8", 5 << 32, testgen::check_max_pool);
    cases(&mut out, s, "avg_pool_s8", 6 << 32, testgen::check_avg_pool);
    cases(&mut out, s, "add_s8", 7 << 32, |seed, s| {
        testgen::check_add(seed, s, add_s8)
    });

    if !systick_start() {
        out.str("ERROR no SysTick").end_line();
        exit(EXIT_NO_SYSTICK);
    }
    let (mut y, w) = ([0i8; 1], &mut [0u8; 1]);
    let base = measure(
        core::hint::black_box(null_infer::<1, 1, 1>()),
        &[0; 1],
        &mut y,
        w,
    );
    out.str("MEASURE_BASE ").dec64(base.ticks()).end_line();
    let (buf, input): (&mut [u8], &mut [i8]) = (WEIGHTS, INPUT);
    compare_and_measure::<784, 300, 235_200>(
        &mut out,
        "fc_784x300",
        235_200,
        buf,
        input,
        fc_portable,
        fc_dsp,
    );
    compare_and_measure::<300, 100, 30_000>(
        &mut out,
        "fc_300x100",
        30_000,
        buf,
        input,
        fc_portable,
        fc_dsp,
    );
    compare_and_measure::<100, 10, 1_000>(
        &mut out,
        "fc_100x10",
        1_000,
        buf,
        input,
        fc_portable,
        fc_dsp,
    );
    compare_and_measure::<784, 11_520, 500>(
        &mut out,
        "conv_28x28x1_5x5x20",
        288_000,
        buf,
        input,
        conv1_portable,
        conv1_dsp,
    );
    compare_and_measure::<2880, 3200, 25_000>(
        &mut out,
        "conv_12x12x20_5x5x50",
        1_600_000,
        buf,
        input,
        conv2_portable,
        conv2_dsp,
    );

    out.str("STACK_PEAK ")
        .dec(fw_common::stack_peak() as u32)
        .end_line();
    out.str("DONE 0").end_line();
    exit(0)
}
