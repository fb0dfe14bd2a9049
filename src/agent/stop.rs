//! The agent's stop flag: set by [`super::server::Server::stop`] or by a record that could
//! not be written ([`super::record::Journal`]), with the first failure that caused it, and
//! a wait for it (the embedding program learns that the agent stopped itself).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::audit::AuditError;

/// Whether the agent is stopping, and why.
pub struct StopSignal {
    stopping: AtomicBool,
    failure: Mutex<Option<AuditError>>,
    cv: Condvar,
    /// Wakes the accept thread (shuts the listening socket down).
    wake: Box<dyn Fn() + Send + Sync>,
}

impl StopSignal {
    /// A flag not set; `wake` is called once when it is.
    pub fn new(wake: impl Fn() + Send + Sync + 'static) -> Self {
        StopSignal {
            stopping: AtomicBool::new(false),
            failure: Mutex::new(None),
            cv: Condvar::new(),
            wake: Box::new(wake),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Option<AuditError>> {
        self.failure.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Set the flag; whether this call set it.
    pub fn request(&self) -> bool {
        let guard = self.lock();
        let first = !self.stopping.swap(true, Ordering::SeqCst);
        drop(guard);
        if first {
            (self.wake)();
        }
        self.cv.notify_all();
        first
    }

    /// Stop because of `e` (only the first failure is kept).
    pub fn fail(&self, e: AuditError) {
        self.lock().get_or_insert(e);
        self.request();
    }

    /// Whether the flag is set.
    pub fn is_set(&self) -> bool {
        self.stopping.load(Ordering::SeqCst)
    }

    /// Whether a failure stopped the agent.
    pub fn failed(&self) -> bool {
        self.lock().is_some()
    }

    /// The failure that stopped the agent, if one did.
    pub fn failure(&self) -> Option<AuditError> {
        self.lock().clone()
    }

    /// Wait until the flag is set, at most `timeout` (`None`: no limit); whether it is.
    pub fn wait(&self, timeout: Option<Duration>) -> bool {
        // A deadline further away than an `Instant` can hold is no limit.
        let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
        let mut g = self.lock();
        while !self.is_set() {
            let left = match deadline {
                None => Duration::from_secs(3600),
                Some(d) => match d.checked_duration_since(Instant::now()) {
                    Some(left) if !left.is_zero() => left,
                    _ => return false,
                },
            };
            g = self
                .cv
                .wait_timeout(g, left)
                .map(|(g, _)| g)
                .unwrap_or_else(|e| e.into_inner().0);
        }
        true
    }
}
