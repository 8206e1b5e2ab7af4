//! `auth-server`: the binary. Parses the command line, sets up logging, runs the command, and turns
//! any error into one line on stderr and a non-zero exit code.

use std::process::ExitCode;

use clap::error::{ContextKind, ContextValue, ErrorKind};
use clap::{CommandFactory, Parser};

use auth_server::cli::{self, Cli};

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) => {
            e.exit()
        }
        Err(e) => {
            eprintln!(
                "auth-server: invalid configuration: {}",
                parse_error_line(&e)
            );
            return ExitCode::FAILURE;
        }
    };
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

/// A command-line or environment value clap refused, on one line naming the `AUTH_*` variable and
/// the flag, e.g. `AUTH_SIGNING_ALG (--signing-alg): invalid value 'hs256' [possible values: EdDSA,
/// ES256, RS256, HS256]`.
fn parse_error_line(e: &clap::Error) -> String {
    let rendered = e.render().to_string();
    let first = rendered
        .lines()
        .next()
        .unwrap_or_default()
        .trim_start_matches("error: ")
        .to_owned();
    let flag = match e.get(ContextKind::InvalidArg) {
        Some(ContextValue::String(arg)) => arg.split_whitespace().next().map(str::to_owned),
        _ => None,
    };
    let value_error = matches!(
        e.kind(),
        ErrorKind::InvalidValue | ErrorKind::ValueValidation
    );
    let env = flag
        .as_deref()
        .filter(|_| value_error)
        .and_then(env_of_flag);
    let what = match (env, flag) {
        (Some(env), Some(flag)) => format!("{env} ({flag}): "),
        _ => String::new(),
    };
    let mut line = format!("{what}{first}");
    if let Some(ContextValue::Strings(values)) = e.get(ContextKind::ValidValue) {
        line.push_str(&format!(" [possible values: {}]", values.join(", ")));
    }
    if e.kind() == ErrorKind::UnknownArgument {
        line.push_str(
            " (each command takes only its own settings: see `auth-server <command> --help`)",
        );
    }
    line
}

/// The environment variable of the flag `--long-name` in any subcommand.
fn env_of_flag(flag: &str) -> Option<String> {
    let long = flag.strip_prefix("--")?;
    let command = Cli::command();
    let mut commands = vec![&command];
    while let Some(c) = commands.pop() {
        if let Some(arg) = c.get_arguments().find(|a| a.get_long() == Some(long))
            && let Some(env) = arg.get_env()
        {
            return Some(env.to_string_lossy().into_owned());
        }
        commands.extend(c.get_subcommands());
    }
    None
}
