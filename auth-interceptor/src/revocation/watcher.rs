//! [`RevocationWatcher`]: one background task following `WatchRevocations` on one of several auth
//! servers (failing over in turn), resuming from its last sequence, and a pruning task; both end when
//! the last handle is dropped.

use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Duration;

use auth_proto::v1::auth_service_client::AuthServiceClient;
use auth_proto::v1::watch_revocations_response::Message;
use auth_proto::v1::{RevocationSnapshot, WatchRevocationsRequest, WatchRevocationsResponse};
use tokio::time::Instant;
use tonic::metadata::MetadataValue;
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Request, Status, Streaming};

use super::WhenStale;
use super::backoff;
use super::denylist::{ApplyError, Denylist};
use super::status::{State, WatcherStatus};
use crate::claims::Claims;
use crate::client::TokenSource;
use crate::clock::Clock;
use crate::error::AuthError;

/// Tuning of a [`RevocationWatcher`]; every field has a default.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct RevocationWatcherConfig {
    /// Delay before the second consecutive failed attempt (the first fails over at once); doubles
    /// up to `max_backoff`, each delay drawn from its upper half (default 250 ms).
    pub initial_backoff: Duration,
    /// Longest delay between attempts (default 30 s).
    pub max_backoff: Duration,
    /// Bound on opening one stream, response headers included (default 5 s).
    pub connect_timeout: Duration,
    /// A stream silent for this long is considered dead and reopened (default 45 s: three of the
    /// server's 15 s heartbeats).
    pub idle_timeout: Duration,
    /// Most entries the denylist holds (default 100 000; about 100 bytes each). Beyond it the
    /// watcher keeps what it has, reports itself not connected (`overflowed`) and asks for a fresh
    /// snapshot, with backoff, until one fits.
    pub capacity: usize,
    /// How long an entry outlives its `expire_time`: at least the verifier's `exp` leeway
    /// (default 60 s; the verifier's default leeway is 30 s).
    pub expiry_grace: Duration,
    /// How often expired entries are dropped (default 10 s).
    pub prune_interval: Duration,
    /// The clock that entry expiry is judged by (default: the system clock; use the authorizer's).
    pub clock: Arc<dyn Clock>,
}

impl Default for RevocationWatcherConfig {
    fn default() -> Self {
        Self {
            initial_backoff: Duration::from_millis(250),
            max_backoff: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(5),
            idle_timeout: Duration::from_secs(45),
            capacity: 100_000,
            expiry_grace: Duration::from_secs(60),
            prune_interval: Duration::from_secs(10),
            clock: crate::clock::system(),
        }
    }
}

/// Follows the auth server's revocation stream and keeps a local denylist for the
/// [`Authorizer`](crate::Authorizer) ([`Authorizer::with_revocation_watcher`](crate::Authorizer::with_revocation_watcher)).
///
/// - **Endpoints.** It streams from one endpoint at a time; when a stream cannot be opened, fails,
///   ends or falls silent for `idle_timeout`, it moves to the next endpoint (round robin), at once
///   after a stream that worked, then with exponential backoff and jitter.
/// - **Resumption.** It reconnects with `after_sequence` = the last sequence received, so nothing
///   issued during the outage is missed; before its first complete snapshot (or after an overflow)
///   it asks for a full snapshot, which replaces the whole list when its last part arrives.
/// - **Authentication.** Each attempt takes a token from the [`TokenSource`] (it needs the role
///   `revocations:watch`); a stream refused or ended with `UNAUTHENTICATED` invalidates it.
/// - **Memory.** Entries are dropped after their `expire_time` plus `expiry_grace`; at most
///   `capacity` are held.
/// - **Health.** [`RevocationWatcher::status`].
///
/// Clones share one watcher; its tasks stop when the last clone is dropped. Needs a Tokio runtime.
///
/// ```no_run
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// use std::time::Duration;
/// use auth_interceptor::client::StaticToken;
/// use auth_interceptor::{
///     Authorizer, GrpcJwksFetcher, JwksSource, JwksSourceConfig, Policy, RevocationWatcher,
///     RevocationWatcherConfig, Rule, Verifier, VerifierConfig,
/// };
/// use tonic::transport::Endpoint;
///
/// let watcher = RevocationWatcher::start(
///     [
///         Endpoint::from_static("http://auth-a:50051"),
///         Endpoint::from_static("http://auth-b:50051"),
///     ],
///     StaticToken::new("<a token with the role revocations:watch>"),
///     RevocationWatcherConfig::default(),
/// )?;
/// watcher.wait_current(Duration::from_secs(10)).await?;
///
/// let keys = JwksSource::start(
///     GrpcJwksFetcher::from_uri("http://auth-a:50051")?,
///     JwksSourceConfig::default(),
/// );
/// let policy = Policy::builder()
///     .required("demo.v1.GreeterService/*")
///     // Refuse with UNAVAILABLE once revocations may have been missed for 30 s.
///     .rule(
///         "demo.v1.GreeterService/AdminHello",
///         Rule::any_role(["admin"]).fail_closed_after(Duration::from_secs(30)),
///     )
///     .build()?;
/// let layer = Authorizer::new(Verifier::new(VerifierConfig::new("auth-server", "internal")), keys)
///     .with_revocation_watcher(watcher.clone())
///     .layer(policy)?;
/// let status = watcher.status();
/// println!("connected={} lag={:?} events={}", status.connected, status.lag, status.events_applied);
/// # let _ = layer; Ok(()) }
/// ```
#[derive(Clone)]
pub struct RevocationWatcher {
    shared: Arc<Shared>,
    _tasks: Arc<Tasks>,
}

impl std::fmt::Debug for RevocationWatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RevocationWatcher")
            .field("status", &self.status())
            .finish_non_exhaustive()
    }
}

/// No endpoint was given to [`RevocationWatcher::start`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a revocation watcher needs at least one auth-server endpoint")]
pub struct NoEndpoints;

struct Shared {
    state: RwLock<State>,
    endpoints: Vec<String>,
    clock: Arc<dyn Clock>,
    /// Bumped after every change of `state`, for [`RevocationWatcher::wait_until`].
    changed: tokio::sync::watch::Sender<u64>,
}

struct Tasks(Vec<tokio::task::JoinHandle<()>>);

impl Drop for Tasks {
    fn drop(&mut self) {
        for t in &self.0 {
            t.abort();
        }
    }
}

impl Shared {
    fn read(&self) -> RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(|e| e.into_inner())
    }
    fn write(&self) -> RwLockWriteGuard<'_, State> {
        self.state.write().unwrap_or_else(|e| e.into_inner())
    }
    fn update<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        let out = f(&mut self.write());
        self.changed.send_modify(|n| *n = n.wrapping_add(1));
        out
    }
}

impl RevocationWatcher {
    /// Starts watching `endpoints` (tried in this order, then round robin) with tokens from
    /// `tokens`. Returns at once; [`RevocationWatcher::wait_current`] waits for the first snapshot.
    pub fn start(
        endpoints: impl IntoIterator<Item = Endpoint>,
        tokens: impl TokenSource,
        config: RevocationWatcherConfig,
    ) -> Result<Self, NoEndpoints> {
        let endpoints: Vec<Endpoint> = endpoints.into_iter().collect();
        if endpoints.is_empty() {
            return Err(NoEndpoints);
        }
        let names = endpoints.iter().map(|e| e.uri().to_string()).collect();
        let channels = endpoints.iter().map(Endpoint::connect_lazy).collect();
        let grace = config.expiry_grace.as_secs();
        let shared = Arc::new(Shared {
            state: RwLock::new(State::new(Denylist::new(config.capacity, grace))),
            endpoints: names,
            clock: config.clock.clone(),
            changed: tokio::sync::watch::channel(0).0,
        });
        let pruner = tokio::spawn(prune_loop(shared.clone(), config.prune_interval));
        let follower = tokio::spawn(follow(shared.clone(), channels, Box::new(tokens), config));
        Ok(Self {
            shared,
            _tasks: Arc::new(Tasks(vec![pruner, follower])),
        })
    }

    /// The watcher's health now.
    pub fn status(&self) -> WatcherStatus {
        self.shared
            .read()
            .status(&self.shared.endpoints, Instant::now())
    }

    /// Waits (at most `timeout`) until `done` holds for the status; returns the last status seen
    /// either way (`Err` on timeout).
    pub async fn wait_until(
        &self,
        timeout: Duration,
        mut done: impl FnMut(&WatcherStatus) -> bool,
    ) -> Result<WatcherStatus, WatcherStatus> {
        let mut changes = self.shared.changed.subscribe();
        let wait = async {
            loop {
                let status = self.status();
                if done(&status) {
                    return status;
                }
                if changes.changed().await.is_err() {
                    return status;
                }
            }
        };
        tokio::time::timeout(timeout, wait)
            .await
            .map_err(|_| self.status())
    }

    /// Waits (at most `timeout`) until the watcher is current (see [`WatcherStatus::connected`]).
    pub async fn wait_current(&self, timeout: Duration) -> Result<(), NotCurrent> {
        self.wait_until(timeout, |s| s.connected)
            .await
            .map(drop)
            .map_err(NotCurrent)
    }

    /// The request-path check of verified `claims` (signed with the key `kid()` names): revoked,
    /// or — for a rule that fails closed — stale beyond the rule's bound.
    pub(crate) fn check(
        &self,
        when_stale: WhenStale,
        claims: &Claims,
        kid: impl FnOnce() -> Option<String>,
    ) -> Result<(), AuthError> {
        let state = self.shared.read();
        if let Some(what) = state.list.check(claims, kid) {
            tracing::debug!(?what, "token revoked (revocation stream)");
            return Err(AuthError::Revoked);
        }
        if let WhenStale::RefuseAfter(bound) = when_stale
            && state.lag(Instant::now()) > bound
        {
            return Err(AuthError::RevocationsStale);
        }
        Ok(())
    }
}

/// The watcher did not become current in time; carries its status then.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the revocation watcher is not current (lag {:?}, reconnects {})", .0.lag, .0.reconnects)]
pub struct NotCurrent(pub WatcherStatus);

async fn prune_loop(shared: Arc<Shared>, every: Duration) {
    let mut tick = tokio::time::interval(every.max(Duration::from_millis(10)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let now = shared.clock.unix_now();
        let dropped = shared.update(|s| s.list.prune(now));
        if dropped > 0 {
            tracing::debug!(dropped, "expired revocations forgotten");
        }
    }
}

/// How one stream ended.
enum End {
    /// It delivered at least one message before ending: fail over at once.
    AfterWork,
    /// It could not be opened, or ended before delivering anything: back off.
    Failed,
}

async fn follow(
    shared: Arc<Shared>,
    channels: Vec<Channel>,
    tokens: Box<dyn TokenSource>,
    config: RevocationWatcherConfig,
) {
    let mut failures: u32 = 0;
    for index in (0..channels.len()).cycle() {
        let channel = channels[index].clone();
        let end = stream_once(&shared, index, channel, tokens.as_ref(), &config).await;
        failures = match end {
            End::AfterWork => 0,
            End::Failed => failures.saturating_add(1),
        };
        shared.update(|s| s.reconnects += 1);
        let wait = backoff::delay(
            failures,
            config.initial_backoff,
            config.max_backoff,
            backoff::unit_random(),
        );
        tokio::time::sleep(wait).await;
    }
}

/// Opens one stream on endpoint `index` and follows it until it ends.
async fn stream_once(
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

    use super::*;

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
