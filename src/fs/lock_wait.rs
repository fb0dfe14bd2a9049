//! The one deadline-bounded wait for a lock: non-blocking attempts, polled with a backoff
//! (1 ms, doubling to 20 ms) until a deadline. Both writer locks use it (the audit log's
//! `flock` in `audit/lock.rs`, the key store's POSIX record lock and its per-process claim
//! in `store/lock.rs`); nothing that takes a lock blocks without a deadline.
//!
//! Why polling and not a blocking call with a timer: `flock(2)` and `fcntl(F_SETLKW)` take
//! no timeout, and interrupting them needs a signal (process-wide state a library must not
//! own); the claim table of `store/lock.rs` is a mutex that a fork child must never wait on.
//! The `fs2`/`fd-lock` crates block or try once and leave the wait to the caller, so
//! this loop would remain either way.

use std::time::{Duration, Instant};

/// The first pause between two attempts.
const FIRST_PAUSE: Duration = Duration::from_millis(1);
/// The longest pause between two attempts.
const MAX_PAUSE: Duration = Duration::from_millis(20);

/// Why [`wait_until`] gave up.
#[derive(Debug, PartialEq, Eq)]
pub enum WaitError<E> {
    /// The deadline passed before an attempt succeeded.
    TimedOut,
    /// An attempt failed in a way that waiting cannot cure.
    Failed(E),
}

/// Call `attempt` until it yields a value (`Ok(Some)`) or fails (`Err`), pausing between
/// attempts that find the lock busy (`Ok(None)`); once `deadline` has passed after an
/// attempt, give up with [`WaitError::TimedOut`]. The first attempt is made even when the
/// deadline has already passed, and no pause overshoots the deadline.
pub fn wait_until<T, E>(
    deadline: Instant,
    mut attempt: impl FnMut() -> Result<Option<T>, E>,
) -> Result<T, WaitError<E>> {
    let mut pause = FIRST_PAUSE;
    loop {
        if let Some(v) = attempt().map_err(WaitError::Failed)? {
            return Ok(v);
        }
        let now = Instant::now();
        if now >= deadline {
            return Err(WaitError::TimedOut);
        }
        std::thread::sleep(pause.min(deadline - now));
        pause = (pause * 2).min(MAX_PAUSE);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn returns_the_first_success() {
        let mut calls = 0;
        let r: Result<u32, WaitError<()>> =
            wait_until(Instant::now() + Duration::from_secs(5), || {
                calls += 1;
                Ok((calls == 3).then_some(7))
            });
        assert_eq!((r, calls), (Ok(7), 3));
    }

    #[test]
    fn a_failure_stops_the_wait() {
        let mut calls = 0;
        let r: Result<(), _> = wait_until(Instant::now() + Duration::from_secs(5), || {
            calls += 1;
            Err("broken")
        });
        assert_eq!((r, calls), (Err(WaitError::Failed("broken")), 1));
    }

    #[test]
    fn times_out_at_the_deadline_after_trying_once_more() {
        let start = Instant::now();
        let timeout = Duration::from_millis(60);
        let mut calls = 0;
        let r: Result<(), WaitError<()>> = wait_until(start + timeout, || {
            calls += 1;
            Ok(None)
        });
        assert_eq!(r, Err(WaitError::TimedOut));
        assert!(start.elapsed() >= timeout);
        // Pauses of 1, 2, 4, 8, 16, 20 and (the rest) 9 ms: at most 8 attempts.
        assert!((2..=8).contains(&calls), "{calls} attempts");
        // An expired deadline still gets one attempt.
        let r: Result<u8, WaitError<()>> = wait_until(start, || Ok(Some(1)));
        assert_eq!(r, Ok(1));
    }
}
