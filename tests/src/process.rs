//! Real `auth-server` processes — the binary cargo builds next to this test binary
//! (`target/<profile>/auth-server`; `cargo test --workspace` builds it, or `cargo build -p
//! auth-server`; `E2E_AUTH_SERVER_BIN` names another) — on one PostgreSQL database, for scenarios
//! where a replica must die without warning: [`ServerProcess::kill`] is SIGKILL
//! (`std::process::Child::kill` on Unix). The processes run on the real clock.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use tonic::transport::Channel;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

use super::harness::{Options, endpoint, free_port};

/// The `auth-server` binary the processes run.
pub fn server_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("E2E_AUTH_SERVER_BIN") {
        return path.into();
    }
    // target/<profile>/deps/e2e-<hash> → target/<profile>/auth-server
    let exe = std::env::current_exe().expect("the test binary's path");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("the test binary lives in target/<profile>/deps");
    profile_dir.join("auth-server")
}

/// A running `auth-server` process; killed (SIGKILL) when dropped.
#[derive(Debug)]
pub struct ServerProcess {
    /// Where its gRPC port listens.
    pub addr: SocketAddr,
    /// Its stdout and stderr.
    pub log: PathBuf,
    child: Child,
    channel: Channel,
}

impl ServerProcess {
    /// Starts `auth-server serve` on `db_url` with `master_key` (so replicas share the signing
    /// keys), the suite's default flags plus `extra`, its side port off, logging to
    /// `<log_dir>/<name>.log`; waits until health reports SERVING.
    pub async fn spawn(
        db_url: &str,
        master_key: &str,
        log_dir: &Path,
        name: &str,
        extra: &[&str],
    ) -> Self {
        let binary = server_binary();
        assert!(
            binary.exists(),
            "{} is missing: build it first (`cargo build -p auth-server`; `cargo test --workspace` \
             builds it) or set E2E_AUTH_SERVER_BIN",
            binary.display()
        );
        let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().expect("addr");
        let grpc = addr.to_string();
        let mut flags = vec!["--grpc-addr", grpc.as_str(), "--http-addr", ""];
        flags.extend_from_slice(extra);
        let (args, _, _) = Options::with_args(&flags).args(
            db_url,
            None,
            Some((Some(master_key.to_owned()), None)),
        );
        let log = log_dir.join(format!("{name}.log"));
        let out = std::fs::File::create(&log).expect("log file");
        let err = out.try_clone().expect("log file");
        let child = Command::new(&binary)
            .arg("serve")
            .args(&args)
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err))
            .spawn()
            .unwrap_or_else(|e| panic!("spawning {}: {e}", binary.display()));
        let mut process = Self {
            addr,
            log,
            child,
            channel: endpoint(addr).connect_lazy(),
        };
        process.wait_serving().await;
        process
    }

    async fn wait_serving(&mut self) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                panic!(
                    "auth-server exited with {status} before serving: {}",
                    std::fs::read_to_string(&self.log).unwrap_or_default()
                );
            }
            let mut health = HealthClient::new(self.channel.clone());
            let check = health.check(HealthCheckRequest {
                service: String::new(),
            });
            if let Ok(Ok(r)) = tokio::time::timeout(Duration::from_secs(2), check).await
                && r.get_ref().status == ServingStatus::Serving as i32
            {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "auth-server did not become SERVING; log: {}",
                self.log.display()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// A channel to it (HTTP/2, shared).
    pub fn channel(&self) -> Channel {
        self.channel.clone()
    }

    /// Kills it with SIGKILL, without warning, and reaps it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        self.kill();
    }
}
