//! Host tests against `embedded-hal-mock`: every expected bus transaction is listed, and
//! `.done()` checks that all of them, and nothing else, happened.

use super::mpu6050::{reg, ADDRESS, CONFIG_SEQUENCE, POLL_LIMIT, POLL_MS};
use super::*;
use embedded_hal::i2c::NoAcknowledgeSource;
use embedded_hal_mock::eh1::delay::{CheckedDelay, NoopDelay, Transaction as DelayTx};
use embedded_hal_mock::eh1::i2c::{Mock as I2cMock, Transaction as I2cTx};
use std::vec;
use std::vec::Vec;

fn init_transactions() -> Vec<I2cTx> {
    let mut t = vec![
        I2cTx::write_read(ADDRESS, vec![reg::WHO_AM_I], vec![0x68]),
        I2cTx::write(ADDRESS, vec![reg::PWR_MGMT_1, 0x80]),
    ];
    t.extend(
        CONFIG_SEQUENCE
            .iter()
            .map(|&(r, v)| I2cTx::write(ADDRESS, vec![r, v])),
    );
    t
}

/// Raw counts of sample `k` on a synthetic wrist: a ±1 g accelerometer square-ish wave on x,
/// gravity on z, a slow gyroscope ramp on y.
fn raw(k: usize) -> [i16; 7] {
    let ax = if k % 4 < 2 { 4096 } else { -4096 };
    let gy = ((k % 10) as i16 - 5) * 164; // ±5 °/s steps of 1 °/s
    [ax, 17, 4096, 340, -3, gy, 1000]
}

fn sample_transactions(k: usize, not_ready_polls: usize) -> Vec<I2cTx> {
    let mut t: Vec<I2cTx> = (0..not_ready_polls)
        .map(|_| I2cTx::write_read(ADDRESS, vec![reg::INT_STATUS], vec![0]))
        .collect();
    t.push(I2cTx::write_read(ADDRESS, vec![reg::INT_STATUS], vec![1]));
    let bytes: Vec<u8> = raw(k).iter().flat_map(|v| v.to_be_bytes()).collect();
    t.push(I2cTx::write_read(ADDRESS, vec![reg::ACCEL_XOUT_H], bytes));
    t
}

#[test]
fn converts_counts_to_model_units() {
    // +1 g on x and z, 340 counts of temperature (dropped), 1000 counts = 60.98 °/s on gz.
    let s = mpu6050::to_sample(&raw(0));
    assert_eq!(s[0], 981); // 9.81 m/s²
    assert_eq!(s[2], 981);
    assert_eq!(s[1], 4); // 17 counts = 0.0407 m/s²
    assert_eq!(s[3], 0); // -3 counts = -0.0032 rad/s rounds to 0
    assert_eq!(s[5], 106); // 60.98 °/s = 1.0643 rad/s
    assert_eq!(s[4], -87); // -820 counts = -50 °/s = -0.8727 rad/s
}

#[test]
fn classifies_full_windows_every_hop() {
    let n = WINDOW + HOP;
    let mut expect = init_transactions();
    for k in 0..n {
        // Some samples are late: the driver polls again.
        expect.extend(sample_transactions(k, k % 3));
    }
    let mut i2c = I2cMock::new(&expect);
    let mut window = Window::new();
    let mut app = App::new(i2c.clone(), ADDRESS, NoopDelay::new(), &mut window);
    assert_eq!(app.state(), State::Idle);
    let mut seen = Vec::new();
    let first = app
        .next_window(|f| {
            seen.push(*f);
            2
        })
        .unwrap();
    assert_eq!(app.state(), State::Running);
    assert_eq!((first.samples, first.class), (WINDOW as u32, 2));
    assert_eq!(first.class_name(), "Walking");
    let second = app.next_window(|f| {
        seen.push(*f);
        7
    });
    let second = second.unwrap();
    assert_eq!(second.samples, (WINDOW + HOP) as u32);
    assert_eq!(second.class_name(), "?");
    // The features are those of the last WINDOW samples, oldest first.
    let expected =
        |from: usize| features::extract((from..from + WINDOW).map(|k| mpu6050::to_sample(&raw(k))));
    assert_eq!(seen, vec![expected(0), expected(HOP)]);
    assert_eq!(first.features, expected(0));
    assert!(first.features.iter().any(|&c| c > i8::MIN));
    i2c.done();
}

#[test]
fn init_sleeps_through_the_reset_and_polls_with_sleeps() {
    let mut expect = init_transactions();
    expect.extend(sample_transactions(0, 2));
    let mut i2c = I2cMock::new(&expect);
    let mut delay = CheckedDelay::new(&[
        DelayTx::delay_ms(100),
        DelayTx::delay_ms(POLL_MS),
        DelayTx::delay_ms(POLL_MS),
    ]);
    let mut imu = mpu6050::Mpu6050::new(i2c.clone(), ADDRESS);
    imu.init(&mut delay).unwrap();
    assert_eq!(
        imu.next_sample(&mut delay).unwrap(),
        mpu6050::to_sample(&raw(0))
    );
    i2c.done();
    delay.done();
}

#[test]
fn missing_sensor_is_a_bus_fault_not_a_panic() {
    let nack = embedded_hal::i2c::ErrorKind::NoAcknowledge(NoAcknowledgeSource::Address);
    let expect = [
        I2cTx::write_read(ADDRESS, vec![reg::WHO_AM_I], vec![0]).with_error(nack),
        // The retry after RETRY_MS: still nothing there.
        I2cTx::write_read(ADDRESS, vec![reg::WHO_AM_I], vec![0]).with_error(nack),
    ];
    let mut i2c = I2cMock::new(&expect);
    let mut delay = CheckedDelay::new(&[DelayTx::delay_ms(RETRY_MS)]);
    let mut window = Window::new();
    let mut app = App::new(i2c.clone(), ADDRESS, delay.clone(), &mut window);
    let err = app.start().unwrap_err();
    assert_eq!(err, Fault::Bus(nack));
    assert_eq!(app.state(), State::Failed(Fault::Bus(nack)));
    assert!(err.describe().contains("no acknowledge"));
    let mut called = false;
    assert_eq!(
        app.next_window(|_| {
            called = true;
            0
        }),
        Err(Fault::Bus(nack))
    );
    assert!(!called);
    i2c.done();
    delay.done();
}

#[test]
fn wrong_who_am_i_is_refused_before_any_write() {
    // An MPU-6500 answers 0x70 at the same address.
    let expect = [I2cTx::write_read(ADDRESS, vec![reg::WHO_AM_I], vec![0x70])];
    let mut i2c = I2cMock::new(&expect);
    let mut window = Window::new();
    let mut app = App::new(i2c.clone(), ADDRESS, NoopDelay::new(), &mut window);
    assert_eq!(app.start(), Err(Fault::WrongDevice { found: 0x70 }));
    assert_eq!(
        app.state(),
        State::Failed(Fault::WrongDevice { found: 0x70 })
    );
    i2c.done();
}

#[test]
fn nack_mid_window_fails_then_recovers_with_an_empty_window() {
    let nack = embedded_hal::i2c::ErrorKind::NoAcknowledge(NoAcknowledgeSource::Data);
    let mut expect = init_transactions();
    for k in 0..10 {
        expect.extend(sample_transactions(k, 0));
    }
    expect.push(I2cTx::write_read(ADDRESS, vec![reg::INT_STATUS], vec![1]));
    expect.push(I2cTx::write_read(ADDRESS, vec![reg::ACCEL_XOUT_H], vec![0; 14]).with_error(nack));
    // Recovery: a full re-initialisation, then a whole new window.
    expect.extend(init_transactions());
    for k in 0..WINDOW {
        expect.extend(sample_transactions(k, 0));
    }
    let mut i2c = I2cMock::new(&expect);
    let mut window = Window::new();
    let mut app = App::new(i2c.clone(), ADDRESS, NoopDelay::new(), &mut window);
    assert_eq!(app.next_window(|_| 0), Err(Fault::Bus(nack)));
    assert_eq!(app.state(), State::Failed(Fault::Bus(nack)));
    let r = app.next_window(|_| 1).unwrap();
    assert_eq!(r.samples, WINDOW as u32);
    assert_eq!(app.state(), State::Running);
    i2c.done();
}

#[test]
fn silent_sensor_times_out() {
    let mut expect = init_transactions();
    expect.extend(
        (0..POLL_LIMIT).map(|_| I2cTx::write_read(ADDRESS, vec![reg::INT_STATUS], vec![0])),
    );
    let mut i2c = I2cMock::new(&expect);
    let mut window = Window::new();
    let mut app = App::new(i2c.clone(), ADDRESS, NoopDelay::new(), &mut window);
    assert_eq!(app.next_window(|_| 0), Err(Fault::Timeout));
    assert_eq!(app.state(), State::Failed(Fault::Timeout));
    i2c.done();
}

#[test]
fn argmax_takes_the_first_maximum() {
    assert_eq!(argmax(&[-5, 3, 3, -128]), 1);
    assert_eq!(argmax(&[i8::MIN; 4]), 0);
    assert_eq!(argmax(&[]), 0);
}

#[test]
fn classifier_runs_the_model_contract() {
    // A stand-in model: scores each class by one feature and uses its arena as scratch.
    fn infer(x: &[i8; N_FEATURES], out: &mut [i8; 4], arena: &mut [u8; 8]) {
        arena[0] = arena[0].wrapping_add(1);
        for c in 0..4 {
            out[c] = x[3 * c];
        }
    }
    let mut arena = [0u8; 8];
    let mut f = [0i8; N_FEATURES];
    f[6] = 5; // class 2's score
    {
        let mut classify = classifier(infer, &mut arena);
        assert_eq!(classify(&f), 2);
        assert_eq!(classify(&[0; N_FEATURES]), 0);
    }
    assert_eq!(arena[0], 2);
}
