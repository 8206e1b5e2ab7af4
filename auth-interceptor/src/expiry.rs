//! A call lives no longer than the token that authorised it. The layer checks a token when the
//! request headers arrive; without a bound, a caller could then hold the call open — send the request
//! body, or keep a stream running — long after the token expired, or after the user was demoted.
//! [`Expiry`] is the instant the token stops verifying (`exp` + leeway, on the injected clock);
//! the layer cancels a handler still running then, and [`ExpiringBody`] ends a response stream then,
//! both with `UNAUTHENTICATED`.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::HeaderMap;
use http_body::{Body, Frame, SizeHint};
use tokio::time::{Instant, Sleep};

use crate::claims::Claims;
use crate::clock::Clock;
use crate::error::AuthError;
use crate::verify::VerifyError;

/// When a verified token stops being acceptable, as a Tokio instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Expiry(pub(crate) Instant);

impl Expiry {
    /// The end of `claims`' validity: `exp` plus `leeway`, measured from `clock`'s now.
    pub(crate) fn of(claims: &Claims, leeway: Duration, clock: &dyn Clock) -> Self {
        let end = claims.exp.saturating_add(leeway.as_secs());
        let left = end.saturating_sub(clock.unix_now());
        Self(Instant::now() + Duration::from_secs(left))
    }
}

/// The refusal sent when a call outlives its token.
pub(crate) fn expired() -> AuthError {
    AuthError::Invalid(VerifyError::Expired)
}

/// A response body that ends with `UNAUTHENTICATED` trailers once its token has expired. The timer is
/// only created when the stream actually waits, so a unary answer (ready at once) costs a clock read.
pub(crate) struct ExpiringBody {
    inner: tonic::body::Body,
    expiry: Expiry,
    sleep: Option<Pin<Box<Sleep>>>,
    done: bool,
}

impl ExpiringBody {
    pub(crate) fn new(inner: tonic::body::Body, expiry: Expiry) -> Self {
        Self {
            inner,
            expiry,
            sleep: None,
            done: false,
        }
    }

    fn expire(&mut self) -> Poll<Option<Result<Frame<Bytes>, tonic::Status>>> {
        self.done = true;
        tracing::debug!("token expired while its call was open; ending the stream");
        let mut trailers = HeaderMap::new();
        // `add_header` only fails on a message that is not a valid header value; ours is fixed.
        let _ = expired().into_status().add_header(&mut trailers);
        Poll::Ready(Some(Ok(Frame::trailers(trailers))))
    }
}

impl Body for ExpiringBody {
    type Data = Bytes;
    type Error = tonic::Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, tonic::Status>>> {
        let this = &mut *self;
        if this.done {
            return Poll::Ready(None);
        }
        if Instant::now() >= this.expiry.0 {
            return this.expire();
        }
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(frame) => {
                let last = match &frame {
                    Some(Ok(f)) => f.is_trailers(),
                    Some(Err(_)) | None => true,
                };
                this.done = last;
                Poll::Ready(frame)
            }
            Poll::Pending => {
                let at = this.expiry.0;
                let sleep = this
                    .sleep
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(at)));
                match sleep.as_mut().poll(cx) {
                    Poll::Ready(()) => this.expire(),
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.done || self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Runs `call` until it completes or `expiry` passes, whichever is first. The first poll happens
/// without a timer, so a handler that answers at once never registers one.
pub(crate) async fn until_expiry<F: Future>(expiry: Expiry, call: F) -> Option<F::Output> {
    let mut call = std::pin::pin!(call);
    if Instant::now() >= expiry.0 {
        return None;
    }
    if let Poll::Ready(out) = futures_util::poll!(call.as_mut()) {
        return Some(out);
    }
    tokio::time::timeout_at(expiry.0, call).await.ok()
}
