//! Sessions: revocation, status, listing and purging.

use super::*;
use crate::store::SessionRecord;

both_backends!(
    revoke_by_refresh,
    revoke_sessions,
    session_status_query,
    active_sessions_listing,
    purge_expired_rows,
);

async fn revoke_by_refresh(s: &dyn TestStore) {
    setup(s).await;
    session(s, "s2", "u1", "x0", T0).await;
    assert!(matches!(
        rotate(s, "t0", "t1", T0 + 1).await,
        RotateOutcome::Rotated { .. }
    ));

    let owner = Some(("s1".to_string(), "u1".to_string()));
    assert_eq!(
        s.revoke_session_by_refresh(&hash("t0"), T0 + 2)
            .await
            .unwrap(),
        owner,
        "spent token"
    );
    assert_eq!(reason(s, "s1").await.as_deref(), Some("logout"));
    assert_eq!(
        s.revoke_session_by_refresh(&hash("t1"), T0 + 3)
            .await
            .unwrap(),
        None,
        "already revoked"
    );
    assert_eq!(
        s.session_by_id("s1").await.unwrap().unwrap().revoked_at,
        Some(T0 + 2)
    );

    let owner = Some(("s2".to_string(), "u1".to_string()));
    assert_eq!(
        s.revoke_session_by_refresh(&hash("x0"), T0 + 4)
            .await
            .unwrap(),
        owner,
        "live token"
    );
    assert_eq!(rotate(s, "x0", "x1", T0 + 5).await, RotateOutcome::Rejected);
    assert_eq!(
        s.revoke_session_by_refresh(&hash("unknown"), T0)
            .await
            .unwrap(),
        None
    );
}

async fn revoke_sessions(s: &dyn TestStore) {
    setup(s).await;
    for id in ["s2", "s3", "s4"] {
        session(s, id, "u1", id, T0).await;
    }
    assert!(s.revoke_session("s1", T0 + 1).await.unwrap());
    assert!(!s.revoke_session("s1", T0 + 2).await.unwrap());
    assert!(!s.revoke_session("nope", T0 + 2).await.unwrap());
    assert_eq!(
        s.revoke_user_sessions("u1", Some("s2"), T0 + 3)
            .await
            .unwrap(),
        2
    );
    assert_eq!(s.revoke_user_sessions("u1", None, T0 + 4).await.unwrap(), 1);
    assert_eq!(s.revoke_user_sessions("u1", None, T0 + 5).await.unwrap(), 0);
    assert_eq!(
        s.session_by_id("s1").await.unwrap().unwrap().revoked_at,
        Some(T0 + 1)
    );
    assert_eq!(
        s.session_by_id("s2").await.unwrap().unwrap().revoked_at,
        Some(T0 + 4)
    );
}

async fn session_status_query(s: &dyn TestStore) {
    setup(s).await;
    let st = s.session_status("s1").await.unwrap().unwrap();
    assert_eq!(
        (
            st.user_id.as_str(),
            st.revoked,
            st.absolute_expires_at,
            st.user_disabled
        ),
        ("u1", false, T0 + ABS, false)
    );
    s.set_disabled("u1", true, T0 + 1).await.unwrap();
    let st = s.session_status("s1").await.unwrap().unwrap();
    assert!(st.revoked && st.user_disabled);
    assert_eq!(s.session_status("nope").await.unwrap(), None);
}

async fn active_sessions_listing(s: &dyn TestStore) {
    setup(s).await;
    session(s, "s2", "u1", "x0", T0 + 10).await;
    session(s, "s3", "u1", "y0", T0 + 20).await;
    session(s, "s4", "u1", "z0", T0 - ABS + 100).await;
    s.create_user(&user("u2", "Bob")).await.unwrap();
    session(s, "s5", "u2", "b0", T0).await;
    assert!(s.revoke_session("s2", T0 + 30).await.unwrap());

    let ids = |v: Vec<SessionRecord>| v.into_iter().map(|r| r.id).collect::<Vec<_>>();
    assert_eq!(
        ids(s.list_active_sessions("u1", T0 + 99).await.unwrap()),
        ["s3", "s1", "s4"]
    );
    assert_eq!(
        ids(s.list_active_sessions("u1", T0 + 100).await.unwrap()),
        ["s3", "s1"],
        "s4 is over"
    );
    assert!(s.list_active_sessions("nope", T0).await.unwrap().is_empty());
}

async fn purge_expired_rows(s: &dyn TestStore) {
    setup(s).await;
    assert!(matches!(
        rotate(s, "t0", "t1", T0 + 1).await,
        RotateOutcome::Rotated { .. }
    ));
    session(s, "s2", "u1", "x0", T0 + 10).await;
    assert_eq!(s.purge_expired(T0 + ABS - 1).await.unwrap(), 0);
    assert_eq!(
        s.purge_expired(T0 + ABS).await.unwrap(),
        3,
        "s1 and its two tokens"
    );
    assert_eq!(s.session_by_id("s1").await.unwrap(), None);
    assert!(s.session_by_id("s2").await.unwrap().is_some());
    assert_eq!(count(s, "refresh_tokens").await, 1);
    assert_eq!(s.count_users().await.unwrap(), 1, "users are never purged");
}
