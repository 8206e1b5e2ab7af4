//! `ServerLimits` on a real socket, seen by raw HTTP/2 clients: the SETTINGS the server advertises,
//! streams beyond the limit refused and half-open ones ended by the request timeout, oversized
//! messages refused, an idle connection sent away at its maximum age, and a connection held open by a
//! stream cut once its grace is over.

#![allow(clippy::unwrap_used)]

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::time::Duration;

use auth_interceptor::testing::TestKey;
use auth_interceptor::{ServerLimits, SharedKeys};
use auth_proto::demo::SayHelloRequest;
use auth_proto::demo::greeter_service_server::GreeterServiceServer;
use bytes::Bytes;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tonic::Code;

use crate::support::{Greeter, greeter_client, greeter_layer};

/// Serves the example greeter (behind its auth layer) with `limits`, as the README shows.
async fn serve_limited(limits: ServerLimits) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let layer = greeter_layer(SharedKeys::new(TestKey::ed25519("k1").key_set()));
    tokio::spawn(async move {
        limits
            .server()
            .layer(layer)
            .add_service(
                GreeterServiceServer::new(Greeter)
                    .max_decoding_message_size(limits.max_decoding_message_size),
            )
            .serve_with_incoming(limits.incoming(listener))
            .await
            .unwrap();
    });
    addr
}

/// Polls `done` every 25 ms until it is true; panics after `bound`.
async fn wait_until(what: &str, bound: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + bound;
    while !done() {
        assert!(Instant::now() < deadline, "{what}: not within {bound:?}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

// ---------------------------------------------------------------------------------------------------
// A few HTTP/2 frames by hand (RFC 9113 §4), for what a well-behaved client library will not send.

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
const DATA: u8 = 0x0;
const HEADERS: u8 = 0x1;
const RST_STREAM: u8 = 0x3;
const SETTINGS: u8 = 0x4;
const PING: u8 = 0x6;
const GOAWAY: u8 = 0x7;
const END_STREAM: u8 = 0x1;
const ACK: u8 = 0x1;
const END_HEADERS: u8 = 0x4;
const SETTINGS_MAX_CONCURRENT_STREAMS: u16 = 0x3;
const SETTINGS_MAX_HEADER_LIST_SIZE: u16 = 0x6;
const REFUSED_STREAM: u32 = 0x7;

struct Frame {
    kind: u8,
    flags: u8,
    stream: u32,
    payload: Vec<u8>,
}

fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = u32::try_from(payload.len()).unwrap().to_be_bytes();
    let mut f = vec![len[1], len[2], len[3], kind, flags];
    f.extend_from_slice(&stream.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

async fn read_frame(tcp: &mut TcpStream) -> std::io::Result<Frame> {
    let mut head = [0u8; 9];
    tcp.read_exact(&mut head).await?;
    let len = u32::from_be_bytes([0, head[0], head[1], head[2]]) as usize;
    let mut payload = vec![0; len];
    tcp.read_exact(&mut payload).await?;
    Ok(Frame {
        kind: head[3],
        flags: head[4],
        stream: u32::from_be_bytes([head[5], head[6], head[7], head[8]]) & 0x7fff_ffff,
        payload,
    })
}

/// An HPACK header block of literal fields without indexing or Huffman coding (RFC 7541 §6.2.2):
/// the request headers of a unary `SayHello`.
fn say_hello_headers() -> Vec<u8> {
    let mut block = Vec::new();
    for (name, value) in [
        (":method", "POST"),
        (":scheme", "http"),
        (":path", "/demo.v1.GreeterService/SayHello"),
        (":authority", "127.0.0.1"),
        ("content-type", "application/grpc"),
        ("te", "trailers"),
    ] {
        block.push(0x00);
        block.push(u8::try_from(name.len()).unwrap());
        block.extend_from_slice(name.as_bytes());
        block.push(u8::try_from(value.len()).unwrap());
        block.extend_from_slice(value.as_bytes());
    }
    block
}

/// The server's SETTINGS, as identifier → value.
async fn handshake_raw(tcp: &mut TcpStream) -> HashMap<u16, u32> {
    let mut hello = PREFACE.to_vec();
    hello.extend(frame(SETTINGS, 0, 0, &[]));
    tcp.write_all(&hello).await.unwrap();
    loop {
        let f = read_frame(tcp).await.unwrap();
        if f.kind == SETTINGS && f.flags & ACK == 0 {
            // The limits apply once the client acknowledges them.
            tcp.write_all(&frame(SETTINGS, ACK, 0, &[])).await.unwrap();
            return f
                .payload
                .chunks_exact(6)
                .map(|s| {
                    (
                        u16::from_be_bytes([s[0], s[1]]),
                        u32::from_be_bytes([s[2], s[3], s[4], s[5]]),
                    )
                })
                .collect();
        }
    }
}

#[tokio::test]
async fn settings_advertise_the_limits_and_streams_beyond_them_are_not_kept() {
    let limits = ServerLimits {
        request_timeout: Some(Duration::from_millis(300)),
        ..ServerLimits::default()
    };
    let addr = serve_limited(limits).await;
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    let settings = handshake_raw(&mut tcp).await;
    assert_eq!(
        settings.get(&SETTINGS_MAX_CONCURRENT_STREAMS),
        Some(&100),
        "{settings:?}"
    );
    assert_eq!(
        settings.get(&SETTINGS_MAX_HEADER_LIST_SIZE),
        Some(&(16 * 1024)),
        "{settings:?}"
    );

    // 150 half-open calls on one connection (request headers, never a body or END_STREAM).
    const OPENED: u32 = 150;
    let block = say_hello_headers();
    let mut burst = Vec::new();
    for i in 0..OPENED {
        burst.extend(frame(HEADERS, END_HEADERS, 2 * i + 1, &block));
    }
    tcp.write_all(&burst).await.unwrap();

    // The server refuses what is over the limit at once and ends the others with the request
    // timeout (64 handlers at a time per connection, so in two rounds of 300 ms).
    let mut refused = HashSet::new();
    let mut answered = HashSet::new();
    let read_all = async {
        while refused.len() + answered.len() < OPENED as usize {
            let f = read_frame(&mut tcp).await.unwrap();
            match f.kind {
                RST_STREAM if !answered.contains(&f.stream) => {
                    let code = u32::from_be_bytes(f.payload[..4].try_into().unwrap());
                    assert_eq!(code, REFUSED_STREAM, "stream {} reset", f.stream);
                    refused.insert(f.stream);
                }
                HEADERS | DATA if f.flags & END_STREAM != 0 => {
                    answered.insert(f.stream);
                }
                PING if f.flags & ACK == 0 => {
                    tcp.write_all(&frame(PING, ACK, 0, &f.payload))
                        .await
                        .unwrap();
                }
                GOAWAY => panic!("GOAWAY: {:?}", f.payload),
                _ => {}
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(10), read_all)
        .await
        .expect("every stream ended by the server");
    assert!(
        refused.len() >= (OPENED - 100) as usize,
        "refused {} of {OPENED}",
        refused.len()
    );
    assert!(answered.len() <= 100, "answered {}", answered.len());
    assert!(refused.is_disjoint(&answered));
}

#[tokio::test]
async fn a_message_over_the_decoding_limit_is_refused() {
    let limits = ServerLimits::default();
    let addr = serve_limited(limits.clone()).await;
    let mut client = greeter_client(addr).await;
    let ok = client
        .say_hello(SayHelloRequest {
            name: "x".repeat(1000),
        })
        .await;
    assert!(ok.is_ok(), "{ok:?}");
    let status = client
        .say_hello(SayHelloRequest {
            name: "x".repeat(limits.max_decoding_message_size + 1),
        })
        .await
        .unwrap_err();
    // tonic's status for a message over the decoding limit.
    assert_eq!(status.code(), Code::OutOfRange, "{status:?}");
}

/// An HTTP/2 connection from the `h2` client library (which answers PINGs and honours GOAWAY).
async fn h2_connect(
    addr: SocketAddr,
) -> (
    h2::client::SendRequest<Bytes>,
    JoinHandle<Result<(), h2::Error>>,
) {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let (send, conn) = h2::client::handshake(tcp).await.unwrap();
    (send.ready().await.unwrap(), tokio::spawn(conn))
}

fn say_hello_request(addr: SocketAddr) -> http::Request<()> {
    http::Request::builder()
        .method("POST")
        .uri(format!("http://{addr}/demo.v1.GreeterService/SayHello"))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(())
        .unwrap()
}

fn short_lifetime() -> ServerLimits {
    ServerLimits {
        max_connection_age: Some(Duration::from_millis(200)),
        max_connection_age_grace: Some(Duration::from_millis(200)),
        // Only the connection's lifetime may end the calls of these tests.
        request_timeout: None,
        ..ServerLimits::default()
    }
}

#[tokio::test]
async fn an_idle_connection_is_sent_away_at_its_max_age() {
    let addr = serve_limited(short_lifetime()).await;
    let start = Instant::now();
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    handshake_raw(&mut tcp).await;
    // Read until the server closes, answering its PINGs (its graceful shutdown waits for one).
    let mut goaway = None;
    let read_all = async {
        loop {
            match read_frame(&mut tcp).await {
                Ok(f) if f.kind == GOAWAY => {
                    let code = u32::from_be_bytes(f.payload[4..8].try_into().unwrap());
                    goaway.get_or_insert((start.elapsed(), code));
                }
                Ok(f) if f.kind == PING && f.flags & ACK == 0 => {
                    tcp.write_all(&frame(PING, ACK, 0, &f.payload))
                        .await
                        .unwrap();
                }
                Ok(_) => {}
                Err(_) => return start.elapsed(),
            }
        }
    };
    let closed_after = tokio::time::timeout(Duration::from_secs(5), read_all)
        .await
        .expect("idle connection closed");
    // Gracefully and on time: a GOAWAY without error at the max age (tonic's own grace setting
    // would skip it and cut the connection at age + grace), then the close.
    let (goaway_after, code) = goaway.expect("a GOAWAY before the close");
    assert_eq!(code, 0, "GOAWAY NO_ERROR");
    assert!(
        goaway_after >= Duration::from_millis(200),
        "GOAWAY after {goaway_after:?}, before the max age"
    );
    assert!(closed_after >= goaway_after);
}

#[tokio::test]
async fn a_connection_held_open_by_a_stream_is_cut_after_the_grace() {
    let addr = serve_limited(short_lifetime()).await;
    let start = Instant::now();
    let (mut send, conn) = h2_connect(addr).await;
    wait_until("server SETTINGS", Duration::from_secs(5), || {
        send.current_max_send_streams() == 100
    })
    .await;
    // A half-open call: the handler waits for a request that never ends, so the GOAWAY at the max
    // age cannot close the connection; its end of life (age + grace) does.
    let (response, _request_body) = send.send_request(say_hello_request(addr), false).unwrap();

    wait_until("connection cut", Duration::from_secs(5), || {
        conn.is_finished()
    })
    .await;
    let cut_after = start.elapsed();
    assert!(
        cut_after >= Duration::from_millis(400),
        "cut after {cut_after:?}, before max age + grace"
    );
    let err = tokio::time::timeout(Duration::from_secs(1), response)
        .await
        .expect("the call ends with the connection")
        .expect_err("the call was cut, not answered");
    // Not answered, not refused by a GOAWAY: the connection under it was closed.
    assert!(err.is_io(), "{err:?}");
}

#[tokio::test]
async fn a_connection_that_sends_nothing_is_closed_after_the_handshake_timeout() {
    let addr = serve_limited(ServerLimits {
        handshake_timeout: Some(Duration::from_millis(200)),
        ..ServerLimits::default()
    })
    .await;
    let mut silent = TcpStream::connect(addr).await.unwrap();
    let started = Instant::now();
    // The server speaks first (its SETTINGS); then, hearing nothing, it hangs up.
    let mut buf = vec![0u8; 1024];
    let closed_at = loop {
        match tokio::time::timeout(Duration::from_secs(5), silent.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break started.elapsed(),
            Ok(Ok(_)) => continue,
            Err(_) => panic!("a silent connection was kept for 5 s"),
        }
    };
    assert!(closed_at >= Duration::from_millis(200), "{closed_at:?}");
    // A client that speaks is not affected by the handshake timeout.
    let mut c = greeter_client(addr).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    for _ in 0..3 {
        c.say_hello(SayHelloRequest::default()).await.unwrap();
        tokio::time::sleep(Duration::from_millis(90)).await;
    }
}

#[tokio::test]
async fn connections_beyond_the_cap_wait_until_one_closes() {
    let addr = serve_limited(ServerLimits {
        max_connections: Some(2),
        handshake_timeout: Some(Duration::from_millis(300)),
        ..ServerLimits::default()
    })
    .await;
    // Two silent sockets take both slots...
    let _a = TcpStream::connect(addr).await.unwrap();
    let _b = TcpStream::connect(addr).await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    // ...so a real client is served only once the handshake timeout frees a slot.
    let started = Instant::now();
    let mut c = greeter_client(addr).await;
    c.say_hello(SayHelloRequest::default()).await.unwrap();
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(200),
        "served before a slot was free: {waited:?}"
    );
}
