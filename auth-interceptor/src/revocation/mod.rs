//! Revocation pushed by the auth server: a [`RevocationWatcher`] follows
//! `auth.v1.AuthService/WatchRevocations` and keeps a local denylist (sessions, per-subject
//! not-before, signing keys) that the [`Authorizer`](crate::Authorizer) consults after a token's
//! signature verified, so a logged-out session, a disabled user or a retired key stops working here
//! within the stream's propagation delay instead of at the token's expiry — with no call on the
//! request path.
//!
//! What a rule does when the watcher has lost the stream for too long is the rule's choice
//! ([`WhenStale`]): keep accepting verified tokens until they expire (the default, as without a
//! watcher), or refuse with `UNAVAILABLE` once the denylist may be missing revocations for longer
//! than a bound.

mod backoff;
mod denylist;
mod status;
mod stream;
mod watcher;

use std::time::Duration;

pub use status::WatcherStatus;
pub use watcher::{NotCurrent, RevocationWatcher, RevocationWatcherConfig, WatcherError};

/// What a [`Rule`](crate::Rule) does with a verified token while the revocation watcher is stale:
/// disconnected, or not yet through its first snapshot, or overflowing its capacity (see
/// [`WatcherStatus::lag`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum WhenStale {
    /// Accept the token until it expires, whatever the watcher's state (fail open; the default, and
    /// the behaviour without a watcher). Revocations the watcher knows still apply.
    #[default]
    Accept,
    /// Refuse with `UNAVAILABLE` (retryable) once the watcher has been stale for longer than the
    /// bound (fail closed). A zero bound refuses as soon as the stream is lost.
    RefuseAfter(Duration),
}
