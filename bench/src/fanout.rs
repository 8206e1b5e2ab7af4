//! Fan-out of `WatchRevocations`: `streams` concurrent watcher streams on one replica (spread over
//! `connections` HTTP/2 connections, as a fleet of services would be), then `revocations` logouts
//! one after the other, measuring for each the time from the `Logout` call until every stream has
//! received its revocation.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use auth_proto::v1::admin_service_client::AdminServiceClient;
use auth_proto::v1::auth_service_client::AuthServiceClient;
use auth_proto::v1::watch_revocations_response::Message;
use auth_proto::v1::{CreateUserRequest, LoginRequest, LogoutRequest, WatchRevocationsRequest};
use base64::Engine;
use hdrhistogram::Histogram;
use tonic::metadata::MetadataValue;
use tonic::transport::{Channel, Endpoint};

/// What to measure.
#[derive(Debug, Clone)]
pub struct FanoutOpts {
    /// Concurrent `WatchRevocations` streams.
    pub streams: usize,
    /// HTTP/2 connections the streams are spread over.
    pub connections: usize,
    /// Revocations (logouts) issued, one at a time.
    pub revocations: usize,
    /// Pause between two revocations.
    pub gap: Duration,
    /// Longest wait for one revocation to reach every stream.
    pub timeout: Duration,
}

/// The figures of one run.
#[derive(Debug)]
pub struct FanoutReport {
    /// Per revocation: Logout call → the last of the streams received it, µs.
    pub all_streams: Histogram<u64>,
    /// Per delivery (revocation × stream): Logout call → that stream received it, µs.
    pub each_stream: Histogram<u64>,
    /// Time to open every stream and receive every snapshot.
    pub open_time: Duration,
    /// Streams open at the end.
    pub streams: usize,
}

impl FanoutReport {
    /// One Markdown table row per histogram.
    pub fn markdown(&self, label: &str) -> String {
        let ms = |h: &Histogram<u64>, q: f64| h.value_at_quantile(q) as f64 / 1000.0;
        let row = |what: &str, h: &Histogram<u64>| {
            format!(
                "| {label} | {what} | {} | {:.2} | {:.2} | {:.2} |",
                h.len(),
                ms(h, 0.5),
                ms(h, 0.99),
                h.max() as f64 / 1000.0
            )
        };
        format!(
            "| run | latency of | samples | p50 ms | p99 ms | max ms |\n|---|---|---:|---:|---:|---:|\n{}\n{}",
            row("revocation → all streams", &self.all_streams),
            row("revocation → one stream", &self.each_stream),
        )
    }
}

struct Tracking {
    /// sid → index of the revocation.
    index: HashMap<String, usize>,
    /// Per revocation: when its Logout was called, ns since `base` (0 before).
    issued: Vec<AtomicU64>,
    /// Per revocation: streams that received it.
    received: Vec<AtomicUsize>,
    /// Per revocation: the latest arrival, ns since `base`.
    last_arrival: Vec<AtomicU64>,
    each: Mutex<Histogram<u64>>,
    base: Instant,
    /// Streams whose snapshot is complete.
    ready: AtomicUsize,
    /// Streams that ended.
    ended: AtomicUsize,
}

fn bearer(token: &str) -> anyhow::Result<MetadataValue<tonic::metadata::Ascii>> {
    Ok(MetadataValue::try_from(format!("Bearer {token}"))?)
}

fn sid_of(access_token: &str) -> anyhow::Result<String> {
    let payload = access_token.split('.').nth(1).context("a JWT")?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload)?;
    let claims: serde_json::Value = serde_json::from_slice(&bytes)?;
    Ok(claims["sid"].as_str().context("sid")?.to_owned())
}

async fn login(channel: &Channel, user: &str, password: &str) -> anyhow::Result<(String, String)> {
    let r = AuthServiceClient::new(channel.clone())
        .login(LoginRequest {
            username: user.into(),
            password: password.into(),
        })
        .await
        .with_context(|| format!("login {user}"))?
        .into_inner();
    Ok((r.access_token, r.refresh_token))
}

/// Runs the measurement against the server at `addr`, administered as `admin`/`admin_password`.
pub async fn run(
    addr: SocketAddr,
    admin: &str,
    admin_password: &str,
    opts: &FanoutOpts,
) -> anyhow::Result<FanoutReport> {
    let endpoint = Endpoint::from_shared(format!("http://{addr}"))?
        .tcp_nodelay(true)
        .connect_timeout(Duration::from_secs(5));
    let control = endpoint.connect().await?;
    let (admin_token, _) = login(&control, admin, admin_password).await?;
    let password = format!("fanout-{}", uuid::Uuid::new_v4().simple());
    let mut admin_client = AdminServiceClient::new(control.clone());
    for (name, roles) in [
        ("fanout-watcher", vec!["revocations:watch"]),
        ("fanout-user", vec![]),
    ] {
        let mut req = tonic::Request::new(CreateUserRequest {
            username: name.into(),
            password: password.clone(),
            roles: roles.into_iter().map(str::to_owned).collect(),
        });
        req.metadata_mut()
            .insert("authorization", bearer(&admin_token)?);
        admin_client.create_user(req).await.context("create user")?;
    }
    let (watch_token, _) = login(&control, "fanout-watcher", &password).await?;
    let mut sessions = Vec::with_capacity(opts.revocations);
    for _ in 0..opts.revocations {
        let (access, refresh) = login(&control, "fanout-user", &password).await?;
        sessions.push((sid_of(&access)?, refresh));
    }
    let tracking = Arc::new(Tracking {
        index: sessions
            .iter()
            .enumerate()
            .map(|(i, (sid, _))| (sid.clone(), i))
            .collect(),
        issued: (0..opts.revocations).map(|_| AtomicU64::new(0)).collect(),
        received: (0..opts.revocations).map(|_| AtomicUsize::new(0)).collect(),
        last_arrival: (0..opts.revocations).map(|_| AtomicU64::new(0)).collect(),
        each: Mutex::new(Histogram::new(3)?),
        base: Instant::now(),
        ready: AtomicUsize::new(0),
        ended: AtomicUsize::new(0),
    });

    let opened = Instant::now();
    let mut connections = Vec::new();
    for _ in 0..opts.connections.max(1) {
        connections.push(endpoint.connect().await?);
    }
    let mut tasks = Vec::with_capacity(opts.streams);
    for i in 0..opts.streams {
        let channel = connections[i % connections.len()].clone();
        let (tracking, token) = (tracking.clone(), watch_token.clone());
        tasks.push(tokio::spawn(async move {
            let result = follow(channel, &token, &tracking).await;
            tracking.ended.fetch_add(1, Ordering::SeqCst);
            result
        }));
    }
    while tracking.ready.load(Ordering::SeqCst) < opts.streams {
        if tracking.ended.load(Ordering::SeqCst) > 0 {
            let ended = tasks
                .iter()
                .position(|t| t.is_finished())
                .context("ended")?;
            let task = tasks.swap_remove(ended);
            bail!("a stream ended while opening: {:?}", task.await?);
        }
        if opened.elapsed() > Duration::from_secs(60) {
            bail!(
                "only {} of {} streams open after 60 s",
                tracking.ready.load(Ordering::SeqCst),
                opts.streams
            );
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let open_time = opened.elapsed();

    let mut all = Histogram::<u64>::new(3)?;
    for (i, (_, refresh)) in sessions.iter().enumerate() {
        tokio::time::sleep(opts.gap).await;
        let issued = tracking.base.elapsed().as_nanos() as u64;
        tracking.issued[i].store(issued.max(1), Ordering::SeqCst);
        AuthServiceClient::new(control.clone())
            .logout(LogoutRequest {
                refresh_token: refresh.clone(),
            })
            .await
            .context("logout")?;
        let deadline = Instant::now() + opts.timeout;
        while tracking.received[i].load(Ordering::SeqCst) < opts.streams {
            if Instant::now() > deadline {
                bail!(
                    "revocation {i}: {} of {} streams within {:?}",
                    tracking.received[i].load(Ordering::SeqCst),
                    opts.streams,
                    opts.timeout
                );
            }
            tokio::time::sleep(Duration::from_micros(200)).await;
        }
        let last = tracking.last_arrival[i].load(Ordering::SeqCst);
        all.record(last.saturating_sub(issued) / 1000)?;
    }
    let streams = opts.streams - tracking.ended.load(Ordering::SeqCst);
    for t in &tasks {
        t.abort();
    }
    let each = tracking
        .each
        .lock()
        .map_err(|_| anyhow::anyhow!("poisoned"))?
        .clone();
    Ok(FanoutReport {
        all_streams: all,
        each_stream: each,
        open_time,
        streams,
    })
}

/// One watcher stream: waits for its snapshot, then records every revocation it receives.
async fn follow(channel: Channel, token: &str, tracking: &Tracking) -> anyhow::Result<()> {
    let mut req = tonic::Request::new(WatchRevocationsRequest { after_sequence: 0 });
    req.metadata_mut().insert("authorization", bearer(token)?);
    let mut stream = AuthServiceClient::new(channel)
        .watch_revocations(req)
        .await?
        .into_inner();
    while let Some(message) = stream.message().await? {
        match message.message {
            Some(Message::Snapshot(part)) if part.last => {
                tracking.ready.fetch_add(1, Ordering::SeqCst);
            }
            Some(Message::Revocation(r)) => {
                let now = tracking.base.elapsed().as_nanos() as u64;
                let Some(&i) = tracking.index.get(&r.target) else {
                    continue;
                };
                let issued = tracking.issued[i].load(Ordering::SeqCst);
                tracking.last_arrival[i].fetch_max(now, Ordering::SeqCst);
                if let Ok(mut h) = tracking.each.lock() {
                    let _ = h.record(now.saturating_sub(issued) / 1000);
                }
                tracking.received[i].fetch_add(1, Ordering::SeqCst);
            }
            _ => {}
        }
    }
    bail!("the stream ended")
}
