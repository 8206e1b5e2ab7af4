//! Login: the issued tokens, identical failures, input bounds, normalisation (catalogue L01, L05–L08).

use crate::support::*;
use auth_proto::v1::LoginRequest;
use tonic::Code;

both_backends!(
    login_success_issues_rfc9068_tokens,
    login_failures_are_indistinguishable,
    login_input_bounds,
    password_normalisation_and_no_truncation,
    usernames_are_canonicalised,
);

async fn login_success_issues_rfc9068_tokens(backend: Backend) {
    let s = TestServer::start(backend).await;
    let before = s.db.fingerprint().await;
    let r = s.login(ADMIN_USER, ADMIN_PASSWORD).await;
    assert_eq!(r.token_type, "Bearer");
    assert_eq!(r.expires_in, ACCESS_TTL);
    assert_eq!(r.refresh_expires_in, IDLE_TTL);

    let header = header_of(&r.access_token);
    assert_eq!(header["typ"], "at+jwt");
    assert_eq!(header["alg"], "EdDSA");
    let kid = header["kid"].as_str().expect("kid");
    let jwks = s.jwks().await;
    let kids: Vec<&str> = jwks["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .map(|k| k["kid"].as_str().expect("kid"))
        .collect();
    assert!(kids.contains(&kid), "kid {kid} not in JWKS {kids:?}");

    let c = claims_of(&r.access_token);
    let now = s.now();
    assert_eq!(c["iss"], "auth-server");
    assert_eq!(c["aud"], "internal");
    assert_eq!(c["iat"].as_i64(), Some(now));
    assert_eq!(c["nbf"].as_i64(), Some(now));
    assert_eq!(c["exp"].as_i64(), Some(now + ACCESS_TTL));
    assert_eq!(c["username"], ADMIN_USER);
    assert_eq!(c["roles"], serde_json::json!(["admin"]));
    for k in ["sub", "jti", "sid"] {
        assert!(
            c[k].as_str().is_some_and(|v| !v.is_empty()),
            "claim {k} missing: {c}"
        );
    }

    // The refresh token is opaque: 32 random bytes, base64url, and it is not the JWT.
    assert_eq!(r.refresh_token.len(), 43);
    assert!(
        r.refresh_token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    );
    let after = s.db.fingerprint().await;
    assert_eq!(after[1], before[1] + 1, "one session written");
    assert_eq!(after[3], before[3] + 1, "one refresh token written");

    // Two logins: two sessions, distinct tokens.
    let r2 = s.login("ADMIN", ADMIN_PASSWORD).await;
    assert_ne!(r2.refresh_token, r.refresh_token);
    assert_ne!(claims_of(&r2.access_token)["sid"], c["sid"]);
    assert_ne!(claims_of(&r2.access_token)["jti"], c["jti"]);
    s.shutdown().await;
}

async fn login_failures_are_indistinguishable(backend: Backend) {
    let s = TestServer::start(backend).await;
    s.seed_user("carol", "carol-password-1", &["ops"]).await;
    s.seed_user("dave", "dave-password-1", &[]).await;
    s.exec(
        "UPDATE users SET disabled = (1=1) WHERE username_key = $1",
        "dave",
    )
    .await;
    // A password-less (SSO-only) account: verified against the dummy hash like an unknown user.
    s.seed_user("erin", "erin-password-1", &[]).await;
    s.exec(
        "UPDATE users SET password_hash = NULL WHERE username_key = $1",
        "erin",
    )
    .await;
    let before = s.db.fingerprint().await;

    let cases = [
        ("nobody", "whatever-password", "unknown user"),
        ("carol", "wrong-password-1", "wrong password"),
        ("dave", "dave-password-1", "disabled user, right password"),
        ("erin", "erin-password-1", "password-less user"),
    ];
    let mut seen = Vec::new();
    for (user, pw, what) in cases {
        let st = s.try_login(user, pw).await.expect_err(what);
        assert_status(&st, Code::Unauthenticated, "invalid credentials", &[pw]);
        let mut keys: Vec<String> = st.metadata().keys().map(|k| format!("{k:?}")).collect();
        keys.sort();
        seen.push((
            st.code(),
            st.message().to_owned(),
            keys,
            st.details().to_vec(),
        ));
    }
    assert!(
        seen.windows(2).all(|w| w[0] == w[1]),
        "failures differ: {seen:?}"
    );
    assert_eq!(s.db.fingerprint().await, before, "failed logins wrote rows");
    // The right password of an enabled user still works.
    s.login("carol", "carol-password-1").await;
    s.shutdown().await;
}

async fn login_input_bounds(backend: Backend) {
    let s = TestServer::start(backend).await;
    s.seed_user("erin", "erin-password-1", &[]).await;
    let before = s.db.fingerprint().await;

    for (user, pw) in [
        ("", "erin-password-1"),
        ("erin", ""),
        ("nobody", ""),
        (" erin", "erin-password-1"),
        ("er\u{0}in", "erin-password-1"),
    ] {
        let st = s.try_login(user, pw).await.expect_err("refused");
        assert_eq!(st.code(), Code::InvalidArgument, "{user:?}/{pw:?}: {st:?}");
        assert_no_leak(&st, &[pw]);
    }

    // 1 MiB: refused by the transport's 64 KiB cap or by the length check, never OK. (tonic 0.14 reports
    // an oversized message as OUT_OF_RANGE, not RESOURCE_EXHAUSTED.)
    let huge = "p".repeat(1024 * 1024);
    let st = s.try_login("erin", &huge).await.expect_err("1 MiB refused");
    assert!(
        matches!(
            st.code(),
            Code::ResourceExhausted | Code::InvalidArgument | Code::OutOfRange
        ),
        "{:?} {}",
        st.code(),
        st.message()
    );
    assert!(st.message().len() < 200, "long status message");

    // Boundary at 1024 bytes: 1024 reaches the password check, 1025 does not.
    let at_limit = "q".repeat(1024);
    let st = s.try_login("erin", &at_limit).await.expect_err("wrong");
    assert_status(
        &st,
        Code::Unauthenticated,
        "invalid credentials",
        &[&at_limit],
    );
    let over = "q".repeat(1025);
    let st = s.try_login("erin", &over).await.expect_err("too long");
    assert_eq!(st.code(), Code::InvalidArgument, "{st:?}");
    assert_no_leak(&st, &[&over]);
    // Same for an unknown user (no oracle on existence).
    let st = s.try_login("nobody", &over).await.expect_err("too long");
    assert_eq!(st.code(), Code::InvalidArgument, "{st:?}");

    assert_eq!(s.db.fingerprint().await, before);
    // Still healthy and working.
    s.login("erin", "erin-password-1").await;
    s.shutdown().await;
}

async fn password_normalisation_and_no_truncation(backend: Backend) {
    let s = TestServer::start(backend).await;
    // Set with U+00F1, log in with n + U+0303 (NFC applied on both sides).
    s.seed_user("frank", "ma\u{f1}ana-ma\u{f1}ana", &[]).await;
    s.login("frank", "man\u{303}ana-man\u{303}ana").await;
    s.login("frank", "ma\u{f1}ana-ma\u{f1}ana").await;
    // No case folding, no trimming.
    for wrong in [
        "MA\u{d1}ANA-MA\u{d1}ANA",
        " ma\u{f1}ana-ma\u{f1}ana",
        "ma\u{f1}ana-ma\u{f1}ana ",
    ] {
        let st = s.try_login("frank", wrong).await.expect_err(wrong);
        assert_status(&st, Code::Unauthenticated, "invalid credentials", &[wrong]);
    }

    // No truncation: a 100-character password does not accept its first 72 characters.
    let long: String = (0..100)
        .map(|i| char::from(b'a' + (i % 26) as u8))
        .collect();
    s.seed_user("grace", &long, &[]).await;
    s.login("grace", &long).await;
    let st = s.try_login("grace", &long[..72]).await.expect_err("prefix");
    assert_status(&st, Code::Unauthenticated, "invalid credentials", &[&long]);
    let st = s.try_login("grace", &long[..99]).await.expect_err("prefix");
    assert_eq!(st.code(), Code::Unauthenticated);

    // Passphrases with spaces, emoji and CJK work (L07).
    let phrase = "correct horse 🐎 battery 電池 staple";
    s.seed_user("heidi", phrase, &[]).await;
    s.login("heidi", phrase).await;
    s.shutdown().await;
}

async fn usernames_are_canonicalised(backend: Backend) {
    let s = TestServer::start(backend).await;
    let id = s.seed_user("Alice", "alice-password-1", &[]).await;
    for name in [
        "Alice",
        "alice",
        "ALICE",
        "\u{ff21}\u{ff4c}\u{ff49}\u{ff43}\u{ff45}",
    ] {
        let r = s.login(name, "alice-password-1").await;
        let c = claims_of(&r.access_token);
        assert_eq!(c["sub"], id.as_str(), "{name:?} is another account");
        // The display form is kept as created.
        assert_eq!(c["username"], "Alice");
    }
    for name in [" alice", "alice ", "\u{200b}alice", "al\u{7}ice"] {
        let st = s
            .auth_client()
            .login(LoginRequest {
                username: name.into(),
                password: "alice-password-1".into(),
            })
            .await
            .expect_err(name);
        assert_eq!(st.code(), Code::InvalidArgument, "{name:?}: {st:?}");
        assert_no_leak(&st, &["alice-password-1"]);
    }
    s.shutdown().await;
}
