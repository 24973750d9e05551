//! Building the QEMU firmware in `firmware-examples/<board>/` around a generated model crate.
//!
//! The caller puts the lowered model crate in [`Board::model_dir`] and writes a test-vector file
//! (`bonsai::vectors::write`); [`build`] compiles the board crate for its Cortex-M target and reports the
//! image's section sizes. Running it is `qemu::run`. Details: `firmware-examples/README.md`.

use std::env;
use std::ffi::OsString;
use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{anyhow, bail, Context, Result};

/// A firmware board crate under `firmware-examples/` and the QEMU machine that runs it.
#[derive(Debug, PartialEq, Eq)]
pub struct Board {
    /// Directory under `firmware-examples/`, also the package and binary name.
    pub name: &'static str,
    /// Rust target triple (the board's `.cargo/config.toml` selects it too).
    pub target: &'static str,
    /// `qemu-system-arm -M` machine.
    pub qemu_machine: &'static str,
    /// FLASH length in the board's memory.x, bytes.
    pub flash_limit: u64,
    /// RAM length in the board's memory.x, bytes (static RAM + stack must fit).
    pub ram_limit: u64,
    /// SysTick's clock (the core clock) in QEMU's model of the machine, Hz; `None` if the model has
    /// no SysTick. `qemu.rs` converts the firmware's SysTick ticks into instructions with it.
    pub systick_hz: Option<u64>,
}

/// Every board crate under `firmware-examples/`.
pub static BOARDS: [Board; 2] = [
    Board {
        name: "qemu-mps2-an386",
        target: "thumbv7em-none-eabihf",
        qemu_machine: "mps2-an386",
        flash_limit: 4 << 20,
        ram_limit: 4 << 20,
        // QEMU's mps2 boards clock the CPU (and SysTick with CLKSOURCE = 1) at 25 MHz.
        systick_hz: Some(25_000_000),
    },
    Board {
        name: "qemu-microbit",
        target: "thumbv6m-none-eabi",
        qemu_machine: "microbit",
        flash_limit: 256 << 10,
        ram_limit: 16 << 10,
        // QEMU's nRF51 model clocks the CPU at the 16 MHz HCLK. (A real nRF51 has no SysTick; QEMU's
        // Cortex-M0 has one, which is all the instruction counting needs.)
        systick_hz: Some(16_000_000),
    },
];

/// A hardware board crate under `firmware-examples/`: the IMU activity classifier
/// (`imu-pipeline`), flashed with probe-rs. Not run under QEMU.
#[derive(Debug, PartialEq, Eq)]
pub struct HardwareBoard {
    /// Directory under `firmware-examples/`, also the package and binary name.
    pub name: &'static str,
    /// Rust target triple (the board's `.cargo/config.toml` selects it too).
    pub target: &'static str,
    /// The MCU, for messages and BENCHMARKS.md.
    pub mcu: &'static str,
    /// `probe-rs --chip` name (the board's runner uses it).
    pub chip: &'static str,
    /// FLASH length in the board's memory.x, bytes.
    pub flash_limit: u64,
    /// RAM length in the board's memory.x, bytes.
    pub ram_limit: u64,
}

/// Every hardware board crate under `firmware-examples/`.
pub static HARDWARE_BOARDS: [HardwareBoard; 3] = [
    HardwareBoard {
        name: "nucleo-f401re",
        target: "thumbv7em-none-eabihf",
        mcu: "STM32F401RE (Cortex-M4F, 84 MHz)",
        chip: "STM32F401RETx",
        flash_limit: 512 << 10,
        ram_limit: 96 << 10,
    },
    HardwareBoard {
        name: "nrf52840-dk",
        target: "thumbv7em-none-eabihf",
        mcu: "nRF52840 (Cortex-M4F, 64 MHz)",
        chip: "nRF52840_xxAA",
        flash_limit: 1024 << 10,
        ram_limit: 256 << 10,
    },
    HardwareBoard {
        name: "rp-pico",
        target: "thumbv6m-none-eabi",
        mcu: "RP2040 (Cortex-M0+, 125 MHz)",
        chip: "RP2040",
        // memory.x: 2 MiB minus the 256-byte second-stage bootloader (counted in `.boot2`).
        flash_limit: 2 << 20,
        ram_limit: 256 << 10,
    },
];

/// Looks a hardware board up by its name.
pub fn hardware_board(name: &str) -> Option<&'static HardwareBoard> {
    HARDWARE_BOARDS.iter().find(|b| b.name == name)
}

/// Every board name, QEMU and hardware, for messages.
pub fn all_board_names() -> Vec<&'static str> {
    BOARDS
        .iter()
        .map(|b| b.name)
        .chain(HARDWARE_BOARDS.iter().map(|b| b.name))
        .collect()
}

impl HardwareBoard {
    /// The board crate: `<root>/firmware-examples/<name>`.
    pub fn dir(&self, root: &Path) -> PathBuf {
        root.join("firmware-examples").join(self.name)
    }

    /// Where the generated model crate must be (gitignored): `<board dir>/model`.
    pub fn model_dir(&self, root: &Path) -> PathBuf {
        self.dir(root).join("model")
    }

    /// An error unless `info` fits the board's flash and RAM. RAM here is static RAM (the
    /// window ring buffer, the model arena and the RTT buffer are all statics); the stack comes
    /// on top (see firmware-examples/README.md).
    pub fn check_fits(&self, info: &ElfInfo) -> Result<()> {
        if info.flash_bytes > self.flash_limit {
            bail!(
                "the model does not fit {} ({}): flash {} B > {} B",
                self.name,
                self.mcu,
                info.flash_bytes,
                self.flash_limit
            );
        }
        if info.static_ram_bytes > self.ram_limit {
            bail!(
                "the model does not fit {} ({}): static RAM {} B > {} B",
                self.name,
                self.mcu,
                info.static_ram_bytes,
                self.ram_limit
            );
        }
        Ok(())
    }
}

/// The linker to use for hardware boards: flip-link (stack-overflow protection: the stack is
/// placed below the statics, so an overflow faults instead of silently corrupting them) when
/// it is installed, else the target's default (rust-lld). Returns the variable to set, if any.
pub fn flip_link_env(target: &str) -> Option<(String, PathBuf)> {
    let exe = format!("flip-link{}", env::consts::EXE_SUFFIX);
    let path = find_on_path(&exe)?;
    let var = format!(
        "CARGO_TARGET_{}_LINKER",
        target.to_ascii_uppercase().replace('-', "_")
    );
    Some((var, path))
}

/// Builds a hardware board crate (release) around the model crate already in
/// [`HardwareBoard::model_dir`] and returns the image's sizes, after checking that they fit.
pub fn build_hardware(root: &Path, board: &HardwareBoard) -> Result<ElfInfo> {
    let dir = board.dir(root);
    if !dir.join("Cargo.toml").is_file() {
        bail!("board {}: no board crate at {}", board.name, dir.display());
    }
    let model = board.model_dir(root);
    if !model.join("Cargo.toml").is_file() {
        bail!(
            "board {}: no model crate at {}: put the lowered model crate there before building",
            board.name,
            model.display()
        );
    }
    let mut cmd = Command::new(cargo());
    cmd.current_dir(&dir)
        .args([
            "build",
            "--release",
            "--message-format=json-render-diagnostics",
        ])
        .stdin(Stdio::null())
        .stderr(Stdio::inherit());
    match flip_link_env(board.target) {
        Some((var, path)) => {
            cmd.env(var, path);
        }
        None => eprintln!(
            "note: flip-link is not installed, linking {} without stack-overflow protection \
             (`cargo install flip-link` enables it)",
            board.name
        ),
    }
    let out = cmd
        .output()
        .with_context(|| format!("board {}: cannot run cargo", board.name))?;
    let elf = built_image(&out, board.name, board.target, &dir)?;
    let info = elf_info(&elf).with_context(|| format!("board {}", board.name))?;
    board.check_fits(&info)?;
    Ok(info)
}

/// Looks a board up by its name (`qemu-microbit`) or its QEMU machine (`microbit`).
pub fn board(name: &str) -> Result<&'static Board> {
    BOARDS
        .iter()
        .find(|b| b.name == name || b.qemu_machine == name)
        .ok_or_else(|| {
            anyhow!(
                "unknown board `{name}`: known boards are {}",
                all_board_names().join(", ")
            )
        })
}

impl Board {
    /// The board crate: `<root>/firmware-examples/<name>`.
    pub fn dir(&self, root: &Path) -> PathBuf {
        root.join("firmware-examples").join(self.name)
    }

    /// Where the generated model crate must be (gitignored): `<board dir>/model`.
    pub fn model_dir(&self, root: &Path) -> PathBuf {
        self.dir(root).join("model")
    }
}

/// Section sizes of a firmware image, in bytes (from `llvm-size -A`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ElfInfo {
    pub path: PathBuf,
    /// `.vector_table` + `.text` (+ `.gnu.sgstubs`): code, harness included.
    pub text: u64,
    /// `.rodata`: constants, the model's weights.
    pub rodata: u64,
    /// `.data`: initialised statics (stored in flash, copied to RAM).
    pub data: u64,
    /// `.bss` + `.uninit`: zeroed statics, the model arena included.
    pub bss: u64,
    /// `.bonsai_vectors`: the embedded test vectors (flash, but not part of a deployed model).
    pub vectors: u64,
    /// text + rodata + data: flash a deployment needs (test vectors excluded).
    pub flash_bytes: u64,
    /// data + bss: static RAM. Peak RAM = this + the stack peak that the run reports.
    pub static_ram_bytes: u64,
}

/// Sizes by category, as parsed from `llvm-size -A` (see [`parse_size_a`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SectionSizes {
    pub text: u64,
    pub rodata: u64,
    pub data: u64,
    pub bss: u64,
    pub vectors: u64,
}

impl ElfInfo {
    pub fn from_sections(path: PathBuf, s: SectionSizes) -> ElfInfo {
        ElfInfo {
            path,
            text: s.text,
            rodata: s.rodata,
            data: s.data,
            bss: s.bss,
            vectors: s.vectors,
            flash_bytes: s.text + s.rodata + s.data,
            static_ram_bytes: s.data + s.bss,
        }
    }
}

impl fmt::Display for ElfInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "flash {} B (text {}, rodata {}, data {}), static RAM {} B (data {}, bss {}), test vectors {} B",
            self.flash_bytes,
            self.text,
            self.rodata,
            self.data,
            self.static_ram_bytes,
            self.data,
            self.bss,
            self.vectors
        )
    }
}

/// Parses `llvm-size -A` (SysV format) output into size categories. Debug and metadata sections
/// are skipped; any other unknown section with a nonzero size is an error rather than a silently
/// wrong figure.
pub fn parse_size_a(output: &str) -> Result<SectionSizes> {
    let mut s = SectionSizes::default();
    let mut seen_any = false;
    for line in output.lines() {
        let mut fields = line.split_whitespace();
        let (Some(name), Some(size)) = (fields.next(), fields.next()) else {
            continue;
        };
        if !name.starts_with('.') {
            continue; // the file-name line, the header, `Total`
        }
        let size: u64 = size
            .parse()
            .with_context(|| format!("llvm-size: bad size `{size}` for section {name}"))?;
        seen_any = true;
        match name {
            // `.boot2`: the RP2040's second-stage bootloader, in flash before the vector table.
            ".vector_table" | ".text" | ".gnu.sgstubs" | ".boot2" => s.text += size,
            ".rodata" => s.rodata += size,
            ".data" => s.data += size,
            ".bss" | ".uninit" => s.bss += size,
            ".bonsai_vectors" => s.vectors += size,
            n if n.starts_with(".debug")
                || n.starts_with(".comment")
                || n.starts_with(".ARM.attributes")
                || n.starts_with(".symtab")
                || n.starts_with(".strtab")
                || n.starts_with(".shstrtab")
                // defmt's format-string table: read by the host decoder, never loaded.
                || n == ".defmt"
                || n == ".got" => {}
            _ if size == 0 => {}
            _ => bail!("llvm-size: unexpected section {name} ({size} bytes): classify it in xtask/src/firmware.rs"),
        }
    }
    if !seen_any {
        bail!("llvm-size printed no sections:\n{output}");
    }
    Ok(s)
}

fn tool_output(cmd: &mut Command, what: &str) -> Result<String> {
    let out = cmd.output().with_context(|| format!("cannot run {what}"))?;
    if !out.status.success() {
        bail!(
            "{what} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn rustc() -> OsString {
    env::var_os("RUSTC").unwrap_or_else(|| "rustc".into())
}

fn cargo() -> OsString {
    // Set by cargo when it runs xtask: the same cargo (and toolchain) builds the firmware.
    env::var_os("CARGO").unwrap_or_else(|| "cargo".into())
}

/// Finds `llvm-size`: the llvm-tools component of the active toolchain, else one on PATH.
pub fn llvm_size() -> Result<PathBuf> {
    let sysroot = tool_output(
        Command::new(rustc()).args(["--print", "sysroot"]),
        "rustc --print sysroot",
    )?;
    let version = tool_output(Command::new(rustc()).arg("-vV"), "rustc -vV")?;
    let host = version
        .lines()
        .find_map(|l| l.strip_prefix("host: "))
        .ok_or_else(|| anyhow!("rustc -vV printed no host triple"))?;
    let exe = format!("llvm-size{}", env::consts::EXE_SUFFIX);
    let in_sysroot = Path::new(sysroot.trim())
        .join("lib/rustlib")
        .join(host.trim())
        .join("bin")
        .join(&exe);
    if in_sysroot.is_file() {
        return Ok(in_sysroot);
    }
    if let Some(on_path) = find_on_path(&exe) {
        return Ok(on_path);
    }
    bail!(
        "llvm-size not found (looked for {} and on PATH): install it with `rustup component add llvm-tools`",
        in_sysroot.display()
    )
}

/// The first `name` in a PATH directory.
pub(crate) fn find_on_path(name: &str) -> Option<PathBuf> {
    env::split_paths(&env::var_os("PATH")?)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

/// Section sizes of the image at `elf`.
pub fn elf_info(elf: &Path) -> Result<ElfInfo> {
    let tool = llvm_size()?;
    let out = tool_output(
        Command::new(&tool).arg("-A").arg(elf),
        &format!("llvm-size -A {}", elf.display()),
    )?;
    let sections = parse_size_a(&out).with_context(|| format!("sizes of {}", elf.display()))?;
    Ok(ElfInfo::from_sections(elf.to_path_buf(), sections))
}

/// Installs the boards' Rust targets that the active toolchain lacks (`rustup target add`).
pub fn ensure_targets() -> Result<()> {
    let installed = tool_output(
        Command::new("rustup").args(["target", "list", "--installed"]),
        "rustup target list",
    )
    .context("cannot list the installed Rust targets (is rustup installed?)")?;
    let mut missing: Vec<&str> = BOARDS
        .iter()
        .map(|b| b.target)
        .chain(HARDWARE_BOARDS.iter().map(|b| b.target))
        .filter(|t| !installed.lines().any(|l| l.trim() == *t))
        .collect();
    missing.sort_unstable();
    missing.dedup();
    if missing.is_empty() {
        return Ok(());
    }
    eprintln!(
        "installing Rust targets for the firmware: {}",
        missing.join(" ")
    );
    let status = Command::new("rustup")
        .args(["target", "add"])
        .args(&missing)
        .status()
        .context("cannot run rustup target add")?;
    if !status.success() {
        bail!(
            "`rustup target add {}` failed ({status}): install these targets by hand",
            missing.join(" ")
        );
    }
    Ok(())
}

/// Builds the board's firmware (release) around the model crate already in [`Board::model_dir`],
/// embedding the vector file `vectors`, and returns the image's sizes. cargo's own output goes to
/// stderr.
pub fn build(root: &Path, board: &Board, vectors: &Path) -> Result<ElfInfo> {
    let dir = board.dir(root);
    if !dir.join("Cargo.toml").is_file() {
        bail!("board {}: no board crate at {}", board.name, dir.display());
    }
    let model = board.model_dir(root);
    if !model.join("Cargo.toml").is_file() {
        bail!(
            "board {}: no model crate at {}: put the lowered model crate there before building",
            board.name,
            model.display()
        );
    }
    let vectors = fs::canonicalize(vectors).with_context(|| {
        format!(
            "board {}: test-vector file {}",
            board.name,
            vectors.display()
        )
    })?;

    // cargo reads .cargo/config.toml (target, runner) from the current directory, not from
    // --manifest-path: run it inside the board crate.
    let out = Command::new(cargo())
        .current_dir(&dir)
        .args([
            "build",
            "--release",
            "--message-format=json-render-diagnostics",
        ])
        .env("BONSAI_VECTORS", &vectors)
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .with_context(|| format!("board {}: cannot run cargo", board.name))?;
    let elf = built_image(&out, board.name, board.target, &dir)?;
    elf_info(&elf).with_context(|| format!("board {}", board.name))
}

/// The image a finished `cargo build --release --message-format=json…` of board crate `name`
/// produced, or an error naming the board when the build failed or left no image.
fn built_image(
    out: &std::process::Output,
    name: &str,
    target: &str,
    dir: &Path,
) -> Result<PathBuf> {
    if !out.status.success() {
        bail!(
            "board {name}: cargo build --release in {} failed ({}); cargo's messages are above",
            dir.display(),
            out.status
        );
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    let elf = executable_from_json(&stdout, name)
        .unwrap_or_else(|| dir.join("target").join(target).join("release").join(name));
    if !elf.is_file() {
        bail!(
            "board {name}: the build succeeded but its image {} is missing",
            elf.display()
        );
    }
    Ok(elf)
}

/// The `"executable"` of the `compiler-artifact` message for binary `name` in cargo's JSON
/// messages (one object per line). Avoids a JSON dependency: only the string is unescaped.
pub fn executable_from_json(messages: &str, name: &str) -> Option<PathBuf> {
    let name_field = format!("\"name\":\"{name}\"");
    messages
        .lines()
        .filter(|l| l.contains("\"reason\":\"compiler-artifact\"") && l.contains(&name_field))
        .rev()
        .find_map(|l| json_string_field(l, "executable"))
        .map(PathBuf::from)
}

fn json_string_field(line: &str, key: &str) -> Option<String> {
    let start = line.find(&format!("\"{key}\":\""))? + key.len() + 4;
    let mut out = String::new();
    let mut chars = line[start..].chars();
    loop {
        match chars.next()? {
            '"' => return Some(out),
            '\\' => match chars.next()? {
                'n' => out.push('\n'),
                't' => out.push('\t'),
                'u' => {
                    let hex: String = chars.by_ref().take(4).collect();
                    out.push(char::from_u32(u32::from_str_radix(&hex, 16).ok()?)?);
                }
                c => out.push(c), // \" \\ \/
            },
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MPS2_SIZE: &str = "\
target/thumbv7em-none-eabihf/release/qemu-mps2-an386  :
section              size        addr
.vector_table        1024           0
.text                2000        1024
.rodata                88        3024
.bonsai_vectors      6416        3112
.data                   4   536870912
.gnu.sgstubs            0        9536
.bss                   64   536870912
.uninit                 0   536870976
.debug_abbrev        2046           0
.debug_info         51233           0
.comment              139           0
.ARM.attributes        58           0
Total               64930

";

    #[test]
    fn parses_llvm_size() {
        let s = parse_size_a(MPS2_SIZE).unwrap();
        assert_eq!(
            s,
            SectionSizes {
                text: 3024,
                rodata: 88,
                data: 4,
                bss: 64,
                vectors: 6416
            }
        );
        let info = ElfInfo::from_sections(PathBuf::from("x"), s);
        assert_eq!(info.flash_bytes, 3024 + 88 + 4);
        assert_eq!(info.static_ram_bytes, 68);
    }

    #[test]
    fn unknown_section_is_an_error() {
        let out = MPS2_SIZE.replace(".uninit                 0", ".weights             100");
        let err = parse_size_a(&out).unwrap_err().to_string();
        assert!(err.contains(".weights"), "{err}");
        assert!(parse_size_a("nothing here\n").is_err());
    }

    #[test]
    fn board_lookup() {
        assert_eq!(board("qemu-microbit").unwrap().target, "thumbv6m-none-eabi");
        assert_eq!(board("mps2-an386").unwrap().name, "qemu-mps2-an386");
        let err = board("stm32").unwrap_err().to_string();
        assert!(
            err.contains("stm32")
                && err.contains("qemu-mps2-an386")
                && err.contains("qemu-microbit"),
            "{err}"
        );
        let root = Path::new("/r");
        assert_eq!(
            BOARDS[1].model_dir(root),
            Path::new("/r/firmware-examples/qemu-microbit/model")
        );
    }

    #[test]
    fn hardware_boards_fit_checks() {
        let b = hardware_board("nucleo-f401re").unwrap();
        assert!(hardware_board("qemu-microbit").is_none());
        let sizes = |text, bss| {
            ElfInfo::from_sections(
                PathBuf::from("x"),
                SectionSizes {
                    text,
                    rodata: 0,
                    data: 0,
                    bss,
                    vectors: 0,
                },
            )
        };
        assert!(b.check_fits(&sizes(512 << 10, 96 << 10)).is_ok());
        let err = b
            .check_fits(&sizes((512 << 10) + 1, 0))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("nucleo-f401re") && err.contains("flash 524289 B > 524288 B"),
            "{err}"
        );
        let err = b
            .check_fits(&sizes(0, (96 << 10) + 4))
            .unwrap_err()
            .to_string();
        assert!(err.contains("static RAM 98308 B > 98304 B"), "{err}");
        // Every hardware board crate exists and its memory.x agrees with the limits.
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
        for b in &HARDWARE_BOARDS {
            let memory = fs::read_to_string(b.dir(root).join("memory.x")).unwrap();
            let ram = format!("LENGTH = {}K", b.ram_limit >> 10);
            assert!(memory.contains(&ram), "{}: memory.x lacks {ram}", b.name);
            let config = fs::read_to_string(b.dir(root).join(".cargo/config.toml")).unwrap();
            assert!(
                config.contains(&format!("target = \"{}\"", b.target)),
                "{}",
                b.name
            );
            assert!(config.contains(&format!("--chip {}", b.chip)), "{}", b.name);
        }
    }

    #[test]
    fn sizes_of_a_defmt_rp2040_image() {
        let out = "\
x  :
section               size        addr
.vector_table          192   268435712
.boot2                 256   268435456
.text                 9472   268435904
.rodata               1592   268445376
.data                   56   536870912
.bss                     8   536870968
.uninit               1024   536870976
.defmt                   9           0
.comment               139           0
Total               459818
";
        let s = parse_size_a(out).unwrap();
        assert_eq!(
            (s.text, s.rodata, s.data, s.bss),
            (192 + 256 + 9472, 1592, 56, 1032)
        );
    }

    #[test]
    fn finds_executable_in_cargo_json() {
        let msgs = r#"{"reason":"compiler-artifact","target":{"name":"fw_common","kind":["lib"]},"executable":null}
{"reason":"compiler-artifact","package_id":"x","target":{"kind":["bin"],"name":"qemu-microbit"},"executable":"/a/b \"q\"/qemu-microbit","fresh":true}
{"reason":"build-finished","success":true}"#;
        assert_eq!(
            executable_from_json(msgs, "qemu-microbit"),
            Some(PathBuf::from("/a/b \"q\"/qemu-microbit"))
        );
        assert_eq!(executable_from_json(msgs, "qemu-mps2-an386"), None);
    }
}
