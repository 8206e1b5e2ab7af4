//! The watcher's health, as the application reads it ([`WatcherStatus`]) and as the watcher task
//! and the request path share it (the denylist plus connection state, behind one lock held only
//! for in-memory work).

use std::time::Duration;

use tokio::time::Instant;

use super::denylist::Denylist;

/// A snapshot of a [`RevocationWatcher`](super::RevocationWatcher)'s health, from
/// [`RevocationWatcher::status`](super::RevocationWatcher::status). Export it to your metrics
/// (the crate has no registry of its own): `connected` and `lag` say whether revocations reach this
/// service; `events_applied` and `last_sequence` that they keep coming.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct WatcherStatus {
    /// A stream is open and current: its snapshot is complete, or it resumed from the last
    /// sequence, and the denylist fits its capacity.
    pub connected: bool,
    /// The endpoint of the open stream (or of the last one), as configured.
    pub endpoint: Option<String>,
    /// The sequence the denylist is complete up to (0 before the first snapshot).
    pub last_sequence: i64,
    /// The newest sequence a heartbeat announced (equal to `last_sequence` when up to date).
    pub server_sequence: i64,
    /// Live revocations applied since start (snapshot entries not counted).
    pub events_applied: u64,
    /// Complete snapshots applied since start.
    pub snapshots: u64,
    /// Entries in the denylist now.
    pub entries: usize,
    /// Time since the last message of any kind (revocation, snapshot part, heartbeat); `None`
    /// before the first.
    pub since_last_contact: Option<Duration>,
    /// How long the denylist may have been missing revocations: zero while `connected`, otherwise
    /// the time since the watcher stopped being current (since start, before the first snapshot).
    /// Rules with [`WhenStale::RefuseAfter`](super::WhenStale::RefuseAfter) compare their bound to
    /// this.
    pub lag: Duration,
    /// Streams that ended or could not be opened since start.
    pub reconnects: u64,
    /// The last snapshot or revocation did not fit the capacity: the denylist is incomplete (and the
    /// watcher not `connected`) until a fresh snapshot fits.
    pub overflowed: bool,
}

/// The state shared by the watcher task and the request path.
#[derive(Debug)]
pub(crate) struct State {
    pub(crate) list: Denylist,
    /// See [`WatcherStatus::connected`].
    pub(crate) current: bool,
    /// When the watcher last stopped being current (or started).
    pub(crate) stale_since: Instant,
    pub(crate) last_contact: Option<Instant>,
    pub(crate) last_sequence: i64,
    pub(crate) server_sequence: i64,
    /// A complete snapshot has been applied and nothing since overflowed: resuming from
    /// `last_sequence` loses nothing.
    pub(crate) resumable: bool,
    pub(crate) endpoint: Option<usize>,
    pub(crate) events: u64,
    pub(crate) snapshots: u64,
    pub(crate) reconnects: u64,
    pub(crate) overflowed: bool,
}

impl State {
    pub(crate) fn new(list: Denylist) -> Self {
        Self {
            list,
            current: false,
            stale_since: Instant::now(),
            last_contact: None,
            last_sequence: 0,
            server_sequence: 0,
            resumable: false,
            endpoint: None,
            events: 0,
            snapshots: 0,
            reconnects: 0,
            overflowed: false,
        }
    }

    /// See [`WatcherStatus::lag`].
    pub(crate) fn lag(&self, now: Instant) -> Duration {
        if self.current {
            Duration::ZERO
        } else {
            now.saturating_duration_since(self.stale_since)
        }
    }

    /// Marks the watcher current (again).
    pub(crate) fn set_current(&mut self) {
        self.current = !self.overflowed;
    }

    /// Marks the watcher not current from now on (unless it already was not).
    pub(crate) fn set_stale(&mut self, since: Instant) {
        if self.current {
            self.current = false;
            self.stale_since = since;
        }
    }

    pub(crate) fn status(&self, endpoints: &[String], now: Instant) -> WatcherStatus {
        WatcherStatus {
            connected: self.current,
            endpoint: self.endpoint.and_then(|i| endpoints.get(i).cloned()),
            last_sequence: self.last_sequence,
            server_sequence: self.server_sequence,
            events_applied: self.events,
            snapshots: self.snapshots,
            entries: self.list.len(),
            since_last_contact: self.last_contact.map(|t| now.saturating_duration_since(t)),
            lag: self.lag(now),
            reconnects: self.reconnects,
            overflowed: self.overflowed,
        }
    }
}
