// Build-script logic shared by the board crates (`#[path]`-included from their build.rs, which runs
// on the host with std). Two jobs:
// 1. link with cortex-m-rt's link.x and put the board's memory.x (which link.x INCLUDEs) on the
//    linker search path. `-Tlink.x` is passed here rather than as `rustflags` in .cargo/config.toml
//    because a RUSTFLAGS environment variable (CI often sets `-D warnings`) replaces config rustflags
//    and would silently drop it;
// 2. validate the test-vector file named by BONSAI_VECTORS and copy it to OUT_DIR/vectors.bin,
//    where src/main.rs `include_bytes!`s it.

use std::env;
use std::fs;
use std::path::PathBuf;
use std::process;

const VAR: &str = "BONSAI_VECTORS";

fn fail(msg: &str) -> ! {
    eprintln!("error: {msg}");
    eprintln!(
        "{VAR} must name a test-vector file: b\"BVEC\", u32 version = 1, u32 n_vectors, u32 input_len \
         (little-endian), then n_vectors * input_len i8 inputs. xtask (firmware::build) writes one and sets it."
    );
    process::exit(1);
}

/// Checks the vector file format; returns (n_vectors, input_len).
pub fn validate_vectors(bytes: &[u8]) -> Result<(u32, u32), String> {
    if bytes.len() < 16 {
        return Err(format!(
            "{} bytes, shorter than the 16-byte header",
            bytes.len()
        ));
    }
    if &bytes[..4] != b"BVEC" {
        return Err(format!("bad magic {:?}, expected \"BVEC\"", &bytes[..4]));
    }
    let word = |at: usize| u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap());
    let (version, n, input_len) = (word(4), word(8), word(12));
    if version != 1 {
        return Err(format!("version {version}, expected 1"));
    }
    let expected = 16 + n as u64 * input_len as u64;
    if bytes.len() as u64 != expected {
        return Err(format!(
            "{} bytes, but the header says {n} vectors of {input_len} bytes ({expected} bytes with the header)",
            bytes.len()
        ));
    }
    Ok((n, input_len))
}

pub fn main() {
    let manifest_dir = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").unwrap());
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").unwrap());

    fs::copy(manifest_dir.join("memory.x"), out_dir.join("memory.x"))
        .expect("copy memory.x to OUT_DIR");
    println!("cargo:rustc-link-search={}", out_dir.display());
    println!("cargo:rustc-link-arg-bins=-Tlink.x");
    println!("cargo:rerun-if-changed=memory.x");
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=../fw-common/build_support.rs");

    println!("cargo:rerun-if-env-changed={VAR}");
    let path = match env::var_os(VAR) {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => fail(&format!("{VAR} is not set")),
    };
    // A relative path is taken relative to the board crate's directory (the build script's cwd).
    let path = manifest_dir.join(path);
    println!("cargo:rerun-if-changed={}", path.display());
    let bytes = fs::read(&path)
        .unwrap_or_else(|e| fail(&format!("{VAR}={}: cannot read: {e}", path.display())));
    let (n, input_len) = validate_vectors(&bytes).unwrap_or_else(|e| {
        fail(&format!(
            "{VAR}={}: not a valid vector file: {e}",
            path.display()
        ))
    });
    fs::write(out_dir.join("vectors.bin"), &bytes).expect("write OUT_DIR/vectors.bin");
    println!("cargo:rustc-env=BONSAI_VECTORS_SUMMARY={n} vectors of {input_len} bytes");
}
