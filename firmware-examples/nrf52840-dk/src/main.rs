//! Activity classifier on a Nordic nRF52840-DK: an MPU-6050 on TWIM0 (Arduino header SCL =
//! P0.27, SDA = P0.26, 400 kHz), sampled at 10 Hz; every 5 s the last 10 s are classified and
//! the class is logged over RTT (defmt). The application logic is `imu-pipeline`'s; this file
//! only brings up the clocks, the bus and the timer. See README.md.
#![no_std]
#![no_main]

use defmt_rtt as _;
use panic_probe as _;

use cortex_m_rt::entry;
use imu_pipeline::{classifier, mpu6050, App, Fault, Window, CLASSES, N_FEATURES};
use nrf52840_hal::{gpio::p0, pac, twim, Delay, Twim};

const _: () = assert!(
    bonsai_model::INPUT_LEN == N_FEATURES && bonsai_model::OUTPUT_LEN == CLASSES.len(),
    "the model crate is not an IMU activity classifier (18 features in, 4 classes out)"
);

/// The model's scratch memory; 16-byte aligned like the other examples' arenas.
#[repr(C, align(16))]
struct Arena([u8; bonsai_model::ARENA_BYTES]);

#[entry]
fn main() -> ! {
    // `#[entry]` makes these `&'static mut`s; they live in .bss, so static RAM counts them.
    static mut ARENA: Arena = Arena([0; bonsai_model::ARENA_BYTES]);
    static mut WINDOW: Window = Window::new();

    let dp = pac::Peripherals::take().unwrap();
    let cp = cortex_m::Peripherals::take().unwrap();
    let port0 = p0::Parts::new(dp.P0);
    let pins = twim::Pins {
        scl: port0.p0_27.into_floating_input().degrade(),
        sda: port0.p0_26.into_floating_input().degrade(),
    };
    let i2c = Twim::new(dp.TWIM0, pins, twim::Frequency::K400);
    // SysTick at the 64 MHz core clock.
    let delay = Delay::new(cp.SYST);

    defmt::info!("bonsai activity classifier: nrf52840-dk, MPU-6050 on TWIM0");
    let mut app = App::new(i2c, mpu6050::ADDRESS, delay, WINDOW);
    let mut classify = classifier(bonsai_model::infer, &mut ARENA.0);
    loop {
        match app.next_window(&mut classify) {
            Ok(r) => defmt::info!("{=str} after {=u32} samples", r.class_name(), r.samples),
            Err(Fault::WrongDevice { found }) => {
                defmt::error!("WHO_AM_I = {=u8:#x}, expected 0x68: not an MPU-6050", found)
            }
            Err(f) => defmt::error!("sensor fault: {=str}; retrying", f.describe()),
        }
    }
}
