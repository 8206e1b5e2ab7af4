//! Automatic signing-key rotation (`AUTH_KEY_ROTATION_INTERVAL`, `AUTH_KEY_PREPUBLISH`): two replicas
//! on one database rotate once per interval between them, the next key is published for the
//! pre-publication time before it signs, tokens of the retired key stay valid until they expire,
//! and requested rotations respect the pre-publication unless forced.

use std::collections::BTreeSet;
use std::time::Duration;

use crate::support::*;
use auth_proto::v1::{AuditEvent, RotateSigningKeyRequest};
use serde_json::Value;
use tonic::Code;

both_backends!(
    two_replicas_rotate_once_per_interval,
    requested_rotation_respects_prepublication_unless_forced,
);

const INTERVAL: i64 = 3600;
const PREPUBLISH: i64 = 600;

fn schedule() -> Options {
    Options::with_args(&[
        "--key-rotation-interval",
        "3600",
        "--key-prepublish",
        "600",
        // Replicas re-read the keys (and perform due rotations) every second.
        "--key-reload-interval",
        "1",
    ])
}

fn kids(jwks: &Value) -> BTreeSet<String> {
    jwks_kids(jwks).into_iter().collect()
}

fn kid_of(token: &str) -> String {
    header_of(token)["kid"].as_str().expect("kid").to_owned()
}

async fn rotations(s: &TestServer) -> Vec<AuditEvent> {
    let mut events = s.audit_events().await;
    events.retain(|e| e.event == "key.rotated");
    events.reverse();
    events
}

/// The kid a fresh login on `s` is signed with.
async fn signing_kid(s: &TestServer) -> String {
    kid_of(&s.login(ADMIN_USER, ADMIN_PASSWORD).await.access_token)
}

/// Both replicas sign with `kid` and publish exactly `published`.
async fn both_converge(a: &TestServer, b: &TestServer, kid: &str, published: &BTreeSet<String>) {
    for s in [a, b] {
        poll_until(
            "replica signs with the rotated key",
            Duration::from_secs(15),
            || async { (signing_kid(s).await == kid).then_some(()) },
        )
        .await;
        poll_until(
            "replica publishes the rotated key set",
            Duration::from_secs(15),
            || async { (kids(&s.jwks().await) == *published).then_some(()) },
        )
        .await;
    }
}

/// Waits a few of the replicas' one-second rotation checks.
async fn let_schedulers_run() {
    tokio::time::sleep(Duration::from_millis(2500)).await;
}

async fn two_replicas_rotate_once_per_interval(backend: Backend) {
    let a = TestServer::start_with(backend, schedule()).await;
    let b = a.start_replica(schedule()).await;
    let start = a.now();
    let first = kids(&a.jwks().await);
    assert_eq!(first, kids(&b.jwks().await), "one key set");
    let k1 = signing_kid(&a).await;
    assert_eq!(signing_kid(&b).await, k1);

    // One second before the interval ends nothing rotates.
    a.clock.advance(INTERVAL - 1);
    let late_token = a.login(ADMIN_USER, ADMIN_PASSWORD).await.access_token;
    let_schedulers_run().await;
    assert!(
        rotations(&a).await.is_empty(),
        "rotated before the interval"
    );
    assert_eq!(kids(&b.jwks().await), first);

    for round in 1..=2 {
        let next = a.db.key_with_status("next").await;
        let published = kids(&a.jwks().await);
        assert!(published.contains(&next), "the next key is published");
        assert_eq!(kids(&b.jwks().await), published, "by both replicas");
        a.clock.advance(1);
        let due = a.now();
        poll_until(
            "a rotation on schedule",
            Duration::from_secs(15),
            || async { (rotations(&a).await.len() == round).then_some(()) },
        )
        .await;
        let_schedulers_run().await;
        let done = rotations(&a).await;
        assert_eq!(done.len(), round, "round {round}: one rotation: {done:?}");
        let event = done.last().expect("rotation");
        assert_eq!(event.actor, "scheduler");
        assert_eq!(event.subject, next, "the next key became current");

        // It had been published (created as the next key) at least the pre-publication time
        // before it became current, and it became current when due.
        let rows = a.db.signing_keys().await;
        let row = rows.iter().find(|k| k.kid == next).expect("key row");
        assert_eq!(row.status, "current");
        let activated = row.activated_at.expect("activated_at");
        assert_eq!(activated, due, "rotated when due");
        assert!(
            activated - row.created_at >= PREPUBLISH,
            "round {round}: {next} published {} s before it signed",
            activated - row.created_at
        );
        // Both replicas sign with the former next key and publish what the database says: one new
        // next key, and every retired key whose tokens may still be live.
        let expected: BTreeSet<String> = rows
            .iter()
            .filter(|k| k.published_at(due))
            .map(|k| k.kid.clone())
            .collect();
        // Current, next, and the key retired now (the one retired an interval ago has expired).
        assert_eq!(expected.len(), 3, "round {round}: {expected:?}");
        assert!(expected.contains(&next));
        both_converge(&a, &b, &next, &expected).await;

        // A token signed just before the rotation is still valid after it, on both replicas.
        if round == 1 {
            assert_eq!(kid_of(&late_token), k1);
            assert!(
                a.validate(&late_token).await.valid,
                "token of the retired key"
            );
            assert!(
                b.validate(&late_token).await.valid,
                "token of the retired key"
            );
        }
        a.clock.advance(INTERVAL - 1);
        let_schedulers_run().await;
        assert_eq!(
            rotations(&a).await.len(),
            round,
            "rotated before the interval"
        );
    }
    // Past its tokens' lifetime the first retired key is no longer published.
    assert!(a.now() - start > ACCESS_TTL + LEEWAY + INTERVAL);
    poll_until(
        "retired key unpublished",
        Duration::from_secs(15),
        || async { (!kids(&b.jwks().await).contains(&k1)).then_some(()) },
    )
    .await;
    b.shutdown().await;
    a.shutdown().await;
}

async fn requested_rotation_respects_prepublication_unless_forced(backend: Backend) {
    let s = TestServer::start_with(backend, schedule()).await;
    let before = kids(&s.jwks().await);
    let refused = bounded(
        "rotate",
        s.admin_client_with(&s.admin_token().await)
            .rotate_signing_key(RotateSigningKeyRequest { force: false }),
    )
    .await
    .expect_err("rotation with a next key published 0 s ago");
    assert_eq!(refused.code(), Code::FailedPrecondition);
    assert!(
        refused.message().contains("AUTH_KEY_PREPUBLISH"),
        "{}",
        refused.message()
    );
    assert_eq!(kids(&s.jwks().await), before, "nothing rotated");
    assert!(rotations(&s).await.is_empty());

    // Once the next key has been published for AUTH_KEY_PREPUBLISH, a request rotates at once
    // (it does not wait for the interval).
    s.clock.advance(PREPUBLISH);
    let r = bounded(
        "rotate",
        s.admin_client_with(&s.admin_token().await)
            .rotate_signing_key(RotateSigningKeyRequest { force: false }),
    )
    .await
    .expect("rotation after the pre-publication time")
    .into_inner();
    assert!(before.contains(&r.current_kid) && before.contains(&r.retired_kid));
    assert_eq!(signing_kid(&s).await, r.current_kid);

    // The new next key is brand new: refused again, but a forced rotation goes through.
    let again = bounded(
        "rotate",
        s.admin_client_with(&s.admin_token().await)
            .rotate_signing_key(RotateSigningKeyRequest { force: false }),
    )
    .await
    .expect_err("second rotation at once");
    assert_eq!(again.code(), Code::FailedPrecondition);
    let forced = bounded(
        "rotate",
        s.admin_client_with(&s.admin_token().await)
            .rotate_signing_key(RotateSigningKeyRequest { force: true }),
    )
    .await
    .expect("forced rotation")
    .into_inner();
    assert_eq!(forced.current_kid, r.next_kid);
    assert_eq!(signing_kid(&s).await, forced.current_kid);

    let done = rotations(&s).await;
    let details: Vec<_> = done.iter().map(|e| e.detail.as_str()).collect();
    assert_eq!(done.len(), 2, "{details:?}");
    assert!(
        !details[0].contains("forced") && details[1].contains("forced"),
        "{details:?}"
    );
    assert!(done.iter().all(|e| e.actor != "scheduler"));
    s.shutdown().await;
}
