//! Device profiles: what one MCU part costs per cycle and per instruction class.
//!
//! The profiles are TOML files in `models/devices/` (each with its sources in comments), compiled
//! into the binary with `include_str!` so that `bonsai` needs no data files at run time. A user adds
//! a part with `--device-file PATH` (same schema; see any built-in file).

use super::EnergyError;
use serde::Deserialize;
use std::path::Path;

/// The instruction set the part's instruction counts come from: the fitted coefficients are per
/// target (QEMU measures `thumbv7em` on mps2-an386 and `thumbv6m` on the microbit).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, serde::Serialize, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum Target {
    Thumbv7em,
    Thumbv6m,
}

impl Target {
    pub fn as_str(self) -> &'static str {
        match self {
            Target::Thumbv7em => "thumbv7em",
            Target::Thumbv6m => "thumbv6m",
        }
    }

    pub fn all() -> [Target; 2] {
        [Target::Thumbv7em, Target::Thumbv6m]
    }
}

impl std::str::FromStr for Target {
    type Err = String;
    fn from_str(s: &str) -> Result<Target, String> {
        match s {
            "thumbv7em" => Ok(Target::Thumbv7em),
            "thumbv6m" => Ok(Target::Thumbv6m),
            _ => Err(format!(
                "unknown target `{s}` (expected thumbv7em or thumbv6m)"
            )),
        }
    }
}

/// Cycles per instruction of each class, as `[min, max]` (pipelining, dual issue and branch
/// refills make one figure wrong for either the best or the worst case).
#[derive(Clone, Debug, PartialEq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct CycleTable {
    pub load: [f64; 2],
    pub store: [f64; 2],
    pub alu: [f64; 2],
    /// MUL, MLA, SMLAxy, SMLAD (and MULS on v6-M).
    pub mul: [f64; 2],
    pub branch_taken: [f64; 2],
    pub branch_not_taken: [f64; 2],
}

impl CycleTable {
    fn rows(&self) -> [(&'static str, [f64; 2]); 6] {
        [
            ("load", self.load),
            ("store", self.store),
            ("alu", self.alu),
            ("mul", self.mul),
            ("branch_taken", self.branch_taken),
            ("branch_not_taken", self.branch_not_taken),
        ]
    }
}

/// One MCU part.
#[derive(Clone, Debug, PartialEq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct Device {
    /// Lower-case id used on the command line (`--device stm32l4r5`).
    pub name: String,
    pub part: String,
    pub core: String,
    pub target: Target,
    pub clock_mhz: f64,
    pub supply_v: f64,
    /// Run-mode current per MHz, from flash (vendors quote CoreMark figures).
    pub run_ua_per_mhz: f64,
    /// Current between inferences (the sleep mode a duty-cycled application uses).
    pub sleep_ua: f64,
    pub flash_kb: u64,
    pub sram_kb: u64,
    /// Flash wait states at `clock_mhz`.
    pub flash_wait_states: u32,
    /// Bytes one flash data read fetches (a weight stream pays the wait states once per line).
    pub flash_line_bytes: u32,
    /// Whether an instruction cache (ART, ICACHE, XIP cache) hides the wait states in loops.
    pub icache: bool,
    pub cycles: CycleTable,
    /// Where the profile came from (`built-in` or a file path); not part of the file.
    #[serde(skip_deserializing, default)]
    pub source: String,
}

impl Device {
    /// Energy of one cycle at run current, picojoules: `I/f · V` with `I = k · f`.
    pub fn pj_per_cycle(&self) -> f64 {
        self.run_ua_per_mhz * self.supply_v
    }

    fn validate(&self) -> Result<(), String> {
        let positive = [
            ("clock_mhz", self.clock_mhz),
            ("supply_v", self.supply_v),
            ("run_ua_per_mhz", self.run_ua_per_mhz),
        ];
        for (what, v) in positive {
            if !(v.is_finite() && v > 0.0) {
                return Err(format!("{what} must be a positive number, got {v}"));
            }
        }
        if !(self.sleep_ua.is_finite() && self.sleep_ua >= 0.0) {
            return Err(format!("sleep_ua must be >= 0, got {}", self.sleep_ua));
        }
        if self.flash_line_bytes == 0 {
            return Err("flash_line_bytes must be at least 1".into());
        }
        if self.name.is_empty()
            || !self
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(format!(
                "name {:?} must be non-empty ASCII letters, digits, '-' or '_'",
                self.name
            ));
        }
        for (class, [lo, hi]) in self.cycles.rows() {
            if !(lo.is_finite() && hi.is_finite() && lo > 0.0 && lo <= hi) {
                return Err(format!(
                    "cycles.{class} must be [min, max] with 0 < min <= max, got [{lo}, {hi}]"
                ));
            }
        }
        Ok(())
    }

    /// Parses and checks one profile; `origin` names it in errors.
    pub fn from_toml(text: &str, origin: &str) -> Result<Device, EnergyError> {
        let mut d: Device = toml::from_str(text).map_err(|e| EnergyError::Profile {
            file: origin.into(),
            msg: e.to_string().trim_end().to_string(),
        })?;
        d.validate().map_err(|msg| EnergyError::Profile {
            file: origin.into(),
            msg,
        })?;
        d.source = origin.into();
        Ok(d)
    }

    /// Reads a user profile (`--device-file`).
    pub fn load(path: &Path) -> Result<Device, EnergyError> {
        let text = std::fs::read_to_string(path).map_err(|e| EnergyError::Profile {
            file: path.display().to_string(),
            msg: e.to_string(),
        })?;
        Device::from_toml(&text, &path.display().to_string())
    }
}

/// The built-in profiles, as `(file name, text)`.
const BUILTIN: [(&str, &str); 5] = [
    (
        "stm32u083.toml",
        include_str!("../../../models/devices/stm32u083.toml"),
    ),
    (
        "stm32l4r5.toml",
        include_str!("../../../models/devices/stm32l4r5.toml"),
    ),
    (
        "nrf52840.toml",
        include_str!("../../../models/devices/nrf52840.toml"),
    ),
    (
        "stm32u585.toml",
        include_str!("../../../models/devices/stm32u585.toml"),
    ),
    (
        "stm32h743.toml",
        include_str!("../../../models/devices/stm32h743.toml"),
    ),
];

/// Every built-in profile. They are checked by the tests, so an error here means the binary
/// was built from a broken `models/devices/` file; it still surfaces as an error, naming it.
pub fn builtin_devices() -> Result<Vec<Device>, EnergyError> {
    BUILTIN
        .iter()
        .map(|(file, text)| {
            let mut d = Device::from_toml(text, &format!("models/devices/{file}"))?;
            d.source = "built-in".into();
            Ok(d)
        })
        .collect()
}

/// The built-in profiles plus user files; a user file may replace a built-in of the same name.
pub fn devices_with(files: &[impl AsRef<Path>]) -> Result<Vec<Device>, EnergyError> {
    let mut all = builtin_devices()?;
    for f in files {
        let d = Device::load(f.as_ref())?;
        all.retain(|b| b.name != d.name);
        all.push(d);
    }
    Ok(all)
}

/// Finds `name` among `devices`.
pub fn find<'a>(devices: &'a [Device], name: &str) -> Result<&'a Device, EnergyError> {
    devices
        .iter()
        .find(|d| d.name.eq_ignore_ascii_case(name))
        .ok_or_else(|| EnergyError::UnknownDevice {
            name: name.into(),
            known: devices
                .iter()
                .map(|d| d.name.clone())
                .collect::<Vec<_>>()
                .join(", "),
        })
}
