//! One stream: open `WatchRevocations` on one endpoint with a fresh token and the resume point,
//! then apply what it sends — snapshot parts into a staging list that replaces the denylist when
//! complete, live revocations in sequence order, heartbeats — until it ends, fails, falls silent or
//! breaks the contract.

use auth_proto::v1::auth_service_client::AuthServiceClient;
use auth_proto::v1::watch_revocations_response::Message;
use auth_proto::v1::{RevocationSnapshot, WatchRevocationsRequest, WatchRevocationsResponse};
use tokio::time::Instant;
use tonic::metadata::MetadataValue;
use tonic::transport::Channel;
use tonic::{Code, Request, Status, Streaming};

use super::denylist::{ApplyError, Denylist};
use super::watcher::{RevocationWatcherConfig, Shared};
use crate::client::TokenSource;

/// How one stream ended.
pub(super) enum End {
    /// It delivered at least one message before ending: fail over at once.
    AfterWork,
    /// It could not be opened, or ended before delivering anything: back off.
    Failed,
}

/// Opens one stream on endpoint `index` and follows it until it ends.
pub(super) async fn stream_once(
    shared: &Shared,
    index: usize,
    channel: Channel,
    tokens: &dyn TokenSource,
    config: &RevocationWatcherConfig,
) -> End {
    let endpoint = shared.endpoints[index].as_str();
    let stream = match open(shared, channel, tokens, config).await {
        Ok(s) => s,
        Err(status) => {
            tracing::warn!(endpoint, code = ?status.code(), "revocation stream could not be opened");
            if status.code() == Code::Unauthenticated {
                tokens.invalidate();
            }
            return End::Failed;
        }
    };
    let resumed = shared.update(|s| {
        s.endpoint = Some(index);
        if s.resumable {
            s.set_current();
        }
        s.resumable
    });
    tracing::info!(endpoint, resumed, "revocation stream open");
    let ended = follow_stream(shared, stream, config).await;
    match &ended.how {
        Ok(()) => tracing::warn!(endpoint, "revocation stream ended"),
        Err(why) => tracing::warn!(endpoint, %why, "revocation stream lost"),
    }
    shared.update(|s| s.set_stale(ended.stale_since));
    match ended.how {
        Err(Lost::Status(status)) if status.code() == Code::Unauthenticated => tokens.invalidate(),
        Err(Lost::Protocol(_) | Lost::Overflow) => return End::Failed,
        _ => {}
    }
    if ended.received {
        End::AfterWork
    } else {
        End::Failed
    }
}

async fn open(
    shared: &Shared,
    channel: Channel,
    tokens: &dyn TokenSource,
    config: &RevocationWatcherConfig,
) -> Result<Streaming<WatchRevocationsResponse>, Status> {
    let attempt = async {
        let token = tokens.token().await?;
        let after_sequence = {
            let s = shared.read();
            if s.resumable { s.last_sequence } else { 0 }
        };
        let mut request = Request::new(WatchRevocationsRequest { after_sequence });
        let value = MetadataValue::try_from(format!("Bearer {token}"))
            .map_err(|_| Status::unauthenticated("the token source gave an unusable token"))?;
        request.metadata_mut().insert("authorization", value);
        let response = AuthServiceClient::new(channel)
            .watch_revocations(request)
            .await?;
        Ok(response.into_inner())
    };
    tokio::time::timeout(config.connect_timeout, attempt)
        .await
        .unwrap_or_else(|_| Err(Status::deadline_exceeded("opening the stream timed out")))
}

/// Why a stream was left.
#[derive(Debug, thiserror::Error)]
enum Lost {
    #[error("status {}", .0.code())]
    Status(Status),
    #[error("silent for longer than the idle timeout")]
    Idle,
    #[error("protocol violation: {0}")]
    Protocol(&'static str),
    #[error("the denylist is full")]
    Overflow,
}

/// How a followed stream ended.
struct Ended {
    /// `Ok` when the server ended it without an error.
    how: Result<(), Lost>,
    /// Since when the watcher is stale: now, or the last contact of a stream that fell silent.
    stale_since: Instant,
    /// Whether any message arrived.
    received: bool,
}

/// Follows `stream` until it ends.
async fn follow_stream(
    shared: &Shared,
    mut stream: Streaming<WatchRevocationsResponse>,
    config: &RevocationWatcherConfig,
) -> Ended {
    let mut staging: Option<Denylist> = None;
    let mut received = false;
    let opened = Instant::now();
    loop {
        let ended = |how, stale_since| Ended {
            how,
            stale_since,
            received,
        };
        let message = match tokio::time::timeout(config.idle_timeout, stream.message()).await {
            Err(_) => {
                let last = shared.read().last_contact.unwrap_or(opened);
                return ended(Err(Lost::Idle), last.max(opened));
            }
            Ok(Err(status)) => return ended(Err(Lost::Status(status)), Instant::now()),
            Ok(Ok(None)) => return ended(Ok(()), Instant::now()),
            Ok(Ok(Some(m))) => m,
        };
        received = true;
        if let Err(lost) = handle(shared, &mut staging, message) {
            if matches!(lost, Lost::Overflow) {
                shared.update(|s| {
                    s.overflowed = true;
                    s.resumable = false;
                });
                tracing::error!(
                    capacity = config.capacity,
                    "revocation denylist full: incomplete until a fresh snapshot fits"
                );
            }
            return Ended {
                how: Err(lost),
                stale_since: Instant::now(),
                received,
            };
        }
    }
}

/// Applies one message.
fn handle(
    shared: &Shared,
    staging: &mut Option<Denylist>,
    message: WatchRevocationsResponse,
) -> Result<(), Lost> {
    let now = shared.clock.unix_now();
    let contact = Instant::now();
    match message.message {
        Some(Message::Snapshot(part)) => snapshot_part(shared, staging, part, now, contact),
        Some(Message::Revocation(revocation)) => {
            if staging.is_some() {
                return Err(Lost::Protocol("a live revocation inside a snapshot"));
            }
            shared.update(|s| {
                s.last_contact = Some(contact);
                if revocation.sequence <= s.last_sequence {
                    return Ok(());
                }
                match s.list.apply(&revocation, now) {
                    Ok(()) | Err(ApplyError::Skipped(_)) => {}
                    Err(ApplyError::Full(_)) => return Err(Lost::Overflow),
                }
                s.last_sequence = revocation.sequence;
                s.server_sequence = s.server_sequence.max(revocation.sequence);
                s.events += 1;
                Ok(())
            })
        }
        Some(Message::Heartbeat(beat)) => {
            let in_snapshot = staging.is_some();
            shared.update(|s| {
                s.last_contact = Some(contact);
                s.server_sequence = beat.sequence;
                // Everything up to the beat's sequence has been sent on this stream (in order),
                // including rows the server had no reason to send: resume after it.
                if s.resumable && !in_snapshot {
                    s.last_sequence = s.last_sequence.max(beat.sequence);
                }
            });
            Ok(())
        }
        None => Err(Lost::Protocol("an empty message")),
    }
}

fn snapshot_part(
    shared: &Shared,
    staging: &mut Option<Denylist>,
    part: RevocationSnapshot,
    now: u64,
    contact: Instant,
) -> Result<(), Lost> {
    if part.first {
        *staging = Some(shared.read().list.empty_like());
    }
    let Some(list) = staging.as_mut() else {
        return Err(Lost::Protocol("a snapshot part without its first part"));
    };
    for revocation in &part.revocations {
        if let Err(ApplyError::Full(_)) = list.apply(revocation, now) {
            *staging = None;
            shared.update(|s| s.last_contact = Some(contact));
            return Err(Lost::Overflow);
        }
    }
    let complete = part.last.then(|| staging.take()).flatten();
    shared.update(|s| {
        s.last_contact = Some(contact);
        if let Some(list) = complete {
            s.list = list;
            s.last_sequence = part.sequence;
            s.server_sequence = s.server_sequence.max(part.sequence);
            s.snapshots += 1;
            s.resumable = true;
            s.overflowed = false;
            s.set_current();
        }
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use auth_proto::v1::{Revocation, RevocationHeartbeat, RevocationKind};

    use std::sync::RwLock;

    use super::*;
    use crate::revocation::status::State;

    fn shared(capacity: usize) -> Shared {
        Shared {
            state: RwLock::new(State::new(Denylist::new(capacity, 0))),
            endpoints: vec!["http://a".into()],
            clock: crate::clock::system(),
            changed: tokio::sync::watch::channel(0).0,
        }
    }

    fn session(sequence: i64, sid: &str) -> Revocation {
        let in_an_hour = crate::clock::system().unix_now() as i64 + 3600;
        Revocation {
            sequence,
            kind: RevocationKind::Session as i32,
            target: sid.into(),
            not_before: None,
            expire_time: Some(prost_types::Timestamp {
                seconds: in_an_hour,
                nanos: 0,
            }),
        }
    }

    fn part(revocations: Vec<Revocation>, first: bool, last: bool, sequence: i64) -> Message {
        Message::Snapshot(RevocationSnapshot {
            revocations,
            first,
            last,
            sequence,
        })
    }

    fn send(s: &Shared, staging: &mut Option<Denylist>, m: Message) -> Result<(), Lost> {
        handle(s, staging, WatchRevocationsResponse { message: Some(m) })
    }

    fn beat(sequence: i64) -> Message {
        Message::Heartbeat(RevocationHeartbeat {
            sequence,
            time: None,
        })
    }

    #[test]
    fn a_snapshot_replaces_the_list_only_when_complete_then_live_revocations_apply_in_order() {
        let s = shared(100);
        let mut staging = None;
        send(
            &s,
            &mut staging,
            part(vec![session(1, "old")], true, true, 1),
        )
        .unwrap();
        assert_eq!((s.read().list.len(), s.read().last_sequence), (1, 1));
        assert!(s.read().current && s.read().resumable);

        // A fresh snapshot in two parts: the old list serves until the last part arrives.
        send(
            &s,
            &mut staging,
            part(vec![session(5, "a")], true, false, 6),
        )
        .unwrap();
        assert_eq!(s.read().list.len(), 1);
        assert_eq!(s.read().last_sequence, 1);
        // A heartbeat in the middle of a snapshot does not move the sequence.
        send(&s, &mut staging, beat(6)).unwrap();
        assert_eq!(s.read().last_sequence, 1);
        send(
            &s,
            &mut staging,
            part(vec![session(6, "b")], false, true, 6),
        )
        .unwrap();
        {
            let st = s.read();
            assert_eq!((st.list.len(), st.last_sequence, st.snapshots), (2, 6, 2));
        }

        // Live, in order; a duplicate or older sequence is ignored.
        send(&s, &mut staging, Message::Revocation(session(7, "c"))).unwrap();
        send(&s, &mut staging, Message::Revocation(session(7, "dup"))).unwrap();
        send(&s, &mut staging, Message::Revocation(session(3, "older"))).unwrap();
        {
            let st = s.read();
            assert_eq!((st.list.len(), st.last_sequence, st.events), (3, 7, 1));
        }
        // A heartbeat ahead of the watcher moves the resume point; one behind does not.
        send(&s, &mut staging, beat(9)).unwrap();
        send(&s, &mut staging, beat(8)).unwrap();
        assert_eq!(s.read().last_sequence, 9);
        assert_eq!(s.read().server_sequence, 8);
        assert!(s.read().last_contact.is_some());
    }

    #[test]
    fn protocol_violations_and_overflow_end_the_stream() {
        let s = shared(1);
        let mut staging = None;
        // A part that is not the first, with no snapshot under way.
        let lost = send(&s, &mut staging, part(vec![], false, true, 1)).unwrap_err();
        assert!(matches!(lost, Lost::Protocol(_)));
        // A live revocation in the middle of a snapshot.
        send(&s, &mut staging, part(vec![], true, false, 1)).unwrap();
        let lost = send(&s, &mut staging, Message::Revocation(session(2, "x"))).unwrap_err();
        assert!(matches!(lost, Lost::Protocol(_)));
        // An empty message.
        let lost = handle(&s, &mut None, WatchRevocationsResponse { message: None }).unwrap_err();
        assert!(matches!(lost, Lost::Protocol(_)));
        // More than the capacity in a snapshot: nothing replaced.
        let two = vec![session(1, "a"), session(2, "b")];
        let lost = send(&s, &mut None, part(two, true, true, 2)).unwrap_err();
        assert!(matches!(lost, Lost::Overflow));
        assert_eq!(s.read().list.len(), 0);
        assert_eq!(s.read().last_sequence, 0);
        // Live beyond the capacity.
        send(&s, &mut None, part(vec![session(1, "a")], true, true, 1)).unwrap();
        let lost = send(&s, &mut None, Message::Revocation(session(2, "b"))).unwrap_err();
        assert!(matches!(lost, Lost::Overflow));
        assert_eq!(
            s.read().last_sequence,
            1,
            "what was not stored is not acknowledged"
        );
    }
}
