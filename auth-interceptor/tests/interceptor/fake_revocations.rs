//! The test AuthService's `WatchRevocations`, as the contract describes it: a log the test appends
//! to, snapshots in parts, live revocations after the watcher's sequence, heartbeats on demand, and
//! outages on demand.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use auth_proto::v1::*;
use tonic::{Request, Response, Status};

use crate::support::{AuthState, unix_now};

/// The fake revocation log behind `WatchRevocations`: a snapshot of every entry (in parts of
/// `part_size`) when the watcher starts at 0 or before the pruned `horizon`, then every entry after
/// the watcher's sequence, live. `down` refuses new streams and ends open ones with `UNAVAILABLE`.
pub struct RevLog {
    pub entries: Mutex<Vec<Revocation>>,
    /// Sequences at or below this are pruned: a watcher resuming from one gets a fresh snapshot.
    pub horizon: std::sync::atomic::AtomicI64,
    pub part_size: std::sync::atomic::AtomicUsize,
    pub down: AtomicBool,
    /// Open streams end once with `UNAUTHENTICATED` (as when the watcher's token expires).
    pub expire_streams: AtomicBool,
    /// The `after_sequence` of every stream opened.
    pub requests: Mutex<Vec<i64>>,
    /// Bumped on every change; open streams wake up on it.
    changed: tokio::sync::watch::Sender<u64>,
    /// Heartbeats asked for by [`RevLog::heartbeat`].
    beats: AtomicU64,
    /// The sequence heartbeats announce (the newest entry's when negative).
    beat_sequence: std::sync::atomic::AtomicI64,
}

impl Default for RevLog {
    fn default() -> Self {
        Self {
            entries: Mutex::new(Vec::new()),
            horizon: 0.into(),
            part_size: 1000.into(),
            down: AtomicBool::new(false),
            expire_streams: AtomicBool::new(false),
            requests: Mutex::new(Vec::new()),
            changed: tokio::sync::watch::channel(0).0,
            beats: AtomicU64::new(0),
            beat_sequence: (-1).into(),
        }
    }
}

/// A revocation of `kind` for `target`, expiring in an hour (a subject's not-before is now).
pub fn revocation(kind: RevocationKind, target: &str) -> Revocation {
    let now = unix_now() as i64;
    let at = |seconds| Some(prost_types::Timestamp { seconds, nanos: 0 });
    Revocation {
        sequence: 0,
        kind: kind as i32,
        target: target.into(),
        not_before: (kind == RevocationKind::Subject)
            .then(|| at(now + 1))
            .flatten(),
        expire_time: at(now + 3600),
    }
}

impl RevLog {
    fn bump(&self) {
        self.changed.send_modify(|n| *n += 1);
    }

    /// Appends `r` with the next sequence; returns that sequence.
    pub fn append(&self, mut r: Revocation) -> i64 {
        let mut entries = self.entries.lock().unwrap();
        r.sequence = entries.last().map_or(0, |e| e.sequence) + 1;
        let seq = r.sequence;
        entries.push(r);
        drop(entries);
        self.bump();
        seq
    }

    /// Refuses new streams and ends the open ones (`true`), or serves again (`false`).
    pub fn set_down(&self, down: bool) {
        self.down.store(down, Ordering::SeqCst);
        self.bump();
    }

    /// Ends every open stream with `UNAUTHENTICATED`, as the server does when the watcher's token
    /// expires; new streams are served.
    pub fn expire_open_streams(&self) {
        self.expire_streams.store(true, Ordering::SeqCst);
        self.bump();
    }

    /// Sends one heartbeat on every open stream.
    pub fn heartbeat(&self) {
        self.beats.fetch_add(1, Ordering::SeqCst);
        self.bump();
    }

    /// Sends one heartbeat announcing `sequence` on every open stream (as a server does after rows
    /// it did not need to send).
    pub fn heartbeat_at(&self, sequence: i64) {
        self.beat_sequence.store(sequence, Ordering::SeqCst);
        self.heartbeat();
    }

    pub fn requests(&self) -> Vec<i64> {
        self.requests.lock().unwrap().clone()
    }

    fn newest(&self) -> i64 {
        match self.beat_sequence.load(Ordering::SeqCst) {
            n if n >= 0 => n,
            _ => self
                .entries
                .lock()
                .unwrap()
                .last()
                .map_or(0, |e| e.sequence),
        }
    }

    fn after(&self, sequence: i64) -> Vec<Revocation> {
        let entries = self.entries.lock().unwrap();
        entries
            .iter()
            .filter(|e| e.sequence > sequence)
            .cloned()
            .collect()
    }

    /// Serves one `WatchRevocations` call of `state`'s service.
    pub fn watch(
        state: Arc<AuthState>,
        request: Request<WatchRevocationsRequest>,
    ) -> Result<Response<tonic::codegen::BoxStream<WatchRevocationsResponse>>, Status> {
        use watch_revocations_response::Message;
        let log = &state.revlog;
        if log.down.load(Ordering::SeqCst) {
            return Err(Status::unavailable("down"));
        }
        if request.metadata().get("authorization").is_none() {
            return Err(Status::unauthenticated("invalid token"));
        }
        let after = request.into_inner().after_sequence;
        log.requests.lock().unwrap().push(after);
        let mut messages = Vec::new();
        let mut sent = after;
        if after == 0 || after <= log.horizon.load(Ordering::SeqCst) {
            let entries = log.entries.lock().unwrap().clone();
            let sequence = entries.last().map_or(0, |e| e.sequence);
            let size = log.part_size.load(Ordering::SeqCst).max(1);
            let parts: Vec<&[Revocation]> = if entries.is_empty() {
                vec![&[]]
            } else {
                entries.chunks(size).collect()
            };
            let last = parts.len() - 1;
            for (i, part) in parts.into_iter().enumerate() {
                messages.push(Message::Snapshot(RevocationSnapshot {
                    revocations: part.to_vec(),
                    first: i == 0,
                    last: i == last,
                    sequence,
                }));
            }
            sent = sequence;
        }
        let (tx, rx) = tokio::sync::mpsc::channel(64);
        let mut changes = log.changed.subscribe();
        let mut beats = log.beats.load(Ordering::SeqCst);
        tokio::spawn(async move {
            let log = &state.revlog;
            let send = |m| tx.send(Ok(WatchRevocationsResponse { message: Some(m) }));
            for m in messages {
                if send(m).await.is_err() {
                    return;
                }
            }
            loop {
                if log.down.load(Ordering::SeqCst) {
                    let _ = tx.send(Err(Status::unavailable("down"))).await;
                    return;
                }
                if log.expire_streams.swap(false, Ordering::SeqCst) {
                    let _ = tx.send(Err(Status::unauthenticated("token expired"))).await;
                    return;
                }
                for r in log.after(sent) {
                    sent = r.sequence;
                    if send(Message::Revocation(r)).await.is_err() {
                        return;
                    }
                }
                while beats < log.beats.load(Ordering::SeqCst) {
                    beats += 1;
                    let beat = RevocationHeartbeat {
                        sequence: log.newest(),
                        time: None,
                    };
                    if send(Message::Heartbeat(beat)).await.is_err() {
                        return;
                    }
                }
                tokio::select! {
                    r = changes.changed() => if r.is_err() { return },
                    _ = tx.closed() => return,
                }
            }
        });
        Ok(Response::new(Box::pin(
            tokio_stream::wrappers::ReceiverStream::new(rx),
        )))
    }
}
