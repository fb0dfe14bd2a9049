//! TOTP time steps (RFC 6238 section 4.2): the counter of Unix time `t` is
//! `floor((t - t0) / period)`, computed without overflow for every `i64` time and origin.

use std::time::{SystemTime, UNIX_EPOCH};

use super::OtpError;

/// The clock of a TOTP: step 0 starts at Unix time `t0`, and each step lasts `period`
/// seconds (at least one).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TimeStep {
    period: u64,
    t0: i64,
}

impl TimeStep {
    /// A clock of `period` seconds per step from `t0`; [`OtpError::Period`] unless
    /// `period` is positive.
    pub fn new(period: i64, t0: i64) -> Result<Self, OtpError> {
        let period = u64::try_from(period)
            .ok()
            .filter(|&p| p >= 1)
            .ok_or(OtpError::Period)?;
        Ok(TimeStep { period, t0 })
    }

    /// The step length in seconds.
    pub fn period(self) -> u64 {
        self.period
    }

    /// The Unix time of step 0.
    pub fn t0(self) -> i64 {
        self.t0
    }

    /// The step (counter) of Unix time `t`; [`OtpError::BeforeT0`] when `t < t0`.
    pub fn step(self, t: i64) -> Result<u64, OtpError> {
        let elapsed = i128::from(t) - i128::from(self.t0);
        if elapsed < 0 {
            return Err(OtpError::BeforeT0);
        }
        // 0 <= elapsed < 2**64 and period >= 1, so the quotient fits.
        Ok((elapsed / i128::from(self.period)) as u64)
    }

    /// The step of the system clock now.
    pub fn step_now(self) -> Result<u64, OtpError> {
        self.step(unix_now()?)
    }
}

/// The system clock in whole seconds since the Unix epoch: [`OtpError::ClockBeforeEpoch`]
/// before 1970, [`OtpError::TimeOutOfRange`] beyond `i64`.
pub fn unix_now() -> Result<i64, OtpError> {
    let since = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_err(|_| OtpError::ClockBeforeEpoch)?;
    i64::try_from(since.as_secs()).map_err(|_| OtpError::TimeOutOfRange)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc6238_appendix_b_steps() {
        let clock = TimeStep::new(30, 0).expect("clock");
        let rows = [
            (59, 0x1),
            (1111111109, 0x23523EC),
            (1111111111, 0x23523ED),
            (1234567890, 0x273EF07),
            (2000000000, 0x3F940AA),
            (20000000000, 0x27BC86AA),
        ];
        for (t, step) in rows {
            assert_eq!(clock.step(t).expect("step"), step, "{t}");
        }
    }

    #[test]
    fn steps_start_at_t0() {
        let clock = TimeStep::new(60, 1000).expect("clock");
        assert_eq!((clock.period(), clock.t0()), (60, 1000));
        assert_eq!(clock.step(1000).expect("t0"), 0);
        assert_eq!(clock.step(1059).expect("end of step 0"), 0);
        assert_eq!(clock.step(1060).expect("step 1"), 1);
        assert!(matches!(clock.step(999), Err(OtpError::BeforeT0)));
    }

    #[test]
    fn the_extremes_do_not_overflow() {
        let clock = TimeStep::new(1, i64::MIN).expect("clock");
        assert_eq!(clock.step(i64::MAX).expect("step"), u64::MAX);
        let clock = TimeStep::new(i64::MAX, i64::MIN).expect("clock");
        assert_eq!(clock.step(i64::MAX).expect("step"), 2);
        assert!(matches!(
            TimeStep::new(1, i64::MAX).expect("clock").step(i64::MIN),
            Err(OtpError::BeforeT0)
        ));
    }

    #[test]
    fn the_period_is_positive() {
        for period in [0, -1, i64::MIN] {
            assert!(matches!(TimeStep::new(period, 0), Err(OtpError::Period)));
        }
    }

    #[test]
    fn now_is_after_the_epoch() {
        let now = unix_now().expect("clock");
        // 2020-01-01: a clock that reads earlier is broken, not this code.
        assert!(now > 1_577_836_800, "{now}");
        let clock = TimeStep::new(30, 0).expect("clock");
        let step = clock.step_now().expect("step");
        assert!(step >= (now / 30) as u64);
    }
}
