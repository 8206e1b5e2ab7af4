//! Usernames in the store: a look-alike (same skeleton) of an account is refused, and accounts stored
//! before skeletons existed get theirs, with the current canonical key, when the store migrates.

use super::*;

both_backends!(look_alikes_are_refused, legacy_accounts_are_backfilled);

/// A user whose key and skeleton come from the username profile, as `create_user` builds it.
fn named(id: &str, raw: &str, created_at: i64) -> UserRecord {
    let name = crate::username::parse(raw).unwrap();
    UserRecord {
        username: name.display,
        username_key: name.key,
        username_skeleton: Some(name.skeleton),
        created_at,
        ..user(id, "-")
    }
}

/// A user as stored before migration 0005: NFKC + lower-case key, no skeleton.
fn legacy(id: &str, display: &str, old_key: &str, created_at: i64) -> UserRecord {
    UserRecord {
        username: display.into(),
        username_key: old_key.into(),
        username_skeleton: None,
        created_at,
        ..user(id, "-")
    }
}

async fn skeleton_of(s: &dyn TestStore, id: &str) -> Option<String> {
    s.text("SELECT username_skeleton FROM users WHERE id = $1", &[id])
        .await
}

async fn key_of(s: &dyn TestStore, id: &str) -> Option<String> {
    s.text("SELECT username_key FROM users WHERE id = $1", &[id])
        .await
}

async fn look_alikes_are_refused(s: &dyn TestStore) {
    s.create_user(&named("u1", "admin", T0)).await.unwrap();
    // Cyrillic а, dotless ı, dotted İ, "rn" for "m": other keys, the same skeleton.
    for (i, alike) in ["\u{430}dmin", "adm\u{131}n", "ADM\u{130}N", "adrnin"]
        .iter()
        .enumerate()
    {
        let err = s
            .create_user(&named(&format!("x{i}"), alike, T0))
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::LookAlike), "{alike:?}: {err:?}");
    }
    // The same key is "taken", not "looks like".
    let err = s.create_user(&named("x9", "ADMIN", T0)).await.unwrap_err();
    assert!(
        matches!(err, StoreError::Conflict("username taken")),
        "{err:?}"
    );
    s.create_user(&named("u2", "admins", T0)).await.unwrap();
    assert_eq!(s.count_users().await.unwrap(), 2);
}

async fn legacy_accounts_are_backfilled(s: &dyn TestStore) {
    let rows = [
        legacy("l1", "Admin", "admin", T0),
        legacy("l2", "Straße", "straße", T0 + 1),
        // The attack the skeleton now stops, stored before it existed.
        legacy("l3", "\u{430}dmin", "\u{430}dmin", T0 + 2),
        // A name the profile now refuses (soft hyphen).
        legacy("l4", "bo\u{AD}b", "bo\u{AD}b", T0 + 3),
        // Two accounts that full case folding makes one name: the older keeps it.
        legacy("l5", "ΟΔΟΣ", "οδοσ", T0 + 4),
        legacy("l6", "οδος", "οδος", T0 + 5),
        legacy("l7", "Zoë", "zoë", T0 + 6),
    ];
    for row in &rows {
        s.create_user(row).await.unwrap();
    }
    s.migrate().await.unwrap();

    assert_eq!(key_of(s, "l1").await.as_deref(), Some("admin"));
    assert_eq!(
        skeleton_of(s, "l1").await,
        Some(crate::username::skeleton("admin"))
    );
    assert_eq!(key_of(s, "l2").await.as_deref(), Some("strasse"), "new key");
    let found = s.user_by_username_key("strasse").await.unwrap().unwrap();
    assert_eq!(found.id, "l2", "ß and ss find the account");
    assert_eq!(key_of(s, "l3").await.as_deref(), Some("\u{430}dmin"));
    assert_eq!(skeleton_of(s, "l3").await, None, "the younger look-alike");
    assert_eq!(key_of(s, "l4").await.as_deref(), Some("bo\u{AD}b"), "kept");
    assert_eq!(key_of(s, "l5").await.as_deref(), Some("οδοσ"));
    assert!(skeleton_of(s, "l5").await.is_some());
    assert_eq!(key_of(s, "l6").await.as_deref(), Some("οδος"), "kept");
    assert_eq!(key_of(s, "l7").await.as_deref(), Some("zoë"));
    assert!(skeleton_of(s, "l7").await.is_some());

    // Idempotent, and the filled skeletons now guard new accounts.
    s.migrate().await.unwrap();
    assert_eq!(key_of(s, "l2").await.as_deref(), Some("strasse"));
    let err = s
        .create_user(&named("n1", "adm\u{131}n", T0 + 9))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::LookAlike), "{err:?}");
    let err = s
        .create_user(&named("n2", "STRASSE", T0 + 9))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err:?}");
}
