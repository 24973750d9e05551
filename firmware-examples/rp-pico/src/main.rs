//! Activity classifier on a Raspberry Pi Pico: an MPU-6050 on I2C0 (GP4 = SDA, pin 6; GP5 =
//! SCL, pin 7; 400 kHz), sampled at 10 Hz; every 5 s the last 10 s are classified and
//! the class is logged over RTT (defmt). The application logic is `imu-pipeline`'s; this file
//! only brings up the clocks, the bus and the timer. See README.md.
#![no_std]
#![no_main]

use defmt_rtt as _;
use panic_probe as _;

use imu_pipeline::{classifier, mpu6050, App, Fault, Window, CLASSES, N_FEATURES};
use rp2040_hal::{
    self as hal, entry,
    fugit::RateExtU32,
    gpio::{FunctionI2C, Pin, PullUp},
    pac, Clock,
};

/// The second-stage bootloader, placed in the first 256 bytes of flash (memory.x `.boot2`).
#[link_section = ".boot2"]
#[used]
pub static BOOT2: [u8; 256] = rp2040_boot2::BOOT_LOADER_W25Q080;

/// The Pico's crystal.
const XOSC_HZ: u32 = 12_000_000;

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

    let mut dp = pac::Peripherals::take().unwrap();
    let mut watchdog = hal::Watchdog::new(dp.WATCHDOG);
    let clocks = hal::clocks::init_clocks_and_plls(
        XOSC_HZ,
        dp.XOSC,
        dp.CLOCKS,
        dp.PLL_SYS,
        dp.PLL_USB,
        &mut dp.RESETS,
        &mut watchdog,
    )
    .ok()
    .unwrap();
    let sio = hal::Sio::new(dp.SIO);
    let pins = hal::gpio::Pins::new(dp.IO_BANK0, dp.PADS_BANK0, sio.gpio_bank0, &mut dp.RESETS);
    let sda: Pin<_, FunctionI2C, PullUp> = pins.gpio4.reconfigure();
    let scl: Pin<_, FunctionI2C, PullUp> = pins.gpio5.reconfigure();
    let i2c = hal::I2C::i2c0(
        dp.I2C0,
        sda,
        scl,
        400.kHz(),
        &mut dp.RESETS,
        clocks.system_clock.freq(),
    );
    // The 1 MHz microsecond timer (independent of the system clock).
    let delay = hal::Timer::new(dp.TIMER, &mut dp.RESETS, &clocks);

    defmt::info!("bonsai activity classifier: rp-pico, MPU-6050 on I2C0");
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
