//! Refresh-token rotation: chains, reuse detection, expiry, disabled users, concurrency.

use super::*;

both_backends!(
    rotate_chain,
    reuse_revokes_family,
    idle_and_absolute_expiry,
    disabled_user_cannot_rotate,
    concurrent_rotation_single_winner,
    duplicate_within_window_is_refused_without_revocation,
);

async fn rotate_chain(s: &dyn TestStore) {
    setup(s).await;
    let RotateOutcome::Rotated {
        session,
        user,
        refresh_expires_at,
    } = rotate(s, "t0", "t1", T0 + 10).await
    else {
        panic!("first rotation failed");
    };
    assert_eq!(
        (
            session.id.as_str(),
            session.created_at,
            session.last_used_at
        ),
        ("s1", T0, T0 + 10)
    );
    assert_eq!(user.id, "u1");
    assert_eq!(refresh_expires_at, T0 + 10 + IDLE);

    s.set_roles("u1", &["admin".into()], T0 + 11).await.unwrap();
    let RotateOutcome::Rotated { session, user, .. } = rotate(s, "t1", "t2", T0 + 20).await else {
        panic!("second rotation failed");
    };
    assert_eq!(session.last_used_at, T0 + 20);
    assert_eq!(user.roles, ["admin"], "the user is read at rotation time");
    assert_eq!(s.session_by_id("s1").await.unwrap(), Some(session));
    assert_eq!(count(s, "refresh_tokens WHERE used_at IS NULL").await, 1);
    assert_eq!(count(s, "refresh_tokens").await, 3);

    // Near the end of a session, the successor's expiry is capped by the absolute lifetime.
    let short = NewSession {
        id: "s2".into(),
        user_id: "u1".into(),
        refresh_hash: hash("x0"),
        refresh_expires_at: T0 + 1_000,
        absolute_expires_at: T0 + 1_000,
    };
    s.create_session(&short, T0).await.unwrap();
    let RotateOutcome::Rotated {
        refresh_expires_at, ..
    } = rotate(s, "x0", "x1", T0 + 500).await
    else {
        panic!("late rotation failed");
    };
    assert_eq!(refresh_expires_at, T0 + 1_000);
}

async fn reuse_revokes_family(s: &dyn TestStore) {
    setup(s).await;
    assert!(matches!(
        rotate(s, "t0", "t1", T0 + 1).await,
        RotateOutcome::Rotated { .. }
    ));
    // Outside the concurrent-duplicate window, replaying a spent token is reuse.
    let late = T0 + 2 + CONCURRENT_REFRESH_WINDOW_SECS;
    let reused = rotate(s, "t0", "evil", late).await;
    assert_eq!(
        reused,
        RotateOutcome::Reused {
            session_id: "s1".into(),
            user_id: "u1".into()
        }
    );
    assert_eq!(
        s.session_by_id("s1").await.unwrap().unwrap().revoked_at,
        Some(late)
    );
    assert_eq!(reason(s, "s1").await.as_deref(), Some("refresh_reuse"));
    assert_eq!(
        count(s, "refresh_tokens").await,
        2,
        "no successor for the replayed token"
    );

    let before = fingerprint(s).await;
    assert_eq!(
        rotate(s, "t1", "t2", late + 1).await,
        RotateOutcome::Rejected,
        "the live token died with its family"
    );
    assert_eq!(fingerprint(s).await, before);
    // A second replay is still reported, and keeps the first revocation time.
    assert!(matches!(
        rotate(s, "t0", "evil", late + 2).await,
        RotateOutcome::Reused { .. }
    ));
    assert_eq!(
        s.session_by_id("s1").await.unwrap().unwrap().revoked_at,
        Some(late)
    );
}

async fn duplicate_within_window_is_refused_without_revocation(s: &dyn TestStore) {
    setup(s).await;
    assert!(matches!(
        rotate(s, "t0", "t1", T0 + 1).await,
        RotateOutcome::Rotated { .. }
    ));
    let before = fingerprint(s).await;
    assert_eq!(
        rotate(s, "t0", "dup", T0 + 1 + CONCURRENT_REFRESH_WINDOW_SECS).await,
        RotateOutcome::Rejected
    );
    assert_eq!(fingerprint(s).await, before, "a duplicate writes nothing");
    assert_eq!(
        s.session_by_id("s1").await.unwrap().unwrap().revoked_at,
        None
    );
    // Once the successor has itself been used, replaying t0 is reuse even within the window.
    assert!(matches!(
        rotate(s, "t1", "t2", T0 + 2).await,
        RotateOutcome::Rotated { .. }
    ));
    assert!(matches!(
        rotate(s, "t0", "evil", T0 + 2).await,
        RotateOutcome::Reused { .. }
    ));
    assert_eq!(reason(s, "s1").await.as_deref(), Some("refresh_reuse"));
}

async fn idle_and_absolute_expiry(s: &dyn TestStore) {
    setup(s).await;
    let before = fingerprint(s).await;
    assert_eq!(
        rotate(s, "unknown", "t1", T0 + 1).await,
        RotateOutcome::Rejected
    );
    assert_eq!(
        rotate(s, "t0", "t1", T0 + IDLE).await,
        RotateOutcome::Rejected,
        "idle expiry"
    );
    assert_eq!(
        fingerprint(s).await,
        before,
        "failed rotations write nothing"
    );
    assert!(
        matches!(
            rotate(s, "t0", "t1", T0 + IDLE - 1).await,
            RotateOutcome::Rotated { .. }
        ),
        "still unspent"
    );

    // A token whose idle expiry outlives its session is rejected once the session is over.
    let new = NewSession {
        id: "s2".into(),
        user_id: "u1".into(),
        refresh_hash: hash("x0"),
        refresh_expires_at: T0 + 2_000,
        absolute_expires_at: T0 + 1_000,
    };
    s.create_session(&new, T0).await.unwrap();
    let before = fingerprint(s).await;
    assert_eq!(
        rotate(s, "x0", "x1", T0 + 1_000).await,
        RotateOutcome::Rejected,
        "absolute expiry"
    );
    assert_eq!(fingerprint(s).await, before);
    assert!(matches!(
        rotate(s, "x0", "x1", T0 + 999).await,
        RotateOutcome::Rotated { .. }
    ));

    // Revoked session.
    session(s, "s3", "u1", "y0", T0).await;
    assert!(s.revoke_session("s3", T0 + 1).await.unwrap());
    let before = fingerprint(s).await;
    assert_eq!(rotate(s, "y0", "y1", T0 + 2).await, RotateOutcome::Rejected);
    assert_eq!(fingerprint(s).await, before);
}

async fn disabled_user_cannot_rotate(s: &dyn TestStore) {
    let mut bob = user("u2", "Bob");
    bob.disabled = true;
    s.create_user(&bob).await.unwrap();
    session(s, "s2", "u2", "b0", T0).await;
    let before = fingerprint(s).await;
    assert_eq!(rotate(s, "b0", "b1", T0 + 1).await, RotateOutcome::Rejected);
    assert_eq!(fingerprint(s).await, before);

    // Disabling a user with a live session: the session is revoked, its token rejected.
    setup(s).await;
    s.set_disabled("u1", true, T0 + 1).await.unwrap();
    assert_eq!(rotate(s, "t0", "t1", T0 + 2).await, RotateOutcome::Rejected);
}

async fn concurrent_rotation_single_winner(s: &dyn TestStore) {
    const N: usize = 20;
    setup(s).await;
    let barrier = Arc::new(Barrier::new(N));
    let tasks: Vec<_> = (0..N)
        .map(|i| {
            let (store, barrier) = (s.shared(), barrier.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                store
                    .rotate_refresh(&hash("t0"), &hash(&format!("n{i}")), T0 + 1, IDLE)
                    .await
            })
        })
        .collect();
    let (mut rotated, mut rejected) = (0, 0);
    for task in tasks {
        match task.await.unwrap().unwrap() {
            RotateOutcome::Rotated { .. } => rotated += 1,
            RotateOutcome::Rejected => rejected += 1,
            RotateOutcome::Reused { .. } => panic!("a concurrent duplicate revoked the session"),
        }
    }
    assert_eq!((rotated, rejected), (1, N - 1));
    assert_eq!(count(s, "refresh_tokens").await, 2, "exactly one successor");
    assert_eq!(count(s, "refresh_tokens WHERE used_at IS NULL").await, 1);
    // The losers are concurrent duplicates of the winner: the session (and the winner's successor)
    // stays live.
    assert_eq!(
        s.session_by_id("s1").await.unwrap().unwrap().revoked_at,
        None
    );
}
