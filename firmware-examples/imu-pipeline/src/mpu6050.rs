//! InvenSense MPU-6050 6-axis IMU over I2C (embedded-hal 1.0), configured for the model:
//! 10 Hz samples, accelerometer ±8 g, gyroscope ±2000 °/s, read as one 14-byte burst and
//! converted to the feature code's units (0.01 m/s², 0.01 rad/s).
//!
//! Register map and sensitivities: InvenSense "MPU-6000/MPU-6050 Register Map and Descriptions",
//! revision 4.2.

use bonsai_rt::features::{scale_counts, Sample};
use embedded_hal::delay::DelayNs;
use embedded_hal::i2c::I2c;

/// I2C address with AD0 low (0x69 with AD0 high).
pub const ADDRESS: u8 = 0x68;
/// What WHO_AM_I reads on an MPU-6050 (its address bits, AD0 excluded).
pub const WHO_AM_I_VALUE: u8 = 0x68;

/// Register addresses used here.
pub mod reg {
    /// Sample rate = gyroscope output rate / (1 + SMPLRT_DIV).
    pub const SMPLRT_DIV: u8 = 0x19;
    /// DLPF_CFG in bits 2:0.
    pub const CONFIG: u8 = 0x1A;
    /// FS_SEL in bits 4:3.
    pub const GYRO_CONFIG: u8 = 0x1B;
    /// AFS_SEL in bits 4:3.
    pub const ACCEL_CONFIG: u8 = 0x1C;
    /// DATA_RDY_EN is bit 0.
    pub const INT_ENABLE: u8 = 0x38;
    /// DATA_RDY_INT is bit 0; reading the register clears it.
    pub const INT_STATUS: u8 = 0x3A;
    /// First of 14 data bytes: accel x, y, z, temperature, gyro x, y, z, each big-endian i16.
    pub const ACCEL_XOUT_H: u8 = 0x3B;
    /// DEVICE_RESET is bit 7, SLEEP bit 6, CLKSEL bits 2:0.
    pub const PWR_MGMT_1: u8 = 0x6B;
    /// Identity register.
    pub const WHO_AM_I: u8 = 0x75;
}

/// The configuration written by [`Mpu6050::init`], in order (register, value).
pub const CONFIG_SEQUENCE: [(u8, u8); 6] = [
    // Wake up, clock from the X gyroscope's PLL (more stable than the internal oscillator).
    (reg::PWR_MGMT_1, 0x01),
    // DLPF_CFG = 5: 10 Hz accelerometer and gyroscope bandwidth (anti-aliasing for 10 Hz
    // sampling); the gyroscope output rate becomes 1 kHz.
    (reg::CONFIG, 0x05),
    // 1 kHz / (1 + 99) = 10 Hz, the model's rate.
    (reg::SMPLRT_DIV, 99),
    // FS_SEL = 3: ±2000 °/s, 16.4 counts per °/s (the training data reach 2000 °/s).
    (reg::GYRO_CONFIG, 0x18),
    // AFS_SEL = 2: ±8 g, 4096 counts per g (gravity plus the ±3 g of a badminton swing).
    (reg::ACCEL_CONFIG, 0x10),
    (reg::INT_ENABLE, 0x01),
];

/// Accelerometer counts → 0.01 m/s²: 100 × 9.80665 / 4096 per count.
pub const ACCEL_SCALE: (i32, i32) = (980_665, 4_096_000);
/// Gyroscope counts → 0.01 rad/s: 100 × (π / 180) / 16.4 per count.
pub const GYRO_SCALE: (i32, i32) = (17_453_293, 164_000_000);

/// Milliseconds between DATA_RDY polls, and polls before giving up (a sample is due every
/// 100 ms; 250 ms without one means the sensor stopped).
pub const POLL_MS: u32 = 2;
pub const POLL_LIMIT: u32 = 125;

/// What went wrong with the sensor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Error<E> {
    /// The bus transaction failed (no acknowledge, arbitration loss, …).
    I2c(E),
    /// Something answered, but it is not an MPU-6050.
    WrongDevice { found: u8 },
    /// No new sample within `POLL_MS × POLL_LIMIT` ms.
    Timeout,
}

/// The driver; owns the bus (or a shared-bus handle).
pub struct Mpu6050<I2C> {
    i2c: I2C,
    address: u8,
}

impl<I2C: I2c> Mpu6050<I2C> {
    /// A driver for the device at `address` ([`ADDRESS`] or 0x69); no bus traffic yet.
    pub fn new(i2c: I2C, address: u8) -> Self {
        Mpu6050 { i2c, address }
    }

    /// Gives the bus back.
    pub fn release(self) -> I2C {
        self.i2c
    }

    fn read_reg(&mut self, r: u8) -> Result<u8, Error<I2C::Error>> {
        let mut b = [0u8];
        self.i2c
            .write_read(self.address, &[r], &mut b)
            .map_err(Error::I2c)?;
        Ok(b[0])
    }

    fn write_reg(&mut self, r: u8, v: u8) -> Result<(), Error<I2C::Error>> {
        self.i2c.write(self.address, &[r, v]).map_err(Error::I2c)
    }

    /// Checks WHO_AM_I, resets the device and configures it (see [`CONFIG_SEQUENCE`]).
    pub fn init<D: DelayNs>(&mut self, delay: &mut D) -> Result<(), Error<I2C::Error>> {
        let who = self.read_reg(reg::WHO_AM_I)?;
        if who != WHO_AM_I_VALUE {
            return Err(Error::WrongDevice { found: who });
        }
        self.write_reg(reg::PWR_MGMT_1, 0x80)?;
        // The reset takes up to 100 ms; the device does not acknowledge meanwhile.
        delay.delay_ms(100);
        for (r, v) in CONFIG_SEQUENCE {
            self.write_reg(r, v)?;
        }
        Ok(())
    }

    /// True once a new sample is in the data registers (clears the flag).
    pub fn data_ready(&mut self) -> Result<bool, Error<I2C::Error>> {
        Ok(self.read_reg(reg::INT_STATUS)? & 1 != 0)
    }

    /// The raw counts: accel x, y, z, temperature, gyro x, y, z (one burst, so all seven come
    /// from the same sample).
    pub fn read_raw(&mut self) -> Result<[i16; 7], Error<I2C::Error>> {
        let mut b = [0u8; 14];
        self.i2c
            .write_read(self.address, &[reg::ACCEL_XOUT_H], &mut b)
            .map_err(Error::I2c)?;
        Ok(core::array::from_fn(|i| {
            i16::from_be_bytes([b[2 * i], b[2 * i + 1]])
        }))
    }

    /// The current sample in the model's units.
    pub fn read_sample(&mut self) -> Result<Sample, Error<I2C::Error>> {
        Ok(to_sample(&self.read_raw()?))
    }

    /// Waits for the next sample (polling DATA_RDY, sleeping between polls) and reads it.
    pub fn next_sample<D: DelayNs>(&mut self, delay: &mut D) -> Result<Sample, Error<I2C::Error>> {
        for _ in 0..POLL_LIMIT {
            if self.data_ready()? {
                return self.read_sample();
            }
            delay.delay_ms(POLL_MS);
        }
        Err(Error::Timeout)
    }
}

/// Raw counts (as [`Mpu6050::read_raw`] returns them) in the model's units.
pub fn to_sample(raw: &[i16; 7]) -> Sample {
    let a = |i: usize| scale_counts(raw[i], ACCEL_SCALE.0, ACCEL_SCALE.1);
    let g = |i: usize| scale_counts(raw[i], GYRO_SCALE.0, GYRO_SCALE.1);
    [a(0), a(1), a(2), g(4), g(5), g(6)]
}
