//! Login throttling counters and the audit trail.

use super::*;
use crate::store::{AuditEvent, AuditQuery};

both_backends!(
    throttle_counts_decays_and_resets,
    audit_trail_filters_and_pages
);

async fn throttle_counts_decays_and_resets(s: &dyn TestStore) {
    let k = "user:alice";
    assert_eq!(s.login_locked_until(k, "source:1.2.3.4").await.unwrap(), 0);
    for n in 1..=3 {
        assert_eq!(
            s.record_login_failure(k, T0 + n, T0 - 100).await.unwrap(),
            n
        );
    }
    s.lock_login(k, T0 + 60).await.unwrap();
    assert_eq!(
        s.login_locked_until(k, "source:1.2.3.4").await.unwrap(),
        T0 + 60
    );
    assert_eq!(
        s.login_locked_until("user:bob", "source:1.2.3.4")
            .await
            .unwrap(),
        0
    );
    // The source key alone locks too.
    s.record_login_failure("source:1.2.3.4", T0, T0 - 100)
        .await
        .unwrap();
    s.lock_login("source:1.2.3.4", T0 + 90).await.unwrap();
    assert_eq!(
        s.login_locked_until("user:bob", "source:1.2.3.4")
            .await
            .unwrap(),
        T0 + 90
    );
    // A failure after the window restarts the count.
    assert_eq!(
        s.record_login_failure(k, T0 + 5000, T0 + 4000)
            .await
            .unwrap(),
        1
    );
    s.reset_login_failures(k).await.unwrap();
    assert_eq!(s.record_login_failure(k, T0 + 5001, T0).await.unwrap(), 1);
    // Purge keeps locked rows and recent ones.
    assert_eq!(
        s.purge_login_throttle(T0 + 10, T0 + 10).await.unwrap(),
        0,
        "source row still locked"
    );
    assert_eq!(s.purge_login_throttle(T0 + 10, T0 + 100).await.unwrap(), 1);
    assert_eq!(
        s.purge_login_throttle(T0 + 6000, T0 + 6000).await.unwrap(),
        1
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
