//! The load engine: closed loop (N calls always in flight) or open loop (a fixed arrival rate, latency
//! measured from the intended start so a stalled server is not hidden), bounded in time.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use crate::report::Report;

/// Outcome of one call: `Err` names the failure class (a gRPC code, "timeout", ...).
pub type CallResult = Result<(), String>;
/// A boxed call future.
pub type CallFuture = Pin<Box<dyn Future<Output = CallResult> + Send>>;
/// Makes call number `n` of worker `worker`.
pub type CallFn = Arc<dyn Fn(usize) -> CallFuture + Send + Sync>;

/// Shape of the load.
#[derive(Debug, Clone)]
pub struct LoadOpts {
    /// Calls in flight (closed loop), or the bound on calls in flight (open loop).
    pub concurrency: usize,
    /// Measured window.
    pub duration: Duration,
    /// Load applied before the window, not measured.
    pub warmup: Duration,
    /// Open loop: calls started per second.
    pub rate: Option<f64>,
    /// Deadline of one call.
    pub call_timeout: Duration,
}

struct Stats {
    ok: Histogram<u64>,
    err: Histogram<u64>,
    errors: BTreeMap<String, u64>,
}

impl Stats {
    fn new() -> Self {
        // Microseconds, 1 µs .. 120 s, 3 significant digits.
        let h = || Histogram::new_with_bounds(1, 120_000_000, 3).unwrap_or_else(|_| unreachable());
        Self {
            ok: h(),
            err: h(),
            errors: BTreeMap::new(),
        }
    }

    fn record(&mut self, r: &CallResult, took: Duration) {
        let us = (took.as_micros() as u64).clamp(1, 120_000_000);
        match r {
            Ok(()) => self.ok.saturating_record(us),
            Err(kind) => {
                self.err.saturating_record(us);
                *self.errors.entry(kind.clone()).or_default() += 1;
            }
        }
    }

    fn merge(&mut self, other: &Stats) {
        let _ = self.ok.add(&other.ok);
        let _ = self.err.add(&other.err);
        for (k, v) in &other.errors {
            *self.errors.entry(k.clone()).or_default() += v;
        }
    }
}

fn unreachable() -> Histogram<u64> {
    panic!("histogram bounds are valid")
}

async fn timed(call: &CallFn, worker: usize, timeout: Duration) -> CallResult {
    match tokio::time::timeout(timeout, call(worker)).await {
        Ok(r) => r,
        Err(_) => Err("timeout".into()),
    }
}

/// Runs the load and summarises it (server memory is filled in by the caller).
pub async fn run(label: &str, opts: &LoadOpts, call: CallFn) -> Report {
    let start = Instant::now();
    let measure_from = start + opts.warmup;
    let end = measure_from + opts.duration;
    let stats = match opts.rate {
        None => closed(opts, call, measure_from, end).await,
        Some(rate) => open(opts, rate, call, measure_from, end).await,
    };
    let secs = opts.duration.as_secs_f64();
    let ms = |h: &Histogram<u64>, q: f64| {
        if h.is_empty() {
            0.0
        } else {
            h.value_at_quantile(q) as f64 / 1000.0
        }
    };
    Report {
        label: label.to_owned(),
        ok_per_sec: stats.ok.len() as f64 / secs,
        err_per_sec: stats.err.len() as f64 / secs,
        p50_ms: ms(&stats.ok, 0.50),
        p90_ms: ms(&stats.ok, 0.90),
        p99_ms: ms(&stats.ok, 0.99),
        max_ms: if stats.ok.is_empty() {
            0.0
        } else {
            stats.ok.max() as f64 / 1000.0
        },
        err_p99_ms: ms(&stats.err, 0.99),
        errors: stats.errors,
        load: match opts.rate {
            None => format!("{} in flight", opts.concurrency),
            Some(r) => format!("open loop {r:.0}/s (≤ {} in flight)", opts.concurrency),
        },
        seconds: secs,
        ..Report::default()
    }
}

async fn closed(opts: &LoadOpts, call: CallFn, measure_from: Instant, end: Instant) -> Stats {
    let mut tasks = Vec::with_capacity(opts.concurrency);
    for worker in 0..opts.concurrency {
        let call = call.clone();
        let timeout = opts.call_timeout;
        tasks.push(tokio::spawn(async move {
            let mut stats = Stats::new();
            loop {
                let t0 = Instant::now();
                if t0 >= end {
                    break;
                }
                let r = timed(&call, worker, timeout).await;
                if t0 >= measure_from {
                    stats.record(&r, t0.elapsed());
                }
            }
            stats
        }));
    }
    let mut total = Stats::new();
    for t in tasks {
        if let Ok(s) = t.await {
            total.merge(&s);
        }
    }
    total
}

async fn open(
    opts: &LoadOpts,
    rate: f64,
    call: CallFn,
    measure_from: Instant,
    end: Instant,
) -> Stats {
    let shared = Arc::new(Mutex::new(Stats::new()));
    let in_flight = Arc::new(AtomicUsize::new(0));
    let step = Duration::from_secs_f64(1.0 / rate.max(0.001));
    let mut intended = Instant::now();
    let mut n = 0usize;
    let mut tasks = tokio::task::JoinSet::new();
    while intended < end {
        tokio::time::sleep_until(intended.into()).await;
        let measured = intended >= measure_from;
        if in_flight.load(Ordering::Relaxed) >= opts.concurrency {
            if measured {
                let mut s = shared.lock().unwrap_or_else(|p| p.into_inner());
                *s.errors.entry("client-side overflow".into()).or_default() += 1;
            }
        } else {
            in_flight.fetch_add(1, Ordering::Relaxed);
            let (call, shared, in_flight) = (call.clone(), shared.clone(), in_flight.clone());
            let timeout = opts.call_timeout;
            let at = intended;
            tasks.spawn(async move {
                let r = timed(&call, n, timeout).await;
                in_flight.fetch_sub(1, Ordering::Relaxed);
                if measured {
                    // From the intended start: a call that had to wait for a free slot counts it.
                    let took = at.elapsed();
                    shared
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .record(&r, took);
                }
            });
        }
        n += 1;
        intended += step;
        while tasks.try_join_next().is_some() {}
    }
    while tasks.join_next().await.is_some() {}
    let mut total = Stats::new();
    total.merge(&shared.lock().unwrap_or_else(|p| p.into_inner()));
    total
}
