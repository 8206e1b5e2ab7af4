//! Whether a verified access token is still live, judged on current state (never only on what the
//! token remembers): a user token's session must be live and its user enabled (see
//! [`AppState::session_is_live`]); a service token's account must exist, be enabled, and not have
//! ended its tokens since this one was issued (`tokens_not_before <= iat`; same-second issue counts
//! as after, as for users). `Validate`, the server's own authorization of ChangePassword and
//! AdminService, and ext_authz `Check` all judge through here.

use auth_interceptor::{Claims, TokenKind};

use crate::state::AppState;
use crate::store::{ServiceAccountStatus, SessionStatus, Store, StoreResult};

/// The current state behind one token, as read from the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum TokenStatus {
    /// A user token's session and user (`None`: no such session).
    Session(Option<SessionStatus>),
    /// A service token's account (`None`: no such account).
    ServiceAccount(Option<ServiceAccountStatus>),
}

impl TokenStatus {
    /// Reads the state behind `claims` (one query).
    pub(crate) async fn read(store: &dyn Store, claims: &Claims) -> StoreResult<Self> {
        Ok(match claims.kind {
            TokenKind::User => Self::Session(store.session_status(&claims.sid).await?),
            TokenKind::Service => {
                Self::ServiceAccount(store.service_account_status(&claims.sub).await?)
            }
        })
    }

    /// What identifies that state, for a cache of it: the session, or the account.
    pub(crate) fn cache_key(claims: &Claims) -> String {
        match claims.kind {
            TokenKind::User => format!("session:{}", claims.sid),
            TokenKind::Service => format!("account:{}", claims.sub),
        }
    }

    /// True when the token is live at `now` given this state (which must have been read for it).
    pub(crate) fn is_live(&self, claims: &Claims, now: i64) -> bool {
        match (self, claims.kind) {
            (Self::Session(s), TokenKind::User) => {
                AppState::session_is_live(s.as_ref(), claims, now)
            }
            (Self::ServiceAccount(a), TokenKind::Service) => {
                let issued = i64::try_from(claims.iat).unwrap_or(i64::MAX);
                a.as_ref()
                    .is_some_and(|a| !a.disabled && issued >= a.tokens_not_before)
            }
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use auth_interceptor::Audience;

    use super::*;

    fn service(iat: u64) -> Claims {
        Claims {
            iss: "auth-server".into(),
            sub: "acct-1".into(),
            aud: Audience::One("orders".into()),
            exp: iat + 300,
            iat,
            nbf: iat,
            jti: "j".into(),
            sid: String::new(),
            roles: vec![],
            username: String::new(),
            client_id: "payments".into(),
            kind: TokenKind::Service,
        }
    }

    #[test]
    fn a_service_token_lives_while_its_account_is_enabled_and_has_not_ended_it() {
        let live = |disabled, tokens_not_before| {
            TokenStatus::ServiceAccount(Some(ServiceAccountStatus {
                disabled,
                tokens_not_before,
            }))
        };
        let c = service(100);
        assert!(live(false, 0).is_live(&c, 150));
        assert!(
            live(false, 100).is_live(&c, 150),
            "same second counts as after"
        );
        assert!(!live(false, 101).is_live(&c, 150));
        assert!(!live(true, 0).is_live(&c, 150));
        assert!(!TokenStatus::ServiceAccount(None).is_live(&c, 150));
        // State read for the other kind of token never makes it live.
        assert!(!TokenStatus::Session(None).is_live(&c, 150));
        assert_ne!(TokenStatus::cache_key(&c), "session:");
    }
}
