//! A call lives no longer than the token that authorised it. The layer checks a token when the
//! request headers arrive; without a bound, a caller could then hold the call open — send the request
//! body, or keep a stream running — long after the token expired, or after the user was demoted.
//! [`Expiry`] is the instant the token stops verifying (`exp` + leeway, on the injected clock);
//! the layer cancels a handler still running then, and [`ExpiringBody`] ends a response stream then,
//! both with `UNAUTHENTICATED`.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
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

/// When a verified token stops being acceptable: `exp` + leeway on the injected clock, turned into a
/// Tokio deadline only when a call actually waits (a call answered at once reads no clock for it).
#[derive(Clone)]
pub(crate) struct Expiry {
    /// Unix seconds after which the token no longer verifies.
    end: u64,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for Expiry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Expiry").field("end", &self.end).finish()
    }
}

impl Expiry {
    /// The end of `claims`' validity: `exp` plus `leeway`, on `clock`.
    pub(crate) fn of(claims: &Claims, leeway: Duration, clock: &Arc<dyn Clock>) -> Self {
        Self {
            end: claims.exp.saturating_add(leeway.as_secs()),
            clock: clock.clone(),
        }
    }

    /// The deadline as a Tokio instant, from the clock's now.
    pub(crate) fn deadline(&self) -> Instant {
        let left = self.end.saturating_sub(self.clock.unix_now());
        Instant::now() + Duration::from_secs(left)
    }
}

/// The refusal sent when a call outlives its token.
pub(crate) fn expired() -> AuthError {
    AuthError::Invalid(VerifyError::Expired)
}

/// A response body that ends with `UNAUTHENTICATED` trailers once its token has expired. The timer is
/// created only when the stream waits; a stream that never waits is checked against the deadline
/// every [`CHECK_EVERY`] frames, so a unary answer (two frames, ready at once) costs no clock read.
pub(crate) struct ExpiringBody {
    inner: tonic::body::Body,
    expiry: Expiry,
    sleep: Option<Pin<Box<Sleep>>>,
    frames: u32,
    done: bool,
}

/// How many ready frames may pass between two deadline checks of a stream that never waits.
const CHECK_EVERY: u32 = 8;

impl ExpiringBody {
    pub(crate) fn new(inner: tonic::body::Body, expiry: Expiry) -> Self {
        Self {
            inner,
            expiry,
            sleep: None,
            frames: 0,
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

    /// The timer of the deadline, created on first use.
    fn sleep(&mut self) -> Pin<&mut Sleep> {
        let expiry = &self.expiry;
        self.sleep
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(expiry.deadline())))
            .as_mut()
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
        if this
            .sleep
            .as_ref()
            .is_some_and(|s| s.deadline() <= Instant::now())
        {
            return this.expire();
        }
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(frame) => {
                this.frames += 1;
                if this.frames.is_multiple_of(CHECK_EVERY)
                    && this.sleep().deadline() <= Instant::now()
                {
                    return this.expire();
                }
                this.done = match &frame {
                    Some(Ok(f)) => f.is_trailers(),
                    Some(Err(_)) | None => true,
                };
                Poll::Ready(frame)
            }
            Poll::Pending => match this.sleep().poll(cx) {
                Poll::Ready(()) => this.expire(),
                Poll::Pending => Poll::Pending,
            },
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
pub(crate) async fn until_expiry<F: Future>(expiry: &Expiry, call: F) -> Option<F::Output> {
    let mut call = std::pin::pin!(call);
    if let Poll::Ready(out) = futures_util::poll!(call.as_mut()) {
        return Some(out);
    }
    tokio::time::timeout_at(expiry.deadline(), call).await.ok()
}
