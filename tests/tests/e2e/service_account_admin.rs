//! Service accounts (issue 11), administration: secret rotation with and without overlap, disable,
//! enable, delete, key removal and narrowed grants end the account's tokens for `Validate` (current
//! state), refused admin input changes nothing, service tokens cannot administer, and every call is
//! in the audit trail without a secret.

use auth_proto::v1::*;
use jsonwebtoken::Algorithm;
use tonic::Code;

use crate::support::*;

both_backends!(
    a_rotated_secret_keeps_working_for_the_overlap_only,
    rotation_without_overlap_ends_the_old_secret_and_its_tokens,
    disable_revokes_and_enable_does_not_resurrect,
    delete_revokes_and_forgets_the_account,
    removing_a_key_or_narrowing_grants_ends_tokens,
    refused_admin_input_changes_nothing,
    service_tokens_cannot_administer,
    accounts_are_listed_by_name_a_page_at_a_time,
    the_audit_trail_names_every_call_and_holds_no_secret,
);

const ORDERS: &str = "orders.v1.OrderService";

struct Fixture {
    s: TestServer,
    root: String,
    account: ServiceAccount,
    secret: String,
}

async fn fixture(backend: Backend) -> Fixture {
    let s = TestServer::start(backend).await;
    let root = s.admin_token().await;
    let (account, secret) = s
        .create_service_account(&root, "payments", &["orders:refund"], &[ORDERS, "billing"])
        .await;
    Fixture {
        s,
        root,
        account,
        secret,
    }
}

impl Fixture {
    fn admin(
        &self,
    ) -> auth_proto::v1::admin_service_client::AdminServiceClient<
        tonic::service::interceptor::InterceptedService<tonic::transport::Channel, BearerAuth>,
    > {
        self.s.admin_client_with(&self.root)
    }

    async fn token(&self, secret: &str) -> String {
        self.s
            .issue_service_token("payments", secret, ORDERS)
            .await
            .expect("issued")
            .access_token
    }

    async fn rotate(&self, overlap: Option<i64>) -> String {
        bounded(
            "rotate",
            self.admin()
                .rotate_service_account_secret(RotateServiceAccountSecretRequest {
                    service_account_id: self.account.id.clone(),
                    overlap: overlap.map(|seconds| prost_types::Duration { seconds, nanos: 0 }),
                }),
        )
        .await
        .expect("rotated")
        .into_inner()
        .client_secret
    }

    async fn assert_revoked(&self, token: &str, what: &str) {
        let v = self.s.validate_for(token, ORDERS).await;
        assert_invalid(&v, Some(InvalidReason::Revoked), what);
    }
}

async fn a_rotated_secret_keeps_working_for_the_overlap_only(backend: Backend) {
    let f = fixture(backend).await;
    let before = f.token(&f.secret).await;
    let new = f.rotate(None).await;
    assert_ne!(new, f.secret);
    // Inside the default overlap (24 h) both work, and tokens issued before stay valid.
    f.token(&f.secret).await;
    f.token(&new).await;
    assert!(f.s.validate_for(&before, ORDERS).await.valid);
    let got = bounded(
        "get",
        f.admin().get_service_account(GetServiceAccountRequest {
            name: "payments".into(),
            ..Default::default()
        }),
    )
    .await
    .expect("the call succeeds")
    .into_inner()
    .service_account
    .expect("the account");
    let until = got
        .previous_secret_expire_time
        .expect("overlap shown")
        .seconds;
    assert_eq!(until, f.s.now() + 24 * 3600);
    f.s.clock.advance(24 * 3600 - 1);
    f.token(&f.secret).await;
    f.s.clock.advance(1);
    let e =
        f.s.issue_service_token("payments", &f.secret, ORDERS)
            .await
            .expect_err("overlap over");
    assert_status(
        &e,
        Code::Unauthenticated,
        "invalid client credentials",
        &[&f.secret],
    );
    f.token(&new).await;
}

async fn rotation_without_overlap_ends_the_old_secret_and_its_tokens(backend: Backend) {
    let f = fixture(backend).await;
    let before = f.token(&f.secret).await;
    // Tokens issued in the same second as a change survive it (as for users): let a second pass.
    f.s.clock.advance(1);
    let new = f.rotate(Some(0)).await;
    f.assert_revoked(&before, "token of the rotated-out secret")
        .await;
    assert!(
        f.s.issue_service_token("payments", &f.secret, ORDERS)
            .await
            .is_err()
    );
    let after = f.token(&new).await;
    assert!(f.s.validate_for(&after, ORDERS).await.valid);
    // An overlap past 30 days is refused.
    let e = bounded(
        "rotate",
        f.admin()
            .rotate_service_account_secret(RotateServiceAccountSecretRequest {
                service_account_id: f.account.id.clone(),
                overlap: Some(prost_types::Duration {
                    seconds: 31 * 24 * 3600,
                    nanos: 0,
                }),
            }),
    )
    .await
    .expect_err("too long");
    assert_eq!(e.code(), Code::InvalidArgument);
}

async fn disable_revokes_and_enable_does_not_resurrect(backend: Backend) {
    let f = fixture(backend).await;
    let before = f.token(&f.secret).await;
    f.s.clock.advance(1);
    let id = f.account.id.clone();
    let disabled = bounded(
        "disable",
        f.admin()
            .disable_service_account(DisableServiceAccountRequest {
                service_account_id: id.clone(),
            }),
    )
    .await
    .expect("the call succeeds")
    .into_inner();
    assert!(disabled.service_account.expect("the account").disabled);
    f.assert_revoked(&before, "token of a disabled account")
        .await;
    assert!(
        f.s.issue_service_token("payments", &f.secret, ORDERS)
            .await
            .is_err()
    );
    bounded(
        "enable",
        f.admin()
            .enable_service_account(EnableServiceAccountRequest {
                service_account_id: id,
            }),
    )
    .await
    .expect("the call succeeds");
    f.assert_revoked(&before, "enabling does not resurrect")
        .await;
    // Disabling ends every token of its second (a disabled account gets none); a later one is good.
    f.s.clock.advance(1);
    let after = f.token(&f.secret).await;
    assert!(f.s.validate_for(&after, ORDERS).await.valid);
}

async fn delete_revokes_and_forgets_the_account(backend: Backend) {
    let f = fixture(backend).await;
    let root = f.root.clone();
    let key = AssertionKey::generate(Algorithm::ES256);
    bounded(
        "add key",
        f.admin()
            .add_service_account_key(AddServiceAccountKeyRequest {
                service_account_id: f.account.id.clone(),
                public_jwk: key.public_jwk.clone(),
            }),
    )
    .await
    .expect("the call succeeds");
    let token = f.token(&f.secret).await;
    bounded(
        "delete",
        f.s.admin_client_with(&root)
            .delete_service_account(DeleteServiceAccountRequest {
                service_account_id: f.account.id.clone(),
            }),
    )
    .await
    .expect("deleted");
    f.assert_revoked(&token, "token of a deleted account").await;
    assert!(
        f.s.issue_service_token("payments", &f.secret, ORDERS)
            .await
            .is_err()
    );
    assert_eq!(f.s.db.count("service_accounts").await, 0);
    assert_eq!(f.s.db.count("service_account_keys").await, 0, "keys go too");
    let e = bounded(
        "get",
        f.admin().get_service_account(GetServiceAccountRequest {
            service_account_id: f.account.id.clone(),
            ..Default::default()
        }),
    )
    .await
    .expect_err("gone");
    assert_eq!(e.code(), Code::NotFound);
}

async fn removing_a_key_or_narrowing_grants_ends_tokens(backend: Backend) {
    let f = fixture(backend).await;
    let key = AssertionKey::generate(Algorithm::EdDSA);
    let id = f.account.id.clone();
    bounded(
        "add key",
        f.admin()
            .add_service_account_key(AddServiceAccountKeyRequest {
                service_account_id: id.clone(),
                public_jwk: key.public_jwk.clone(),
            }),
    )
    .await
    .expect("the call succeeds");
    let update = |roles: &[&str], audiences: &[&str]| UpdateServiceAccountRequest {
        service_account_id: id.clone(),
        roles: roles.iter().map(|r| (*r).to_owned()).collect(),
        allowed_audiences: audiences.iter().map(|a| (*a).to_owned()).collect(),
        description: "payments team".into(),
    };
    let token = f.token(&f.secret).await;
    f.s.clock.advance(1);
    // Adding a role or an audience ends nothing.
    let widened = bounded(
        "widen",
        f.admin().update_service_account(update(
            &["orders:refund", "orders:read"],
            &[ORDERS, "billing", "x"],
        )),
    )
    .await
    .expect("the call succeeds")
    .into_inner()
    .service_account
    .expect("the account");
    assert_eq!(widened.description, "payments team");
    assert!(f.s.validate_for(&token, ORDERS).await.valid);
    // Taking an audience away does.
    bounded(
        "narrow",
        f.admin()
            .update_service_account(update(&["orders:refund", "orders:read"], &[ORDERS])),
    )
    .await
    .expect("the call succeeds");
    f.assert_revoked(&token, "token older than a narrowing")
        .await;
    let token = f.token(&f.secret).await;
    f.s.clock.advance(1);
    bounded(
        "remove key",
        f.admin()
            .remove_service_account_key(RemoveServiceAccountKeyRequest {
                service_account_id: id.clone(),
                kid: key.kid.clone(),
            }),
    )
    .await
    .expect("the call succeeds");
    f.assert_revoked(&token, "token older than a key removal")
        .await;
    let e =
        f.s.issue_service_token_with(
            "payments",
            issue_service_token_request::Credential::ClientAssertion(
                key.assertion(&f.s, "payments"),
            ),
            ORDERS,
            &[],
        )
        .await
        .expect_err("removed key");
    assert_eq!(e.code(), Code::Unauthenticated);
}

async fn refused_admin_input_changes_nothing(backend: Backend) {
    let f = fixture(backend).await;
    let before = f.s.db.service_account_fingerprint().await;
    let create = |name: &str, audiences: &[&str]| CreateServiceAccountRequest {
        name: name.to_owned(),
        roles: vec![],
        allowed_audiences: audiences.iter().map(|a| (*a).to_owned()).collect(),
        description: String::new(),
    };
    for (req, code) in [
        (create("Bad Name", &[ORDERS]), Code::InvalidArgument),
        (create("", &[ORDERS]), Code::InvalidArgument),
        (create("reports", &[]), Code::InvalidArgument),
        (create("reports", &["has space"]), Code::InvalidArgument),
        (create("payments", &[ORDERS]), Code::AlreadyExists),
    ] {
        let e = bounded("create", f.admin().create_service_account(req))
            .await
            .expect_err("refused");
        assert_eq!(e.code(), code, "{e:?}");
    }
    let add = |jwk: String| AddServiceAccountKeyRequest {
        service_account_id: f.account.id.clone(),
        public_jwk: jwk,
    };
    let key = AssertionKey::generate(Algorithm::EdDSA);
    let mut private: serde_json::Value = serde_json::from_str(&key.public_jwk).expect("JWK");
    private["d"] = "nV7rIlMCnGPzdzOl6Qbm7DyA3dhuM-rE9iiudvR6OEA".into();
    let e = bounded(
        "add private",
        f.admin().add_service_account_key(add(private.to_string())),
    )
    .await
    .expect_err("private JWK");
    assert_eq!(e.code(), Code::InvalidArgument);
    assert_no_leak(&e, &["nV7rIlMCnGPzdzOl6Qbm7DyA3dhuM"]);
    assert_eq!(
        f.s.db.service_account_fingerprint().await,
        before,
        "nothing written"
    );
    // Eight keys, then the ninth is refused.
    for _ in 0..8 {
        let k = AssertionKey::generate(Algorithm::ES256);
        bounded("add", f.admin().add_service_account_key(add(k.public_jwk)))
            .await
            .expect("added");
    }
    let full = f.s.db.service_account_fingerprint().await;
    assert_eq!(full[1], 8);
    let ninth = AssertionKey::generate(Algorithm::EdDSA);
    let e = bounded(
        "add 9th",
        f.admin().add_service_account_key(add(ninth.public_jwk)),
    )
    .await
    .expect_err("9th key");
    assert_eq!(e.code(), Code::FailedPrecondition, "{e:?}");
    assert_eq!(
        f.s.db.service_account_fingerprint().await,
        full,
        "nothing written"
    );
}

async fn service_tokens_cannot_administer(backend: Backend) {
    let s = TestServer::start(backend).await;
    let root = s.admin_token().await;
    // An account holding `admin` for the deployment's own audience still cannot administer.
    let (_, secret) = s
        .create_service_account(&root, "ops-bot", &["admin"], &["internal"])
        .await;
    let token = s
        .issue_service_token("ops-bot", &secret, "internal")
        .await
        .expect("the call succeeds")
        .access_token;
    let e = bounded(
        "ListUsers",
        s.admin_client_with(&token)
            .list_users(ListUsersRequest::default()),
    )
    .await
    .expect_err("service token");
    assert_status(
        &e,
        Code::PermissionDenied,
        "admin calls need a user token",
        &[&secret],
    );
    let e = bounded(
        "ChangePassword",
        s.auth_client().change_password(bearer(
            ChangePasswordRequest {
                old_password: "x".into(),
                new_password: "y".into(),
            },
            &token,
        )),
    )
    .await
    .expect_err("service token");
    assert_eq!(e.code(), Code::PermissionDenied, "{e:?}");
}

async fn accounts_are_listed_by_name_a_page_at_a_time(backend: Backend) {
    let f = fixture(backend).await;
    for name in ["alpha", "zulu", "mike"] {
        f.s.create_service_account(&f.root, name, &[], &[ORDERS])
            .await;
    }
    let mut names = vec![];
    let mut page_token = String::new();
    loop {
        let page = bounded(
            "list",
            f.admin().list_service_accounts(ListServiceAccountsRequest {
                page_size: 3,
                page_token: page_token.clone(),
            }),
        )
        .await
        .expect("the call succeeds")
        .into_inner();
        assert!(page.service_accounts.len() <= 3);
        names.extend(page.service_accounts.into_iter().map(|a| a.name));
        if page.next_page_token.is_empty() {
            break;
        }
        page_token = page.next_page_token;
    }
    assert_eq!(names, ["alpha", "mike", "payments", "zulu"]);
}

async fn the_audit_trail_names_every_call_and_holds_no_secret(backend: Backend) {
    let f = fixture(backend).await;
    let key = AssertionKey::generate(Algorithm::EdDSA);
    let id = f.account.id.clone();
    f.token(&f.secret).await;
    let wrong = format!("svcsec_{}", "C".repeat(43));
    let _ = f.s.issue_service_token("payments", &wrong, ORDERS).await;
    let _ = f.s.issue_service_token("ghost", &wrong, ORDERS).await;
    bounded(
        "add key",
        f.admin()
            .add_service_account_key(AddServiceAccountKeyRequest {
                service_account_id: id.clone(),
                public_jwk: key.public_jwk.clone(),
            }),
    )
    .await
    .expect("the call succeeds");
    let assertion = key.assertion(&f.s, "payments");
    f.s.issue_service_token_with(
        "payments",
        issue_service_token_request::Credential::ClientAssertion(assertion.clone()),
        ORDERS,
        &[],
    )
    .await
    .expect("the call succeeds");
    let new = f.rotate(Some(60)).await;
    let events = f.s.audit_events().await;
    let has = |event: &str, subject: &str| {
        events
            .iter()
            .any(|e| e.event == event && e.subject == subject)
    };
    for event in [
        "service_account.created",
        "service_token.issued",
        "service_token.failed",
        "service_account.key_added",
        "service_account.secret_rotated",
    ] {
        assert!(has(event, &id), "{event} missing: {events:#?}");
    }
    assert!(
        events
            .iter()
            .any(|e| e.event == "service_token.failed" && e.subject.starts_with("unknown-client:")),
        "an unknown client is named by its label"
    );
    let text = format!("{events:?}");
    for secret in [&f.secret, &wrong, &new, &assertion] {
        assert!(
            !text.contains(secret.as_str()),
            "a secret in the audit trail"
        );
    }
    assert!(!text.contains("svcsec_") && !text.contains("ghost"));
}
