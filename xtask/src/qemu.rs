//! Running a firmware image under `qemu-system-arm` and reading its semihosting output.
//!
//! The firmware (`firmware-examples/fw-common`) prints `TICKS_BASE <ticks> <h>`, then per test
//! vector `OUT <index> <hex>` and `TICKS <index> <ticks> <wraps>`, then `STACK_INFER <bytes>`,
//! `STACK_PEAK <bytes>` and `DONE <n>`, and ends QEMU with its exit code (semihosting
//! SYS_EXIT_EXTENDED), which becomes QEMU's exit status.
//!
//! Instruction counts: with `-icount shift=N` ([`RunOptions::icount_shift`]) QEMU's virtual clock
//! advances exactly 2^N ns per executed instruction, and SysTick counts that clock at the board's
//! [`Board::systick_hz`]. The firmware reports raw SysTick ticks; [`ticks_to_insns`] converts them
//! (`round(ticks × 10^9 / (hz × 2^N))`, exact when a tick is shorter than half an instruction,
//! [`count_is_exact`]), and [`insns_per_vector`] subtracts the measurement's own cost (the
//! `TICKS_BASE` calibration) and the SysTick wrap interrupts. Details: `firmware-examples/README.md`.
//!
//! A firmware built with the `layer-probes` feature also prints `LAYER_NAME <k> <name>` first,
//! `LAYER_BASE <ticks>` after `TICKS_BASE` and `LAYER <index> <k> <ticks> <wraps>` (k = 1..=n)
//! after each `TICKS` line; [`insns_per_layer`] turns them into [`QemuRun::layer_insns`].

use std::ffi::OsString;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};

use crate::firmware::{find_on_path, Board};

/// Finds `qemu-system-arm` on PATH.
pub fn ensure_qemu() -> Result<PathBuf> {
    find_on_path("qemu-system-arm").ok_or_else(|| {
        anyhow!("qemu-system-arm not found: install it with `sudo apt-get install qemu-system-arm`")
    })
}

/// The `-icount` shift [`RunOptions::counting`] uses: the smallest with exact counts on every board
/// (mps2-an386: 3.2 SysTick ticks per instruction, microbit: 2.048; see [`count_is_exact`]). Larger
/// shifts are exact too, but SysTick (24 bits) then wraps sooner: every 2^24 ticks, i.e. every
/// 5.24 M instructions on mps2-an386 and 8.19 M on the microbit at shift 7. A call that long takes
/// one SysTick interrupt per wrap; its count stays exact, but the interrupt's exception frame may
/// add 32 bytes to the stack figures.
pub const COUNT_SHIFT: u32 = 7;

/// How to run QEMU.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunOptions {
    /// QEMU is killed (and the run is an error) after this long.
    pub timeout: Duration,
    /// `-icount shift=N`: deterministic virtual time, one instruction = 2^N ns, and per-vector
    /// instruction counts in [`QemuRun::insns`] (on boards with [`Board::systick_hz`]). The shift
    /// must give exact counts on the board ([`count_is_exact`]; [`COUNT_SHIFT`] does everywhere),
    /// otherwise the run is an error. `None`: real-time clock, no counts.
    pub icount_shift: Option<u32>,
}

impl RunOptions {
    /// No instruction counting.
    pub fn new(timeout: Duration) -> RunOptions {
        RunOptions {
            timeout,
            icount_shift: None,
        }
    }

    /// With instruction counting (`-icount shift=`[`COUNT_SHIFT`]).
    pub fn counting(timeout: Duration) -> RunOptions {
        RunOptions {
            timeout,
            icount_shift: Some(COUNT_SHIFT),
        }
    }
}

/// The result of a successful run (exit code 0, complete output).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QemuRun {
    /// One entry per test vector, in order: the model's i8 outputs.
    pub outputs: Vec<Vec<i8>>,
    /// Deepest stack use of the whole program, bytes (exact: the stack is painted at reset).
    pub stack_peak: u64,
    /// Deepest stack use below the `infer` call site, bytes: max(infer's own depth, the harness'
    /// shallow print path).
    pub infer_stack: u64,
    /// One entry per test vector when counting ([`RunOptions::icount_shift`] set, board with a
    /// SysTick), else empty: the instructions executed by the model's `infer` call, from its first
    /// instruction to its return inclusive (the call instruction and the harness excluded). Exact.
    pub insns: Vec<u64>,
    /// Layer names of a `layer-probes` build (the model nodes of its probed layers), else empty.
    pub layer_names: Vec<String>,
    /// A `layer-probes` build run with counting: per vector, the instructions of each probed layer
    /// (its code and the glue `infer` runs between its two probes). Empty otherwise. Exact for the
    /// probe build, whose code differs from the default build's (see `fw-common`'s `probes`).
    pub layer_insns: Vec<Vec<u64>>,
    pub exit_code: i32,
    /// Everything the firmware printed.
    pub stdout: String,
}

/// The firmware's protocol lines, parsed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FirmwareOutput {
    pub outputs: Vec<Vec<i8>>,
    pub stack_peak: Option<u64>,
    pub infer_stack: Option<u64>,
    pub done: Option<usize>,
    /// `TICKS_BASE`: the measurement around a one-instruction function, in ticks.
    pub ticks_base: Option<u64>,
    /// `TICKS_BASE`: instructions one SysTick wrap interrupt adds to a measurement.
    pub wrap_insns: Option<u64>,
    /// `TICKS` lines, in vector order: (SysTick ticks across `infer`, wrap interrupts taken).
    pub ticks: Vec<(u64, u64)>,
    /// `LAYER_NAME` lines, in order of k (k = 1, 2, ...).
    pub layer_names: Vec<String>,
    /// `LAYER_BASE`: ticks between two back-to-back probes.
    pub layer_base: Option<u64>,
    /// `LAYER` lines, per vector in order: (ticks, wraps) of each layer k = 1..=n.
    pub layer_ticks: Vec<Vec<(u64, u64)>>,
}

/// Whether [`ticks_to_insns`] is exact for a SysTick at `systick_hz` under `-icount shift=N`.
///
/// A measured tick count is a difference of two readings of a counter that ticks every
/// 10^9 / hz ns, so it is within ±1 (exclusive) of `insns × ticks_per_insn` with
/// `ticks_per_insn = hz × 2^N / 10^9`. Rounding `ticks / ticks_per_insn` recovers the instruction
/// count exactly when one tick is less than half an instruction: `ticks_per_insn > 2`.
pub fn count_is_exact(systick_hz: u64, shift: u32) -> bool {
    shift < 40 && (systick_hz as u128) << shift > 2_000_000_000
}

/// SysTick ticks to instructions under `-icount shift=N`: `round(ticks × 10^9 / (hz × 2^N))`.
/// (mps2-an386: 25 MHz, so `ticks × 40 / 2^N`.)
pub fn ticks_to_insns(ticks: u64, systick_hz: u64, shift: u32) -> u64 {
    let num = ticks as u128 * 1_000_000_000;
    let den = (systick_hz as u128) << shift;
    ((num + den / 2) / den) as u64
}

/// Per-vector instruction counts of `infer` from the `TICKS*` lines:
/// `I(ticks) − wraps × h − (I(base) − 1)`, where `I` is [`ticks_to_insns`], `base` the
/// `TICKS_BASE` measurement (the same measurement around a one-instruction function, so
/// `I(base) − 1` is the measurement's own cost) and `h` the instructions one SysTick wrap
/// interrupt adds. Errors if the lines are missing or inconsistent.
pub fn insns_per_vector(parsed: &FirmwareOutput, systick_hz: u64, shift: u32) -> Result<Vec<u64>> {
    if !count_is_exact(systick_hz, shift) {
        let min = (0..40)
            .find(|&n| count_is_exact(systick_hz, n))
            .unwrap_or(40);
        bail!(
            "-icount shift={shift} is too coarse for exact instruction counts with a {systick_hz} Hz \
             SysTick (a tick must be under half an instruction): use shift {min} or more"
        );
    }
    if parsed.outputs.is_empty() {
        return Ok(Vec::new()); // no vector, no calibration either
    }
    let (Some(base), Some(wrap_insns)) = (parsed.ticks_base, parsed.wrap_insns) else {
        bail!(
            "no TICKS_BASE line: the firmware found no SysTick, or predates instruction counting"
        );
    };
    if parsed.ticks.len() != parsed.outputs.len() {
        bail!(
            "{} TICKS lines for {} OUT lines",
            parsed.ticks.len(),
            parsed.outputs.len()
        );
    }
    let overhead = ticks_to_insns(base, systick_hz, shift)
        .checked_sub(1)
        .ok_or_else(|| anyhow!("TICKS_BASE {base}: less than the one instruction it measures"))?;
    parsed
        .ticks
        .iter()
        .enumerate()
        .map(|(i, &(ticks, wraps))| {
            ticks_to_insns(ticks, systick_hz, shift)
                .checked_sub(wraps * wrap_insns + overhead)
                .ok_or_else(|| {
                    anyhow!(
                        "TICKS {i} {ticks} {wraps}: fewer instructions than the measurement's own \
                         {overhead} and {wraps} wrap interrupts"
                    )
                })
        })
        .collect()
}

/// Per-vector, per-layer instruction counts of a `layer-probes` build from the `LAYER*` lines:
/// `I(ticks) − wraps × h − I(LAYER_BASE)`, with `I` and `h` as in [`insns_per_vector`]. Empty if
/// the firmware printed no `LAYER_BASE` (a build without probes); errors if the lines are
/// incomplete.
pub fn insns_per_layer(
    parsed: &FirmwareOutput,
    systick_hz: u64,
    shift: u32,
) -> Result<Vec<Vec<u64>>> {
    let Some(base) = parsed.layer_base else {
        if !parsed.layer_ticks.is_empty() {
            bail!("LAYER lines without a LAYER_BASE line");
        }
        return Ok(Vec::new());
    };
    let wrap_insns = parsed
        .wrap_insns
        .ok_or_else(|| anyhow!("LAYER_BASE without a TICKS_BASE line"))?;
    if parsed.layer_ticks.len() != parsed.outputs.len() {
        bail!(
            "LAYER lines for {} vectors, {} OUT lines",
            parsed.layer_ticks.len(),
            parsed.outputs.len()
        );
    }
    let layers = parsed.layer_ticks.first().map_or(0, Vec::len);
    if !parsed.layer_names.is_empty() && parsed.layer_names.len() != layers {
        bail!(
            "{} LAYER_NAME lines for {layers} layers",
            parsed.layer_names.len()
        );
    }
    let overhead = ticks_to_insns(base, systick_hz, shift);
    parsed
        .layer_ticks
        .iter()
        .enumerate()
        .map(|(i, per_layer)| {
            if per_layer.len() != layers {
                bail!(
                    "vector {i}: {} LAYER lines, vector 0 has {layers}",
                    per_layer.len()
                );
            }
            per_layer
                .iter()
                .enumerate()
                .map(|(k, &(ticks, wraps))| {
                    ticks_to_insns(ticks, systick_hz, shift)
                        .checked_sub(wraps * wrap_insns + overhead)
                        .ok_or_else(|| {
                            anyhow!(
                                "LAYER {i} {} {ticks} {wraps}: fewer instructions than the \
                                 probe's own {overhead} and {wraps} wrap interrupts",
                                k + 1
                            )
                        })
                })
                .collect()
        })
        .collect()
}

/// QEMU's arguments for running `elf` on `board`.
pub fn qemu_args(board: &Board, elf: &Path, opts: &RunOptions) -> Vec<OsString> {
    let mut args: Vec<OsString> = [
        "-M",
        board.qemu_machine,
        "-nographic",
        "-monitor",
        "none",
        "-serial",
        "none",
    ]
    .iter()
    .map(OsString::from)
    .collect();
    args.push("-semihosting-config".into());
    args.push("enable=on,target=native".into());
    if let Some(shift) = opts.icount_shift {
        args.push("-icount".into());
        args.push(format!("shift={shift}").into());
    }
    args.push("-kernel".into());
    args.push(elf.into());
    args
}

/// Runs `elf` on `board` with a timeout (see [`run_with`]).
pub fn run(board: &Board, elf: &Path, timeout: Duration) -> Result<QemuRun> {
    run_with(board, elf, &RunOptions::new(timeout))
}

/// Runs `elf` under QEMU; errors on timeout (QEMU is killed), on a nonzero exit code (with the
/// tail of the output) and on incomplete or malformed output.
pub fn run_with(board: &Board, elf: &Path, opts: &RunOptions) -> Result<QemuRun> {
    let qemu = ensure_qemu()?;
    let mut child = Command::new(&qemu)
        .args(qemu_args(board, elf, opts))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("board {}: cannot start {}", board.name, qemu.display()))?;

    // Drain both pipes on threads so that QEMU never blocks on a full pipe.
    let mut out_pipe = child.stdout.take().expect("piped stdout");
    let mut err_pipe = child.stderr.take().expect("piped stderr");
    let out_reader = thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = out_pipe.read_to_end(&mut buf);
        buf
    });
    let err_reader = thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = err_pipe.read_to_end(&mut buf);
        buf
    });

    let deadline = Instant::now() + opts.timeout;
    let status = loop {
        if let Some(status) = child.try_wait().context("waiting for QEMU")? {
            break Some(status);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        thread::sleep(Duration::from_millis(5));
    };
    let stdout = String::from_utf8_lossy(&out_reader.join().unwrap_or_default()).into_owned();
    let stderr = String::from_utf8_lossy(&err_reader.join().unwrap_or_default()).into_owned();

    let Some(status) = status else {
        bail!(
            "board {}: QEMU timed out after {:?} running {} and was killed{}",
            board.name,
            opts.timeout,
            elf.display(),
            tails(&stdout, &stderr)
        );
    };
    let Some(exit_code) = status.code() else {
        bail!(
            "board {}: QEMU died ({status}); a CPU lockup (e.g. the stack overflowing below RAM) \
             aborts it{}",
            board.name,
            tails(&stdout, &stderr)
        );
    };
    if exit_code != 0 {
        bail!(
            "board {}: firmware {} exited with code {exit_code}{}{}",
            board.name,
            elf.display(),
            exit_meaning(exit_code)
                .map(|m| format!(" ({m})"))
                .unwrap_or_default(),
            tails(&stdout, &stderr)
        );
    }

    let parsed = parse_output(&stdout)
        .with_context(|| format!("board {}: output of {}", board.name, elf.display()))?;
    let done = parsed.done.ok_or_else(|| {
        anyhow!(
            "board {}: no DONE line{}",
            board.name,
            tails(&stdout, &stderr)
        )
    })?;
    if done != parsed.outputs.len() {
        bail!(
            "board {}: DONE {done} but {} OUT lines",
            board.name,
            parsed.outputs.len()
        );
    }
    let stack_peak = parsed
        .stack_peak
        .ok_or_else(|| anyhow!("board {}: no STACK_PEAK line", board.name))?;
    // Without -icount the TICKS lines are real-time noise: ignored.
    let insns = match (opts.icount_shift, board.systick_hz) {
        (Some(shift), Some(hz)) => insns_per_vector(&parsed, hz, shift).with_context(|| {
            format!(
                "board {}: instruction counts of {}",
                board.name,
                elf.display()
            )
        })?,
        _ => Vec::new(),
    };
    let layer_insns = match (opts.icount_shift, board.systick_hz) {
        (Some(shift), Some(hz)) => insns_per_layer(&parsed, hz, shift).with_context(|| {
            format!(
                "board {}: per-layer instruction counts of {}",
                board.name,
                elf.display()
            )
        })?,
        _ => Vec::new(),
    };
    Ok(QemuRun {
        outputs: parsed.outputs,
        stack_peak,
        infer_stack: parsed.infer_stack.unwrap_or(stack_peak),
        insns,
        layer_names: parsed.layer_names,
        layer_insns,
        exit_code,
        stdout,
    })
}

/// What the firmware's exit codes mean (`fw-common`'s `EXIT_*`).
pub fn exit_meaning(code: i32) -> Option<&'static str> {
    Some(match code {
        1 => "QEMU error, or an exit without a code",
        3 => "the vectors' input length differs from the model's INPUT_LEN",
        4 => "malformed embedded vector file",
        5 => "no semihosting console",
        6 => "stack overflow into static RAM",
        101 => "panic",
        102 => "HardFault",
        _ => return None,
    })
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

fn tails(stdout: &str, stderr: &str) -> String {
    let mut s = String::new();
    if !stdout.trim().is_empty() {
        s += &format!(
            "\n--- firmware output (last lines) ---\n{}",
            tail(stdout, 15)
        );
    }
    if !stderr.trim().is_empty() {
        s += &format!("\n--- QEMU stderr ---\n{}", tail(stderr, 15));
    }
    s
}

/// Parses the firmware's protocol lines. `OUT` indices must count up from 0 and all outputs must
/// have the same length; each `TICKS <index>` must follow `OUT <index>`; lines the protocol does not
/// define are ignored.
pub fn parse_output(stdout: &str) -> Result<FirmwareOutput> {
    let mut parsed = FirmwareOutput::default();
    for (lineno, line) in stdout.lines().enumerate() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let bad = || anyhow!("line {}: malformed `{line}`", lineno + 1);
        match fields.as_slice() {
            ["OUT", index, hex] => {
                let index: usize = index.parse().map_err(|_| bad())?;
                if index != parsed.outputs.len() {
                    bail!(
                        "line {}: OUT {index} where OUT {} was expected",
                        lineno + 1,
                        parsed.outputs.len()
                    );
                }
                let values = decode_hex(hex).ok_or_else(bad)?;
                if let Some(first) = parsed.outputs.first() {
                    if first.len() != values.len() {
                        bail!(
                            "line {}: {} outputs, OUT 0 had {}",
                            lineno + 1,
                            values.len(),
                            first.len()
                        );
                    }
                }
                parsed.outputs.push(values);
            }
            ["OUT", _] => bail!("line {}: OUT line without outputs", lineno + 1),
            ["TICKS", index, ticks, wraps] => {
                let index: usize = index.parse().map_err(|_| bad())?;
                if index != parsed.ticks.len() || index + 1 != parsed.outputs.len() {
                    bail!(
                        "line {}: TICKS {index} must follow OUT {index} (have {} OUT and {} TICKS lines)",
                        lineno + 1,
                        parsed.outputs.len(),
                        parsed.ticks.len()
                    );
                }
                let ticks = ticks.parse().map_err(|_| bad())?;
                let wraps = wraps.parse().map_err(|_| bad())?;
                parsed.ticks.push((ticks, wraps));
            }
            ["TICKS_BASE", ticks, wrap_insns] => {
                parsed.ticks_base = Some(ticks.parse().map_err(|_| bad())?);
                parsed.wrap_insns = Some(wrap_insns.parse().map_err(|_| bad())?);
            }
            ["LAYER_NAME", k, ..] => {
                let k: usize = k.parse().map_err(|_| bad())?;
                if k != parsed.layer_names.len() + 1 {
                    bail!(
                        "line {}: LAYER_NAME {k} where LAYER_NAME {} was expected",
                        lineno + 1,
                        parsed.layer_names.len() + 1
                    );
                }
                // The name is the rest of the line (it may contain spaces).
                let rest = line.trim_start()["LAYER_NAME".len()..].trim_start();
                let name = rest[rest.find(char::is_whitespace).unwrap_or(rest.len())..].trim();
                parsed.layer_names.push(name.to_string());
            }
            ["LAYER_BASE", ticks] => parsed.layer_base = Some(ticks.parse().map_err(|_| bad())?),
            ["LAYER", index, k, ticks, wraps] => {
                let index: usize = index.parse().map_err(|_| bad())?;
                let k: usize = k.parse().map_err(|_| bad())?;
                if index + 1 != parsed.ticks.len() {
                    bail!(
                        "line {}: LAYER {index} must follow TICKS {index}",
                        lineno + 1
                    );
                }
                if parsed.layer_ticks.len() == index {
                    parsed.layer_ticks.push(Vec::new());
                }
                if parsed.layer_ticks.len() != index + 1 {
                    bail!("line {}: LAYER {index} out of order", lineno + 1);
                }
                let Some(row) = parsed.layer_ticks.last_mut() else {
                    bail!("line {}: LAYER {index} out of order", lineno + 1);
                };
                if k != row.len() + 1 {
                    bail!(
                        "line {}: LAYER {index} {k} where LAYER {index} {} was expected",
                        lineno + 1,
                        row.len() + 1
                    );
                }
                row.push((
                    ticks.parse().map_err(|_| bad())?,
                    wraps.parse().map_err(|_| bad())?,
                ));
            }
            ["STACK_PEAK", n] => parsed.stack_peak = Some(n.parse().map_err(|_| bad())?),
            ["STACK_INFER", n] => parsed.infer_stack = Some(n.parse().map_err(|_| bad())?),
            ["DONE", n] => parsed.done = Some(n.parse().map_err(|_| bad())?),
            ["OUT" | "TICKS" | "TICKS_BASE" | "LAYER" | "LAYER_BASE" | "STACK_PEAK"
            | "STACK_INFER" | "DONE", ..] => return Err(bad()),
            _ => {}
        }
    }
    Ok(parsed)
}

/// Two hex digits per byte, each byte an i8 in two's complement.
fn decode_hex(hex: &str) -> Option<Vec<i8>> {
    if !hex.len().is_multiple_of(2) || !hex.is_ascii() {
        return None;
    }
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).ok().map(|b| b as i8))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::firmware::board;

    #[test]
    fn parses_protocol() {
        let out = "OUT 0 7f80ff00\nOUT 1 01020304\nnoise\nSTACK_INFER 56\nSTACK_PEAK 192\nDONE 2\n";
        let p = parse_output(out).unwrap();
        assert_eq!(p.outputs, vec![vec![127, -128, -1, 0], vec![1, 2, 3, 4]]);
        assert_eq!(
            (p.stack_peak, p.infer_stack, p.done),
            (Some(192), Some(56), Some(2))
        );
    }

    #[test]
    fn rejects_bad_lines() {
        assert!(parse_output("OUT 1 00\n").is_err(), "index must start at 0");
        assert!(parse_output("OUT 0 0\n").is_err(), "odd hex length");
        assert!(parse_output("OUT 0 zz\n").is_err(), "not hex");
        assert!(
            parse_output("OUT 0 00\nOUT 1 0000\n").is_err(),
            "length changes"
        );
        assert!(parse_output("STACK_PEAK lots\n").is_err());
        assert!(parse_output("DONE 1 2\n").is_err());
        assert_eq!(parse_output("hello\n").unwrap(), FirmwareOutput::default());
    }

    /// Real output of fw-common (mps2-an386, `-icount shift=7`) around calibration models whose
    /// `infer` is 1000 `nop`s (1003 instructions with its frame set-up) and a `subs`/`bne` loop
    /// of k iterations (6 + 2k instructions; k = 50,000,000 takes 19 wrap interrupts).
    const MPS2_SHIFT7: &str = "TICKS_BASE 22 5\nOUT 0 00000000\nTICKS 0 3229 0\nOUT 1 00000000\n\
        TICKS 1 3228 0\nOUT 2 00000000\nTICKS 2 320000342 19\nSTACK_INFER 32\nSTACK_PEAK 256\nDONE 3\n";

    #[test]
    fn parses_ticks_lines() {
        let p = parse_output(MPS2_SHIFT7).unwrap();
        assert_eq!((p.ticks_base, p.wrap_insns), (Some(22), Some(5)));
        assert_eq!(p.ticks, vec![(3229, 0), (3228, 0), (320000342, 19)]);
        // Output without the TICKS lines (no SysTick, or the host runner) still parses.
        let p = parse_output("OUT 0 00\nDONE 1\n").unwrap();
        assert_eq!((p.ticks_base, p.ticks.len()), (None, 0));
    }

    #[test]
    fn rejects_bad_ticks_lines() {
        assert!(
            parse_output("TICKS 0 5 0\n").is_err(),
            "TICKS before its OUT"
        );
        assert!(
            parse_output("OUT 0 00\nTICKS 1 5 0\n").is_err(),
            "wrong index"
        );
        assert!(
            parse_output("OUT 0 00\nOUT 1 00\nTICKS 1 5 0\n").is_err(),
            "TICKS 0 missing"
        );
        assert!(
            parse_output("OUT 0 00\nTICKS 0 5\n").is_err(),
            "no wrap count"
        );
        assert!(parse_output("OUT 0 00\nTICKS 0 -5 0\n").is_err());
        assert!(parse_output("TICKS_BASE 22\n").is_err());
    }

    #[test]
    fn converts_ticks_to_instructions() {
        // mps2-an386, 25 MHz: insns = ticks × 40 / 2^N, rounded.
        assert_eq!(ticks_to_insns(3229, 25_000_000, 7), 1009); // 1009.06
        assert_eq!(ticks_to_insns(3228, 25_000_000, 7), 1009); // 1008.75
        assert_eq!(ticks_to_insns(22, 25_000_000, 7), 7); // 6.875
        assert_eq!(ticks_to_insns(6457, 25_000_000, 8), 1009); // 1008.91
                                                               // microbit, 16 MHz: insns = ticks × 62.5 / 2^N.
        assert_eq!(ticks_to_insns(2079, 16_000_000, 7), 1015); // 1015.14
        assert_eq!(ticks_to_insns(26, 16_000_000, 7), 13); // 12.70
                                                           // No overflow on long runs: 2^40 ticks.
        assert_eq!(ticks_to_insns(1 << 40, 25_000_000, 7), 343_597_383_680);

        assert!(!count_is_exact(25_000_000, 6)); // 1.6 ticks per instruction
        assert!(count_is_exact(25_000_000, COUNT_SHIFT)); // 3.2
        assert!(!count_is_exact(16_000_000, 6)); // 1.024
        assert!(count_is_exact(16_000_000, COUNT_SHIFT)); // 2.048
        assert!(!count_is_exact(25_000_000, 200));
    }

    #[test]
    fn counts_instructions_per_vector() {
        let p = parse_output(MPS2_SHIFT7).unwrap();
        // Overhead I(22) − 1 = 6. The loop: I(320000342) = 100000107, minus 19 wraps × 5, minus 6.
        assert_eq!(
            insns_per_vector(&p, 25_000_000, 7).unwrap(),
            vec![1003, 1003, 100_000_006]
        );
        let err = insns_per_vector(&p, 25_000_000, 6).unwrap_err().to_string();
        assert!(err.contains("shift 7 or more"), "{err}");
        let empty = parse_output("STACK_PEAK 8\nDONE 0\n").unwrap();
        assert_eq!(
            insns_per_vector(&empty, 25_000_000, 7).unwrap(),
            Vec::<u64>::new()
        );
        let no_ticks = parse_output("OUT 0 00\nDONE 1\n").unwrap();
        let err = insns_per_vector(&no_ticks, 25_000_000, 7)
            .unwrap_err()
            .to_string();
        assert!(err.contains("no TICKS_BASE"), "{err}");
        let missing = parse_output("TICKS_BASE 22 5\nOUT 0 00\nOUT 1 00\nTICKS 1 5 0\n");
        assert!(missing.is_err());
        let short = parse_output("TICKS_BASE 22 5\nOUT 0 00\nTICKS 0 15 0\n").unwrap();
        assert!(
            insns_per_vector(&short, 25_000_000, 7).is_err(),
            "below the overhead"
        );
    }

    #[test]
    fn counts_instructions_per_layer() {
        let text = "LAYER_NAME 1 fc1\nLAYER_NAME 2 fc 2 relu\nTICKS_BASE 22 5\nLAYER_BASE 45\n\
            OUT 0 00\nTICKS 0 3229 0\nLAYER 0 1 2000 0\nLAYER 0 2 1100 0\n\
            OUT 1 00\nTICKS 1 3229 0\nLAYER 1 1 2000 0\nLAYER 1 2 1100 0\nDONE 2\n";
        let p = parse_output(text).unwrap();
        assert_eq!(p.layer_names, vec!["fc1", "fc 2 relu"]);
        assert_eq!(p.layer_base, Some(45));
        // I(45) = 14 (14.06); I(2000) = 625, I(1100) = 344 (343.75).
        assert_eq!(
            insns_per_layer(&p, 25_000_000, 7).unwrap(),
            vec![vec![611, 330], vec![611, 330]]
        );
        // A build without probes has no per-layer counts.
        let plain = parse_output(MPS2_SHIFT7).unwrap();
        assert!(insns_per_layer(&plain, 25_000_000, 7).unwrap().is_empty());

        assert!(
            parse_output("OUT 0 00\nLAYER 0 1 5 0\n").is_err(),
            "before TICKS"
        );
        assert!(
            parse_output("OUT 0 00\nTICKS 0 9 0\nLAYER 0 2 5 0\n").is_err(),
            "k skips 1"
        );
        assert!(
            parse_output("LAYER_NAME 2 x\n").is_err(),
            "names start at 1"
        );
        let short = parse_output(
            "LAYER_NAME 1 a\nLAYER_NAME 2 b\nTICKS_BASE 22 5\nLAYER_BASE 45\nOUT 0 00\nTICKS 0 3229 0\n\
             LAYER 0 1 2000 0\n",
        )
        .unwrap();
        assert!(
            insns_per_layer(&short, 25_000_000, 7).is_err(),
            "layer 2 missing"
        );
        let cheap = parse_output(
            "TICKS_BASE 22 5\nLAYER_BASE 45\nOUT 0 00\nTICKS 0 3229 0\nLAYER 0 1 10 0\n",
        )
        .unwrap();
        assert!(
            insns_per_layer(&cheap, 25_000_000, 7).is_err(),
            "below the probe cost"
        );
    }

    #[test]
    fn builds_qemu_command_line() {
        let b = board("qemu-microbit").unwrap();
        let mut opts = RunOptions::new(Duration::from_secs(5));
        let args: Vec<String> = qemu_args(b, Path::new("/x/fw"), &opts)
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            args.join(" "),
            "-M microbit -nographic -monitor none -serial none -semihosting-config enable=on,target=native -kernel /x/fw"
        );
        opts.icount_shift = Some(0);
        let args: Vec<String> = qemu_args(b, Path::new("/x/fw"), &opts)
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        assert!(args.join(" ").contains("-icount shift=0 -kernel /x/fw"));
        let counting = RunOptions::counting(Duration::from_secs(5));
        let args: Vec<String> = qemu_args(b, Path::new("/x/fw"), &counting)
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        assert!(args.join(" ").contains("-icount shift=7 -kernel /x/fw"));
    }
}
