//! Whether the database answers, and failing fast when it does not. The health probe
//! (`housekeeping`) pings the database twice a second and records the answer here; while the database
//! is known to be down, [`RequireDatabase`] answers every call that needs it at once with
//! `UNAVAILABLE` and `grpc-retry-pushback-ms`, instead of letting it wait for a connection until the
//! client's deadline. Calls that need no database keep working: `GetJwks`, health, reflection, and
//! `Validate` and `WatchRevocations`, served from the revocation view (which answers for at most
//! `AUTH_REVOCATION_MAX_STALENESS` without the database, then `UNAVAILABLE` on its own).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

use futures_util::future::{BoxFuture, Either, Ready, ready};
use tower::{Layer, Service};

/// How long a caller is told to wait before retrying while the database is down, milliseconds.
pub(crate) const DATABASE_DOWN_PUSHBACK_MS: &str = "1000";

/// The database's reachability as last probed. Starts reachable (the server only starts once it
/// has connected and migrated).
#[derive(Debug, Clone)]
pub(crate) struct DatabaseStatus(Arc<AtomicBool>);

impl Default for DatabaseStatus {
    fn default() -> Self {
        Self(Arc::new(AtomicBool::new(true)))
    }
}

impl DatabaseStatus {
    pub(crate) fn is_up(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }

    /// Records a probe's answer; true when it changed.
    pub(crate) fn set(&self, up: bool) -> bool {
        self.0.swap(up, Ordering::AcqRel) != up
    }
}

/// The methods answered from memory.
const FROM_MEMORY: [&str; 3] = [
    "/auth.v1.AuthService/GetJwks",
    "/auth.v1.AuthService/Validate",
    "/auth.v1.AuthService/WatchRevocations",
];

/// The methods that can be answered without the database.
fn needs_database(path: &str) -> bool {
    path.starts_with("/auth.v1.") && !FROM_MEMORY.contains(&path)
}

/// Fails calls that need the database fast while it is down.
#[derive(Debug, Clone)]
pub(crate) struct RequireDatabaseLayer(pub(crate) DatabaseStatus);

impl<S> Layer<S> for RequireDatabaseLayer {
    type Service = RequireDatabase<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RequireDatabase {
            inner,
            status: self.0.clone(),
        }
    }
}

/// The service of [`RequireDatabaseLayer`].
#[derive(Debug, Clone)]
pub(crate) struct RequireDatabase<S> {
    inner: S,
    status: DatabaseStatus,
}

impl<S, B> Service<http::Request<B>> for RequireDatabase<S>
where
    S: Service<http::Request<B>, Response = http::Response<tonic::body::Body>>,
    S::Future: Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = S::Error;
    type Future = Either<
        BoxFuture<'static, Result<Self::Response, S::Error>>,
        Ready<Result<Self::Response, S::Error>>,
    >;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        if !self.status.is_up() && needs_database(req.uri().path()) {
            tracing::debug!(method = req.uri().path(), "database down: failing fast");
            let mut status = tonic::Status::unavailable("storage unavailable");
            status.metadata_mut().insert(
                "grpc-retry-pushback-ms",
                tonic::metadata::MetadataValue::from_static(DATABASE_DOWN_PUSHBACK_MS),
            );
            return Either::Right(ready(Ok(status.into_http())));
        }
        Either::Left(Box::pin(self.inner.call(req)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_database_methods_are_refused() {
        assert!(needs_database("/auth.v1.AuthService/Login"));
        assert!(needs_database("/auth.v1.AuthService/ChangePassword"));
        assert!(needs_database("/auth.v1.AdminService/ListUsers"));
        assert!(!needs_database("/auth.v1.AuthService/GetJwks"));
        assert!(!needs_database("/auth.v1.AuthService/Validate"));
        assert!(!needs_database("/auth.v1.AuthService/WatchRevocations"));
        assert!(!needs_database("/grpc.health.v1.Health/Check"));
        assert!(!needs_database(
            "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo"
        ));
    }
}
