//! Per-layer probes (feature `layer-probes`): the hook a generated model crate's `infer` calls
//! before its first layer and after each layer, so that firmware can time every layer.
//!
//! The generated crate is `#![forbid(unsafe_code)]`, and calling a function that some other crate
//! defines needs `unsafe`; this module is that one `unsafe` call behind a safe function. The
//! firmware defines the hook as
//!
//! ```ignore
//! #[no_mangle]
//! fn bonsai_layer_probe(layer: u16) { /* read a cycle or instruction counter */ }
//! ```
//!
//! (Rust ABI, exactly that signature). A build with the feature on and no definition does not
//! link (`undefined symbol: bonsai_layer_probe`), so a forgotten hook cannot go unnoticed.
//!
//! Probes are an opaque call between layers: the optimiser can no longer merge or interleave the
//! code of neighbouring layers, and the model's code may be inlined differently. Per-layer figures
//! therefore come from a separate build; whole-inference figures from a build without the feature.

extern "Rust" {
    fn bonsai_layer_probe(layer: u16);
}

/// Reports that the generated `infer` reached probe point `layer`: 0 before the first layer,
/// `k` after the `k`-th layer that executes code (layers without code, e.g. Flatten, get none).
///
/// `input`, `output` and `arena` are `infer`'s buffers. They pin every layer's memory accesses to
/// its side of the probe: `infer` holds them as `&`/`&mut` parameters, which tell the optimiser
/// that no other code (the hook included) can touch them, so without this it may legally sink a
/// layer's stores past the next probe or hoist loads above the previous one, and charge the work
/// to the wrong layer.
#[inline(always)]
pub fn layer(layer: u16, input: &[i8], output: &[i8], arena: &[u8]) {
    // SAFETY: an empty assembly block that emits no instruction. Taking the three addresses
    // without `nomem` makes the optimiser assume it may read or write those buffers here (and, the
    // addresses having escaped, that the hook may too), which is the ordering wanted above.
    unsafe {
        core::arch::asm!(
            "/* {0} {1} {2} */",
            in(reg) input.as_ptr(),
            in(reg) output.as_ptr(),
            in(reg) arena.as_ptr(),
            options(nostack, preserves_flags),
        );
    }
    // SAFETY: the contract of this feature (module docs) is that the final image defines
    // `bonsai_layer_probe` with this Rust-ABI signature; it takes and returns plain values.
    unsafe { bonsai_layer_probe(layer) }
}
