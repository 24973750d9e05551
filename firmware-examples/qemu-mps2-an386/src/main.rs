//! Runs the generated model crate (`model/`) on QEMU mps2-an386 over the test vectors named by
//! BONSAI_VECTORS at build time. Protocol and accounting: `fw-common` and ../README.md.
#![no_std]
#![no_main]

use cortex_m_rt::entry;
use fw_common::Arena;

const VECTORS_LEN: usize = include_bytes!(concat!(env!("OUT_DIR"), "/vectors.bin")).len();

/// The vector file, in its own flash section (`.bonsai_vectors`, see memory.x).
#[link_section = ".bonsai_vectors"]
static VECTORS: [u8; VECTORS_LEN] = *include_bytes!(concat!(env!("OUT_DIR"), "/vectors.bin"));

#[entry]
fn main() -> ! {
    // `#[entry]` turns this into a `&'static mut`; zero-initialised, so it is counted in `.bss`.
    static mut ARENA: Arena<{ bonsai_model::ARENA_BYTES }> = Arena::new();
    #[cfg(feature = "layer-probes")]
    fw_common::probes::print_names(&bonsai_model::LAYER_NAMES);
    fw_common::run_vectors(&VECTORS, bonsai_model::infer, &mut ARENA.0)
}

/// The model's per-layer hook (see bonsai-rt's `probe` module). Never inlined, so that every call
/// costs the same as the harness' calibration of it (fw-common's `probes`).
#[cfg(feature = "layer-probes")]
#[no_mangle]
#[inline(never)]
fn bonsai_layer_probe(layer: u16) {
    fw_common::probes::record(layer);
}

#[cfg(feature = "panic-never")]
#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    extern "C" {
        /// Defined nowhere: the link only succeeds if LTO removed every call to this handler.
        fn bonsai_panic_path_survived_link_time_proof() -> !;
    }
    // SAFETY: never runs; the symbol does not exist, so an image that could reach this does not
    // link.
    unsafe { bonsai_panic_path_survived_link_time_proof() }
}
