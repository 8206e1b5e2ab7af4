//! `auth-server`: the binary. Parses the command line, sets up logging, runs the command, and turns
//! any error into one line on stderr and a non-zero exit code.

use std::process::ExitCode;

use clap::Parser;

use auth_server::cli::{self, Cli};

fn main() -> ExitCode {
    let cli = Cli::parse();
    auth_server::telemetry::init(cli.log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("auth-server: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(cli::run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("auth-server: {}", one_line(&e));
            ExitCode::FAILURE
        }
    }
}

/// The error chain on one line, e.g. "invalid configuration: AUTH_MASTER_KEY: must ...", skipping
/// causes whose text the previous message already includes.
fn one_line(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if out.contains(&text) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&text);
    }
    out.replace('\n', " ")
}
