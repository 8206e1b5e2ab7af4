//! `AuthService.WatchRevocations`: a snapshot of every unexpired revocation (from the replica's
//! view) or a replay of the log after the watcher's sequence, then each revocation as this replica's
//! follower applies it, with heartbeats when idle.
//!
//! Bounded: at most `AUTH_MAX_REVOCATION_WATCHERS` streams at once (RESOURCE_EXHAUSTED beyond; the
//! permit is released when the stream ends, cancellation included); each stream buffers at most
//! [`BUFFER`] messages, and a watcher that falls [`crate::revocation::FANOUT_CAPACITY`] rows behind the fan-out (or
//! does not read for [`SEND_TIMEOUT`]) is ended and resumes from its sequence. A stream also ends
//! when the caller's own token is revoked or expires, and at shutdown — always naming the sequence
//! to resume from.

use std::sync::Arc;
use std::time::Duration;

use auth_interceptor::Claims;
use auth_proto::v1::watch_revocations_response::Message;
use auth_proto::v1::{
    Revocation, RevocationHeartbeat, RevocationKind as ProtoKind, RevocationSnapshot,
    WatchRevocationsResponse,
};
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::{Semaphore, mpsc};
use tokio_stream::wrappers::ReceiverStream;
use tonic::Status;

use super::{require_live_session, timestamp};
use crate::error::AuthError;
use crate::revocation::Revocations;
use crate::state::AppState;
use crate::store::{RevocationKind, RevocationRecord};

/// The role a token must carry to call `WatchRevocations`.
pub(crate) const WATCH_ROLE: &str = "revocations:watch";
/// Messages one stream buffers before its task waits for the watcher to read.
pub(crate) const BUFFER: usize = 64;
/// Revocations per snapshot part (the contract's bound).
const SNAPSHOT_PART: usize = 1000;
/// Log rows read per query when replaying.
const REPLAY_PAGE: i64 = 1000;
/// How long a stream waits for a watcher that does not read before ending it.
pub(crate) const SEND_TIMEOUT: Duration = Duration::from_secs(30);

/// The stream type of the RPC.
pub(crate) type RevocationStream = ReceiverStream<Result<WatchRevocationsResponse, Status>>;

/// The bounds of `WatchRevocations` on this replica.
#[derive(Debug, Clone)]
pub(crate) struct Watchers {
    permits: Arc<Semaphore>,
    max: usize,
    heartbeat: Duration,
}

impl Watchers {
    /// At most `max` streams at once, heartbeats every `heartbeat` when idle.
    pub(crate) fn new(max: usize, heartbeat: Duration) -> Self {
        Self {
            permits: Arc::new(Semaphore::new(max)),
            max,
            heartbeat,
        }
    }

    /// Streams open now.
    pub(crate) fn connected(&self) -> usize {
        self.max.saturating_sub(self.permits.available_permits())
    }
}

/// Opens a stream for `claims` (already verified and holding [`WATCH_ROLE`], per the server's
/// policy) resuming after `after`.
pub(crate) async fn open(
    state: &AppState,
    claims: Claims,
    after: i64,
) -> Result<RevocationStream, AuthError> {
    if after < 0 {
        return Err(AuthError::invalid("after_sequence must not be negative"));
    }
    require_live_session(state, &claims).await?;
    let permit = state
        .watchers
        .permits
        .clone()
        .try_acquire_owned()
        .map_err(|_| AuthError::Exhausted("too many revocation watchers, retry later"))?;
    let (tx, rx) = mpsc::channel(BUFFER);
    let stream = Stream {
        revocations: state.revocations.clone(),
        claims,
        heartbeat: state.watchers.heartbeat,
        tx,
    };
    tokio::spawn(async move {
        let _permit = permit;
        stream.run(after).await;
    });
    Ok(ReceiverStream::new(rx))
}

/// Why a stream stops sending.
struct Ended;

struct Stream {
    revocations: Arc<Revocations>,
    claims: Claims,
    heartbeat: Duration,
    tx: mpsc::Sender<Result<WatchRevocationsResponse, Status>>,
}

impl Stream {
    async fn run(self, after: i64) {
        // Subscribed before the snapshot or replay is read: nothing applied in between is missed
        // (what arrives twice is skipped by sequence).
        let mut events = self.revocations.subscribe();
        let mut stopping = self.revocations.stopping();
        let Ok(mut last) = self.start(after).await else {
            return;
        };
        let now = self.revocations.now();
        let exp = i64::try_from(self.claims.exp).unwrap_or(i64::MAX);
        let expiry = tokio::time::sleep(Duration::from_secs(exp.saturating_sub(now).max(0) as u64));
        tokio::pin!(expiry);
        let start = tokio::time::Instant::now() + self.heartbeat;
        let mut tick = tokio::time::interval_at(start, self.heartbeat);
        loop {
            let ended = tokio::select! {
                event = events.recv() => match event {
                    Ok(row) if row.seq <= last => continue,
                    Ok(row) => {
                        last = row.seq;
                        if row.kind == RevocationKind::Keys {
                            continue;
                        }
                        tick.reset();
                        if self.send(Message::Revocation(revocation(&row))).await.is_err() {
                            return;
                        }
                        self.ends_caller(&row).then(|| Status::unauthenticated(format!(
                            "the watcher's token was revoked: resume from sequence {last} with a new one"
                        )))
                    }
                    Err(RecvError::Lagged(_)) => Some(Status::aborted(format!(
                        "the watcher fell behind: resume from sequence {last}"
                    ))),
                    Err(RecvError::Closed) => return,
                },
                _ = tick.tick() => {
                    let beat = Message::Heartbeat(RevocationHeartbeat {
                        sequence: last,
                        time: Some(timestamp(self.revocations.now())),
                    });
                    if self.send(beat).await.is_err() {
                        return;
                    }
                    None
                }
                () = &mut expiry => Some(Status::unauthenticated(format!(
                    "the watcher's token expired: resume from sequence {last} with a new one"
                ))),
                () = stopped(&mut stopping) => Some(Status::unavailable(format!(
                    "server shutting down: resume from sequence {last} on another replica"
                ))),
                () = self.tx.closed() => return,
            };
            if let Some(status) = ended {
                let _ = self.tx.try_send(Err(status));
                return;
            }
        }
    }

    /// Sends the snapshot, or the replay when `after` is within the log; returns the sequence the
    /// stream is complete up to.
    async fn start(&self, after: i64) -> Result<i64, Ended> {
        if after > 0
            && let Ok(bounds) = self.revocations.store().revocation_bounds().await
            && after >= bounds.pruned_through
            && after <= bounds.head
        {
            return self.replay(after).await;
        }
        self.snapshot().await
    }

    async fn snapshot(&self) -> Result<i64, Ended> {
        let (sequence, rows) = self.revocations.snapshot();
        let parts: Vec<&[RevocationRecord]> = if rows.is_empty() {
            vec![&[]]
        } else {
            rows.chunks(SNAPSHOT_PART).collect()
        };
        let count = parts.len();
        for (i, part) in parts.into_iter().enumerate() {
            let part = RevocationSnapshot {
                revocations: part.iter().map(revocation).collect(),
                first: i == 0,
                last: i + 1 == count,
                sequence,
            };
            self.send(Message::Snapshot(part)).await?;
        }
        Ok(sequence)
    }

    async fn replay(&self, after: i64) -> Result<i64, Ended> {
        let mut last = after;
        loop {
            let rows = match self
                .revocations
                .store()
                .revocations_after(last, REPLAY_PAGE)
                .await
            {
                Ok(rows) => rows,
                Err(e) => {
                    tracing::warn!(error = %e, "revocation replay failed");
                    let _ = self.tx.try_send(Err(Status::unavailable(format!(
                        "revocation log unavailable: resume from sequence {last}"
                    ))));
                    return Err(Ended);
                }
            };
            for row in &rows {
                last = row.seq;
                if row.kind != RevocationKind::Keys && row.expires_at > self.revocations.now() {
                    self.send(Message::Revocation(revocation(row))).await?;
                }
            }
            if (rows.len() as i64) < REPLAY_PAGE {
                return Ok(last);
            }
        }
    }

    /// True when `row` revokes the watcher's own token.
    fn ends_caller(&self, row: &RevocationRecord) -> bool {
        let iat = i64::try_from(self.claims.iat).unwrap_or(i64::MAX);
        match row.kind {
            RevocationKind::Session => row.target == self.claims.sid,
            RevocationKind::Subject => {
                row.target == self.claims.sub && row.not_before.is_some_and(|nb| iat < nb)
            }
            RevocationKind::Key | RevocationKind::Keys => false,
        }
    }

    async fn send(&self, message: Message) -> Result<(), Ended> {
        let response = WatchRevocationsResponse {
            message: Some(message),
        };
        self.tx
            .send_timeout(Ok(response), SEND_TIMEOUT)
            .await
            .map_err(|_| Ended)
    }
}

/// Resolves once the server is shutting down.
async fn stopped(stopping: &mut tokio::sync::watch::Receiver<bool>) {
    let _ = stopping.wait_for(|s| *s).await.is_ok();
}

/// The wire form of a log row.
fn revocation(row: &RevocationRecord) -> Revocation {
    let kind = match row.kind {
        RevocationKind::Session => ProtoKind::Session,
        RevocationKind::Subject => ProtoKind::Subject,
        RevocationKind::Key => ProtoKind::Key,
        RevocationKind::Keys => ProtoKind::Unspecified,
    };
    Revocation {
        sequence: row.seq,
        kind: kind.into(),
        target: row.target.clone(),
        not_before: row.not_before.map(timestamp),
        expire_time: Some(timestamp(row.expires_at)),
    }
}
