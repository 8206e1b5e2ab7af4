//! Talking to a [`TestServer`]'s HTTP side port: hyper's HTTP/1.1 client for well-formed requests
//! (one connection per request), and a raw socket for what a well-behaved client never sends.

use std::net::SocketAddr;

use bytes::Bytes;
use http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::harness::{TestServer, bounded};

/// A response of the side port.
#[derive(Debug, Clone)]
pub struct HttpResponse {
    /// Status.
    pub status: StatusCode,
    /// Headers.
    pub headers: HeaderMap,
    /// Body (UTF-8).
    pub body: String,
}

impl HttpResponse {
    /// A header as a string ("" when absent).
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    }

    /// The body as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.body))
    }
}

/// Sends `method path` with `headers` to `addr` on a new connection and reads the whole response.
pub async fn http_request(
    addr: SocketAddr,
    method: Method,
    path: &str,
    headers: &[(&str, &str)],
) -> HttpResponse {
    bounded("HTTP request", async {
        let stream = TcpStream::connect(addr).await.expect("connect side port");
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .expect("HTTP/1.1 handshake");
        tokio::spawn(conn);
        let mut request = Request::builder()
            .method(method)
            .uri(path)
            .header("host", addr.to_string());
        for (k, v) in headers {
            request = request.header(*k, *v);
        }
        let response = sender
            .send_request(request.body(Empty::<Bytes>::new()).expect("request"))
            .await
            .expect("HTTP response");
        let (parts, body) = response.into_parts();
        let body = body.collect().await.expect("body").to_bytes();
        HttpResponse {
            status: parts.status,
            headers: parts.headers,
            body: String::from_utf8(body.to_vec()).expect("UTF-8 body"),
        }
    })
    .await
}

/// Writes `bytes` on a new connection, then reads until the server closes it (bounded by the step
/// timeout); returns what was read.
pub async fn raw_exchange(addr: SocketAddr, bytes: &[u8]) -> Vec<u8> {
    let mut stream = TcpStream::connect(addr).await.expect("connect side port");
    stream.write_all(bytes).await.expect("write");
    read_until_closed(&mut stream).await
}

/// Reads until the peer closes (EOF or reset), bounded by the step timeout.
pub async fn read_until_closed(stream: &mut TcpStream) -> Vec<u8> {
    let mut out = Vec::new();
    bounded("server closes the connection", async {
        let mut buf = [0u8; 4096];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => out.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    out
}

impl TestServer {
    /// The side port's address (the harness always opens one unless told `--http-addr ""`).
    pub fn side_port(&self) -> SocketAddr {
        self.http_addr.expect("server started with a side port")
    }

    /// `GET path` on the side port.
    pub async fn http_get(&self, path: &str) -> HttpResponse {
        http_request(self.side_port(), Method::GET, path, &[]).await
    }

    /// `GET /metrics`, parsed (Prometheus text format).
    pub async fn scrape(&self) -> super::exposition::Exposition {
        let r = self.http_get("/metrics").await;
        assert_eq!(r.status, StatusCode::OK, "{r:?}");
        assert_eq!(
            r.header("content-type"),
            "text/plain; version=0.0.4; charset=utf-8"
        );
        super::exposition::Exposition::parse(&r.body, super::exposition::Format::Prometheus)
            .unwrap_or_else(|e| panic!("{e}\n{}", r.body))
    }
}
