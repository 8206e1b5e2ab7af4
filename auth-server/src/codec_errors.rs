//! A tower layer that gives codec failures the right gRPC status: tonic reports an undecodable request
//! (e.g. invalid UTF-8 in a `string` field) as `INTERNAL` with prost's decode text, and an oversized
//! message as `OUT_OF_RANGE`. Callers get `INVALID_ARGUMENT "malformed request message"` and
//! `RESOURCE_EXHAUSTED "request message too large"` instead, with nothing of their input echoed.

use std::task::{Context, Poll};

use futures_util::future::BoxFuture;
use http::{HeaderMap, HeaderValue};
use tower::{Layer, Service};

/// Adds [`CodecErrors`] around a service.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct CodecErrorLayer;

impl<S> Layer<S> for CodecErrorLayer {
    type Service = CodecErrors<S>;

    fn layer(&self, inner: S) -> Self::Service {
        CodecErrors { inner }
    }
}

/// See the module documentation.
#[derive(Debug, Clone)]
pub(crate) struct CodecErrors<S> {
    inner: S,
}

impl<S, ReqBody, ResBody> Service<http::Request<ReqBody>> for CodecErrors<S>
where
    S: Service<http::Request<ReqBody>, Response = http::Response<ResBody>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<ReqBody>) -> Self::Future {
        let future = self.inner.call(request);
        Box::pin(async move {
            let mut response = future.await?;
            rewrite(response.headers_mut());
            Ok(response)
        })
    }
}

/// Rewrites a trailers-only codec error in `headers`, if there is one.
fn rewrite(headers: &mut HeaderMap) {
    let (Some(code), Some(message)) = (headers.get("grpc-status"), headers.get("grpc-message"))
    else {
        return;
    };
    // tonic percent-encodes grpc-message (spaces included).
    let message = percent_decode(message.as_bytes());
    let message = message.as_slice();
    let replacement = match code.as_bytes() {
        b"13" if message.starts_with(b"failed to decode Protobuf message") => {
            ("3", "malformed request message")
        }
        b"11" if message.starts_with(b"Error, decoded message length too large") => {
            ("8", "request message too large")
        }
        _ => return,
    };
    tracing::debug!(code = ?headers.get("grpc-status"), "codec error rewritten");
    headers.insert("grpc-status", HeaderValue::from_static(replacement.0));
    headers.insert("grpc-message", HeaderValue::from_static(replacement.1));
}

/// Decodes `%XX` escapes (invalid escapes are kept as they are).
fn percent_decode(input: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(input.len());
    let mut i = 0;
    while i < input.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if input[i] == b'%'
            && i + 2 < input.len()
            && let (Some(h), Some(l)) = (hex(input[i + 1]), hex(input[i + 2]))
        {
            out.push((h * 16 + l) as u8);
            i += 3;
        } else {
            out.push(input[i]);
            i += 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(code: &'static str, message: &'static str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("grpc-status", HeaderValue::from_static(code));
        h.insert("grpc-message", HeaderValue::from_static(message));
        h
    }

    #[test]
    fn decode_errors_become_invalid_argument() {
        let mut h = headers(
            "13",
            "failed to decode Protobuf message: LoginRequest.password: invalid string value: data is not UTF-8 encoded",
        );
        rewrite(&mut h);
        assert_eq!(h["grpc-status"], "3");
        assert_eq!(h["grpc-message"], "malformed request message");
    }

    #[test]
    fn oversized_messages_become_resource_exhausted() {
        let mut h = headers(
            "11",
            "Error, decoded message length too large: found 5242880 bytes, the limit is: 65536 bytes",
        );
        rewrite(&mut h);
        assert_eq!(
            (h["grpc-status"].as_bytes(), h["grpc-message"].as_bytes()),
            (&b"8"[..], &b"request message too large"[..])
        );
    }

    #[test]
    fn percent_encoded_messages_are_recognised() {
        let mut h = headers(
            "13",
            "failed%20to%20decode%20Protobuf%20message:%20LoginRequest.password",
        );
        rewrite(&mut h);
        assert_eq!(h["grpc-status"], "3");
        assert_eq!(percent_decode(b"a%20b%2"), b"a b%2");
    }

    #[test]
    fn other_statuses_are_untouched() {
        for (code, msg) in [
            ("13", "internal error"),
            ("16", "invalid token"),
            ("11", "out of range"),
        ] {
            let mut h = headers(code, msg);
            rewrite(&mut h);
            assert_eq!(
                (
                    h["grpc-status"].to_str().unwrap(),
                    h["grpc-message"].to_str().unwrap()
                ),
                (code, msg)
            );
        }
    }
}
