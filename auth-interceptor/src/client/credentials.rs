//! How a service account proves who it is to `IssueServiceToken`: its client id plus a client secret
//! (given, from an environment variable, or from a mounted file re-read at every use) or a private key
//! (Ed25519 or P-256, PKCS#8 PEM) that signs RFC 7523 client assertions. Nothing here ever shows a
//! secret: `Debug` and every error name where a secret comes from, never what it is.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use auth_proto::v1::issue_service_token_request::Credential;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use secrecy::{ExposeSecret, SecretString};
use serde_json::json;

/// Lifetime of a client assertion: the auth server accepts at most 5 minutes; a minute is plenty for
/// one call and keeps the server's replay memory short.
pub const ASSERTION_TTL_SECS: u64 = 60;

/// Credentials that could not be loaded. The messages name the variable or file, never its content.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CredentialsError {
    /// The environment variable is unset, empty or not UTF-8.
    #[error("environment variable {0} is not set (it should hold the client secret)")]
    MissingVariable(String),
    /// A file could not be read.
    #[error("{file}: cannot read: {reason}")]
    Unreadable {
        /// The path as given.
        file: String,
        /// The I/O error.
        reason: String,
    },
    /// A secret file is empty (only whitespace).
    #[error("{0}: the client secret file is empty")]
    EmptySecret(String),
    /// The key is not an unencrypted PKCS#8 PEM Ed25519 or P-256 private key.
    #[error("{origin}: {reason}")]
    BadKey {
        /// Where the key came from (a path, or "key").
        origin: String,
        /// What is wrong with it.
        reason: String,
    },
}

/// A private key signing client assertions (`EdDSA` for Ed25519, `ES256` for P-256), with the `kid`
/// it is registered under (`AdminService/AddServiceAccountKey`).
pub struct AssertionKey {
    kid: String,
    pair: KeyPair,
}

enum KeyPair {
    Ed25519(Ed25519KeyPair),
    P256(EcdsaKeyPair),
}

impl std::fmt::Debug for AssertionKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AssertionKey")
            .field("kid", &self.kid)
            .field("alg", &self.alg())
            .finish_non_exhaustive()
    }
}

impl AssertionKey {
    /// Parses an unencrypted PKCS#8 PEM private key (`-----BEGIN PRIVATE KEY-----`, as written by
    /// `openssl genpkey -algorithm ed25519` or `openssl genpkey -algorithm EC -pkeyopt
    /// ec_paramgen_curve:P-256`), to be named `kid` in assertion headers.
    pub fn from_pem(kid: impl Into<String>, pem: &SecretString) -> Result<Self, CredentialsError> {
        Self::parse(kid.into(), pem.expose_secret(), "key")
    }

    /// Reads [`AssertionKey::from_pem`]'s format from `path` (e.g. a mounted Kubernetes secret).
    pub fn from_pem_file(
        kid: impl Into<String>,
        path: impl AsRef<Path>,
    ) -> Result<Self, CredentialsError> {
        let path = path.as_ref();
        let text = SecretString::from(read(path)?);
        Self::parse(
            kid.into(),
            text.expose_secret(),
            &path.display().to_string(),
        )
    }

    fn parse(kid: String, pem: &str, origin: &str) -> Result<Self, CredentialsError> {
        let bad = |reason: &str| CredentialsError::BadKey {
            origin: origin.to_owned(),
            reason: reason.to_owned(),
        };
        if kid.is_empty() {
            return Err(bad("the key id (kid) is empty"));
        }
        let der = pkcs8_der(pem).map_err(bad)?;
        let pair = if let Ok(k) = Ed25519KeyPair::from_pkcs8(&der) {
            KeyPair::Ed25519(k)
        } else if let Ok(k) = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &der) {
            KeyPair::P256(k)
        } else {
            return Err(bad("not an Ed25519 or P-256 PKCS#8 private key"));
        };
        Ok(Self { kid, pair })
    }

    /// The key id put in assertion headers.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The JWS algorithm: `"EdDSA"` or `"ES256"`.
    pub fn alg(&self) -> &'static str {
        match self.pair {
            KeyPair::Ed25519(_) => "EdDSA",
            KeyPair::P256(_) => "ES256",
        }
    }

    /// A signed RFC 7523 assertion for `client_id` to the auth server `issuer`, issued at `now`
    /// (seconds since the Unix epoch), expiring [`ASSERTION_TTL_SECS`] later, with a random `jti`.
    pub fn assertion(&self, client_id: &str, issuer: &str, now: u64) -> Result<String, String> {
        let mut jti = [0u8; 16];
        aws_lc_rs::rand::fill(&mut jti).map_err(|_| "no randomness for the jti".to_owned())?;
        let header = json!({"alg": self.alg(), "typ": "JWT", "kid": self.kid});
        let claims = json!({
            "iss": client_id,
            "sub": client_id,
            "aud": issuer,
            "iat": now,
            "exp": now + ASSERTION_TTL_SECS,
            "jti": URL_SAFE_NO_PAD.encode(jti),
        });
        let signing_input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let signature = match &self.pair {
            KeyPair::Ed25519(k) => k.sign(signing_input.as_bytes()).as_ref().to_vec(),
            KeyPair::P256(k) => k
                .sign(&SystemRandom::new(), signing_input.as_bytes())
                .map_err(|_| "the assertion could not be signed".to_owned())?
                .as_ref()
                .to_vec(),
        };
        Ok(format!(
            "{signing_input}.{}",
            URL_SAFE_NO_PAD.encode(signature)
        ))
    }
}

/// The DER of the one `PRIVATE KEY` block of `pem`.
fn pkcs8_der(pem: &str) -> Result<Vec<u8>, &'static str> {
    const BEGIN: &str = "-----BEGIN PRIVATE KEY-----";
    const END: &str = "-----END PRIVATE KEY-----";
    if pem.contains("-----BEGIN ENCRYPTED PRIVATE KEY-----") {
        return Err("encrypted private keys are not supported");
    }
    let Some((_, rest)) = pem.split_once(BEGIN) else {
        return Err(
            "no \"BEGIN PRIVATE KEY\" block (for a SEC1 or OpenSSH key, convert it with \
             `openssl pkcs8 -topk8 -nocrypt`)",
        );
    };
    let Some((body, _)) = rest.split_once(END) else {
        return Err("the PEM block has no END line");
    };
    let b64: String = body.split_whitespace().collect();
    STANDARD
        .decode(b64)
        .map_err(|_| "the PEM block is not base64")
}

fn read(path: &Path) -> Result<String, CredentialsError> {
    std::fs::read_to_string(path).map_err(|e| CredentialsError::Unreadable {
        file: path.display().to_string(),
        reason: e.to_string(),
    })
}

/// How the account proves itself.
#[derive(Clone)]
enum Proof {
    Secret(SecretString),
    /// Re-read at every `IssueServiceToken`, so a rotated secret mounted in its place is used.
    SecretFile(PathBuf),
    Key {
        key: Arc<AssertionKey>,
        issuer: String,
    },
}

/// A service account's client id and its proof of identity, for
/// [`ServiceTokenSource`](super::ServiceTokenSource).
///
/// ```
/// use auth_interceptor::client::{SecretString, ServiceCredentials};
/// let creds = ServiceCredentials::secret("payments", SecretString::from("svcsec_..."));
/// assert_eq!(creds.client_id(), "payments");
/// assert!(!format!("{creds:?}").contains("svcsec_"));
/// ```
#[derive(Clone)]
pub struct ServiceCredentials {
    client_id: String,
    proof: Proof,
}

impl std::fmt::Debug for ServiceCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut d = f.debug_struct("ServiceCredentials");
        d.field("client_id", &self.client_id);
        match &self.proof {
            Proof::Secret(_) => d.field("secret", &"[redacted]"),
            Proof::SecretFile(p) => d.field("secret_file", p),
            Proof::Key { key, issuer } => d.field("key", key).field("issuer", issuer),
        };
        d.finish()
    }
}

impl ServiceCredentials {
    /// `client_id` (the account's name) with its client secret.
    pub fn secret(client_id: impl Into<String>, secret: SecretString) -> Self {
        Self {
            client_id: client_id.into(),
            proof: Proof::Secret(secret),
        }
    }

    /// `client_id` with the client secret held by the environment variable `var` (read now).
    pub fn secret_from_env(
        client_id: impl Into<String>,
        var: &str,
    ) -> Result<Self, CredentialsError> {
        match std::env::var(var) {
            Ok(s) if !s.trim().is_empty() => Ok(Self::secret(
                client_id,
                SecretString::from(s.trim().to_owned()),
            )),
            _ => Err(CredentialsError::MissingVariable(var.to_owned())),
        }
    }

    /// `client_id` with the client secret in the file at `path` (surrounding whitespace ignored). The
    /// file is read now, to report a mistake at startup, and again at every `IssueServiceToken`, so
    /// a rotated secret written in its place (a Kubernetes secret volume) is picked up.
    pub fn secret_file(
        client_id: impl Into<String>,
        path: impl Into<PathBuf>,
    ) -> Result<Self, CredentialsError> {
        let path = path.into();
        read_secret_file(&path)?;
        Ok(Self {
            client_id: client_id.into(),
            proof: Proof::SecretFile(path),
        })
    }

    /// `client_id` proving itself with assertions signed by `key`, addressed to the auth server whose
    /// issuer (`iss` of its tokens, `AUTH_ISSUER`) is `issuer`.
    pub fn assertion(
        client_id: impl Into<String>,
        key: AssertionKey,
        issuer: impl Into<String>,
    ) -> Self {
        Self {
            client_id: client_id.into(),
            proof: Proof::Key {
                key: Arc::new(key),
                issuer: issuer.into(),
            },
        }
    }

    /// The client id (the service account's name).
    pub fn client_id(&self) -> &str {
        &self.client_id
    }

    /// The credential of one `IssueServiceToken` call at `now` (seconds since the Unix epoch): the
    /// secret (re-read from its file) or a fresh assertion.
    pub(crate) fn credential(&self, now: u64) -> Result<Credential, String> {
        match &self.proof {
            Proof::Secret(s) => Ok(Credential::ClientSecret(s.expose_secret().to_owned())),
            Proof::SecretFile(path) => read_secret_file(path)
                .map(|s| Credential::ClientSecret(s.expose_secret().to_owned()))
                .map_err(|e| e.to_string()),
            Proof::Key { key, issuer } => key
                .assertion(&self.client_id, issuer, now)
                .map(Credential::ClientAssertion),
        }
    }
}

fn read_secret_file(path: &Path) -> Result<SecretString, CredentialsError> {
    let text = SecretString::from(read(path)?);
    let trimmed = text.expose_secret().trim();
    if trimmed.is_empty() {
        return Err(CredentialsError::EmptySecret(path.display().to_string()));
    }
    Ok(SecretString::from(trimmed.to_owned()))
}
