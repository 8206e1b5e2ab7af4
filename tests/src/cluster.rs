//! A private PostgreSQL cluster that a fault test may stop and start: `initdb` into a temporary
//! directory and `pg_ctl` on a free loopback port (as the `postgres` OS user when the tests run as
//! root, since PostgreSQL refuses to run as root). The shared server at 127.0.0.1:5432 is never
//! touched.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::harness::free_port;

/// Where the PostgreSQL 15 binaries live on these machines.
const PG_BIN: &str = "/usr/lib/postgresql/15/bin";

/// A running private cluster; stopped and deleted when dropped.
#[derive(Debug)]
pub struct PgCluster {
    dir: tempfile::TempDir,
    port: u16,
}

impl PgCluster {
    /// Creates and starts a cluster with trust authentication for `postgres` on 127.0.0.1.
    pub fn start() -> Self {
        let dir = tempfile::tempdir().expect("cluster dir");
        hand_to_postgres(dir.path());
        let data = dir.path().join("data");
        run_pg(
            "initdb",
            &[
                "-D",
                data.to_str().expect("utf-8 path"),
                "-U",
                "postgres",
                "--auth=trust",
                "--no-sync",
                "-E",
                "UTF8",
            ],
        );
        let cluster = Self {
            dir,
            port: free_port(),
        };
        cluster.start_again();
        cluster
    }

    /// The URL of its `postgres` database.
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// Stops the server at once (`pg_ctl stop -m fast`: connections are cut).
    pub fn stop(&self) {
        run_pg(
            "pg_ctl",
            &[
                "stop",
                "-D",
                self.data().to_str().expect("utf-8 path"),
                "-m",
                "fast",
                "-w",
            ],
        );
    }

    /// Starts the (stopped) server again on the same port, waiting until it accepts connections.
    pub fn start_again(&self) {
        let options = format!(
            "-c listen_addresses=127.0.0.1 -p {} -k {} -c fsync=off",
            self.port,
            self.dir.path().display()
        );
        let log = self.dir.path().join("postgres.log");
        run_pg(
            "pg_ctl",
            &[
                "start",
                "-D",
                self.data().to_str().expect("utf-8 path"),
                "-o",
                &options,
                "-l",
                log.to_str().expect("utf-8 path"),
                "-w",
            ],
        );
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        let _ = pg_command(
            "pg_ctl",
            &[
                "stop",
                "-D",
                self.data().to_str().unwrap_or_default(),
                "-m",
                "immediate",
            ],
        )
        .output();
    }
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.starts_with(b"0"))
}

/// Gives `dir` to the `postgres` user when running as root.
fn hand_to_postgres(dir: &Path) {
    if is_root() {
        let status = Command::new("chown")
            .args(["postgres:postgres", dir.to_str().expect("utf-8 path")])
            .status()
            .expect("chown");
        assert!(status.success(), "chown {dir:?}");
    }
}

fn pg_command(program: &str, args: &[&str]) -> Command {
    let binary = format!("{PG_BIN}/{program}");
    if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--", &binary]).args(args);
        c
    } else {
        let mut c = Command::new(binary);
        c.args(args);
        c
    }
}

fn run_pg(program: &str, args: &[&str]) {
    let out = pg_command(program, args)
        .output()
        .unwrap_or_else(|e| panic!("{program}: {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
