//! What happens before the server answers: opening the database, resolving the master key, starting
//! the key manager and the hasher, assembling the shared state, and creating the bootstrap admin.

use std::path::Path;
use std::sync::Arc;

use auth_interceptor::Verifier;
use secrecy::ExposeSecret;

use crate::clock::{Clock, unix_seconds};
use crate::config::{
    Backend, BootstrapAdmin, DatabaseSettings, KeySettings, MasterKeySource, PasswordSettings,
    RevocationSettings, Signing, ThrottleSettings, TokenSettings,
};
use crate::error::AuthError;
use crate::http::metrics::Metrics;
use crate::keys::master::MasterKey;
use crate::keys::{KeyManager, SigningMode};
use crate::password::PasswordHasher;
use crate::revocation::Revocations;
use crate::server::ServeError;
use crate::service::admin::ADMIN_ROLE;
use crate::service::watch::Watchers;
use crate::state::AppState;
use crate::store::Store;
use crate::store::postgres::PgStore;
use crate::store::sqlite::SqliteStore;

/// Opens the configured database (creating the zero-config SQLite directory if needed) and applies
/// the migrations unless they are turned off. `token_lifetime` (access-token lifetime plus leeway,
/// seconds; `None`: the longest allowed) is how long revocation log rows are kept.
pub(crate) async fn open_store(
    settings: &DatabaseSettings,
    token_lifetime: Option<i64>,
) -> Result<Arc<dyn Store>, ServeError> {
    let lifetime = token_lifetime.unwrap_or(crate::store::DEFAULT_TOKEN_LIFETIME);
    let store: Arc<dyn Store> = match &settings.backend {
        Backend::Postgres {
            url,
            max_connections,
        } => Arc::new(
            PgStore::connect(
                url.expose_secret(),
                *max_connections,
                settings.acquire_timeout,
            )
            .await?
            .with_token_lifetime(lifetime),
        ),
        Backend::Sqlite { url, create_dir } => {
            if let Some(dir) = create_dir {
                create_private_dir(dir).map_err(|e| {
                    ServeError::Config(format!(
                        "AUTH_DATA_DIR: cannot create {}: {e}",
                        dir.display()
                    ))
                })?;
            }
            Arc::new(
                SqliteStore::connect(url.expose_secret(), settings.acquire_timeout)
                    .await?
                    .with_token_lifetime(lifetime),
            )
        }
    };
    if settings.migrate {
        store.migrate().await?;
    }
    Ok(store)
}

fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    }
    Ok(())
}

/// Reads the master key file, or creates it with a fresh key (SQLite without `AUTH_MASTER_KEY`).
fn master_key_from_file(path: &Path) -> Result<MasterKey, ServeError> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => zeroize::Zeroizing::new(t),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if let Some(dir) = path.parent() {
                create_private_dir(dir)?;
            }
            let key =
                MasterKey::generate_base64().map_err(|e| ServeError::Config(e.to_string()))?;
            let mut opts = std::fs::OpenOptions::new();
            opts.write(true).create_new(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
            std::io::Write::write_all(&mut opts.open(path)?, key.as_bytes())?;
            tracing::warn!(path = %path.display(),
                "generated a master key file for the zero-config SQLite setup; set AUTH_MASTER_KEY in production");
            key
        }
        Err(e) => return Err(e.into()),
    };
    MasterKey::from_base64(&text)
        .map_err(|e| ServeError::Config(format!("master key file {}: {e}", path.display())))
}

/// Starts the key manager: resolves the master key and creates the first keys if there are none.
pub(crate) async fn start_keys(
    keys: KeySettings,
    tokens: &TokenSettings,
    store: Arc<dyn Store>,
    now: i64,
) -> Result<KeyManager, ServeError> {
    let mode = match keys.signing {
        Signing::SharedSecret(secret) => SigningMode::SharedSecret { secret },
        Signing::Asymmetric { alg, master } => SigningMode::Asymmetric {
            alg,
            master: match master {
                MasterKeySource::Configured(master) => master,
                MasterKeySource::File(path) => master_key_from_file(&path)?,
            },
        },
    };
    Ok(KeyManager::start(
        mode,
        store,
        tokens.retired_key_lifetime(),
        keys.rotation,
        now,
    )
    .await?)
}

/// The MAC key of service accounts' client secrets for `keys`, without starting the key manager
/// (the operator commands): derived from the master key, or in HS256 mode from the shared secret,
/// as the server derives it.
pub(crate) fn secret_macs(
    keys: KeySettings,
) -> Result<crate::service_accounts::secret::SecretMacs, ServeError> {
    let macs = match keys.signing {
        Signing::SharedSecret(secret) => {
            crate::service_accounts::secret::SecretMacs::derive(&secret)
        }
        Signing::Asymmetric { master, .. } => {
            let master = match master {
                MasterKeySource::Configured(master) => master,
                MasterKeySource::File(path) => master_key_from_file(&path)?,
            };
            crate::service_accounts::secret::SecretMacs::derive(master.raw())
        }
    };
    Ok(macs?)
}

/// Builds the password hasher (which computes its dummy hash) off the async threads, recording hash
/// durations in `metrics` when given.
pub(crate) async fn start_hasher(
    passwords: PasswordSettings,
    metrics: Option<Metrics>,
) -> Result<PasswordHasher, ServeError> {
    let PasswordSettings { hash, policy } = passwords;
    Ok(tokio::task::spawn_blocking(move || match metrics {
        Some(m) => PasswordHasher::with_metrics(hash, policy, m),
        None => PasswordHasher::new(hash, policy),
    })
    .await
    .map_err(|e| AuthError::Internal(e.to_string()))??)
}

/// The parts of the configuration the shared state is made of.
#[derive(Debug)]
pub(crate) struct StateSettings {
    /// Signing keys.
    pub keys: KeySettings,
    /// Tokens and sessions.
    pub tokens: TokenSettings,
    /// Passwords.
    pub passwords: PasswordSettings,
    /// Login throttling.
    pub throttle: ThrottleSettings,
    /// Revocation view and stream.
    pub revocation: RevocationSettings,
}

/// Builds the shared state: keys (generated on first start), hasher, verifier, and the revocation
/// view (loaded from the log before this returns: the server serves with it complete).
pub(crate) async fn build_state(
    settings: StateSettings,
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    metrics: Metrics,
) -> Result<Arc<AppState>, ServeError> {
    let StateSettings {
        keys,
        tokens,
        passwords,
        throttle,
        revocation,
    } = settings;
    let reload_interval = keys.reload_interval;
    let admin_api_refused = keys.admin_api_refused;
    let keys = Arc::new(start_keys(keys, &tokens, store.clone(), unix_seconds(&*clock)).await?);
    let labels = keys.name_labels()?;
    let secrets = keys.secret_macs()?;
    let key_source = crate::keys::source::start(keys.clone(), clock.clone(), reload_interval)
        .await
        .map_err(|e| AuthError::Internal(e.to_string()))?;
    let auth = crate::policy::layer(
        Verifier::new(tokens.verifier_config()),
        key_source.clone(),
        clock.clone(),
    )
    .map_err(|e| ServeError::Config(format!("access policy: {e}")))?;
    let hasher = start_hasher(passwords, Some(metrics.clone())).await?;
    let revocations = Revocations::load(
        store.clone(),
        clock.clone(),
        key_source.clone(),
        revocation.max_staleness,
    )
    .await?;
    Ok(Arc::new(AppState {
        store,
        hasher,
        keys,
        key_source,
        auth,
        issuer: tokens.issuer,
        service_tokens: tokens.service,
        secrets,
        account_cache: Default::default(),
        issued_audit: Default::default(),
        sessions: tokens.sessions,
        clock,
        throttle: crate::throttle::Throttle::new(throttle.policy),
        labels,
        proxy_header: throttle.proxy_header,
        database: crate::availability::DatabaseStatus::default(),
        admin_api_refused,
        metrics,
        revocations,
        watchers: Watchers::new(revocation.max_watchers, revocation.heartbeat),
    }))
}

/// Creates the bootstrap admin when the database has no user yet.
pub(crate) async fn bootstrap_admin(
    state: &AppState,
    admin: &BootstrapAdmin,
) -> Result<(), ServeError> {
    if state.store.count_users().await? > 0 {
        return Ok(());
    }
    let user = state
        .create_user(
            &admin.username,
            admin.password.expose_secret(),
            &[ADMIN_ROLE.to_owned()],
        )
        .await
        .map_err(|e| match e {
            // The refusal names the variable and why, never the value.
            AuthError::Password(refused) => {
                ServeError::Config(format!("AUTH_BOOTSTRAP_ADMIN_PASSWORD: {refused}"))
            }
            AuthError::InvalidArgument(m) => {
                ServeError::Config(format!("AUTH_BOOTSTRAP_ADMIN_USERNAME: {m}"))
            }
            other => other.into(),
        })?;
    let entry =
        crate::audit::Entry::new("user.bootstrapped", crate::audit::Outcome::Success, "local")
            .actor("bootstrap")
            .subject(&user.id)
            .detail("admin created at first start");
    state.audit(entry).await;
    Ok(())
}
