// Build-script logic of the hardware board crates (`#[path]`-included from their build.rs):
// put the board's memory.x on the linker search path and link with cortex-m-rt's link.x and
// defmt's defmt.x. Passed here rather than as rustflags in .cargo/config.toml because a RUSTFLAGS
// environment variable (CI often sets `-D warnings`) replaces config rustflags.

use std::env;
use std::fs;
use std::path::PathBuf;

pub fn main() {
    let manifest_dir = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").unwrap());
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").unwrap());
    fs::copy(manifest_dir.join("memory.x"), out_dir.join("memory.x"))
        .expect("copy memory.x to OUT_DIR");
    println!("cargo:rustc-link-search={}", out_dir.display());
    println!("cargo:rustc-link-arg-bins=-Tlink.x");
    println!("cargo:rustc-link-arg-bins=-Tdefmt.x");
    println!("cargo:rerun-if-changed=memory.x");
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=../imu-pipeline/board_build.rs");
}
