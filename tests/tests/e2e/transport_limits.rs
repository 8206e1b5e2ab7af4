//! The auth server's transport limits (issue 15), observed from a raw socket: the HTTP/2 SETTINGS
//! advertise a stream limit, a connection that sends nothing (not even the HTTP/2 preface) is closed
//! after the handshake timeout, and connections beyond the cap wait until one closes.

use std::time::{Duration, Instant};

use crate::support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The server's first SETTINGS frame after our preface: `(identifier, value)` pairs.
async fn server_settings(s: &TestServer) -> Vec<(u16, u32)> {
    let mut tcp = TcpStream::connect(s.addr).await.expect("connect");
    tcp.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
        .await
        .expect("preface");
    tcp.write_all(&[0, 0, 0, 4, 0, 0, 0, 0, 0])
        .await
        .expect("settings");
    loop {
        let mut head = [0u8; 9];
        bounded("frame header", tcp.read_exact(&mut head))
            .await
            .expect("frame header");
        let len = u32::from_be_bytes([0, head[0], head[1], head[2]]) as usize;
        let mut payload = vec![0u8; len];
        tcp.read_exact(&mut payload).await.expect("payload");
        if head[3] == 4 && head[4] & 1 == 0 {
            return payload
                .chunks_exact(6)
                .map(|c| {
                    (
                        u16::from_be_bytes([c[0], c[1]]),
                        u32::from_be_bytes([c[2], c[3], c[4], c[5]]),
                    )
                })
                .collect();
        }
    }
}

/// How long until the server closes `tcp`, reading whatever it sends meanwhile.
async fn closed_after(mut tcp: TcpStream) -> Duration {
    let started = Instant::now();
    let mut buf = [0u8; 1024];
    loop {
        match bounded("server closes the socket", tcp.read(&mut buf)).await {
            Ok(0) | Err(_) => return started.elapsed(),
            Ok(_) => {}
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_bounds_streams_silent_sockets_and_connections() {
    run_bounded(async {
        let s = TestServer::start_with(
            Backend::Sqlite,
            Options::with_args(&["--handshake-timeout", "1", "--max-connections", "3"]),
        )
        .await;
        // SETTINGS_MAX_CONCURRENT_STREAMS (0x3) = 100 and a 16 KiB header list (0x6).
        let settings = server_settings(&s).await;
        assert!(settings.contains(&(3, 100)), "{settings:?}");
        assert!(settings.contains(&(6, 16 * 1024)), "{settings:?}");

        // Sockets that never speak fill the cap of three (with the harness's own connection; a socket
        // beyond the cap waits in the accept queue)...
        let silent: Vec<TcpStream> = futures_util::future::join_all(
            (0..3).map(|_| async { TcpStream::connect(s.addr).await.expect("connect") }),
        )
        .await;
        tokio::time::sleep(Duration::from_millis(100)).await;
        // ...so a new client waits until the handshake timeout frees a slot, then is served.
        let started = Instant::now();
        let fresh = s.new_channel().await;
        let mut health = tonic_health::pb::health_client::HealthClient::new(fresh);
        bounded(
            "health after the silent sockets were closed",
            health.check(tonic_health::pb::HealthCheckRequest {
                service: String::new(),
            }),
        )
        .await
        .expect("served once a slot is free");
        let waited = started.elapsed();
        assert!(
            waited >= Duration::from_millis(500),
            "served at the cap: {waited:?}"
        );
        // The silent sockets were closed by the handshake timeout (1 s after they connected).
        for tcp in silent {
            assert!(closed_after(tcp).await < Duration::from_secs(2));
        }
        s.shutdown().await;
    })
    .await;
}
