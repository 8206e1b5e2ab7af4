//! Login throttling counters and the audit trail.

use super::*;
use crate::store::{AttemptRule, AuditEvent, AuditQuery};

both_backends!(
    throttle_counts_decays_and_resets,
    concurrent_attempts_cannot_exceed_the_limit,
    audit_trail_filters_and_pages
);

async fn throttle_counts_decays_and_resets(s: &dyn TestStore) {
    let k = "pair:alice|1.2.3.4";
    let keys = [k, "user:alice", "source:1.2.3.4"];
    let rule = |now: i64| AttemptRule {
        free: 3,
        max_delay: 60,
        window_start: now - 3600,
    };
    assert_eq!(s.login_lock(keys, T0).await.unwrap(), None);
    // Attempts are counted as they are reserved; the third locks for 2^0 = 1 s and re-arms.
    for n in 1..=2 {
        let r = s.reserve_login_attempt(k, T0, rule(T0)).await.unwrap();
        assert_eq!((r.failures, r.refused), (n, 0));
        assert!(r.locked_until <= T0);
    }
    let r = s.reserve_login_attempt(k, T0, rule(T0)).await.unwrap();
    assert_eq!((r.failures, r.refused, r.locked_until), (0, 0, T0 + 1));
    assert_eq!(
        s.login_lock(keys, T0).await.unwrap(),
        Some((k.to_owned(), T0 + 1))
    );
    // While locked, an attempt is not counted; refusals are.
    let r = s.reserve_login_attempt(k, T0, rule(T0)).await.unwrap();
    assert_eq!((r.failures, r.refused, r.locked_until), (0, 1, T0 + 1));
    assert_eq!(s.note_login_refused(k).await.unwrap(), 2);
    // After the lock, one failure does not lock again: the lock re-arms only after `free` more...
    let r = s
        .reserve_login_attempt(k, T0 + 2, rule(T0 + 2))
        .await
        .unwrap();
    assert_eq!(
        (r.failures, r.refused, r.locked_until),
        (1, 0, T0 + 1),
        "admitted"
    );
    assert_eq!(s.login_lock(keys, T0 + 2).await.unwrap(), None);
    s.reserve_login_attempt(k, T0 + 2, rule(T0 + 2))
        .await
        .unwrap();
    // ...and then for twice as long (2^1 s), up to the cap.
    let r = s
        .reserve_login_attempt(k, T0 + 2, rule(T0 + 2))
        .await
        .unwrap();
    assert_eq!((r.failures, r.refused, r.locked_until), (0, 0, T0 + 4));
    let mut now = T0 + 4;
    let mut locks = Vec::new();
    for _ in 0..10 {
        for _ in 0..3 {
            now = s
                .reserve_login_attempt(k, now, rule(now))
                .await
                .unwrap()
                .locked_until
                .max(now);
        }
        locks.push(now);
    }
    let steps: Vec<i64> = locks.windows(2).map(|w| w[1] - w[0]).collect();
    assert_eq!(
        steps,
        vec![8, 16, 32, 60, 60, 60, 60, 60, 60],
        "doubling, capped at 60 s"
    );
    // Failures older than the window are forgotten, and so is the level.
    let later = now + 7200;
    let r = s
        .reserve_login_attempt(k, later, rule(later))
        .await
        .unwrap();
    assert_eq!(r.failures, 1);
    s.reserve_login_attempt(k, later, rule(later))
        .await
        .unwrap();
    let r = s
        .reserve_login_attempt(k, later, rule(later))
        .await
        .unwrap();
    assert_eq!(r.locked_until, later + 1, "back to 1 s");
    // A success forgets the key; purge keeps locked rows and recent ones.
    s.reset_login_failures(k).await.unwrap();
    assert_eq!(s.login_lock(keys, later).await.unwrap(), None);
    let other = "source:1.2.3.4";
    s.reserve_login_attempt(other, T0, rule(T0)).await.unwrap();
    assert_eq!(s.purge_login_throttle(T0 - 1, T0).await.unwrap(), 0);
    assert_eq!(s.purge_login_throttle(T0 + 1, T0 + 1).await.unwrap(), 1);
}

/// 34 concurrent attempts at a fresh key with 5 free: exactly 5 are let through to the password
/// check, however the database interleaves them (issue 15, check-then-count race).
async fn concurrent_attempts_cannot_exceed_the_limit(s: &dyn TestStore) {
    let rule = AttemptRule {
        free: 5,
        max_delay: 900,
        window_start: T0 - 3600,
    };
    let barrier = Arc::new(Barrier::new(34));
    let tasks: Vec<_> = (0..34)
        .map(|_| {
            let (store, barrier) = (s.shared(), barrier.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                store
                    .reserve_login_attempt("user:victim", T0, rule)
                    .await
                    .unwrap()
            })
        })
        .collect();
    let mut admitted = 0;
    for t in tasks {
        if t.await.unwrap().refused == 0 {
            admitted += 1;
        }
    }
    assert_eq!(
        admitted, 5,
        "only the free attempts reach the password check"
    );
}

fn event(time: i64, event: &str, actor: Option<&str>, subject: Option<&str>) -> AuditEvent {
    AuditEvent {
        id: 0,
        time,
        event: event.into(),
        outcome: "success".into(),
        actor: actor.map(Into::into),
        subject: subject.map(Into::into),
        source: Some("127.0.0.1".into()),
        detail: None,
    }
}

async fn audit_trail_filters_and_pages(s: &dyn TestStore) {
    s.insert_audit(&event(T0, "login.succeeded", Some("u1"), Some("u1")))
        .await
        .unwrap();
    s.insert_audit(&event(T0 + 1, "user.disabled", Some("admin"), Some("u2")))
        .await
        .unwrap();
    s.insert_audit(&event(T0 + 2, "login.failed", None, Some("mallory")))
        .await
        .unwrap();
    s.insert_audit(&event(T0 + 3, "user.created", Some("admin"), Some("u1")))
        .await
        .unwrap();
    let all = s
        .list_audit(&AuditQuery {
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        all.iter().map(|e| e.time).collect::<Vec<_>>(),
        vec![T0 + 3, T0 + 2, T0 + 1, T0]
    );
    assert_eq!(all[1].source.as_deref(), Some("127.0.0.1"));
    let u1 = s
        .list_audit(&AuditQuery {
            user_id: Some("u1".into()),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        u1.iter().map(|e| e.event.as_str()).collect::<Vec<_>>(),
        vec!["user.created", "login.succeeded"]
    );
    let admin = s
        .list_audit(&AuditQuery {
            user_id: Some("admin".into()),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(admin.len(), 2);
    let window = AuditQuery {
        since: Some(T0 + 1),
        until: Some(T0 + 3),
        limit: 10,
        ..Default::default()
    };
    assert_eq!(s.list_audit(&window).await.unwrap().len(), 2);
    let page1 = s
        .list_audit(&AuditQuery {
            limit: 2,
            ..Default::default()
        })
        .await
        .unwrap();
    let page2 = s
        .list_audit(&AuditQuery {
            limit: 2,
            before_id: Some(page1[1].id),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        page2.iter().map(|e| e.time).collect::<Vec<_>>(),
        vec![T0 + 1, T0]
    );
    assert_eq!(s.purge_audit(T0 + 2).await.unwrap(), 2);
    assert_eq!(
        s.list_audit(&AuditQuery {
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap()
        .len(),
        2
    );
}
