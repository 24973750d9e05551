//! Activity classifier on an ST Nucleo-F401RE: an MPU-6050 on I2C1 (Arduino header D15 = PB8
//! SCL, D14 = PB9 SDA, 400 kHz), sampled at 10 Hz; every 5 s the last 10 s are classified and
//! the class is logged over RTT (defmt). The application logic is `imu-pipeline`'s; this file
//! only brings up the clocks, the bus and the timer. See README.md.
#![no_std]
#![no_main]

use defmt_rtt as _;
use panic_probe as _;

use cortex_m_rt::entry;
use imu_pipeline::{classifier, mpu6050, App, Fault, Window, CLASSES, N_FEATURES};
use stm32f4xx_hal::{i2c::I2c, pac, prelude::*, rcc::Config};

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
    let mut rcc = dp.RCC.freeze(Config::hsi().sysclk(84.MHz()));
    let gpiob = dp.GPIOB.split(&mut rcc);
    let i2c = I2c::new(dp.I2C1, (gpiob.pb8, gpiob.pb9), 400.kHz(), &mut rcc);
    let delay = cp.SYST.delay(&rcc.clocks);

    defmt::info!("bonsai activity classifier: nucleo-f401re, MPU-6050 on I2C1");
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
