// Links with cortex-m-rt's link.x and puts memory.x (which link.x INCLUDEs) on the linker search
// path. Passed here rather than as config rustflags, which a RUSTFLAGS variable would replace.
// (The board crates' shared build_support.rs also embeds test vectors, which this harness does
// not use.)
use std::{env, fs, path::PathBuf};

fn main() {
    let out = PathBuf::from(env::var_os("OUT_DIR").unwrap());
    fs::copy("memory.x", out.join("memory.x")).expect("copy memory.x to OUT_DIR");
    println!("cargo:rustc-link-search={}", out.display());
    println!("cargo:rustc-link-arg-bins=-Tlink.x");
    println!("cargo:rerun-if-changed=memory.x");
    println!("cargo:rerun-if-changed=build.rs");
}
