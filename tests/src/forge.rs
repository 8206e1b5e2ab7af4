//! The catalogue's forged tokens (F01–F12, C01–C09, K03), built once and shared: the `validate` tests
//! run them against the `Validate` RPC, the `security_tokens` tests against both `Validate` and the
//! interceptor layer (they must share one verifier). Token and signature attacks (F, K03) are in
//! `token_cases`, claim-rule attacks signed with the real key (F12, C) in `claim_cases`; both are made
//! with the toolkit of [`tokens`](super::tokens).

use auth_proto::v1::InvalidReason;

mod claim_cases;
mod token_cases;

// Not every test binary uses every case.
#[allow(unused_imports)]
pub use {
    claim_cases::forged_claim_cases,
    token_cases::{forged_token_cases, tampered},
};

/// One attack: a token and the `Validate` reason it must get (`None`: any reason).
#[derive(Debug, Clone)]
pub struct Case {
    /// Catalogue id and variant, e.g. `"F01 nOnE"`.
    pub what: String,
    /// The token sent.
    pub token: String,
    /// The exact reason `Validate` must report, when one is pinned.
    pub reason: Option<InvalidReason>,
}

impl Case {
    fn new(what: impl Into<String>, token: String, reason: Option<InvalidReason>) -> Self {
        Self {
            what: what.into(),
            token,
            reason,
        }
    }

    /// Whether only the session lookup of `Validate` refuses this token: it is correctly signed by
    /// the real key with well-formed claims, so the interceptor — which verifies locally and never
    /// queries the database — accepts it until `exp` (documented; catalogue C09/C10).
    pub fn needs_session_lookup(&self) -> bool {
        self.reason == Some(InvalidReason::Revoked)
    }
}

/// The forged-token cases, plus the listener that F06's key URLs point at (it must never be contacted).
#[derive(Debug)]
pub struct ForgedTokens {
    /// The cases.
    pub cases: Vec<Case>,
    /// F06's listener: assert with [`assert_never_contacted`] after sending the cases.
    pub listener: tokio::net::TcpListener,
}

/// Asserts nobody connected to `listener` (F06: no outbound fetch of a key named by a token).
pub async fn assert_never_contacted(listener: &tokio::net::TcpListener) {
    assert!(
        tokio::time::timeout(std::time::Duration::from_millis(200), listener.accept())
            .await
            .is_err(),
        "a verifier fetched a key from a URL in a token"
    );
}
