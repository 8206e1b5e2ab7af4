//! The label values of the auth metrics, as enums: every label has a fixed set of values, so no
//! request can create a series (never a username, token or address).

use auth_proto::v1::InvalidReason;
use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};

use crate::error::AuthError;

/// An enum of label values, each with its fixed spelling in the exposition.
macro_rules! label_values {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub(crate) enum $name {
            $($(#[$vmeta])* $variant),+
        }

        impl $name {
            /// Every value, in declaration order.
            #[allow(dead_code)]
            pub(crate) const ALL: &[$name] = &[$($name::$variant),+];

            /// The value as it appears in the exposition.
            pub(crate) fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text),+
                }
            }
        }

        impl EncodeLabelValue for $name {
            fn encode(&self, encoder: &mut LabelValueEncoder<'_>) -> std::fmt::Result {
                std::fmt::Write::write_str(encoder, self.as_str())
            }
        }
    };
}

label_values! {
    /// How a `Login` ended.
    LoginResult {
        /// Tokens issued.
        Success => "success",
        /// Unknown user, wrong password or disabled account (one answer for all three).
        InvalidCredentials => "invalid_credentials",
        /// Refused by the login throttle before any password was checked.
        Throttled => "throttled",
        /// Shed: the hashing queue was full.
        Overloaded => "overloaded",
        /// A malformed request (empty or oversized input), refused before any hashing.
        InvalidRequest => "invalid_request",
        /// Anything else: storage unavailable, internal errors.
        Error => "error",
    }
}

impl LoginResult {
    /// The result of a finished login.
    pub(crate) fn of<T>(answer: &Result<T, AuthError>) -> Self {
        match answer {
            Ok(_) => Self::Success,
            Err(AuthError::InvalidCredentials) => Self::InvalidCredentials,
            Err(AuthError::Throttled { .. }) => Self::Throttled,
            Err(AuthError::Overloaded) => Self::Overloaded,
            Err(AuthError::InvalidArgument(_)) => Self::InvalidRequest,
            Err(_) => Self::Error,
        }
    }
}

label_values! {
    /// Which token was issued.
    TokenKind {
        /// A signed JWT access token.
        Access => "access",
        /// An opaque refresh token.
        Refresh => "refresh",
    }
}

label_values! {
    /// What a token was issued for (OAuth 2.0 grant names, though the calls are gRPC).
    Grant {
        /// `Login` with a username and password.
        Password => "password",
        /// `Refresh` with a refresh token (rotation).
        RefreshToken => "refresh_token",
        /// `IssueServiceToken` with a client secret or assertion (an access token only).
        ClientCredentials => "client_credentials",
    }
}

label_values! {
    /// The answer of `Validate`.
    ValidationResult {
        /// The token is valid and its session live.
        Valid => "valid",
        /// The token was refused (`valid: false`, with a reason).
        Invalid => "invalid",
        /// No answer could be given (keys or storage unavailable).
        Error => "error",
    }
}

label_values! {
    /// Why `Validate` answered as it did: the `InvalidReason` of the API, or why it could not answer.
    ValidationReason {
        /// Valid.
        None => "none",
        /// Not a well-formed access token.
        Malformed => "malformed",
        /// Larger than accepted.
        TooLarge => "too_large",
        /// The signature does not verify.
        BadSignature => "bad_signature",
        /// Unknown or retired `kid`.
        UnknownKey => "unknown_key",
        /// Past `exp`.
        Expired => "expired",
        /// Before `nbf`/`iat`.
        NotYetValid => "not_yet_valid",
        /// Not our audience.
        WrongAudience => "wrong_audience",
        /// Not our issuer.
        WrongIssuer => "wrong_issuer",
        /// Session ended or user disabled since the token was issued.
        Revoked => "revoked",
        /// The verification keys could not be consulted.
        KeysUnavailable => "keys_unavailable",
        /// Storage or internal failure.
        Failure => "failure",
    }
}

impl From<InvalidReason> for ValidationReason {
    fn from(r: InvalidReason) -> Self {
        match r {
            InvalidReason::Unspecified => Self::None,
            InvalidReason::Malformed => Self::Malformed,
            InvalidReason::TooLarge => Self::TooLarge,
            InvalidReason::BadSignature => Self::BadSignature,
            InvalidReason::UnknownKey => Self::UnknownKey,
            InvalidReason::Expired => Self::Expired,
            InvalidReason::NotYetValid => Self::NotYetValid,
            InvalidReason::WrongAudience => Self::WrongAudience,
            InvalidReason::WrongIssuer => Self::WrongIssuer,
            InvalidReason::Revoked => Self::Revoked,
        }
    }
}

label_values! {
    /// Why sessions were ended.
    RevokeReason {
        /// `Logout` by the session's owner.
        Logout => "logout",
        /// A spent refresh token was presented again: the whole session is ended.
        RefreshReuse => "refresh_reuse",
        /// `RevokeSession` or `RevokeUserSessions` by an admin.
        Admin => "admin",
        /// `DisableUser`.
        UserDisabled => "user_disabled",
        /// `ChangePassword` (the other sessions) or `SetUserPassword` (all of them).
        PasswordChanged => "password_changed",
    }
}

label_values! {
    /// What the password hasher computed.
    HashOp {
        /// A new hash (password set or rehash).
        Hash => "hash",
        /// A verification (login, old password), against the dummy hash for unknown users too.
        Verify => "verify",
    }
}

label_values! {
    /// The state of a published signing key.
    KeyState {
        /// Signs new tokens.
        Current => "current",
        /// Published ahead of the next rotation.
        Next => "next",
        /// Published until the tokens it signed have expired.
        Retired => "retired",
    }
}

label_values! {
    /// `grpc_type`: the call's streaming shape, as the grpc-ecosystem metrics spell it.
    GrpcType {
        /// One request, one response.
        Unary => "unary",
        /// A request stream, one response.
        ClientStream => "client_stream",
        /// One request, a response stream (health `Watch`).
        ServerStream => "server_stream",
        /// Streams both ways (reflection).
        BidiStream => "bidi_stream",
        /// A path the server does not serve.
        Unknown => "unknown",
    }
}

impl GrpcType {
    /// The shape of a method with these streaming flags.
    pub(crate) fn of(client_streaming: bool, server_streaming: bool) -> Self {
        match (client_streaming, server_streaming) {
            (false, false) => Self::Unary,
            (true, false) => Self::ClientStream,
            (false, true) => Self::ServerStream,
            (true, true) => Self::BidiStream,
        }
    }
}

label_values! {
    /// `grpc_code`: the status code's name as grpc-go spells it (`codes.Code.String()`), which the
    /// grpc-ecosystem dashboards and alerts expect.
    GrpcCode {
        /// 0.
        Ok => "OK",
        /// 1 (one L, as in grpc-go).
        Canceled => "Canceled",
        /// 2.
        Unknown => "Unknown",
        /// 3.
        InvalidArgument => "InvalidArgument",
        /// 4.
        DeadlineExceeded => "DeadlineExceeded",
        /// 5.
        NotFound => "NotFound",
        /// 6.
        AlreadyExists => "AlreadyExists",
        /// 7.
        PermissionDenied => "PermissionDenied",
        /// 8.
        ResourceExhausted => "ResourceExhausted",
        /// 9.
        FailedPrecondition => "FailedPrecondition",
        /// 10.
        Aborted => "Aborted",
        /// 11.
        OutOfRange => "OutOfRange",
        /// 12.
        Unimplemented => "Unimplemented",
        /// 13.
        Internal => "Internal",
        /// 14.
        Unavailable => "Unavailable",
        /// 15.
        DataLoss => "DataLoss",
        /// 16.
        Unauthenticated => "Unauthenticated",
    }
}

impl GrpcCode {
    /// The code of a `grpc-status` value; anything but 0–16 is `Unknown`, as gRPC says.
    pub(crate) fn from_status_value(value: &[u8]) -> Self {
        std::str::from_utf8(value)
            .ok()
            .and_then(|s| s.parse::<usize>().ok())
            .and_then(|n| Self::ALL.get(n).copied())
            .unwrap_or(Self::Unknown)
    }

    /// Its index in [`GrpcCode::ALL`] (the numeric code).
    pub(crate) fn index(self) -> usize {
        self as usize
    }
}

impl From<tonic::Code> for GrpcCode {
    fn from(code: tonic::Code) -> Self {
        Self::ALL
            .get(code as usize)
            .copied()
            .unwrap_or(Self::Unknown)
    }
}

/// `{result}` of the login counter.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub(super) struct LoginLabels {
    pub(super) result: LoginResult,
}

/// `{kind, grant}` of the token counter.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub(super) struct TokenLabels {
    pub(super) kind: TokenKind,
    pub(super) grant: Grant,
}

/// `{result, reason}` of the validation counter.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub(super) struct ValidationLabels {
    pub(super) result: ValidationResult,
    pub(super) reason: ValidationReason,
}

/// `{reason}` of the revoked-sessions counter.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub(super) struct RevokeLabels {
    pub(super) reason: RevokeReason,
}

/// `{op}` of the hash-duration histogram.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub(super) struct HashLabels {
    pub(super) op: HashOp,
}

/// `{state}` of the signing-keys gauge.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub(super) struct KeyStateLabels {
    pub(super) state: KeyState,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_snake_case_and_distinct() {
        let mut all: Vec<&str> = Vec::new();
        all.extend(LoginResult::ALL.iter().map(|v| v.as_str()));
        all.extend(ValidationReason::ALL.iter().map(|v| v.as_str()));
        all.extend(RevokeReason::ALL.iter().map(|v| v.as_str()));
        for v in &all {
            assert!(v.chars().all(|c| c.is_ascii_lowercase() || c == '_'), "{v}");
        }
        let mut reasons: Vec<&str> = ValidationReason::ALL.iter().map(|v| v.as_str()).collect();
        reasons.sort_unstable();
        reasons.dedup();
        assert_eq!(reasons.len(), ValidationReason::ALL.len());
    }

    #[test]
    fn grpc_codes_are_numbered_as_grpc_numbers_them() {
        assert_eq!(GrpcCode::ALL.len(), 17);
        for (n, code) in GrpcCode::ALL.iter().enumerate() {
            assert_eq!(code.index(), n);
            assert_eq!(GrpcCode::from(tonic::Code::from(n as i32)), *code);
            assert_eq!(GrpcCode::from_status_value(n.to_string().as_bytes()), *code);
        }
        assert_eq!(GrpcCode::from(tonic::Code::Cancelled).as_str(), "Canceled");
        for junk in [&b"17"[..], b"-1", b"", b"x", b"0x1"] {
            assert_eq!(GrpcCode::from_status_value(junk), GrpcCode::Unknown);
        }
    }

    #[test]
    fn login_results_follow_the_error() {
        assert_eq!(
            LoginResult::of(&Ok::<_, AuthError>(())),
            LoginResult::Success
        );
        assert_eq!(
            LoginResult::of::<()>(&Err(AuthError::Throttled { retry_after: 1 })),
            LoginResult::Throttled
        );
        assert_eq!(
            LoginResult::of::<()>(&Err(AuthError::invalid("x"))),
            LoginResult::InvalidRequest
        );
        assert_eq!(
            LoginResult::of::<()>(&Err(AuthError::Internal("x".into()))),
            LoginResult::Error
        );
    }
}
