//! The application every board example runs, independent of the board: an MPU-6050 on an
//! embedded-hal 1.0 I2C bus sampled at 10 Hz into a ring buffer of one window (100 samples,
//! 10 s), the model's input features computed from the window with `bonsai_rt::features` (the
//! code the compiler computed the training data with), and one classification every
//! [`HOP`] samples. Only embedded-hal traits are used (I2C and DelayNs), so the same logic runs
//! against a HAL on a board, against a simulated sensor under QEMU, and against
//! `embedded-hal-mock` in the host tests.
//!
//! A sensor fault (no acknowledge, a device that is not an MPU-6050, samples that stop) puts the
//! application in [`State::Failed`] with the [`Fault`]; nothing panics. The next call to
//! [`App::next_window`] waits [`RETRY_MS`] and initialises the sensor again.
#![no_std]

// The host tests use std (embedded-hal-mock, Vec); the library never links it.
#[cfg(test)]
extern crate std;

pub mod mpu6050;

pub use bonsai_rt::features::{self, Sample, N_FEATURES, WINDOW};

use embedded_hal::delay::DelayNs;
use embedded_hal::i2c::{ErrorKind, I2c};
use heapless::HistoryBuffer;
use mpu6050::Mpu6050;

/// New samples between classifications once the window is full (5 s at 10 Hz: windows overlap
/// by half).
pub const HOP: usize = 50;
/// Pause before initialising the sensor again after a fault.
pub const RETRY_MS: u32 = 1000;
/// The model's classes, in the order of its outputs (BasicMotions' `@classLabel` order).
pub const CLASSES: [&str; 4] = ["Standing", "Running", "Walking", "Badminton"];

/// A sensor fault, without the bus type (so a board can report it uniformly).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// An I2C transaction failed; `NoAcknowledge` usually means no sensor or a loose wire.
    Bus(ErrorKind),
    /// WHO_AM_I read `found`, not 0x68: another device at the address.
    WrongDevice { found: u8 },
    /// DATA_RDY stayed low: the sensor stopped producing samples.
    Timeout,
}

impl<E: embedded_hal::i2c::Error> From<mpu6050::Error<E>> for Fault {
    fn from(e: mpu6050::Error<E>) -> Fault {
        match e {
            mpu6050::Error::I2c(e) => Fault::Bus(e.kind()),
            mpu6050::Error::WrongDevice { found } => Fault::WrongDevice { found },
            mpu6050::Error::Timeout => Fault::Timeout,
        }
    }
}

impl Fault {
    /// A short description for logs.
    pub fn describe(&self) -> &'static str {
        match self {
            Fault::Bus(ErrorKind::NoAcknowledge(_)) => "no acknowledge: is the MPU-6050 connected?",
            Fault::Bus(_) => "I2C bus error",
            Fault::WrongDevice { .. } => "WHO_AM_I mismatch: the device is not an MPU-6050",
            Fault::Timeout => "no new sample: the sensor stopped",
        }
    }
}

/// Where the application is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// `start` has not run yet.
    Idle,
    /// The sensor is configured and sampling.
    Running,
    /// The last sensor operation failed.
    Failed(Fault),
}

/// One classification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// Index into the model's outputs ([`CLASSES`]).
    pub class: usize,
    /// The model's input.
    pub features: [i8; N_FEATURES],
    /// Samples read since the last (re)start, the window's last included.
    pub samples: u32,
}

impl Report {
    /// The class name, or "?" for an index the model should not produce.
    pub fn class_name(&self) -> &'static str {
        CLASSES.get(self.class).copied().unwrap_or("?")
    }
}

/// The ring buffer of one window (1,200 bytes). A board keeps it in a `static` so that it counts
/// in the image's static RAM rather than hiding in the stack.
pub type Window = HistoryBuffer<Sample, WINDOW>;

/// Sensor, timer and window.
pub struct App<'w, I2C, D> {
    imu: Mpu6050<I2C>,
    delay: D,
    window: &'w mut Window,
    fresh: usize,
    samples: u32,
    state: State,
}

impl<'w, I2C: I2c, D: DelayNs> App<'w, I2C, D> {
    /// The application for an MPU-6050 at `address` on `i2c`, buffering into `window`; nothing
    /// happens on the bus until [`start`](Self::start).
    pub fn new(i2c: I2C, address: u8, delay: D, window: &'w mut Window) -> Self {
        window.clear();
        App {
            imu: Mpu6050::new(i2c, address),
            delay,
            window,
            fresh: 0,
            samples: 0,
            state: State::Idle,
        }
    }

    /// Current state.
    pub fn state(&self) -> State {
        self.state
    }

    /// Gives the bus and the timer back.
    pub fn release(self) -> (I2C, D) {
        (self.imu.release(), self.delay)
    }

    fn fail(&mut self, f: Fault) -> Fault {
        self.state = State::Failed(f);
        f
    }

    /// Checks and configures the sensor and empties the window (a gap in the samples would make
    /// a window that was never measured).
    pub fn start(&mut self) -> Result<(), Fault> {
        self.window.clear();
        self.fresh = 0;
        self.samples = 0;
        match self.imu.init(&mut self.delay) {
            Ok(()) => {
                self.state = State::Running;
                Ok(())
            }
            Err(e) => Err(self.fail(e.into())),
        }
    }

    /// Samples until a window is due, then classifies it with `classify` (features → class
    /// index). After a fault, first waits [`RETRY_MS`] and restarts the sensor.
    pub fn next_window(
        &mut self,
        mut classify: impl FnMut(&[i8; N_FEATURES]) -> usize,
    ) -> Result<Report, Fault> {
        match self.state {
            State::Running => {}
            State::Idle => self.start()?,
            State::Failed(_) => {
                self.delay.delay_ms(RETRY_MS);
                self.start()?;
            }
        }
        loop {
            let sample = match self.imu.next_sample(&mut self.delay) {
                Ok(s) => s,
                Err(e) => return Err(self.fail(e.into())),
            };
            self.window.write(sample);
            self.samples += 1;
            self.fresh += 1;
            if self.window.len() == WINDOW && self.fresh >= HOP {
                self.fresh = 0;
                let features = features::extract(self.window.oldest_ordered().copied());
                let class = classify(&features);
                return Ok(Report {
                    class,
                    features,
                    samples: self.samples,
                });
            }
        }
    }
}

/// The classification step for [`App::next_window`]: runs a generated model crate's `infer`
/// (its contract: `infer(&input, &mut output, &mut arena)`) and picks the top class.
pub fn classifier<'a, const O: usize, const A: usize>(
    infer: fn(&[i8; N_FEATURES], &mut [i8; O], &mut [u8; A]),
    arena: &'a mut [u8; A],
) -> impl FnMut(&[i8; N_FEATURES]) -> usize + 'a {
    move |features| {
        let mut out = [0i8; O];
        infer(features, &mut out, arena);
        argmax(&out)
    }
}

/// Index of the largest output (the first on ties), as the compiler's reference picks it.
pub fn argmax(scores: &[i8]) -> usize {
    let mut best = 0;
    for (i, &s) in scores.iter().enumerate() {
        if s > scores[best] {
            best = i;
        }
    }
    best
}

#[cfg(test)]
mod tests;
