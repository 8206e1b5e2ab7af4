//! Service accounts: create, read, page, update, disable, delete, secret rotation with overlap, keys
//! (at most eight), and single-use assertion `jti`s under concurrency.

use super::*;
use crate::store::{
    KeyAdded, MAX_SERVICE_ACCOUNT_KEYS, ServiceAccountKeyRecord, ServiceAccountRecord,
    ServiceAccountStatus, ServiceAccountUpdate,
};

both_backends!(
    accounts_are_created_read_and_paged_by_name,
    updates_end_tokens_only_when_they_take_away,
    disable_and_delete_end_tokens,
    rotation_keeps_the_previous_secret_until_the_overlap_ends,
    keys_are_bounded_and_their_removal_ends_tokens,
    a_jti_is_spent_once_under_concurrency,
);

fn account(id: &str, name: &str) -> ServiceAccountRecord {
    ServiceAccountRecord {
        id: id.into(),
        name: name.into(),
        description: "d".into(),
        roles: vec!["orders:refund".into()],
        audiences: vec!["orders".into(), "billing".into()],
        disabled: false,
        secret_hash: hash(&format!("secret-{id}")),
        previous_secret_hash: None,
        previous_secret_expires_at: None,
        tokens_not_before: 0,
        created_at: T0,
        updated_at: T0,
        keys: vec![],
    }
}

fn key(kid: &str) -> ServiceAccountKeyRecord {
    ServiceAccountKeyRecord {
        kid: kid.into(),
        alg: "EdDSA".into(),
        public_jwk: format!(r#"{{"kid":"{kid}"}}"#),
        created_at: T0 + 1,
    }
}

fn status(disabled: bool, tokens_not_before: i64) -> Option<ServiceAccountStatus> {
    Some(ServiceAccountStatus {
        disabled,
        tokens_not_before,
    })
}

async fn accounts_are_created_read_and_paged_by_name(s: &dyn TestStore) {
    for (id, name) in [("a3", "zulu"), ("a1", "alpha"), ("a2", "mike")] {
        s.create_service_account(&account(id, name)).await.unwrap();
    }
    // Names are unique among service accounts (a username of the same name is another space).
    s.create_user(&user("u9", "alpha")).await.unwrap();
    assert!(matches!(
        s.create_service_account(&account("a4", "alpha")).await,
        Err(StoreError::Conflict(_))
    ));
    let a = s.service_account(false, "a1").await.unwrap().unwrap();
    assert_eq!(a, account("a1", "alpha"));
    assert_eq!(
        s.service_account(true, "alpha").await.unwrap(),
        Some(a.clone())
    );
    assert_eq!(s.service_account_for_token("alpha").await.unwrap(), Some(a));
    assert_eq!(s.service_account(true, "nobody").await.unwrap(), None);
    assert_eq!(
        s.service_account_status("a1").await.unwrap(),
        status(false, 0)
    );
    assert_eq!(s.service_account_status("nope").await.unwrap(), None);
    let page = s.list_service_accounts(None, 2).await.unwrap();
    let names: Vec<_> = page.iter().map(|a| a.name.as_str()).collect();
    assert_eq!(names, ["alpha", "mike"]);
    let rest = s.list_service_accounts(Some("mike"), 2).await.unwrap();
    assert_eq!(rest.len(), 1);
    assert_eq!(rest[0].name, "zulu");
    // Debug output never shows the secrets' MACs.
    assert!(!format!("{:?}", rest[0]).contains("secret_hash"));
}

async fn updates_end_tokens_only_when_they_take_away(s: &dyn TestStore) {
    s.create_service_account(&account("a1", "alpha"))
        .await
        .unwrap();
    let widen = ServiceAccountUpdate {
        roles: vec!["orders:refund".into(), "orders:read".into()],
        audiences: vec!["orders".into(), "billing".into(), "stock".into()],
        description: "wider".into(),
    };
    let a = s
        .update_service_account("a1", &widen, T0 + 5)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (a.roles.len(), a.audiences.len(), a.updated_at),
        (2, 3, T0 + 5)
    );
    assert_eq!(a.description, "wider");
    assert_eq!(a.tokens_not_before, 0, "adding ends nothing");
    let narrow = ServiceAccountUpdate {
        roles: vec!["orders:read".into()],
        ..widen.clone()
    };
    let a = s
        .update_service_account("a1", &narrow, T0 + 9)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        a.tokens_not_before,
        T0 + 9,
        "a role taken away ends the tokens"
    );
    assert_eq!(
        s.update_service_account("nope", &narrow, T0).await.unwrap(),
        None
    );
}

async fn disable_and_delete_end_tokens(s: &dyn TestStore) {
    s.create_service_account(&account("a1", "alpha"))
        .await
        .unwrap();
    let a = s
        .set_service_account_disabled("a1", true, T0 + 3)
        .await
        .unwrap()
        .unwrap();
    assert!(a.disabled);
    assert_eq!(
        s.service_account_status("a1").await.unwrap(),
        status(true, T0 + 4),
        "disabling ends the tokens of its own second too"
    );
    let a = s
        .set_service_account_disabled("a1", false, T0 + 4)
        .await
        .unwrap()
        .unwrap();
    assert!(!a.disabled);
    assert_eq!(a.tokens_not_before, T0 + 4, "enabling resurrects nothing");
    assert_eq!(
        s.set_service_account_disabled("nope", true, T0)
            .await
            .unwrap(),
        None
    );
    s.add_service_account_key("a1", &key("k1")).await.unwrap();
    assert!(s.delete_service_account("a1", T0 + 5).await.unwrap());
    assert!(!s.delete_service_account("a1", T0 + 5).await.unwrap());
    assert_eq!(s.service_account_status("a1").await.unwrap(), None);
    assert_eq!(
        s.int("SELECT COUNT(*) FROM service_account_keys", &[])
            .await,
        0
    );
}

async fn rotation_keeps_the_previous_secret_until_the_overlap_ends(s: &dyn TestStore) {
    s.create_service_account(&account("a1", "alpha"))
        .await
        .unwrap();
    let old = hash("secret-a1");
    let a = s
        .rotate_service_account_secret("a1", &hash("new"), Some(T0 + 100), T0 + 10)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(a.secret_hash, hash("new"));
    assert_eq!(a.previous_secret_hash, Some(old));
    assert_eq!(a.previous_secret_expires_at, Some(T0 + 100));
    assert_eq!(a.tokens_not_before, 0, "an overlap ends no token");
    // Without overlap the previous secret is dropped and the tokens end.
    let a = s
        .rotate_service_account_secret("a1", &hash("newer"), None, T0 + 20)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (a.previous_secret_hash, a.previous_secret_expires_at),
        (None, None)
    );
    assert_eq!(a.tokens_not_before, T0 + 20);
    assert_eq!(
        s.rotate_service_account_secret("nope", &hash("x"), None, T0)
            .await
            .unwrap(),
        None
    );
}

async fn keys_are_bounded_and_their_removal_ends_tokens(s: &dyn TestStore) {
    s.create_service_account(&account("a1", "alpha"))
        .await
        .unwrap();
    for i in 0..MAX_SERVICE_ACCOUNT_KEYS {
        let added = s
            .add_service_account_key("a1", &key(&format!("k{i}")))
            .await
            .unwrap();
        assert!(matches!(added, Some(KeyAdded::Added(_))), "{added:?}");
    }
    assert_eq!(
        s.add_service_account_key("a1", &key("k-extra"))
            .await
            .unwrap(),
        Some(KeyAdded::Full)
    );
    assert_eq!(
        s.service_account_keys("a1").await.unwrap().len(),
        MAX_SERVICE_ACCOUNT_KEYS
    );
    let a = s
        .remove_service_account_key("a1", "k0", T0 + 7)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(a.keys.len(), MAX_SERVICE_ACCOUNT_KEYS - 1);
    assert_eq!(a.tokens_not_before, T0 + 7);
    assert_eq!(
        s.add_service_account_key("a1", &key("k1")).await.unwrap(),
        Some(KeyAdded::KidTaken)
    );
    assert_eq!(
        s.remove_service_account_key("a1", "k0", T0).await.unwrap(),
        None
    );
    assert_eq!(
        s.add_service_account_key("nope", &key("k")).await.unwrap(),
        None
    );
    let listed = s.list_service_accounts(None, 10).await.unwrap();
    assert_eq!(
        listed[0].keys.len(),
        MAX_SERVICE_ACCOUNT_KEYS - 1,
        "a page carries its keys"
    );
}

async fn a_jti_is_spent_once_under_concurrency(s: &dyn TestStore) {
    const N: usize = 8;
    let barrier = Arc::new(Barrier::new(N));
    let tasks: Vec<_> = (0..N)
        .map(|_| {
            let (store, barrier) = (s.shared(), barrier.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                store.spend_assertion_jti("alpha", "jti-1", T0 + 60).await
            })
        })
        .collect();
    let mut won = 0;
    for task in tasks {
        if task.await.unwrap().unwrap() {
            won += 1;
        }
    }
    assert_eq!(won, 1, "exactly one use of a jti");
    // Another client may use the same jti; housekeeping forgets it after its expiry.
    assert!(
        s.spend_assertion_jti("beta", "jti-1", T0 + 60)
            .await
            .unwrap()
    );
    s.purge_expired(T0 + 60).await.unwrap();
    assert_eq!(
        s.int("SELECT COUNT(*) FROM service_assertion_jtis", &[])
            .await,
        2
    );
    s.purge_expired(T0 + 61).await.unwrap();
    assert_eq!(
        s.int("SELECT COUNT(*) FROM service_assertion_jtis", &[])
            .await,
        0
    );
    assert!(
        s.spend_assertion_jti("alpha", "jti-1", T0 + 120)
            .await
            .unwrap()
    );
}
