//! Refused connections, aggregated: a peer that may not connect (or finds the agent full)
//! gets at most one record per uid and reason per [`WINDOW`]. The first refusal is
//! recorded at once, as any event; the ones after it within the window are counted, and
//! recorded as one event whose `count` says how many it stands for, once the window is
//! over (the accept thread looks at least once a second) or at stop. So a flood of refused
//! connections costs the audit log a line per 10 s instead of a line per connection, and
//! nothing is left out of it: every refused connection is in a record's count.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use super::event::Event;

/// At most one record per uid and reason in this time.
pub const WINDOW: Duration = Duration::from_secs(10);

struct Window {
    /// When the last record of this uid and reason was made.
    recorded_at: Instant,
    /// The latest refusal not recorded yet, with the count of those it stands for.
    pending: Option<Event>,
}

/// The refused connections of each uid and reason since its last record.
#[derive(Default)]
pub struct Refusals {
    windows: HashMap<(u32, &'static str), Window>,
}

impl Refusals {
    /// A refused connection `e` (its reason set) at `now`: the events to record now.
    pub fn refused(&mut self, e: Event, reason: &'static str, now: Instant) -> Vec<Event> {
        let mut out = self.flush(Some(now));
        match self.windows.get_mut(&(e.uid, reason)) {
            Some(w) => {
                let count = w.pending.as_ref().map_or(0, |p| p.count) + 1;
                w.pending = Some(Event { count, ..e });
            }
            None => {
                self.windows.insert(
                    (e.uid, reason),
                    Window {
                        recorded_at: now,
                        pending: None,
                    },
                );
                out.push(e);
            }
        }
        out
    }

    /// The aggregated events of windows over at `now` (of every window: `None`, at stop).
    /// A window with a pending record is renewed from now, so its next refusal waits too.
    pub fn flush(&mut self, now: Option<Instant>) -> Vec<Event> {
        let mut out = Vec::new();
        self.windows.retain(|_, w| {
            let over = now.is_none_or(|t| t.saturating_duration_since(w.recorded_at) >= WINDOW);
            if !over {
                return true;
            }
            match (w.pending.take(), now) {
                (Some(e), Some(t)) => {
                    out.push(e);
                    w.recorded_at = t;
                    true
                }
                (Some(e), None) => {
                    out.push(e);
                    false
                }
                (None, _) => false,
            }
        });
        out.sort_by_key(|e| e.connection);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::event::Verdict;
    use std::time::SystemTime;

    fn refused(uid: u32, connection: u64) -> Event {
        Event {
            seq: 0,
            time: SystemTime::now(),
            connection,
            uid,
            gid: uid,
            pid: 1,
            pid_pinned: false,
            pid_exited: None,
            pidfd_errno: None,
            key: None,
            key_source: None,
            key_type: None,
            operation: "connect",
            result: Verdict::Refused,
            reason: Some("uid not allowed to connect".to_owned()),
            count: 1,
        }
    }

    const WHY: &str = "uid not allowed to connect";

    #[test]
    fn one_record_per_uid_per_window_and_every_refusal_counted() {
        let t0 = Instant::now();
        let mut r = Refusals::default();
        let mut recorded = Vec::new();
        // uid 65534 floods: 1000 refusals within the first window, 500 in the next.
        for i in 0..1000u64 {
            recorded.extend(r.refused(refused(65534, i), WHY, t0 + Duration::from_millis(i)));
        }
        // Another uid in the middle of the flood is recorded at once.
        let other = r.refused(refused(1001, 5000), WHY, t0 + Duration::from_secs(5));
        assert_eq!(other.iter().map(|e| e.uid).collect::<Vec<_>>(), [1001]);
        assert_eq!(recorded.len(), 1, "the first refusal only");
        assert_eq!(recorded[0].count, 1);
        for i in 0..500u64 {
            let at = t0 + WINDOW + Duration::from_millis(i);
            recorded.extend(r.refused(refused(65534, 2000 + i), WHY, at));
        }
        // The window's end brought one record for the 999 counted in it.
        assert_eq!(recorded.len(), 2);
        assert_eq!(recorded[1].count, 999);
        assert_eq!(recorded[1].connection, 999, "the latest refusal's details");
        // At stop, what is pending is recorded whatever the time.
        let rest = r.flush(None);
        let counts: Vec<_> = rest.iter().map(|e| (e.uid, e.count)).collect();
        assert_eq!(counts, [(65534, 500)]);
        let total: u64 = recorded.iter().chain(&rest).map(|e| e.count).sum();
        assert_eq!(total, 1500);
        assert!(r.flush(None).is_empty());
    }

    #[test]
    fn a_quiet_uid_is_recorded_again_after_its_window() {
        let t0 = Instant::now();
        let mut r = Refusals::default();
        assert_eq!(r.refused(refused(7, 1), WHY, t0).len(), 1);
        // Past the window with nothing pending: the window closes; the next is at once.
        let later = r.refused(refused(7, 2), WHY, t0 + WINDOW);
        assert_eq!(later.iter().map(|e| e.count).collect::<Vec<_>>(), [1]);
        // Another reason of the same uid has its own window.
        assert_eq!(
            r.refused(refused(7, 3), "too many connections", t0 + WINDOW)
                .len(),
            1
        );
    }
}
