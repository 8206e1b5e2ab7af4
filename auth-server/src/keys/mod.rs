//! Signing keys: generation, encryption at rest, rotation, and the published JWKS.
//!
//! Asymmetric mode (default) keeps keys in the database: one `current` key signs, one `next` key is
//! published ahead of use, and `retired` keys stay published until every token they signed has
//! expired. Shared-secret mode (HS256) signs with a configured secret and publishes nothing.

pub mod generate;
pub mod master;
pub mod rotation;
pub(crate) mod source;

use std::sync::Arc;

use arc_swap::ArcSwap;
use auth_interceptor::{KeySet, SharedKeys, VerificationKey};
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, EncodingKey};
use zeroize::Zeroizing;

use crate::error::AuthError;
use crate::store::{KeyStatus, SigningKeyRecord, Store};
use master::MasterKey;
use rotation::{KeyTimes, RotationPolicy, Trigger};

/// How tokens are signed.
pub enum SigningMode {
    /// Keys generated and stored (encrypted under `master`) in the database.
    Asymmetric {
        /// EdDSA, ES256 or RS256: the algorithm of newly generated keys.
        alg: Algorithm,
        /// Encrypts private keys at rest.
        master: MasterKey,
    },
    /// HS256 with a shared secret (≥ 32 bytes); no JWKS is published.
    SharedSecret {
        /// The secret.
        secret: Zeroizing<Vec<u8>>,
    },
}

impl std::fmt::Debug for SigningMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SigningMode::Asymmetric { alg, .. } => write!(f, "Asymmetric({alg:?})"),
            SigningMode::SharedSecret { .. } => f.write_str("SharedSecret(HS256)"),
        }
    }
}

/// The key that signs new tokens.
pub struct Signer {
    /// Key id, put in the token header.
    pub kid: String,
    /// Algorithm.
    pub alg: Algorithm,
    /// The private key.
    pub key: EncodingKey,
}

/// Kids after a rotation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rotation {
    /// Signs from now on.
    pub current: String,
    /// Published ahead of the next rotation.
    pub next: String,
    /// Was current; published until its tokens expire.
    pub retired: String,
}

impl Rotation {
    /// What the audit trail records of it.
    pub(crate) fn audit_detail(&self, forced: bool) -> String {
        let forced = if forced { ", forced" } else { "" };
        format!("retired {}, next {}{forced}", self.retired, self.next)
    }
}

/// How many published keys are in each state (for the metrics).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KeyCounts {
    /// Signing (1; the shared secret in HS256 mode).
    pub current: usize,
    /// Published ahead of use.
    pub next: usize,
    /// Still published after their rotation.
    pub retired: usize,
}

impl KeyCounts {
    fn of(records: &[SigningKeyRecord]) -> Self {
        let count = |status| records.iter().filter(|r| r.status == status).count();
        Self {
            current: count(KeyStatus::Current),
            next: count(KeyStatus::Next),
            retired: count(KeyStatus::Retired),
        }
    }
}

/// Owns the signing keys of this replica and keeps them in step with the database.
pub struct KeyManager {
    mode: SigningMode,
    store: Arc<dyn Store>,
    /// How long a retired key stays published: the access-token lifetime plus leeway.
    retire_after: i64,
    rotation: RotationPolicy,
    /// When the current key became current and the next one was published, as last loaded.
    times: ArcSwap<KeyTimes>,
    signer: ArcSwap<Signer>,
    published: SharedKeys,
    jwks_json: ArcSwap<String>,
    counts: ArcSwap<KeyCounts>,
}

impl std::fmt::Debug for KeyManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyManager")
            .field("mode", &self.mode)
            .field("kid", &self.signer.load().kid)
            .finish()
    }
}

impl KeyManager {
    /// Loads the keys, generating a current and a next key on first start.
    pub async fn start(
        mode: SigningMode,
        store: Arc<dyn Store>,
        retire_after: i64,
        rotation: RotationPolicy,
        now: i64,
    ) -> Result<Self, AuthError> {
        if let SigningMode::SharedSecret { secret } = &mode {
            let kid = auth_interceptor::hs256_kid(secret);
            let published = KeySet::hs256(secret).map_err(internal)?;
            let signer = Signer {
                kid,
                alg: Algorithm::HS256,
                key: EncodingKey::from_secret(secret),
            };
            let counts = KeyCounts {
                current: 1,
                ..KeyCounts::default()
            };
            return Ok(Self::assemble(
                mode,
                store,
                (retire_after, RotationPolicy::MANUAL),
                signer,
                published,
                (r#"{"keys":[]}"#.into(), KeyTimes::default(), counts),
            ));
        }
        if let SigningMode::Asymmetric { alg, master } = &mode {
            let existing = store.signing_keys().await?;
            if !existing.iter().any(|k| k.status == KeyStatus::Current) {
                let current = new_record(*alg, master, KeyStatus::Current, now)?;
                let next = new_record(*alg, master, KeyStatus::Next, now)?;
                if store.init_signing_keys(&[current, next]).await? {
                    tracing::info!(alg = ?alg, "generated initial signing keys");
                }
            }
        }
        let (signer, published, jwks, times, counts) = load(&mode, store.as_ref(), now).await?;
        Ok(Self::assemble(
            mode,
            store,
            (retire_after, rotation),
            signer,
            published,
            (jwks, times, counts),
        ))
    }

    fn assemble(
        mode: SigningMode,
        store: Arc<dyn Store>,
        (retire_after, rotation): (i64, RotationPolicy),
        signer: Signer,
        published: KeySet,
        (jwks, times, counts): (String, KeyTimes, KeyCounts),
    ) -> Self {
        Self {
            mode,
            store,
            retire_after,
            rotation,
            times: ArcSwap::from_pointee(times),
            signer: ArcSwap::from_pointee(signer),
            published: SharedKeys::new(published),
            jwks_json: ArcSwap::from_pointee(jwks),
            counts: ArcSwap::from_pointee(counts),
        }
    }

    /// The key that signs new tokens.
    pub fn signer(&self) -> Arc<Signer> {
        self.signer.load_full()
    }

    /// The published verification keys (current, next and unexpired retired keys).
    pub fn verification_keys(&self) -> &SharedKeys {
        &self.published
    }

    /// The key that labels attempted usernames (see [`crate::labels`]): derived from the master key,
    /// or in HS256 mode from the shared secret, so it is the same on every replica.
    pub(crate) fn name_labels(&self) -> Result<crate::labels::NameLabels, AuthError> {
        match &self.mode {
            SigningMode::Asymmetric { master, .. } => master.name_labels(),
            SigningMode::SharedSecret { secret } => crate::labels::NameLabels::derive(secret),
        }
    }

    /// The key that MACs service accounts' client secrets (see
    /// [`crate::service_accounts::secret`]): derived like [`KeyManager::name_labels`], for another
    /// purpose.
    pub(crate) fn secret_macs(
        &self,
    ) -> Result<crate::service_accounts::secret::SecretMacs, AuthError> {
        crate::service_accounts::secret::SecretMacs::derive(self.key_material())
    }

    /// The deployment's secret key material: the master key, or in HS256 mode the shared secret.
    fn key_material(&self) -> &[u8] {
        match &self.mode {
            SigningMode::Asymmetric { master, .. } => master.raw(),
            SigningMode::SharedSecret { secret } => secret.as_slice(),
        }
    }

    /// The published JWKS document.
    pub fn jwks_json(&self) -> Arc<String> {
        self.jwks_json.load_full()
    }

    /// How many published keys are in each state.
    pub fn counts(&self) -> KeyCounts {
        **self.counts.load()
    }

    /// Re-reads the keys from the database (another replica may have rotated).
    pub async fn reload(&self, now: i64) -> Result<(), AuthError> {
        if matches!(self.mode, SigningMode::SharedSecret { .. }) {
            return Ok(());
        }
        let (signer, published, jwks, times, counts) =
            load(&self.mode, self.store.as_ref(), now).await?;
        if signer.kid != self.signer.load().kid {
            tracing::info!(kid = %signer.kid, "signing key changed");
        }
        self.times.store(Arc::new(times));
        self.signer.store(Arc::new(signer));
        self.published.store(published);
        self.jwks_json.store(Arc::new(jwks));
        self.counts.store(Arc::new(counts));
        Ok(())
    }

    /// The rotation schedule (manual only in shared-secret mode).
    pub fn rotation_policy(&self) -> RotationPolicy {
        self.rotation
    }

    /// Rotates if the schedule says the current key is due and the next one has been published for
    /// the pre-publication time; `None` when not (or when another replica has just rotated).
    pub async fn rotate_if_due(&self, now: i64) -> Result<Option<Rotation>, AuthError> {
        if matches!(self.mode, SigningMode::SharedSecret { .. }) {
            return Ok(None);
        }
        self.rotate(now, Trigger::Scheduled).await
    }

    /// Rotates on an operator's request, at once; refused (`FAILED_PRECONDITION`) while the next key
    /// has been published for less than the pre-publication time, unless `force`d.
    pub async fn rotate_on_request(&self, now: i64, force: bool) -> Result<Rotation, AuthError> {
        if matches!(self.mode, SigningMode::SharedSecret { .. }) {
            return Err(AuthError::FailedPrecondition(
                "shared-secret (HS256) mode has no key rotation: change AUTH_HS256_SECRET on all services",
            ));
        }
        // The decision needs the keys as they are now, not as of the last periodic reload.
        self.reload(now).await?;
        self.rotate(now, Trigger::Requested { force })
            .await?
            .ok_or(AuthError::FailedPrecondition(
                "the next signing key has been published for less than AUTH_KEY_PREPUBLISH, so \
                 verifiers may not have it yet: retry later, or force the rotation",
            ))
    }

    /// Rotates: next → current, current → retired (published for `retire_after` more seconds), and a
    /// new next key — if `trigger`'s conditions hold, in memory and then in the store's transaction.
    async fn rotate(&self, now: i64, trigger: Trigger) -> Result<Option<Rotation>, AuthError> {
        let SigningMode::Asymmetric { alg, master } = &self.mode else {
            return Ok(None);
        };
        let retire_until = now.saturating_add(self.retire_after);
        let Some(conditions) =
            self.rotation
                .conditions(trigger, **self.times.load(), now, retire_until)
        else {
            return Ok(None);
        };
        let next = new_record(*alg, master, KeyStatus::Next, now)?;
        let next_kid = next.kid.clone();
        let rotated = self.store.rotate_signing_keys(&next, &conditions).await?;
        // Either way the keys changed or another replica changed them: read them again.
        self.reload(now).await?;
        Ok(rotated.map(|(current, retired)| Rotation {
            current,
            next: next_kid,
            retired,
        }))
    }
}

fn internal(e: impl std::fmt::Display) -> AuthError {
    AuthError::Internal(e.to_string())
}

/// Generates and encrypts a new key record.
fn new_record(
    alg: Algorithm,
    master: &MasterKey,
    status: KeyStatus,
    now: i64,
) -> Result<SigningKeyRecord, AuthError> {
    let key = generate::generate(alg).map_err(internal)?;
    Ok(SigningKeyRecord {
        private_key_enc: master.seal(&key.kid, &key.pkcs8).map_err(internal)?,
        public_jwk: serde_json::to_string(&key.public_jwk).map_err(internal)?,
        kid: key.kid,
        alg: auth_interceptor::alg_name(alg).to_owned(),
        status,
        created_at: now,
        publish_until: None,
        activated_at: (status == KeyStatus::Current).then_some(now),
    })
}

async fn load(
    mode: &SigningMode,
    store: &dyn Store,
    now: i64,
) -> Result<(Signer, KeySet, String, KeyTimes, KeyCounts), AuthError> {
    let SigningMode::Asymmetric { master, .. } = mode else {
        return Err(AuthError::Internal(
            "load called in shared-secret mode".into(),
        ));
    };
    let mut records = store.signing_keys().await?;
    records.retain(|r| r.status != KeyStatus::Retired || r.publish_until.is_some_and(|t| t > now));
    records.sort_by_key(|r| match r.status {
        KeyStatus::Current => 0,
        KeyStatus::Next => 1,
        KeyStatus::Retired => 2,
    });
    let mut published = KeySet::new();
    let mut jwks = Vec::with_capacity(records.len());
    let mut signer = None;
    let mut times = KeyTimes::default();
    for r in &records {
        let jwk: Jwk = serde_json::from_str(&r.public_jwk).map_err(internal)?;
        published
            .insert(
                r.kid.clone(),
                VerificationKey::from_jwk(&jwk).map_err(internal)?,
            )
            .map_err(internal)?;
        jwks.push(jwk);
        if r.status == KeyStatus::Next {
            times.next_since = r.created_at;
        }
        if r.status == KeyStatus::Current {
            times.current_since = r.activated_at.unwrap_or(r.created_at);
            let alg: Algorithm = r.alg.parse().map_err(internal)?;
            let pkcs8 = master.open(&r.kid, &r.private_key_enc).map_err(internal)?;
            let key = generate::encoding_key(alg, &pkcs8).map_err(internal)?;
            signer = Some(Signer {
                kid: r.kid.clone(),
                alg,
                key,
            });
        }
    }
    let signer = signer
        .ok_or_else(|| AuthError::Internal("no current signing key in the database".into()))?;
    let jwks =
        serde_json::to_string(&jsonwebtoken::jwk::JwkSet { keys: jwks }).map_err(internal)?;
    Ok((signer, published, jwks, times, KeyCounts::of(&records)))
}
