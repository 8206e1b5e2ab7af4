//! The metric families of the server, created once at startup and registered in one
//! [`Registry`] (no global registry): the gRPC server metrics with the grpc-ecosystem names, and the
//! auth metrics, each recorded through a typed method whose label values are enums.

use std::sync::Arc;
use std::time::Duration;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};

use super::grpc_layer::GrpcMetricsLayer;
use super::labels::{
    Grant, HashLabels, HashOp, KeyState, KeyStateLabels, LoginLabels, LoginResult, RevokeLabels,
    RevokeReason, TokenKind, TokenLabels, ValidationLabels, ValidationReason, ValidationResult,
};
use super::methods::{GrpcCodeLabels, GrpcLabels, Method, MethodTable};

/// Buckets of `grpc_server_handling_seconds`: Prometheus' default buckets, as go-grpc-prometheus
/// uses them.
const HANDLING_BUCKETS: [f64; 11] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
/// Buckets of `auth_password_hash_duration_seconds`: argon2id at the OWASP minimum takes ≈ 15 ms on
/// one core; larger memory costs take up to seconds.
const HASH_BUCKETS: [f64; 10] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0];

fn handling_histogram() -> Histogram {
    Histogram::new(HANDLING_BUCKETS)
}

fn hash_histogram() -> Histogram {
    Histogram::new(HASH_BUCKETS)
}

/// A histogram family whose histograms share one set of buckets.
type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

/// The server's metrics; cheap to clone (one shared set of families).
#[derive(Debug, Clone)]
pub(crate) struct Metrics(Arc<Families>);

#[derive(Debug)]
struct Families {
    registry: Registry,
    grpc: Option<Arc<MethodTable>>,
    logins: Family<LoginLabels, Counter>,
    tokens: Family<TokenLabels, Counter>,
    validations: Family<ValidationLabels, Counter>,
    refresh_reuse: Counter,
    sessions_revoked: Family<RevokeLabels, Counter>,
    hash_seconds: HistogramFamily<HashLabels>,
    hash_queue_depth: Gauge,
    hash_permits_in_use: Gauge,
    hash_permits: Gauge,
    database_up: Gauge,
    signing_keys: Family<KeyStateLabels, Gauge>,
    revocation_head: Gauge,
    revocation_view_entries: Gauge,
    revocation_lag: Gauge,
    revocation_watchers: Gauge,
}

/// What the scrape-time gauges read from the running server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Snapshot {
    /// Logins waiting for a hashing permit.
    pub(crate) hash_queue_depth: usize,
    /// Hashing permits taken (hashing, or held by a login about to hash).
    pub(crate) hash_permits_in_use: usize,
    /// Hashing permits in all.
    pub(crate) hash_permits: usize,
    /// The database answered the last health probe.
    pub(crate) database_up: bool,
    /// Published signing keys: current, next, retired.
    pub(crate) signing_keys: [usize; 3],
    /// The last revocation log sequence applied to the view.
    pub(crate) revocation_head: i64,
    /// Entries in the revocation view.
    pub(crate) revocation_view_entries: usize,
    /// Seconds since the revocation log was last read.
    pub(crate) revocation_lag: i64,
    /// `WatchRevocations` streams open.
    pub(crate) revocation_watchers: usize,
}

/// Registers the `grpc_server_*` families in `registry` and resolves the handles of `methods`.
fn grpc_families(registry: &mut Registry, methods: &[Method]) -> MethodTable {
    let started = Family::<GrpcLabels, Counter>::default();
    let handled = Family::<GrpcCodeLabels, Counter>::default();
    let handling: HistogramFamily<GrpcLabels> = Family::new_with_constructor(handling_histogram);
    registry.register(
        "grpc_server_started",
        "Total number of RPCs started on the server",
        started.clone(),
    );
    registry.register(
        "grpc_server_handled",
        "Total number of RPCs completed on the server, regardless of success or failure",
        handled.clone(),
    );
    registry.register_with_unit(
        "grpc_server_handling",
        "Histogram of response latency (seconds) of gRPC that had been application-level handled by the server",
        Unit::Seconds,
        handling.clone(),
    );
    MethodTable::new(methods, &started, &handled, &handling)
}

impl Metrics {
    /// Creates every family and registers it. `grpc` are the gRPC methods the server serves (each gets
    /// its own labels, created at zero now), or `None` when calls are not measured (no `grpc_server_*`
    /// families at all then).
    pub(crate) fn new(grpc: Option<&[Method]>) -> Self {
        let mut registry = Registry::default();
        let grpc = grpc.map(|methods| Arc::new(grpc_families(&mut registry, methods)));
        let mut f = Families {
            grpc,
            logins: Family::default(),
            tokens: Family::default(),
            validations: Family::default(),
            refresh_reuse: Counter::default(),
            sessions_revoked: Family::default(),
            hash_seconds: Family::new_with_constructor(hash_histogram),
            hash_queue_depth: Gauge::default(),
            hash_permits_in_use: Gauge::default(),
            hash_permits: Gauge::default(),
            database_up: Gauge::default(),
            signing_keys: Family::default(),
            revocation_head: Gauge::default(),
            revocation_view_entries: Gauge::default(),
            revocation_lag: Gauge::default(),
            revocation_watchers: Gauge::default(),
            registry,
        };
        let r = &mut f.registry;
        r.register("auth_logins", "Logins by result.", f.logins.clone());
        r.register(
            "auth_tokens_issued",
            "Tokens issued, by kind (access, refresh) and grant (password = Login, refresh_token = Refresh)",
            f.tokens.clone(),
        );
        r.register(
            "auth_validations",
            "Validate answers by result and reason",
            f.validations.clone(),
        );
        r.register(
            "auth_refresh_reuse_detected",
            "Spent refresh tokens presented again (each ends its session)",
            f.refresh_reuse.clone(),
        );
        r.register(
            "auth_sessions_revoked",
            "Sessions ended before their expiry, by reason",
            f.sessions_revoked.clone(),
        );
        r.register_with_unit(
            "auth_password_hash_duration",
            "Time of one argon2id computation on a hashing thread, by operation",
            Unit::Seconds,
            f.hash_seconds.clone(),
        );
        r.register(
            "auth_password_hash_queue_depth",
            "Logins waiting for a hashing permit (beyond AUTH_HASH_QUEUE they are shed)",
            f.hash_queue_depth.clone(),
        );
        r.register(
            "auth_password_hash_permits_in_use",
            "Hashing permits taken",
            f.hash_permits_in_use.clone(),
        );
        r.register(
            "auth_password_hash_permits",
            "Hashing permits in all (AUTH_HASH_CONCURRENCY)",
            f.hash_permits.clone(),
        );
        r.register(
            "auth_database_up",
            "1 if the database answered the last health probe, else 0",
            f.database_up.clone(),
        );
        r.register(
            "auth_signing_keys",
            "Published signing keys by state",
            f.signing_keys.clone(),
        );
        r.register(
            "auth_revocation_log_head",
            "The last revocation log sequence applied to this replica's view",
            f.revocation_head.clone(),
        );
        r.register(
            "auth_revocation_view_entries",
            "Unexpired revocations held in memory (revoked sessions, subjects' not-before, revoked keys)",
            f.revocation_view_entries.clone(),
        );
        r.register_with_unit(
            "auth_revocation_follower_lag",
            "Seconds since the revocation log was last read (beyond AUTH_REVOCATION_MAX_STALENESS Validate answers UNAVAILABLE)",
            Unit::Seconds,
            f.revocation_lag.clone(),
        );
        r.register(
            "auth_revocation_watchers",
            "WatchRevocations streams open (at most AUTH_MAX_REVOCATION_WATCHERS)",
            f.revocation_watchers.clone(),
        );
        for state in KeyState::ALL {
            let _ = f
                .signing_keys
                .get_or_create_owned(&KeyStateLabels { state: *state });
        }
        Self(Arc::new(f))
    }

    /// The tower layer recording `grpc_server_*` for every call, unless calls are not measured.
    pub(crate) fn grpc_layer(&self) -> Option<GrpcMetricsLayer> {
        self.0.grpc.clone().map(GrpcMetricsLayer::new)
    }

    /// The registry to encode.
    pub(crate) fn registry(&self) -> &Registry {
        &self.0.registry
    }

    /// A `Login` ended.
    pub(crate) fn login(&self, result: LoginResult) {
        self.0.logins.get_or_create(&LoginLabels { result }).inc();
    }

    /// An access and a refresh token were issued for `grant`.
    pub(crate) fn token_pair_issued(&self, grant: Grant) {
        for kind in [TokenKind::Access, TokenKind::Refresh] {
            self.0
                .tokens
                .get_or_create(&TokenLabels { kind, grant })
                .inc();
        }
    }

    /// A service token (an access token, no refresh token) was issued.
    pub(crate) fn service_token_issued(&self) {
        let labels = TokenLabels {
            kind: TokenKind::Access,
            grant: Grant::ClientCredentials,
        };
        self.0.tokens.get_or_create(&labels).inc();
    }

    /// `Validate` answered.
    pub(crate) fn validation(&self, result: ValidationResult, reason: ValidationReason) {
        self.0
            .validations
            .get_or_create(&ValidationLabels { result, reason })
            .inc();
    }

    /// A spent refresh token was presented again.
    pub(crate) fn refresh_reuse_detected(&self) {
        self.0.refresh_reuse.inc();
    }

    /// `count` sessions were ended for `reason`.
    pub(crate) fn sessions_revoked(&self, reason: RevokeReason, count: u64) {
        if count > 0 {
            self.0
                .sessions_revoked
                .get_or_create(&RevokeLabels { reason })
                .inc_by(count);
        }
    }

    /// One argon2id computation took `took`.
    pub(crate) fn password_hashed(&self, op: HashOp, took: Duration) {
        self.0
            .hash_seconds
            .get_or_create(&HashLabels { op })
            .observe(took.as_secs_f64());
    }

    /// Sets the gauges read at scrape time.
    pub(crate) fn set_snapshot(&self, s: &Snapshot) {
        let f = &self.0;
        let gauge = |n: usize| i64::try_from(n).unwrap_or(i64::MAX);
        f.hash_queue_depth.set(gauge(s.hash_queue_depth));
        f.hash_permits_in_use.set(gauge(s.hash_permits_in_use));
        f.hash_permits.set(gauge(s.hash_permits));
        f.database_up.set(i64::from(s.database_up));
        f.revocation_head.set(s.revocation_head);
        f.revocation_view_entries
            .set(gauge(s.revocation_view_entries));
        f.revocation_lag.set(s.revocation_lag);
        f.revocation_watchers.set(gauge(s.revocation_watchers));
        for (state, n) in KeyState::ALL.iter().zip(s.signing_keys) {
            f.signing_keys
                .get_or_create(&KeyStateLabels { state: *state })
                .set(gauge(n));
        }
    }
}
