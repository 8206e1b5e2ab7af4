//! A minimal HTTP/1.1 keep-alive client (one connection per worker, reconnecting when the server
//! closes it), for the seed stack (Flask + PyJWT) under the same load engine.

use std::net::SocketAddr;

use anyhow::Context;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;

/// One worker's connection.
pub struct H1Conn {
    addr: SocketAddr,
    sender: Option<SendRequest<Full<Bytes>>>,
}

/// A request to send: method, path, headers, body.
#[derive(Debug, Clone)]
pub struct H1Request {
    /// `GET` or `POST`.
    pub method: hyper::Method,
    /// Path and query.
    pub path: String,
    /// Extra headers.
    pub headers: Vec<(String, String)>,
    /// Body (sent as `application/json` when not empty).
    pub body: Bytes,
}

impl H1Conn {
    /// A connection to `addr`, opened on first use.
    pub fn new(addr: SocketAddr) -> Self {
        Self { addr, sender: None }
    }

    async fn connect(&mut self) -> anyhow::Result<&mut SendRequest<Full<Bytes>>> {
        let stream = tokio::net::TcpStream::connect(self.addr).await?;
        stream.set_nodelay(true)?;
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(self.sender.insert(sender))
    }

    /// Sends `req`; returns the status and body.
    pub async fn send(&mut self, req: &H1Request) -> anyhow::Result<(u16, Bytes)> {
        let host = self.addr.to_string();
        let reusable = match &mut self.sender {
            Some(s) if !s.is_closed() => s.ready().await.is_ok(),
            _ => false,
        };
        let sender = if reusable {
            self.sender.as_mut().context("sender")?
        } else {
            self.connect().await?
        };
        let mut b = hyper::Request::builder()
            .method(req.method.clone())
            .uri(&req.path)
            .header(hyper::header::HOST, host);
        for (k, v) in &req.headers {
            b = b.header(k, v);
        }
        if !req.body.is_empty() {
            b = b.header(hyper::header::CONTENT_TYPE, "application/json");
        }
        let resp = sender
            .send_request(b.body(Full::new(req.body.clone()))?)
            .await?;
        let close = resp
            .headers()
            .get(hyper::header::CONNECTION)
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"close"));
        let status = resp.status().as_u16();
        let body = resp.into_body().collect().await?.to_bytes();
        if close {
            self.sender = None;
        }
        Ok((status, body))
    }
}
