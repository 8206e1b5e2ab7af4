//! Usernames through the real API (issue 14, finding 3): the RFC 8265 UsernameCaseMapped profile with
//! full case folding. Invisible and formatting look-alikes of `admin` are refused with
//! INVALID_ARGUMENT at CreateUser and at Login; forms the profile maps (full width, case, final
//! sigma) are one account; a confusable of an existing name (UTS #39 skeleton) is refused without
//! naming it; and no look-alike spelling logs in as admin.

use crate::support::*;
use tonic::Code;

both_backends!(
    invisible_look_alikes_are_refused,
    mapped_forms_are_one_account,
    confusables_of_an_account_are_refused,
);

/// The look-alikes of "admin" from the issue: soft hyphen, combining grapheme joiner, variation
/// selector, tag letter, Hangul filler, bidi isolate; and a right-to-left override.
const INVISIBLE: [&str; 7] = [
    "adm\u{AD}in",
    "a\u{34F}dmin",
    "admin\u{FE0F}",
    "admin\u{E0041}",
    "\u{3164}admin",
    "admin\u{2066}",
    "admin\u{202E}",
];

/// The bootstrap admin's user id.
async fn admin_id(s: &TestServer) -> String {
    let token = s.admin_token().await;
    claims_of(&token)["sub"].as_str().expect("sub").to_owned()
}

async fn invisible_look_alikes_are_refused(backend: Backend) {
    let s = TestServer::start(backend).await;
    let token = s.admin_token().await;
    let users_before = s.db.count("users").await;
    for name in INVISIBLE {
        let st = s
            .try_create_user(&token, name, "look-alike-password-1", &["admin"])
            .await
            .expect_err(name);
        assert_eq!(st.code(), Code::InvalidArgument, "{name:?}: {st:?}");
        assert!(st.message().starts_with("username "), "{st:?}");
        assert_no_leak(&st, &[name]);
        // Logging in with it does not reach admin: it is refused before any lookup.
        let st = s.try_login(name, ADMIN_PASSWORD).await.expect_err(name);
        assert_eq!(st.code(), Code::InvalidArgument, "{name:?}: {st:?}");
        assert_no_leak(&st, &[name]);
    }
    assert_eq!(s.db.count("users").await, users_before, "none created");
    s.shutdown().await;
}

async fn mapped_forms_are_one_account(backend: Backend) {
    let s = TestServer::start(backend).await;
    let token = s.admin_token().await;
    let admin = admin_id(&s).await;
    // Full width and upper case are the admin account itself.
    for name in ["ＡＤＭＩＮ", "ADMIN", "Admin"] {
        let st = s
            .try_create_user(&token, name, "look-alike-password-1", &[])
            .await
            .expect_err(name);
        assert_status(&st, Code::AlreadyExists, "username already exists", &[]);
        let login = s.login(name, ADMIN_PASSWORD).await;
        assert_eq!(
            claims_of(&login.access_token)["sub"],
            admin.as_str(),
            "{name:?}"
        );
    }
    // Final sigma: ΟΔΟΣ, οδοσ and οδος are one account.
    let greek = s.create_user(&token, "ΟΔΟΣ", "odos-password-1", &[]).await;
    assert_eq!(greek.username, "ΟΔΟΣ", "the display form keeps its case");
    for name in ["οδοσ", "οδος", "Οδος"] {
        let st = s
            .try_create_user(&token, name, "odos-password-2", &[])
            .await
            .expect_err(name);
        assert_status(&st, Code::AlreadyExists, "username already exists", &[]);
        let login = s.login(name, "odos-password-1").await;
        let claims = claims_of(&login.access_token);
        assert_eq!(claims["sub"], greek.id.as_str(), "{name:?}");
        assert_eq!(claims["username"], "ΟΔΟΣ");
    }
    s.shutdown().await;
}

async fn confusables_of_an_account_are_refused(backend: Backend) {
    let s = TestServer::start(backend).await;
    let token = s.admin_token().await;
    let users_before = s.db.count("users").await;
    // Cyrillic а; Turkish dotless ı and dotted İ; "rn" for "m".
    for name in ["\u{430}dmin", "adm\u{131}n", "ADM\u{130}N", "adrnin"] {
        let st = s
            .try_create_user(&token, name, "look-alike-password-1", &["admin"])
            .await
            .expect_err(name);
        assert_status(
            &st,
            Code::AlreadyExists,
            "username looks too much like an existing username",
            &[name, ADMIN_USER],
        );
        // No account has that key: the admin's password does not log in by it.
        let st = s.try_login(name, ADMIN_PASSWORD).await.expect_err(name);
        assert_status(&st, Code::Unauthenticated, "invalid credentials", &[]);
    }
    assert_eq!(s.db.count("users").await, users_before, "none created");
    // A name of another script that looks like no account is fine.
    let cyr = s
        .create_user(
            &token,
            "\u{434}\u{438}\u{43c}\u{430}",
            "dima-password-1",
            &[],
        )
        .await;
    let login = s.login("ДИМА", "dima-password-1").await;
    assert_eq!(claims_of(&login.access_token)["sub"], cyr.id.as_str());
    assert_eq!(cyr.username, "\u{434}\u{438}\u{43c}\u{430}");
    s.shutdown().await;
}
