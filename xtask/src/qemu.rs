//! Running a firmware image under `qemu-system-arm` and reading its semihosting output.
//!
//! The firmware (`firmware-examples/fw-common`) prints one `OUT <index> <hex>` line per test
//! vector, then `STACK_INFER <bytes>`, `STACK_PEAK <bytes>` and `DONE <n>`, and ends QEMU with its
//! exit code (semihosting SYS_EXIT_EXTENDED), which becomes QEMU's exit status.

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

/// How to run QEMU.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunOptions {
    /// QEMU is killed (and the run is an error) after this long.
    pub timeout: Duration,
    /// `-icount shift=N`: deterministic virtual time, one instruction = 2^N ns. For instruction
    /// counting with SysTick (see shared/notes/toolchain-facts.md); slower, not needed otherwise.
    pub icount_shift: Option<u32>,
}

impl RunOptions {
    pub fn new(timeout: Duration) -> RunOptions {
        RunOptions {
            timeout,
            icount_shift: None,
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
    Ok(QemuRun {
        outputs: parsed.outputs,
        stack_peak,
        infer_stack: parsed.infer_stack.unwrap_or(stack_peak),
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
/// have the same length; lines the protocol does not define are ignored.
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
            ["STACK_PEAK", n] => parsed.stack_peak = Some(n.parse().map_err(|_| bad())?),
            ["STACK_INFER", n] => parsed.infer_stack = Some(n.parse().map_err(|_| bad())?),
            ["DONE", n] => parsed.done = Some(n.parse().map_err(|_| bad())?),
            ["OUT" | "STACK_PEAK" | "STACK_INFER" | "DONE", ..] => return Err(bad()),
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
    }
}
