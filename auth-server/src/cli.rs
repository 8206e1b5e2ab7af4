//! The operator command line: `serve` (the default), `migrate`, `user create`, `service-account
//! create` and `keys rotate`.

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
    /// Manage service accounts (machine identities of IssueServiceToken).
    ServiceAccount {
        /// What to do.
        #[command(subcommand)]
        command: ServiceAccountCommand,
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

/// `auth-server service-account …`
#[derive(Debug, Subcommand)]
pub enum ServiceAccountCommand {
    /// Create a service account; prints its id and its client secret, once.
    Create(ServiceAccountCreate),
}

/// `auth-server service-account create NAME --role R --audience A [--description D]`.
#[derive(Debug, clap::Args)]
pub struct ServiceAccountCreate {
    /// The name: the client id it presents to IssueServiceToken.
    pub name: String,
    /// Role its tokens carry (repeatable).
    #[arg(long = "role")]
    pub roles: Vec<String>,
    /// Audience it may ask tokens for (repeatable; at least one).
    #[arg(long = "audience", required = true)]
    pub audiences: Vec<String>,
    /// Free text for operators.
    #[arg(long, default_value = "")]
    pub description: String,
    /// Database settings.
    #[command(flatten)]
    pub database: DatabaseArgs,
    /// Signing keys (the client secret's MAC key is derived from the master key or HS256 secret).
    #[command(flatten)]
    pub keys: KeyArgs,
}

/// A service account created on the command line.
#[derive(Debug)]
pub struct CreatedServiceAccount {
    /// Its id.
    pub id: String,
    /// Its name.
    pub name: String,
    /// Its client secret, shown once.
    pub client_secret: secrecy::SecretString,
}

/// Creates the service account `cmd` describes, audited as done by `cli`.
pub async fn create_service_account(
    cmd: ServiceAccountCreate,
) -> anyhow::Result<CreatedServiceAccount> {
    let database = cmd.database.validate().context("invalid configuration")?;
    let keys = cmd
        .keys
        .validate(&database)
        .context("invalid configuration")?;
    let secrets = crate::startup::secret_macs(keys)?;
    let store = open_store(&database, None).await?;
    let now = unix_seconds(&SystemClock);
    let new = crate::service_accounts::NewAccount {
        name: &cmd.name,
        roles: &cmd.roles,
        audiences: &cmd.audiences,
        description: &cmd.description,
    };
    let (account, client_secret) = crate::service_accounts::create(&*store, &secrets, now, new)
        .await
        .map_err(describe)?;
    let entry = Entry::new("service_account.created", Outcome::Success, "local")
        .actor("cli")
        .subject(&account.id)
        .detail(format!("name {}", account.name));
    crate::audit::record(&*store, now, entry).await;
    Ok(CreatedServiceAccount {
        id: account.id,
        name: account.name,
        client_secret,
    })
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
        Some(Command::ServiceAccount {
            command: ServiceAccountCommand::Create(cmd),
        }) => {
            let created = create_service_account(cmd).await?;
            println!(
                "created service account {} ({})\nclient secret (shown once): {}",
                created.name,
                created.id,
                secrecy::ExposeSecret::expose_secret(&created.client_secret)
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
