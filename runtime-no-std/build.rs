// Enables the DSP-extension fast paths (`cfg(bonsai_dsp)`, see src/kernels/dsp.rs) on targets
// that have SXTB16/SMLAD.
//
// `cfg(target_feature = "dsp")` cannot be used: ARM target features are unstable, and stable
// rustc reports none of them to `cfg` (not even with `-C target-cpu=cortex-m4`). The target
// triple is reliable instead: ARMv7E-M (`thumbv7em-*`: Cortex-M4, M7) always has the DSP
// extension; it is what the "E" stands for. Other cores with an optional DSP extension
// (ARMv8-M Mainline: Cortex-M33, M35P, M55) opt in with the `dsp` cargo feature.
use std::env;

fn main() {
    println!("cargo:rustc-check-cfg=cfg(bonsai_dsp)");
    println!("cargo:rerun-if-changed=build.rs");
    let target = env::var("TARGET").unwrap_or_default();
    let arch = env::var("CARGO_CFG_TARGET_ARCH").unwrap_or_default();
    let forced = env::var_os("CARGO_FEATURE_DSP").is_some();
    if arch == "arm" && (target.starts_with("thumbv7em") || forced) {
        println!("cargo:rustc-cfg=bonsai_dsp");
    }
}
