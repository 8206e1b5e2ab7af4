//! AdminService and ChangePassword: authorisation of every method, and each operation's effect on
//! users, sessions and tokens (catalogue M01, M08, R08, C09).

use crate::support::*;
use auth_proto::v1::admin_service_client::AdminServiceClient;
use auth_proto::v1::auth_service_client::AuthServiceClient;
use auth_proto::v1::*;
use tonic::transport::Channel;
use tonic::{Code, Request, Status};

both_backends!(
    admin_methods_require_an_admin_token,
    create_get_and_list_users,
    set_roles_disable_enable_and_delete,
    admin_password_reset_and_session_management,
    change_password_keeps_only_the_current_session,
    an_admin_cannot_lock_themselves_out,
    roles_have_one_spelling,
);

/// Calls every AdminService method once with `auth` applied to each request.
async fn call_every_admin_method(
    ch: Channel,
    auth: impl Fn(&mut tonic::metadata::MetadataMap),
) -> Vec<(&'static str, Status)> {
    let mut c = AdminServiceClient::new(ch);
    macro_rules! req {
        ($m:expr) => {{
            let mut r = Request::new($m);
            auth(r.metadata_mut());
            r
        }};
    }
    let id = "0190f000-0000-7000-8000-000000000000".to_owned();
    let mut out = Vec::new();
    macro_rules! call {
        ($name:literal, $e:expr) => {
            match bounded($name, $e).await {
                Ok(_) => panic!("{} succeeded without authorisation", $name),
                Err(st) => out.push(($name, st)),
            }
        };
    }
    call!(
        "CreateUser",
        c.create_user(req!(CreateUserRequest {
            username: "mallory".into(),
            password: "mallory-password-1".into(),
            roles: vec!["admin".into()]
        }))
    );
    call!(
        "GetUser",
        c.get_user(req!(GetUserRequest {
            user_id: id.clone(),
            username: String::new()
        }))
    );
    call!(
        "ListUsers",
        c.list_users(req!(ListUsersRequest {
            page_size: 0,
            page_token: String::new()
        }))
    );
    call!(
        "SetUserRoles",
        c.set_user_roles(req!(SetUserRolesRequest {
            user_id: id.clone(),
            roles: vec!["admin".into()]
        }))
    );
    call!(
        "DisableUser",
        c.disable_user(req!(DisableUserRequest {
            user_id: id.clone()
        }))
    );
    call!(
        "EnableUser",
        c.enable_user(req!(EnableUserRequest {
            user_id: id.clone()
        }))
    );
    call!(
        "SetUserPassword",
        c.set_user_password(req!(SetUserPasswordRequest {
            user_id: id.clone(),
            password: "mallory-password-1".into()
        }))
    );
    call!(
        "DeleteUser",
        c.delete_user(req!(DeleteUserRequest {
            user_id: id.clone()
        }))
    );
    call!(
        "ListUserSessions",
        c.list_user_sessions(req!(ListUserSessionsRequest {
            user_id: id.clone()
        }))
    );
    call!(
        "RevokeSession",
        c.revoke_session(req!(RevokeSessionRequest {
            session_id: id.clone()
        }))
    );
    call!(
        "RevokeUserSessions",
        c.revoke_user_sessions(req!(RevokeUserSessionsRequest {
            user_id: id.clone()
        }))
    );
    call!(
        "RotateSigningKey",
        c.rotate_signing_key(req!(RotateSigningKeyRequest::default()))
    );
    assert_eq!(out.len(), 12);
    out
}

fn set_auth(value: &str) -> impl Fn(&mut tonic::metadata::MetadataMap) + '_ {
    move |m| {
        m.insert("authorization", value.parse().expect("ascii"));
    }
}

async fn admin_methods_require_an_admin_token(backend: Backend) {
    let s = TestServer::start(backend).await;
    s.seed_user("olivia", "olivia-password-1", &["ops"]).await;
    let user_tok = s.login("olivia", "olivia-password-1").await.access_token;
    let admin = s.login(ADMIN_USER, ADMIN_PASSWORD).await;
    let before = s.db.fingerprint().await;

    // No token, or a malformed authorization header: UNAUTHENTICATED (M01, M02, M08).
    let no_token = call_every_admin_method(s.channel(), |_| {}).await;
    for (m, st) in &no_token {
        assert_eq!(
            st.code(),
            Code::Unauthenticated,
            "{m} without token: {st:?}"
        );
        assert_no_leak(st, &[]);
    }
    for bad in [
        "".to_owned(),
        "Basic dXNlcjpwYXNz".to_owned(),
        format!("Token {}", admin.access_token),
        format!("Bearer{}", admin.access_token),
        "Bearer".to_owned(),
        "Bearer ".to_owned(),
        format!("Bearer {}", admin.refresh_token),
        format!("Bearer {}x", admin.access_token),
    ] {
        for (m, st) in call_every_admin_method(s.channel(), set_auth(&bad)).await {
            assert_eq!(st.code(), Code::Unauthenticated, "{m} with {bad:?}: {st:?}");
            assert_no_leak(&st, &[&admin.access_token, &admin.refresh_token]);
        }
    }
    // A valid token without the admin role: PERMISSION_DENIED.
    let bearer_user = format!("Bearer {user_tok}");
    for (m, st) in call_every_admin_method(s.channel(), set_auth(&bearer_user)).await {
        assert_eq!(
            st.code(),
            Code::PermissionDenied,
            "{m} as non-admin: {st:?}"
        );
        assert_no_leak(&st, &[&user_tok]);
    }
    // An admin whose session was logged out: UNAUTHENTICATED at once (not only at expiry).
    let admin2 = s.login(ADMIN_USER, ADMIN_PASSWORD).await;
    let fp_before_logout = s.db.fingerprint().await;
    s.auth_client()
        .logout(LogoutRequest {
            refresh_token: admin2.refresh_token.clone(),
        })
        .await
        .expect("logout");
    let bearer_revoked = format!("Bearer {}", admin2.access_token);
    for (m, st) in call_every_admin_method(s.channel(), set_auth(&bearer_revoked)).await {
        assert_eq!(
            st.code(),
            Code::Unauthenticated,
            "{m} with a revoked admin token: {st:?}"
        );
    }
    // Nothing was changed by any refused call (beyond the two logins and the logout above).
    let after = s.db.fingerprint().await;
    assert_eq!(after[0], before[0], "users changed");
    assert_eq!(after[5], before[5], "signing keys changed");
    assert_eq!(after[1], fp_before_logout[1]);
    // The real admin token works, and `bearer`/`BEARER` schemes are accepted (M03).
    for scheme in ["Bearer", "bearer", "BEARER"] {
        let mut r = Request::new(ListUsersRequest::default());
        r.metadata_mut().insert(
            "authorization",
            format!("{scheme} {}", admin.access_token)
                .parse()
                .expect("ascii"),
        );
        s.admin_client()
            .list_users(r)
            .await
            .unwrap_or_else(|e| panic!("{scheme}: {e:?}"));
    }
    // ChangePassword needs a token too.
    let st = s
        .auth_client()
        .change_password(ChangePasswordRequest {
            old_password: "olivia-password-1".into(),
            new_password: "olivia-password-2".into(),
        })
        .await
        .expect_err("ChangePassword without token");
    assert_eq!(st.code(), Code::Unauthenticated, "{st:?}");
    s.shutdown().await;
}

async fn create_get_and_list_users(backend: Backend) {
    let s = TestServer::start(backend).await;
    let tok = s.admin_token().await;
    let mut a = s.admin_client_with(&tok);
    let u = s
        .create_user(&tok, "Peggy", "ma\u{f1}ana-ma\u{f1}ana", &["ops", "dev"])
        .await;
    assert_eq!(u.username, "Peggy");
    assert_eq!(u.roles, vec!["ops".to_owned(), "dev".to_owned()]);
    assert!(!u.disabled);
    assert!(u.create_time.is_some() && u.update_time.is_some());
    // The created password logs in through the API path, NFC-normalised.
    let l = s.login("peggy", "man\u{303}ana-man\u{303}ana").await;
    assert_eq!(
        claims_of(&l.access_token)["roles"],
        serde_json::json!(["ops", "dev"])
    );

    let users_before = s.db.count("users").await;
    for dup in ["peggy", "PEGGY", "\u{ff30}eggy"] {
        let st = a
            .create_user(CreateUserRequest {
                username: dup.into(),
                password: "another-password-1".into(),
                roles: vec![],
            })
            .await
            .expect_err(dup);
        assert_eq!(st.code(), Code::AlreadyExists, "{dup}: {st:?}");
        assert_no_leak(&st, &["another-password-1"]);
    }
    for (name, pw, roles) in [
        ("weak", "short", vec![]),
        ("weak", "", vec![]),
        ("weak", "ctrl\u{7}-password-1", vec![]),
        (" spaced", "fine-password-1", vec![]),
        ("", "fine-password-1", vec![]),
        ("badrole", "fine-password-1", vec!["has space".to_owned()]),
    ] {
        let st = a
            .create_user(CreateUserRequest {
                username: name.into(),
                password: pw.into(),
                roles,
            })
            .await
            .expect_err(name);
        assert_eq!(st.code(), Code::InvalidArgument, "{name:?}/{pw:?}: {st:?}");
        assert_no_leak(&st, &[pw]);
    }
    assert_eq!(
        s.db.count("users").await,
        users_before,
        "refused creates wrote users"
    );

    // GetUser by id and by username (canonical match).
    let by_id = a
        .get_user(GetUserRequest {
            user_id: u.id.clone(),
            username: String::new(),
        })
        .await
        .expect("by id")
        .into_inner()
        .user
        .expect("user");
    assert_eq!(by_id, u);
    let by_name = a
        .get_user(GetUserRequest {
            user_id: String::new(),
            username: "PEGGY".into(),
        })
        .await
        .expect("by name")
        .into_inner()
        .user
        .expect("user");
    assert_eq!(by_name.id, u.id);
    let st = a
        .get_user(GetUserRequest {
            user_id: "nope".into(),
            username: String::new(),
        })
        .await
        .expect_err("unknown");
    assert_eq!(st.code(), Code::NotFound);
    let st = a
        .get_user(GetUserRequest {
            user_id: u.id.clone(),
            username: "peggy".into(),
        })
        .await
        .expect_err("both");
    assert_eq!(st.code(), Code::InvalidArgument);

    // ListUsers: 2 per page over admin + 5 users, ordered by username.
    for n in ["u3", "u1", "u5", "u2"] {
        s.create_user(&tok, n, "list-password-1", &[]).await;
    }
    let mut names = Vec::new();
    let mut token = String::new();
    let mut pages = 0;
    loop {
        let page = a
            .list_users(ListUsersRequest {
                page_size: 2,
                page_token: token.clone(),
            })
            .await
            .expect("page")
            .into_inner();
        pages += 1;
        assert!(page.users.len() <= 2);
        names.extend(page.users.into_iter().map(|u| u.username));
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
        assert!(pages < 10, "pagination does not end");
    }
    assert_eq!(names, ["admin", "Peggy", "u1", "u2", "u3", "u5"]);
    assert_eq!(pages, 3);
    for (size, tok) in [(-1, ""), (1001, ""), (2, "!!!")] {
        let st = a
            .list_users(ListUsersRequest {
                page_size: size,
                page_token: tok.into(),
            })
            .await
            .expect_err("bad page");
        assert_eq!(st.code(), Code::InvalidArgument, "{size}/{tok}: {st:?}");
    }
    s.shutdown().await;
}

async fn set_roles_disable_enable_and_delete(backend: Backend) {
    let s = TestServer::start(backend).await;
    let tok = s.admin_token().await;
    let mut a = s.admin_client_with(&tok);
    let u = s
        .create_user(&tok, "quentin", "quentin-password-1", &["ops"])
        .await;
    let l = s.login("quentin", "quentin-password-1").await;

    // Roles: new tokens carry them, old tokens keep theirs.
    let r = a
        .set_user_roles(SetUserRolesRequest {
            user_id: u.id.clone(),
            roles: vec!["dev".into(), "dev".into()],
        })
        .await
        .expect("roles")
        .into_inner()
        .user
        .expect("user");
    assert_eq!(r.roles, vec!["dev".to_owned()]);
    let v = s.validate(&l.access_token).await;
    assert_eq!(v.claims.expect("claims").roles, vec!["ops".to_owned()]);
    let l2 = s.login("quentin", "quentin-password-1").await;
    assert_eq!(
        claims_of(&l2.access_token)["roles"],
        serde_json::json!(["dev"])
    );
    let st = a
        .set_user_roles(SetUserRolesRequest {
            user_id: "missing".into(),
            roles: vec![],
        })
        .await
        .expect_err("unknown");
    assert_eq!(st.code(), Code::NotFound);

    // Disable: every session ends, refresh and login fail.
    let d = a
        .disable_user(DisableUserRequest {
            user_id: u.id.clone(),
        })
        .await
        .expect("disable")
        .into_inner();
    assert!(d.user.expect("user").disabled);
    assert_eq!(d.revoked_sessions, 2);
    for t in [&l.access_token, &l2.access_token] {
        assert_invalid(
            &s.validate(t).await,
            Some(InvalidReason::Revoked),
            "disabled",
        );
    }
    let st = s
        .auth_client()
        .refresh(RefreshRequest {
            refresh_token: l2.refresh_token.clone(),
        })
        .await
        .expect_err("refresh");
    assert_status(
        &st,
        Code::Unauthenticated,
        "invalid token",
        &[&l2.refresh_token],
    );
    let st = s
        .try_login("quentin", "quentin-password-1")
        .await
        .expect_err("login");
    assert_status(
        &st,
        Code::Unauthenticated,
        "invalid credentials",
        &["quentin-password-1"],
    );

    // Enable: login works again; the old sessions stay ended.
    let e = a
        .enable_user(EnableUserRequest {
            user_id: u.id.clone(),
        })
        .await
        .expect("enable")
        .into_inner();
    assert!(!e.user.expect("user").disabled);
    let l3 = s.login("quentin", "quentin-password-1").await;
    assert_invalid(
        &s.validate(&l2.access_token).await,
        Some(InvalidReason::Revoked),
        "old",
    );
    assert!(s.validate(&l3.access_token).await.valid);

    // Delete: tokens revoked, user, sessions and refresh tokens gone.
    a.delete_user(DeleteUserRequest {
        user_id: u.id.clone(),
    })
    .await
    .expect("delete");
    assert_invalid(
        &s.validate(&l3.access_token).await,
        Some(InvalidReason::Revoked),
        "deleted",
    );
    let st = s
        .try_login("quentin", "quentin-password-1")
        .await
        .expect_err("login");
    assert_status(&st, Code::Unauthenticated, "invalid credentials", &[]);
    let st = a
        .delete_user(DeleteUserRequest {
            user_id: u.id.clone(),
        })
        .await
        .expect_err("twice");
    assert_eq!(st.code(), Code::NotFound);
    let uid = u.id.replace('\'', "");
    assert_eq!(
        s.db.scalar(&format!(
            "SELECT COUNT(*) FROM sessions WHERE user_id = '{uid}'"
        ))
        .await,
        0
    );
    s.shutdown().await;
}

async fn admin_password_reset_and_session_management(backend: Backend) {
    let s = TestServer::start(backend).await;
    let tok = s.admin_token().await;
    let mut a = s.admin_client_with(&tok);
    let u = s
        .create_user(&tok, "rupert", "rupert-password-1", &[])
        .await;
    let l1 = s.login("rupert", "rupert-password-1").await;
    let l2 = s.login("rupert", "rupert-password-1").await;
    let l3 = s.login("rupert", "rupert-password-1").await;

    let sessions = a
        .list_user_sessions(ListUserSessionsRequest {
            user_id: u.id.clone(),
        })
        .await
        .expect("list")
        .into_inner()
        .sessions;
    assert_eq!(sessions.len(), 3);
    let sid1 = claims_of(&l1.access_token)["sid"]
        .as_str()
        .expect("sid")
        .to_owned();
    assert!(sessions.iter().any(|x| x.id == sid1 && x.user_id == u.id));

    // RevokeSession: one session; a second call reports false.
    let r = a
        .revoke_session(RevokeSessionRequest {
            session_id: sid1.clone(),
        })
        .await
        .expect("revoke")
        .into_inner();
    assert!(r.revoked);
    assert_invalid(
        &s.validate(&l1.access_token).await,
        Some(InvalidReason::Revoked),
        "revoked",
    );
    assert!(s.validate(&l2.access_token).await.valid);
    let r = a
        .revoke_session(RevokeSessionRequest { session_id: sid1 })
        .await
        .expect("revoke again")
        .into_inner();
    assert!(!r.revoked);
    assert_eq!(
        a.list_user_sessions(ListUserSessionsRequest {
            user_id: u.id.clone()
        })
        .await
        .expect("list")
        .into_inner()
        .sessions
        .len(),
        2
    );

    // RevokeUserSessions: the rest.
    let r = a
        .revoke_user_sessions(RevokeUserSessionsRequest {
            user_id: u.id.clone(),
        })
        .await
        .expect("revoke all")
        .into_inner();
    assert_eq!(r.revoked_sessions, 2);
    for t in [&l2.access_token, &l3.access_token] {
        assert_invalid(
            &s.validate(t).await,
            Some(InvalidReason::Revoked),
            "all revoked",
        );
    }

    // SetUserPassword: sessions end, the new password works, the old does not.
    let l4 = s.login("rupert", "rupert-password-1").await;
    let st = a
        .set_user_password(SetUserPasswordRequest {
            user_id: u.id.clone(),
            password: "short".into(),
        })
        .await
        .expect_err("weak");
    assert_eq!(st.code(), Code::InvalidArgument);
    assert_no_leak(&st, &["short"]);
    let r = a
        .set_user_password(SetUserPasswordRequest {
            user_id: u.id.clone(),
            password: "rupert-password-2".into(),
        })
        .await
        .expect("set password")
        .into_inner();
    assert_eq!(r.revoked_sessions, 1);
    assert_invalid(
        &s.validate(&l4.access_token).await,
        Some(InvalidReason::Revoked),
        "reset",
    );
    let st = s
        .auth_client()
        .refresh(RefreshRequest {
            refresh_token: l4.refresh_token.clone(),
        })
        .await
        .expect_err("refresh after reset");
    assert_status(&st, Code::Unauthenticated, "invalid token", &[]);
    let st = s
        .try_login("rupert", "rupert-password-1")
        .await
        .expect_err("old");
    assert_status(&st, Code::Unauthenticated, "invalid credentials", &[]);
    s.login("rupert", "rupert-password-2").await;
    let st = a
        .set_user_password(SetUserPasswordRequest {
            user_id: "missing".into(),
            password: "rupert-password-3".into(),
        })
        .await
        .expect_err("unknown");
    assert_eq!(st.code(), Code::NotFound);
    s.shutdown().await;
}

async fn change_password_keeps_only_the_current_session(backend: Backend) {
    let s = TestServer::start(backend).await;
    s.seed_user("sybil", "sybil-password-1", &[]).await;
    let current = s.login("sybil", "sybil-password-1").await;
    let other1 = s.login("sybil", "sybil-password-1").await;
    let other2 = s.login("sybil", "sybil-password-1").await;
    let admin = s.login(ADMIN_USER, ADMIN_PASSWORD).await;
    let mut c = AuthServiceClient::new(s.channel());

    // Wrong old password: refused, nothing revoked.
    let before = s.db.fingerprint().await;
    let st = c
        .change_password(bearer(
            ChangePasswordRequest {
                old_password: "not-my-password".into(),
                new_password: "sybil-password-2".into(),
            },
            &current.access_token,
        ))
        .await
        .expect_err("wrong old password");
    assert_status(
        &st,
        Code::Unauthenticated,
        "invalid credentials",
        &["sybil-password-2"],
    );
    let st = c
        .change_password(bearer(
            ChangePasswordRequest {
                old_password: "sybil-password-1".into(),
                new_password: "weak".into(),
            },
            &current.access_token,
        ))
        .await
        .expect_err("weak new password");
    assert_eq!(st.code(), Code::InvalidArgument);
    assert_no_leak(&st, &["sybil-password-1", "weak"]);
    assert_eq!(s.db.fingerprint().await, before);

    let r = c
        .change_password(bearer(
            ChangePasswordRequest {
                old_password: "sybil-password-1".into(),
                new_password: "sybil-password-2".into(),
            },
            &current.access_token,
        ))
        .await
        .expect("change password")
        .into_inner();
    assert_eq!(r.revoked_sessions, 2);
    assert!(
        s.validate(&current.access_token).await.valid,
        "the caller's session stays"
    );
    for t in [&other1.access_token, &other2.access_token] {
        assert_invalid(
            &s.validate(t).await,
            Some(InvalidReason::Revoked),
            "other session",
        );
    }
    assert!(
        s.validate(&admin.access_token).await.valid,
        "other users untouched"
    );
    s.auth_client()
        .refresh(RefreshRequest {
            refresh_token: current.refresh_token.clone(),
        })
        .await
        .expect("current session refreshes");
    let st = s
        .auth_client()
        .refresh(RefreshRequest {
            refresh_token: other1.refresh_token.clone(),
        })
        .await
        .expect_err("other session");
    assert_status(&st, Code::Unauthenticated, "invalid token", &[]);
    let st = s
        .try_login("sybil", "sybil-password-1")
        .await
        .expect_err("old password");
    assert_status(&st, Code::Unauthenticated, "invalid credentials", &[]);
    s.login("sybil", "sybil-password-2").await;

    // A revoked session cannot change the password.
    let st = c
        .change_password(bearer(
            ChangePasswordRequest {
                old_password: "sybil-password-2".into(),
                new_password: "sybil-password-3".into(),
            },
            &other1.access_token,
        ))
        .await
        .expect_err("revoked session");
    assert_eq!(st.code(), Code::Unauthenticated, "{st:?}");
    s.shutdown().await;
}

async fn an_admin_cannot_lock_themselves_out(backend: Backend) {
    let s = TestServer::start(backend).await;
    let tok = s.admin_token().await;
    let me = claims_of(&tok)["sub"].as_str().expect("sub").to_owned();
    let mut a = s.admin_client_with(&tok);
    let st = a
        .disable_user(DisableUserRequest {
            user_id: me.clone(),
        })
        .await
        .expect_err("self disable");
    assert_eq!(st.code(), Code::FailedPrecondition);
    let st = a
        .delete_user(DeleteUserRequest {
            user_id: me.clone(),
        })
        .await
        .expect_err("self delete");
    assert_eq!(st.code(), Code::FailedPrecondition);
    let st = a
        .set_user_roles(SetUserRolesRequest {
            user_id: me,
            roles: vec!["ops".into()],
        })
        .await
        .expect_err("self demote");
    assert_eq!(st.code(), Code::FailedPrecondition);
    assert!(s.validate(&tok).await.valid);
    s.shutdown().await;
}

/// Issue 14, finding 8: `ADMIN` and `Admin` are refused, not roles distinct from `admin`, on create
/// and on a role change; nothing is stored.
async fn roles_have_one_spelling(backend: Backend) {
    let s = TestServer::start(backend).await;
    let token = s.admin_token().await;
    let before = s.db.fingerprint().await;
    for role in ["ADMIN", "Admin", "ops team", "rôle", ""] {
        let st = s
            .try_create_user(&token, "rolf", "rolf-strong-passphrase-7", &[role])
            .await
            .expect_err(role);
        assert_eq!(st.code(), Code::InvalidArgument, "{role:?}");
        assert!(st.message().contains("lower-case"), "{}", st.message());
        assert!(
            role.is_empty() || !st.message().contains(role),
            "echoed {role:?}"
        );
    }
    assert_eq!(s.db.fingerprint().await, before, "no user created");
    let u = s
        .create_user(&token, "rolf", "rolf-strong-passphrase-7", &["ops"])
        .await;
    let st = bounded(
        "set roles",
        s.admin_client_with(&token)
            .set_user_roles(SetUserRolesRequest {
                user_id: u.id.clone(),
                roles: vec!["Admin".into()],
            }),
    )
    .await
    .expect_err("Admin");
    assert_eq!(st.code(), Code::InvalidArgument);
    let stored = bounded(
        "get user",
        s.admin_client_with(&token).get_user(GetUserRequest {
            user_id: u.id.clone(),
            username: String::new(),
        }),
    )
    .await
    .expect("get user")
    .into_inner()
    .user
    .expect("user");
    assert_eq!(stored.roles, ["ops"], "roles unchanged");
    s.shutdown().await;
}
