//! Energy and latency per inference, before anything is flashed.
//!
//! - [`device`]: MCU profiles (`models/devices/*.toml`, embedded; `--device-file` adds one).
//! - [`tables`]: the fitted per-kernel instruction coefficients and the instruction mixes.
//! - [`cost`]: lowered model → per-layer work → instructions → cycles (range) → µs, µJ.
//! - [`fit`]: least-squares calibration on QEMU microbenchmarks (`cargo xtask bench energy --fit`);
//!   whole benchmark models are kept out of the fit and validate it.
//! - [`duty_cycle`] and [`check_budgets`]: what synthesis and the CLI do with the figures.

pub mod cost;
pub mod device;
pub mod fit;
pub mod tables;

pub use cost::{estimate, estimate_builtin, model_work, predict_insns, Estimate, LayerWork, Range};
pub use device::{builtin_devices, devices_with, find, Device, Target};
pub use tables::{Coefficients, Mixes};

#[derive(Debug, thiserror::Error)]
pub enum EnergyError {
    #[error("device profile {file}: {msg}")]
    Profile { file: String, msg: String },
    #[error("unknown device `{name}` (known: {known}; add one with --device-file)")]
    UnknownDevice { name: String, known: String },
    #[error("{file}: {msg}")]
    Table { file: String, msg: String },
    #[error(
        "no fitted coefficient for {kernel}.{feature} on {target}: add microbenchmarks for it \
         and rerun `cargo xtask bench energy --fit`"
    )]
    NoCoefficient {
        target: String,
        kernel: String,
        feature: String,
    },
    #[error("cannot estimate node {node:?}: {msg}")]
    Unsupported { node: String, msg: String },
    #[error("fit: {0}")]
    Fit(String),
    #[error("duty cycle: {0}")]
    Duty(String),
    #[error("{0}")]
    Budget(String),
}

/// Average power and battery life at `rate_hz` inferences per second, sleeping in between.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct DutyCycle {
    pub rate_hz: f64,
    /// Fraction of time spent inferring.
    pub active_fraction: Range,
    pub avg_power_uw: Range,
    pub avg_current_ua: Range,
    /// `None` when no battery capacity was given. `min` is the pessimistic (shortest) life.
    pub battery_hours: Option<Range>,
}

/// `P = rate · E + (1 − rate · t) · I_sleep · V`; battery life = capacity / (P / V). The battery
/// is taken at the device's supply voltage (an ideal regulator).
pub fn duty_cycle(
    est: &Estimate,
    dev: &Device,
    rate_hz: f64,
    battery_mah: Option<f64>,
) -> Result<DutyCycle, EnergyError> {
    if !(rate_hz.is_finite() && rate_hz > 0.0) {
        return Err(EnergyError::Duty(format!(
            "the rate must be a positive number of inferences per second, got {rate_hz}"
        )));
    }
    if let Some(c) = battery_mah {
        if !(c.is_finite() && c > 0.0) {
            return Err(EnergyError::Duty(format!(
                "the battery capacity must be a positive number of mAh, got {c}"
            )));
        }
    }
    let busy = est.latency_us.scale(rate_hz * 1e-6);
    if busy.min > 1.0 {
        return Err(EnergyError::Duty(format!(
            "{rate_hz} inferences/s cannot be sustained on {}: one inference takes at least \
             {:.1} µs, so at most {:.1} per second",
            dev.name,
            est.latency_us.min,
            1e6 / est.latency_us.min
        )));
    }
    let sleep_uw = dev.sleep_ua * dev.supply_v;
    let power = |e_uj: f64, busy: f64| rate_hz * e_uj + (1.0 - busy.min(1.0)) * sleep_uw;
    let avg_power_uw = Range {
        min: power(est.energy_uj.min, busy.min),
        max: power(est.energy_uj.max, busy.max),
    };
    let avg_current_ua = avg_power_uw.scale(1.0 / dev.supply_v);
    let battery_hours = battery_mah.map(|mah| Range {
        min: mah * 1000.0 / avg_current_ua.max,
        max: mah * 1000.0 / avg_current_ua.min,
    });
    Ok(DutyCycle {
        rate_hz,
        active_fraction: Range {
            min: busy.min,
            max: busy.max.min(1.0),
        },
        avg_power_uw,
        avg_current_ua,
        battery_hours,
    })
}

/// Limits a synthesized model must meet (`--energy-budget-uj`, `--flash-budget-kb`,
/// `--ram-budget-kb`).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Budgets {
    pub energy_uj: Option<f64>,
    pub flash_kb: Option<f64>,
    pub ram_kb: Option<f64>,
}

/// The figures a budget is checked against.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Figures {
    /// Worst case (the max of the range): a budget must hold whatever the cache does.
    pub energy_uj_max: f64,
    /// Parameter flash (the firmware's code comes on top).
    pub flash_bytes: usize,
    /// Activation arena.
    pub ram_bytes: usize,
}

/// Refuses figures over budget, naming every budget missed and the figure reached.
pub fn check_budgets(b: &Budgets, f: &Figures, device: &str) -> Result<(), EnergyError> {
    let mut missed = Vec::new();
    if let Some(e) = b.energy_uj {
        if f.energy_uj_max > e {
            missed.push(format!(
                "energy budget {e} µJ per inference (--energy-budget-uj) not met on {device}: \
                 the best figure reached is {:.2} µJ (worst case of the estimate)",
                f.energy_uj_max
            ));
        }
    }
    if let Some(kb) = b.flash_kb {
        if f.flash_bytes as f64 > kb * 1024.0 {
            missed.push(format!(
                "flash budget {kb} KB (--flash-budget-kb) not met: the best figure reached is \
                 {:.1} KB of parameters (the firmware's code comes on top)",
                f.flash_bytes as f64 / 1024.0
            ));
        }
    }
    if let Some(kb) = b.ram_kb {
        if f.ram_bytes as f64 > kb * 1024.0 {
            missed.push(format!(
                "RAM budget {kb} KB (--ram-budget-kb) not met: the best figure reached is \
                 {:.1} KB of activation arena (the stack comes on top)",
                f.ram_bytes as f64 / 1024.0
            ));
        }
    }
    if missed.is_empty() {
        Ok(())
    } else {
        Err(EnergyError::Budget(missed.join("; ")))
    }
}

#[cfg(test)]
mod tests;
