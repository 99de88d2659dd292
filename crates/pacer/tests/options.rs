//! The options structs are built from their defaults with `with_*` setters, which set exactly
//! what they say; errors say their message once.
#![allow(clippy::unwrap_used)]

use std::error::Error as _;
use std::time::Duration;

use mpegcoder_pacer::{
    LatePolicy, Mode, Pacer, PacerConfig, PacerError, Rate, SleepTail, TimeBase,
};

#[test]
fn pacer_config_setters() {
    let d = PacerConfig::default();
    assert_eq!(d.mode, Mode::Blocking);
    assert_eq!(d.rate, Rate::REAL_TIME);
    assert_eq!(d.max_lead, PacerConfig::DEFAULT_MAX_LEAD);
    assert_eq!(d.initial_burst, Duration::ZERO);
    assert_eq!(d.late_threshold, PacerConfig::DEFAULT_LATE_THRESHOLD);
    assert_eq!(d.late_policy, LatePolicy::DEFAULT);
    assert_eq!(d.max_forward_jump, PacerConfig::DEFAULT_MAX_FORWARD_JUMP);

    let c = d
        .with_mode(Mode::NonBlocking)
        .with_rate(Rate::new(2, 1).unwrap())
        .with_max_lead(Duration::from_millis(25))
        .with_initial_burst(Duration::from_millis(500))
        .with_late_threshold(Duration::from_millis(80))
        .with_late_policy(LatePolicy::Rebase)
        .with_max_forward_jump(Duration::from_secs(7));
    assert_eq!(c.mode, Mode::NonBlocking);
    assert_eq!(c.rate, Rate::new(2, 1).unwrap());
    assert_eq!(c.max_lead, Duration::from_millis(25));
    assert_eq!(c.initial_burst, Duration::from_millis(500));
    assert_eq!(c.late_threshold, Duration::from_millis(80));
    assert_eq!(c.late_policy, LatePolicy::Rebase);
    assert_eq!(c.max_forward_jump, Duration::from_secs(7));
    // The pacer keeps the configuration it was given.
    let pacer = Pacer::new(c, TimeBase::new(1, 90_000)).unwrap();
    assert_eq!(*pacer.config(), c);
}

#[test]
fn sleep_tail_setters() {
    const TAIL: SleepTail = SleepTail::DEFAULT
        .with_margin(Duration::from_micros(300))
        .with_spin(Duration::from_micros(100));
    assert_eq!(TAIL.margin, Duration::from_micros(300));
    assert_eq!(TAIL.spin, Duration::from_micros(100));
    assert_eq!(
        SleepTail::new(Duration::from_micros(300), Duration::from_micros(100)),
        TAIL
    );
    assert_eq!(
        SleepTail::new(Duration::ZERO, Duration::ZERO),
        SleepTail::NONE
    );
}

#[test]
fn errors_have_no_hidden_cause() {
    let errors = [
        PacerError::ZeroTimeBase { num: 1, den: 0 },
        Rate::new(0, 1).unwrap_err(),
        Rate::from_f64(f64::NAN).unwrap_err(),
        Pacer::new(
            PacerConfig::default().with_late_policy(LatePolicy::CatchUp {
                max_speed: Rate::REAL_TIME,
            }),
            TimeBase::new(1, 90_000),
        )
        .unwrap_err(),
    ];
    for e in errors {
        assert!(e.source().is_none(), "{e:?}");
        assert!(!e.to_string().is_empty());
    }
    assert_eq!(
        PacerError::ZeroTimeBase { num: 1, den: 0 }.to_string(),
        "time base 1/0 has a zero part"
    );
}
