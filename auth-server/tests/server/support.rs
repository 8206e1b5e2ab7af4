//! Running the real `auth-server` binary: a command that inherits no `AUTH_*` setting from the test's
//! environment, and a free local port to point it at.

use std::path::Path;
use std::process::{Command, Stdio};

/// The binary under test, built by Cargo for this test target.
const BIN: &str = env!("CARGO_BIN_EXE_auth-server");

/// `auth-server` run in `dir`, with no inherited `AUTH_*` settings, the HTTP side port off and no
/// stdin.
pub fn auth_server_command(dir: &Path) -> Command {
    let mut c = Command::new(BIN);
    for (k, _) in std::env::vars() {
        if k.starts_with("AUTH_") {
            c.env_remove(k);
        }
    }
    // No side port unless a test asks for one: tests run in parallel, 127.0.0.1:8080 is shared.
    c.env("AUTH_HTTP_ADDR", "");
    c.current_dir(dir).stdin(Stdio::null());
    c
}

/// A free local TCP port (bound then released; a tiny race is accepted).
pub fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    listener.local_addr().expect("local address").port()
}
