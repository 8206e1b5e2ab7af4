//! TLS: the real binary serves gRPC over TLS when given a certificate, refuses plaintext clients then,
//! and refuses to start plaintext on a non-loopback address unless told to (catalogue M10).

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tonic::transport::{Certificate, ClientTlsConfig, Endpoint};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;

use crate::support::{auth_server_command, free_port};

/// [`auth_server_command`] with stdout discarded and stderr piped.
fn base_cmd(dir: &std::path::Path) -> Command {
    let mut c = auth_server_command(dir);
    c.stdout(Stdio::null()).stderr(Stdio::piped());
    c
}

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn serves_tls_and_refuses_plaintext_clients() {
    let dir = tempfile::tempdir().unwrap();
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let cert_pem = cert.cert.pem();
    std::fs::write(dir.path().join("cert.pem"), &cert_pem).unwrap();
    std::fs::write(dir.path().join("key.pem"), cert.signing_key.serialize_pem()).unwrap();
    let port = free_port();
    let mut cmd = base_cmd(dir.path());
    cmd.env("AUTH_GRPC_ADDR", format!("127.0.0.1:{port}"))
        .env("AUTH_TLS_CERT", "cert.pem")
        .env("AUTH_TLS_KEY", "key.pem");
    let _server = Killed(cmd.spawn().unwrap());

    let tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(&cert_pem))
        .domain_name("localhost");
    let endpoint = Endpoint::from_shared(format!("https://127.0.0.1:{port}"))
        .unwrap()
        .tls_config(tls)
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Ok(channel) = endpoint.connect().await
            && let Ok(r) = HealthClient::new(channel)
                .check(HealthCheckRequest {
                    service: String::new(),
                })
                .await
        {
            break r.into_inner().status;
        }
        assert!(Instant::now() < deadline, "TLS server never answered");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(
        status,
        tonic_health::pb::health_check_response::ServingStatus::Serving as i32
    );

    // A plaintext (h2c) client gets no answer from a TLS listener.
    let plain = Endpoint::from_shared(format!("http://127.0.0.1:{port}"))
        .unwrap()
        .timeout(Duration::from_secs(5));
    let refused = match plain.connect().await {
        Err(_) => true,
        Ok(ch) => HealthClient::new(ch)
            .check(HealthCheckRequest {
                service: String::new(),
            })
            .await
            .is_err(),
    };
    assert!(refused, "plaintext client was served");
}

#[test]
fn plaintext_on_a_public_address_needs_an_explicit_opt_in() {
    let dir = tempfile::tempdir().unwrap();
    let out = base_cmd(dir.path())
        .env("AUTH_GRPC_ADDR", "0.0.0.0:0")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("auth-server:"))
        .collect();
    assert_eq!(lines.len(), 1, "{stderr}");
    assert!(
        lines[0].contains("AUTH_GRPC_ADDR") && lines[0].contains("TLS"),
        "{stderr}"
    );
    assert!(
        !dir.path().join("data").exists(),
        "nothing is created before the configuration is valid"
    );
}
