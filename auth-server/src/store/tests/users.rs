//! User accounts: CRUD, uniqueness, paging, roles, disabling, password changes, deletion.

use super::*;

both_backends!(
    ping_and_migrate_again,
    user_crud_and_conflict,
    list_users_pages,
    roles_disable_enable,
    password_change_scopes,
    delete_user_cascades,
    the_last_admin_stays,
    concurrent_admin_changes_keep_an_admin,
);

async fn ping_and_migrate_again(s: &dyn TestStore) {
    s.ping().await.unwrap();
    s.migrate().await.unwrap();
    assert_eq!(s.count_users().await.unwrap(), 0);
}

async fn user_crud_and_conflict(s: &dyn TestStore) {
    let mut alice = user("u1", "Alice");
    alice.roles = vec!["admin".into(), "user".into()];
    s.create_user(&alice).await.unwrap();
    let mut robot = user("u2", "Robot");
    robot.password_hash = None;
    robot.roles = vec![];
    s.create_user(&robot).await.unwrap();

    assert_eq!(s.user_by_id("u1").await.unwrap(), Some(alice.clone()));
    assert_eq!(s.user_by_username_key("alice").await.unwrap(), Some(alice));
    assert_eq!(s.user_by_id("u2").await.unwrap(), Some(robot));
    assert_eq!(s.user_by_id("nope").await.unwrap(), None);
    assert_eq!(
        s.user_by_username_key("Alice").await.unwrap(),
        None,
        "lookups use the canonical key"
    );

    let clash = user("u3", "ALICE");
    let err = s.create_user(&clash).await.unwrap_err();
    assert!(
        matches!(err, StoreError::Conflict("username taken")),
        "{err:?}"
    );
    assert_eq!(s.count_users().await.unwrap(), 2);
}

async fn list_users_pages(s: &dyn TestStore) {
    for (i, name) in ["dave", "bob", "erin", "alice", "carol"].iter().enumerate() {
        s.create_user(&user(&format!("u{i}"), name)).await.unwrap();
    }
    let keys = |v: Vec<UserRecord>| v.into_iter().map(|u| u.username_key).collect::<Vec<_>>();
    assert_eq!(keys(s.list_users(None, 2).await.unwrap()), ["alice", "bob"]);
    assert_eq!(
        keys(s.list_users(Some("bob"), 2).await.unwrap()),
        ["carol", "dave"]
    );
    assert_eq!(keys(s.list_users(Some("dave"), 2).await.unwrap()), ["erin"]);
    assert!(s.list_users(Some("erin"), 2).await.unwrap().is_empty());
    assert_eq!(s.list_users(None, 100).await.unwrap().len(), 5);
    assert!(s.list_users(None, 0).await.unwrap().is_empty());
    assert_eq!(s.count_users().await.unwrap(), 5);
}

async fn roles_disable_enable(s: &dyn TestStore) {
    setup(s).await;
    session(s, "s2", "u1", "x0", T0).await;
    session(s, "s3", "u1", "y0", T0).await;
    assert!(s.revoke_session("s3", T0 + 1).await.unwrap());

    // (Not "admin": the last enabled admin could not be disabled below; see the_last_admin_stays.)
    let roles = vec!["ops".to_string()];
    let u = s.set_roles("u1", &roles, T0 + 5).await.unwrap().unwrap();
    assert_eq!((u.roles.clone(), u.updated_at), (roles, T0 + 5));
    assert_eq!(s.user_by_id("u1").await.unwrap(), Some(u));
    assert_eq!(s.set_roles("nope", &[], T0).await.unwrap(), None);

    let (u, revoked) = s.set_disabled("u1", true, T0 + 10).await.unwrap().unwrap();
    assert!(u.disabled);
    assert_eq!(u.updated_at, T0 + 10);
    assert_eq!(revoked, 2, "the already revoked session is not counted");
    assert_eq!(reason(s, "s1").await.as_deref(), Some("user_disabled"));
    assert_eq!(
        reason(s, "s3").await.as_deref(),
        Some("revoked"),
        "untouched"
    );
    assert_eq!(
        s.session_by_id("s3").await.unwrap().unwrap().revoked_at,
        Some(T0 + 1)
    );

    assert_eq!(
        s.set_disabled("u1", true, T0 + 11)
            .await
            .unwrap()
            .unwrap()
            .1,
        0
    );
    let (u, revoked) = s.set_disabled("u1", false, T0 + 12).await.unwrap().unwrap();
    assert!(!u.disabled);
    assert_eq!(revoked, 0);
    assert!(
        s.session_by_id("s1")
            .await
            .unwrap()
            .unwrap()
            .revoked_at
            .is_some(),
        "enabling revives nothing"
    );
    assert!(s.set_disabled("nope", true, T0).await.unwrap().is_none());
}

async fn password_change_scopes(s: &dyn TestStore) {
    setup(s).await;
    session(s, "s2", "u1", "x0", T0).await;
    session(s, "s3", "u1", "y0", T0).await;

    assert_eq!(
        s.set_password_hash("u1", "h1", T0 + 1, RevokeScope::None)
            .await
            .unwrap(),
        Some(0)
    );
    let u = s.user_by_id("u1").await.unwrap().unwrap();
    assert_eq!(
        (u.password_hash.as_deref(), u.updated_at),
        (Some("h1"), T0 + 1)
    );

    assert_eq!(
        s.set_password_hash("u1", "h2", T0 + 2, RevokeScope::AllExcept("s2"))
            .await
            .unwrap(),
        Some(2)
    );
    assert!(
        s.session_by_id("s2")
            .await
            .unwrap()
            .unwrap()
            .revoked_at
            .is_none()
    );
    assert_eq!(reason(s, "s1").await.as_deref(), Some("password_changed"));

    assert_eq!(
        s.set_password_hash("u1", "h3", T0 + 3, RevokeScope::All)
            .await
            .unwrap(),
        Some(1)
    );
    assert_eq!(
        s.session_by_id("s1").await.unwrap().unwrap().revoked_at,
        Some(T0 + 2),
        "untouched"
    );
    assert_eq!(
        s.user_by_id("u1")
            .await
            .unwrap()
            .unwrap()
            .password_hash
            .as_deref(),
        Some("h3")
    );
    assert_eq!(
        s.set_password_hash("nope", "h", T0, RevokeScope::All)
            .await
            .unwrap(),
        None
    );
}

async fn delete_user_cascades(s: &dyn TestStore) {
    setup(s).await;
    assert!(matches!(
        rotate(s, "t0", "t1", T0 + 1).await,
        RotateOutcome::Rotated { .. }
    ));
    s.create_user(&user("u2", "Bob")).await.unwrap();
    session(s, "s2", "u2", "b0", T0).await;

    assert!(s.delete_user("u1", T0).await.unwrap());
    assert!(!s.delete_user("u1", T0).await.unwrap());
    assert_eq!(s.user_by_id("u1").await.unwrap(), None);
    assert_eq!(s.session_by_id("s1").await.unwrap(), None);
    assert_eq!(count(s, "sessions").await, 1);
    assert_eq!(
        count(s, "refresh_tokens").await,
        1,
        "only bob's token is left"
    );
    assert_eq!(rotate(s, "t1", "t2", T0 + 2).await, RotateOutcome::Rejected);
}

fn admin(id: &str, name: &str) -> UserRecord {
    UserRecord {
        roles: vec![crate::store::ADMIN_ROLE.into()],
        ..user(id, name)
    }
}

/// The last enabled admin cannot be demoted, disabled or deleted; nothing changes when refused.
async fn the_last_admin_stays(s: &dyn TestStore) {
    s.create_user(&admin("a1", "Ann")).await.unwrap();
    s.create_user(&user("u1", "Alice")).await.unwrap();
    assert!(matches!(
        s.set_roles("a1", &[], T0 + 1).await,
        Err(StoreError::LastAdmin)
    ));
    assert!(matches!(
        s.set_disabled("a1", true, T0 + 1).await,
        Err(StoreError::LastAdmin)
    ));
    assert!(matches!(
        s.delete_user("a1", T0).await,
        Err(StoreError::LastAdmin)
    ));
    assert_eq!(s.user_by_id("a1").await.unwrap(), Some(admin("a1", "Ann")));
    // Others change freely; with a second admin, the first may go.
    s.set_roles("u1", &["admin".into()], T0 + 2).await.unwrap();
    s.set_disabled("a1", true, T0 + 3).await.unwrap();
    assert!(matches!(
        s.set_disabled("u1", true, T0 + 4).await,
        Err(StoreError::LastAdmin)
    ));
}

/// Two admins disabling each other at the same moment: exactly one succeeds, every round.
async fn concurrent_admin_changes_keep_an_admin(s: &dyn TestStore) {
    let mut previous: Vec<String> = Vec::new();
    for round in 0..5 {
        let (a, b) = (format!("a{round}"), format!("b{round}"));
        s.create_user(&admin(&a, &format!("Ann{round}")))
            .await
            .unwrap();
        s.create_user(&admin(&b, &format!("Bob{round}")))
            .await
            .unwrap();
        // Only this round's two are admins.
        for old in previous.drain(..) {
            s.set_roles(&old, &[], T0 + 9).await.unwrap();
        }
        let barrier = Arc::new(Barrier::new(2));
        let tasks: Vec<_> = [a.clone(), b.clone()]
            .into_iter()
            .map(|id| {
                let (store, barrier) = (s.shared(), barrier.clone());
                tokio::spawn(async move {
                    barrier.wait().await;
                    store.set_disabled(&id, true, T0 + 10).await
                })
            })
            .collect();
        let mut ok = 0;
        for t in tasks {
            match t.await.unwrap() {
                Ok(Some(_)) => ok += 1,
                Err(StoreError::LastAdmin) => {}
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(ok, 1, "round {round}: exactly one admin disabled");
        let enabled = s
            .int(
                "SELECT COUNT(*) FROM users WHERE disabled = FALSE AND roles LIKE '%\"admin\"%'",
                &[],
            )
            .await;
        assert_eq!(enabled, 1, "round {round}");
        previous = vec![a, b];
    }
}
