//! Child processes (the servers under test) and their memory, read from `/proc`.

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

/// A free loopback port (bound, then released for the child to take).
pub fn free_addr() -> anyhow::Result<SocketAddr> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?)
}

/// A server process that is killed (by its own pid) when dropped.
pub struct Server {
    /// The process.
    pub child: Child,
    /// Where it listens.
    pub addr: SocketAddr,
}

impl Server {
    /// Spawns `cmd` (stdout/stderr to `log`), then waits until `addr` accepts TCP connections.
    pub fn spawn(
        mut cmd: Command,
        addr: SocketAddr,
        log: &std::path::Path,
    ) -> anyhow::Result<Self> {
        let out = std::fs::File::create(log)?;
        let err = out.try_clone()?;
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err))
            .spawn()
            .with_context(|| format!("spawning {cmd:?}"))?;
        let mut server = Self { child, addr };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                return Ok(server);
            }
            if let Some(status) = server.child.try_wait()? {
                bail!(
                    "server exited with {status} before listening; log: {}",
                    log.display()
                );
            }
            if Instant::now() > deadline {
                bail!(
                    "server did not listen on {addr} within 30 s; log: {}",
                    log.display()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `VmRSS` and `VmHWM` (peak) of `pid`, MiB; zeros when unreadable.
pub fn rss_mib(pid: u32) -> (f64, f64) {
    let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) else {
        return (0.0, 0.0);
    };
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<f64>().ok())
            .map(|kib| kib / 1024.0)
            .unwrap_or(0.0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// Sum of [`rss_mib`] over several processes (e.g. a pre-fork server's master and workers).
pub fn rss_sum(pids: &[u32]) -> (f64, f64) {
    pids.iter()
        .map(|&p| rss_mib(p))
        .fold((0.0, 0.0), |a, b| (a.0 + b.0, a.1 + b.1))
}
