//! Authorization reads current state, not the token's memory (issue 14, finding 1): a demoted admin's
//! older token is refused by AdminService and by Validate at once; a call opened while still admin and
//! completed after the demotion is refused; in HS256 mode the admin API refuses tokens unless the
//! operator opts in (every holder of the shared secret could mint one).

use std::time::Duration;

use crate::support::*;
use auth_proto::v1::{DisableUserRequest, ListUsersRequest, SetUserRolesRequest};
use tonic::{Code, Request};

both_backends!(
    a_demoted_admins_older_token_is_refused_at_once,
    a_call_opened_as_admin_and_completed_after_demotion_is_refused,
    hs256_tokens_cannot_use_the_admin_api_without_opt_in,
    two_admins_disabling_each_other_leave_one,
);

async fn list_users(s: &TestServer, token: &str) -> Result<(), tonic::Status> {
    bounded(
        "ListUsers",
        s.admin_client_with(token)
            .list_users(ListUsersRequest::default()),
    )
    .await
    .map(|_| ())
}

/// The admin `root` takes every role from `user_id`.
async fn demote(s: &TestServer, root: &str, user_id: &str) {
    bounded(
        "demote",
        s.admin_client_with(root)
            .set_user_roles(SetUserRolesRequest {
                user_id: user_id.to_owned(),
                roles: vec![],
            }),
    )
    .await
    .expect("demoted");
}

/// 1 when `user_id` has no role in the database.
async fn roles_emptied(s: &TestServer, user_id: &str) -> i64 {
    s.db.scalar(&format!(
        "SELECT COUNT(*) FROM users WHERE id = '{user_id}' AND roles = '[]'"
    ))
    .await
}

async fn a_demoted_admins_older_token_is_refused_at_once(backend: Backend) {
    let s = TestServer::start(backend).await;
    let root = s.admin_token().await;
    let bob = s
        .create_user(&root, "bob", "bob-password-12", &["admin"])
        .await;
    let bob_token = s.login("bob", "bob-password-12").await.access_token;
    list_users(&s, &bob_token).await.expect("bob is admin");
    // Tokens issued in the same second as a change survive it: let a second pass.
    s.clock.advance(1);
    demote(&s, &root, &bob.id).await;
    // Bob's older token, though unexpired and still saying "admin", no longer works anywhere.
    let refused = list_users(&s, &bob_token).await.expect_err("demoted");
    assert_eq!(refused.code(), Code::Unauthenticated, "{refused:?}");
    let back = bounded(
        "re-promote himself",
        s.admin_client_with(&bob_token)
            .set_user_roles(SetUserRolesRequest {
                user_id: bob.id.clone(),
                roles: vec!["admin".into()],
            }),
    )
    .await
    .expect_err("a demoted admin cannot re-promote himself");
    assert!(matches!(
        back.code(),
        Code::Unauthenticated | Code::PermissionDenied
    ));
    let v = s.validate(&bob_token).await;
    assert!(!v.valid, "Validate accepts a token older than the demotion");
    assert_eq!(
        v.reason,
        auth_proto::v1::InvalidReason::Revoked as i32,
        "{v:?}"
    );
    // The audit trail records the old and new roles, and the bootstrap admin's creation.
    assert_eq!(
        s.db.scalar(&format!(
            "SELECT COUNT(*) FROM audit_events WHERE event = 'user.roles_set' AND subject = '{}' \
             AND detail = '[admin] -> []'",
            bob.id
        ))
        .await,
        1
    );
    assert_eq!(
        s.db.scalar(
            "SELECT COUNT(*) FROM audit_events WHERE event = 'user.bootstrapped' AND actor = 'bootstrap'"
        )
        .await,
        1
    );
    // A fresh token carries the current roles: still no admin API.
    let fresh = s.login("bob", "bob-password-12").await.access_token;
    let refused = list_users(&s, &fresh).await.expect_err("not admin");
    assert_eq!(refused.code(), Code::PermissionDenied);
    assert_eq!(roles_emptied(&s, &bob.id).await, 1);
    s.shutdown().await;
}

async fn a_call_opened_as_admin_and_completed_after_demotion_is_refused(backend: Backend) {
    let s = TestServer::start(backend).await;
    let root = s.admin_token().await;
    let bob = s
        .create_user(&root, "bob", "bob-password-12", &["admin"])
        .await;
    let bob_token = s.login("bob", "bob-password-12").await.access_token;
    s.clock.advance(1);
    // Bob opens SetUserRoles(bob, [admin]) while admin; its message is held back...
    let request = SetUserRolesRequest {
        user_id: bob.id.clone(),
        roles: vec!["admin".into(), "ops".into()],
    };
    let held = futures_util::stream::once(async move {
        tokio::time::sleep(Duration::from_millis(700)).await;
        request
    });
    let mut req = Request::new(held);
    req.metadata_mut()
        .insert("authorization", bearer_value(&bob_token));
    let mut grpc = tonic::client::Grpc::new(s.channel());
    bounded("ready", grpc.ready()).await.expect("ready");
    let call = tokio::spawn(async move {
        grpc.client_streaming(
            req,
            "/auth.v1.AdminService/SetUserRoles".parse().expect("path"),
            tonic_prost::ProstCodec::<
                SetUserRolesRequest,
                auth_proto::v1::SetUserRolesResponse,
            >::default(),
        )
        .await
    });
    // ...while the root admin demotes him.
    tokio::time::sleep(Duration::from_millis(200)).await;
    demote(&s, &root, &bob.id).await;
    let answer = bounded("held call", call).await.expect("task");
    let refused = answer.expect_err("completed after the demotion: refused");
    assert!(
        matches!(
            refused.code(),
            Code::Unauthenticated | Code::PermissionDenied
        ),
        "{refused:?}"
    );
    assert_eq!(
        roles_emptied(&s, &bob.id).await,
        1,
        "bob did not make himself admin again"
    );
    s.shutdown().await;
}

async fn hs256_tokens_cannot_use_the_admin_api_without_opt_in(backend: Backend) {
    let s = TestServer::start_with(backend, Options::hs256_without_admin()).await;
    let token = s.admin_token().await;
    let refused = list_users(&s, &token)
        .await
        .expect_err("HS256 admin refused");
    assert_eq!(refused.code(), Code::PermissionDenied);
    // Validate and the rest of AuthService work as usual.
    assert!(s.validate(&token).await.valid);
    s.shutdown().await;
    // With the operator's opt-in (the harness's default for HS256) the admin API answers.
    let s = TestServer::start_with(backend, Options::hs256()).await;
    let token = s.admin_token().await;
    list_users(&s, &token).await.expect("opted in");
    s.shutdown().await;
}

/// Finding 2: two admins disable each other at the same moment through the API: one succeeds, the
/// other is refused (FAILED_PRECONDITION when both were checked before either committed), and an
/// enabled admin remains (the store test repeats the race five times per backend).
async fn two_admins_disabling_each_other_leave_one(backend: Backend) {
    let s = TestServer::start(backend).await;
    let root = s.admin_token().await;
    let ann = s
        .create_user(&root, "ann", "ann-password-12", &["admin"])
        .await;
    let bob = s
        .create_user(&root, "bob", "bob-password-12", &["admin"])
        .await;
    let t_ann = s.login("ann", "ann-password-12").await.access_token;
    let t_bob = s.login("bob", "bob-password-12").await.access_token;
    // The bootstrap admin steps back, so ann and bob are the only enabled admins.
    let root_id = s
        .admin_client_with(&t_ann)
        .list_users(ListUsersRequest::default())
        .await
        .expect("list")
        .into_inner()
        .users
        .into_iter()
        .find(|u| u.username == ADMIN_USER)
        .expect("bootstrap admin")
        .id;
    s.admin_client_with(&t_ann)
        .disable_user(DisableUserRequest { user_id: root_id })
        .await
        .expect("bootstrap admin disabled");
    let mut a = s.admin_client_with(&t_ann);
    let mut b = s.admin_client_with(&t_bob);
    let (r1, r2) = tokio::join!(
        a.disable_user(DisableUserRequest {
            user_id: bob.id.clone()
        }),
        b.disable_user(DisableUserRequest {
            user_id: ann.id.clone()
        }),
    );
    let refused: Vec<_> = [r1, r2].into_iter().filter_map(Result::err).collect();
    assert_eq!(refused.len(), 1, "{refused:?}");
    // The loser is refused by the invariant — or, if the winner committed before the loser's call
    // was checked, because the loser is no longer an enabled admin.
    match refused[0].code() {
        Code::FailedPrecondition => {
            assert!(
                refused[0].message().contains("no enabled admin"),
                "{refused:?}"
            )
        }
        Code::PermissionDenied | Code::Unauthenticated => {}
        other => panic!("{other:?}: {refused:?}"),
    }
    let enabled_admins = s
        .db
        .scalar("SELECT COUNT(*) FROM users WHERE disabled = FALSE AND roles LIKE '%\"admin\"%'")
        .await;
    assert_eq!(enabled_admins, 1);
    s.shutdown().await;
}
