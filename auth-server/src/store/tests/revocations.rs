//! The revocation log: every token-ending change appends in its own transaction (a change that fails
//! appends nothing), sequences are strictly increasing and commit-ordered under concurrent appends
//! (a reader following the log never misses a row), and pruning keeps a horizon.

use std::collections::BTreeSet;

use super::*;
use crate::store::{DEFAULT_TOKEN_LIFETIME, KeyRotation, RevocationKind, RevocationRecord};

both_backends!(
    every_token_ending_change_appends_in_its_transaction,
    failed_changes_append_nothing,
    concurrent_appends_commit_in_sequence_order,
    pruning_keeps_a_horizon,
);

async fn log(s: &dyn TestStore) -> Vec<RevocationRecord> {
    s.revocations_after(0, 10_000).await.unwrap()
}

fn kinds(rows: &[RevocationRecord]) -> Vec<(RevocationKind, &str, Option<i64>)> {
    rows.iter()
        .map(|r| (r.kind, r.target.as_str(), r.not_before))
        .collect()
}

async fn every_token_ending_change_appends_in_its_transaction(s: &dyn TestStore) {
    setup(s).await;
    session(s, "s2", "u1", "x0", T0).await;
    session(s, "s3", "u1", "y0", T0).await;
    assert!(log(s).await.is_empty(), "logins append nothing");

    // Logout, an admin's revocation, a reused refresh token: one session row each.
    s.revoke_session_by_refresh(&hash("t0"), T0 + 1)
        .await
        .unwrap();
    assert!(s.revoke_session("s2", T0 + 2).await.unwrap());
    assert!(!s.revoke_session("s2", T0 + 2).await.unwrap(), "already");
    assert!(matches!(
        rotate(s, "y0", "y1", T0 + 3).await,
        RotateOutcome::Rotated { .. }
    ));
    assert!(matches!(
        rotate(s, "y0", "y2", T0 + 100).await,
        RotateOutcome::Reused { .. }
    ));
    let rows = log(s).await;
    assert_eq!(
        kinds(&rows),
        [
            (RevocationKind::Session, "s1", None),
            (RevocationKind::Session, "s2", None),
            (RevocationKind::Session, "s3", None),
        ]
    );
    assert_eq!(rows[0].expires_at, T0 + 1 + DEFAULT_TOKEN_LIFETIME);
    assert_eq!(rows[0].created_at, T0 + 1);

    // User changes: the watermark, and the sessions they end.
    session(s, "s4", "u1", "z0", T0 + 200).await;
    s.set_roles("u1", &["ops".into()], T0 + 201).await.unwrap();
    s.set_password_hash("u1", "$argon2id$x", T0 + 202, RevokeScope::All)
        .await
        .unwrap();
    s.set_password_hash("u1", "$argon2id$y", T0 + 203, RevokeScope::None)
        .await
        .unwrap();
    session(s, "s5", "u1", "w0", T0 + 204).await;
    s.set_disabled("u1", true, T0 + 205).await.unwrap();
    s.set_disabled("u1", false, T0 + 206).await.unwrap();
    s.create_user(&user("u2", "Bob")).await.unwrap();
    session(s, "s6", "u2", "v0", T0 + 207).await;
    s.revoke_user_sessions("u2", None, T0 + 208).await.unwrap();
    assert!(s.delete_user("u2", T0 + 209).await.unwrap());
    let rows = log(s).await;
    assert_eq!(
        kinds(&rows[3..]),
        [
            (RevocationKind::Subject, "u1", Some(T0 + 201)),
            (RevocationKind::Subject, "u1", Some(T0 + 202)),
            (RevocationKind::Session, "s4", None),
            (RevocationKind::Subject, "u1", Some(T0 + 205)),
            (RevocationKind::Session, "s5", None),
            (RevocationKind::Session, "s6", None),
            // A deleted user's tokens of its last second are revoked too.
            (RevocationKind::Subject, "u2", Some(T0 + 210)),
        ],
        "a rehash and an enable end nothing"
    );
    let seqs: Vec<i64> = rows.iter().map(|r| r.seq).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
    let bounds = s.revocation_bounds().await.unwrap();
    assert_eq!(
        (bounds.pruned_through, bounds.head),
        (0, *seqs.last().unwrap())
    );
}

async fn failed_changes_append_nothing(s: &dyn TestStore) {
    let mut admin = user("a1", "Root");
    admin.roles = vec![crate::store::ADMIN_ROLE.into()];
    s.create_user(&admin).await.unwrap();
    session(s, "s1", "a1", "t0", T0).await;
    // Each of these would end tokens, but is refused: rolled back, log included.
    assert!(matches!(
        s.set_roles("a1", &["user".into()], T0 + 1).await,
        Err(StoreError::LastAdmin)
    ));
    assert!(matches!(
        s.set_disabled("a1", true, T0 + 1).await,
        Err(StoreError::LastAdmin)
    ));
    assert!(matches!(
        s.delete_user("a1", T0 + 1).await,
        Err(StoreError::LastAdmin)
    ));
    assert_eq!(s.set_roles("nobody", &[], T0 + 1).await.unwrap(), None);
    assert!(!s.delete_user("nobody", T0 + 1).await.unwrap());
    assert!(!s.revoke_session("nobody", T0 + 1).await.unwrap());
    assert_eq!(
        s.revoke_session_by_refresh(&hash("unknown"), T0 + 1)
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        s.revoke_user_sessions("nobody", None, T0 + 1)
            .await
            .unwrap(),
        0
    );
    // A rotation that is not due changes no key and appends nothing.
    let k = |kid: &str, status| SigningKeyRecord {
        kid: kid.into(),
        alg: "EdDSA".into(),
        status,
        private_key_enc: vec![1],
        public_jwk: "{}".into(),
        created_at: T0,
        publish_until: None,
        activated_at: Some(T0),
    };
    s.init_signing_keys(&[k("k1", KeyStatus::Current), k("k2", KeyStatus::Next)])
        .await
        .unwrap();
    let early = KeyRotation {
        now: T0 + 10,
        retire_until: T0 + 20,
        current_since: T0 - 1,
        next_since: T0 + 10,
        revoke_retired: true,
    };
    assert_eq!(
        s.rotate_signing_keys(&k("k3", KeyStatus::Next), &early)
            .await
            .unwrap(),
        None
    );
    assert!(log(s).await.is_empty());
    // The same rotation when due: the keys row, and the forced rotation's key row.
    let due = KeyRotation {
        current_since: T0,
        ..early
    };
    s.rotate_signing_keys(&k("k3", KeyStatus::Next), &due)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        kinds(&log(s).await),
        [
            (RevocationKind::Keys, "", None),
            (RevocationKind::Key, "k1", None)
        ]
    );
}

async fn concurrent_appends_commit_in_sequence_order(s: &dyn TestStore) {
    const WRITERS: usize = 8;
    const EACH: usize = 12;
    s.create_user(&user("u1", "Alice")).await.unwrap();
    for w in 0..WRITERS {
        for i in 0..EACH {
            let id = format!("s{w}-{i}");
            session(s, &id, "u1", &id, T0).await;
        }
    }
    // A reader follows the log as the follower does (from its last sequence) while the writers
    // append; whatever it passed over and did not see would be lost for good.
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let reader = {
        let s = s.shared();
        let done = done.clone();
        tokio::spawn(async move {
            let mut seen = Vec::new();
            let mut last = 0;
            loop {
                let finished = done.load(std::sync::atomic::Ordering::Acquire);
                for row in s.revocations_after(last, 1000).await.unwrap() {
                    assert!(row.seq > last);
                    last = row.seq;
                    seen.push(row.seq);
                }
                if finished {
                    return seen;
                }
                tokio::task::yield_now().await;
            }
        })
    };
    let barrier = Arc::new(Barrier::new(WRITERS));
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            let s = s.shared();
            let barrier = barrier.clone();
            tokio::spawn(async move {
                barrier.wait().await;
                for i in 0..EACH {
                    let id = format!("s{w}-{i}");
                    assert!(s.revoke_session(&id, T0 + 1).await.unwrap());
                }
            })
        })
        .collect();
    for w in writers {
        w.await.unwrap();
    }
    done.store(true, std::sync::atomic::Ordering::Release);
    let seen = reader.await.unwrap();
    let all: Vec<i64> = log(s).await.iter().map(|r| r.seq).collect();
    assert_eq!(all.len(), WRITERS * EACH);
    assert_eq!(
        seen.iter().copied().collect::<BTreeSet<_>>(),
        all.iter().copied().collect::<BTreeSet<_>>(),
        "the reader missed rows"
    );
}

async fn pruning_keeps_a_horizon(s: &dyn TestStore) {
    setup(s).await;
    session(s, "s2", "u1", "x0", T0).await;
    session(s, "s3", "u1", "y0", T0).await;
    s.revoke_session("s1", T0).await.unwrap();
    s.revoke_session("s2", T0 + 100).await.unwrap();
    let first = log(s).await;
    // Nothing has expired yet.
    s.purge_expired(T0 + DEFAULT_TOKEN_LIFETIME - 1)
        .await
        .unwrap();
    assert_eq!(log(s).await.len(), 2);
    // The first row's tokens are all expired: it goes, and the horizon moves past it.
    s.purge_expired(T0 + DEFAULT_TOKEN_LIFETIME).await.unwrap();
    let rows = log(s).await;
    assert_eq!(kinds(&rows), [(RevocationKind::Session, "s2", None)]);
    let bounds = s.revocation_bounds().await.unwrap();
    assert_eq!(bounds.pruned_through, first[0].seq);
    assert_eq!(bounds.head, first[1].seq);
    // Everything pruned: the head stays where the log was, and new rows continue after it.
    s.purge_expired(T0 + 100 + DEFAULT_TOKEN_LIFETIME)
        .await
        .unwrap();
    assert!(log(s).await.is_empty());
    let bounds = s.revocation_bounds().await.unwrap();
    assert_eq!(
        (bounds.pruned_through, bounds.head),
        (first[1].seq, first[1].seq)
    );
    s.revoke_session("s3", T0 + 200).await.unwrap();
    let rows = log(s).await;
    assert!(
        rows[0].seq > first[1].seq,
        "a pruned sequence is never reused"
    );
    // A later prune never moves the horizon back.
    s.purge_expired(T0 + 300).await.unwrap();
    assert_eq!(
        s.revocation_bounds().await.unwrap().pruned_through,
        first[1].seq
    );
}
