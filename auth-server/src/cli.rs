//! The operator command line: `serve` (the default), `migrate`, `user create` and `keys rotate`.

use std::io::BufRead;
use std::sync::Arc;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};

use crate::clock::SystemClock;
use crate::config::Config;
use crate::server;

/// gRPC authentication service: login, rotating refresh tokens, JWT access tokens, JWKS, admin.
#[derive(Debug, Parser)]
#[command(
    name = "auth-server",
    version,
    about,
    args_conflicts_with_subcommands = true
)]
pub struct Cli {
    /// What to do (default: serve).
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Settings for the default `serve`.
    #[command(flatten)]
    pub config: Config,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the gRPC server (what a bare `auth-server` does).
    Serve {
        /// Settings.
        #[command(flatten)]
        config: Config,
    },
    /// Apply database migrations and exit.
    Migrate {
        /// Settings (only the database ones matter).
        #[command(flatten)]
        config: Config,
    },
    /// Manage users.
    User {
        /// What to do.
        #[command(subcommand)]
        command: UserCommand,
    },
    /// Manage signing keys.
    Keys {
        /// What to do.
        #[command(subcommand)]
        command: KeysCommand,
    },
}

/// `auth-server user …`
#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create a user; the password is read from standard input (never from the command line).
    Create {
        /// Username.
        username: String,
        /// Role to grant (repeatable).
        #[arg(long = "role")]
        roles: Vec<String>,
        /// Read the password from the first line of standard input.
        #[arg(long)]
        password_stdin: bool,
        /// Settings.
        #[command(flatten)]
        config: Config,
    },
}

/// `auth-server keys …`
#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Rotate the signing key (next → current, current → retired, new next).
    Rotate {
        /// Settings.
        #[command(flatten)]
        config: Config,
    },
}

impl Cli {
    /// The configuration of whichever command was chosen (for logging setup).
    pub fn config(&self) -> &Config {
        match &self.command {
            None => &self.config,
            Some(Command::Serve { config } | Command::Migrate { config }) => config,
            Some(Command::User {
                command: UserCommand::Create { config, .. },
            }) => config,
            Some(Command::Keys {
                command: KeysCommand::Rotate { config },
            }) => config,
        }
    }
}

/// Runs the chosen command.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        None => serve(cli.config).await,
        Some(Command::Serve { config }) => serve(config).await,
        Some(Command::Migrate { config }) => {
            let settings = config.validate().context("invalid configuration")?;
            server::open_store(&settings).await?.migrate().await?;
            println!("migrations applied");
            Ok(())
        }
        Some(Command::User {
            command:
                UserCommand::Create {
                    username,
                    roles,
                    password_stdin,
                    config,
                },
        }) => {
            if !password_stdin {
                bail!(
                    "pass the password on standard input with --password-stdin (never as an argument)"
                );
            }
            let mut line = String::new();
            std::io::stdin()
                .lock()
                .read_line(&mut line)
                .context("reading the password from stdin")?;
            let password = zeroize::Zeroizing::new(line.trim_end_matches(['\n', '\r']).to_owned());
            let state = state(config).await?;
            let user = state
                .create_user(&username, &password, &roles)
                .await
                .map_err(describe)?;
            tracing::info!(target: "audit", event = "user.created", actor = "cli", subject = %user.id);
            println!(
                "created user {} ({}) with roles [{}]",
                user.username,
                user.id,
                user.roles.join(", ")
            );
            Ok(())
        }
        Some(Command::Keys {
            command: KeysCommand::Rotate { config },
        }) => {
            let state = state(config).await?;
            let r = state.keys.rotate(state.now()).await.map_err(describe)?;
            tracing::info!(target: "audit", event = "key.rotated", actor = "cli", subject = %r.current);
            println!(
                "current {}\nnext    {}\nretired {}",
                r.current, r.next, r.retired
            );
            Ok(())
        }
    }
}

fn describe(e: crate::error::AuthError) -> anyhow::Error {
    anyhow::anyhow!("{}", tonic::Status::from(e).message().to_owned())
}

async fn state(config: Config) -> anyhow::Result<Arc<crate::state::AppState>> {
    let settings = config.validate().context("invalid configuration")?;
    let store = server::open_store(&settings).await?;
    if !settings.config.skip_migrations {
        store.migrate().await?;
    }
    Ok(server::build_state(settings, store, Arc::new(SystemClock)).await?)
}

async fn serve(config: Config) -> anyhow::Result<()> {
    let settings = config.validate().context("invalid configuration")?;
    let listener = tokio::net::TcpListener::bind(settings.config.grpc_addr)
        .await
        .with_context(|| {
            format!(
                "AUTH_GRPC_ADDR: cannot listen on {}",
                settings.config.grpc_addr
            )
        })?;
    server::serve(settings, listener, shutdown_signal()).await?;
    Ok(())
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
}
