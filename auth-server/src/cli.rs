//! The operator command line: `serve` (the default), `migrate`, `user create` and `keys rotate`.

use std::io::BufRead;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};

use crate::audit::{Entry, Outcome};
use crate::clock::{SystemClock, unix_seconds};
use crate::config::{Config, DatabaseArgs, KeyArgs, LogFormat, PasswordArgs, TokenArgs};
use crate::server;
use crate::startup::{open_store, start_hasher, start_keys};

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
    /// Log format.
    #[arg(
        long,
        env = "AUTH_LOG_FORMAT",
        value_enum,
        default_value = "text",
        global = true
    )]
    pub log_format: LogFormat,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the gRPC server (what a bare `auth-server` does).
    Serve {
        /// Settings.
        #[command(flatten)]
        config: Box<Config>,
    },
    /// Apply database migrations and exit.
    Migrate {
        /// Database settings.
        #[command(flatten)]
        database: DatabaseArgs,
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
        /// Database settings.
        #[command(flatten)]
        database: DatabaseArgs,
        /// Password hashing and policy.
        #[command(flatten)]
        passwords: PasswordArgs,
    },
}

/// `auth-server keys …`
#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Rotate the signing key (next → current, current → retired, new next).
    Rotate {
        /// Database settings.
        #[command(flatten)]
        database: DatabaseArgs,
        /// Signing keys.
        #[command(flatten)]
        keys: KeyArgs,
        /// Token lifetimes (a retired key stays published until its tokens have expired).
        #[command(flatten)]
        tokens: TokenArgs,
        /// Rotate even if the next key has been published for less than AUTH_KEY_PREPUBLISH (a
        /// compromised key): verifiers that have not fetched the new key refuse its tokens until
        /// they refetch.
        #[arg(long)]
        force: bool,
    },
}

/// Runs the chosen command.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        None => serve(cli.config).await,
        Some(Command::Serve { config }) => serve(*config).await,
        Some(Command::Migrate { database }) => {
            let mut database = database.validate().context("invalid configuration")?;
            database.migrate = true;
            open_store(&database, None).await?;
            println!("migrations applied");
            Ok(())
        }
        Some(Command::User {
            command:
                UserCommand::Create {
                    username,
                    roles,
                    password_stdin,
                    database,
                    passwords,
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
            let database = database.validate().context("invalid configuration")?;
            let passwords = passwords.validate().context("invalid configuration")?;
            let store = open_store(&database, None).await?;
            let hasher = start_hasher(passwords, None).await?;
            let user = crate::state::create_user(
                &*store,
                &hasher,
                unix_seconds(&SystemClock),
                &username,
                &password,
                &roles,
            )
            .await
            .map_err(describe)?;
            let entry = Entry::new("user.created", Outcome::Success, "local")
                .actor("cli")
                .subject(&user.id)
                .detail(format!("roles [{}]", user.roles.join(", ")));
            crate::audit::record(&*store, unix_seconds(&SystemClock), entry).await;
            println!(
                "created user {} ({}) with roles [{}]",
                user.username,
                user.id,
                user.roles.join(", ")
            );
            Ok(())
        }
        Some(Command::Keys {
            command:
                KeysCommand::Rotate {
                    database,
                    keys,
                    tokens,
                    force,
                },
        }) => {
            let database = database.validate().context("invalid configuration")?;
            let keys = keys.validate(&database).context("invalid configuration")?;
            let tokens = tokens.validate().context("invalid configuration")?;
            let store = open_store(&database, None).await?;
            let manager =
                start_keys(keys, &tokens, store.clone(), unix_seconds(&SystemClock)).await?;
            let r = manager
                .rotate_on_request(unix_seconds(&SystemClock), force)
                .await
                .map_err(describe)?;
            let entry = Entry::new("key.rotated", Outcome::Success, "local")
                .actor("cli")
                .subject(&r.current)
                .detail(r.audit_detail(force));
            crate::audit::record(&*store, unix_seconds(&SystemClock), entry).await;
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

async fn serve(config: Config) -> anyhow::Result<()> {
    let settings = config.validate().context("invalid configuration")?;
    let listeners = server::Listeners::bind(&settings).await?;
    server::serve_on(
        settings,
        listeners,
        shutdown_signal(),
        std::sync::Arc::new(SystemClock),
    )
    .await?;
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
