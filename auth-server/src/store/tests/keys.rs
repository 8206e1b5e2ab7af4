//! Signing keys: first-start initialisation, rotation and purging.

use super::*;

both_backends!(signing_key_lifecycle,);

fn key(kid: &str, status: KeyStatus, created_at: i64) -> SigningKeyRecord {
    SigningKeyRecord {
        kid: kid.into(),
        alg: "EdDSA".into(),
        status,
        private_key_enc: vec![1, 2, 3, kid.len() as u8],
        public_jwk: format!(r#"{{"kty":"OKP","kid":"{kid}"}}"#),
        created_at,
        publish_until: None,
    }
}

async fn signing_key_lifecycle(s: &dyn TestStore) {
    let err = s
        .rotate_signing_keys(&key("k0", KeyStatus::Next, T0), T0)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err:?}");
    assert!(
        s.signing_keys().await.unwrap().is_empty(),
        "the failed rotation inserted nothing"
    );

    let first = [
        key("k1", KeyStatus::Current, T0),
        key("k2", KeyStatus::Next, T0 + 1),
    ];
    assert!(s.init_signing_keys(&first).await.unwrap());
    let other = [
        key("k8", KeyStatus::Current, T0),
        key("k9", KeyStatus::Next, T0),
    ];
    assert!(
        !s.init_signing_keys(&other).await.unwrap(),
        "a current key exists"
    );
    assert_eq!(s.signing_keys().await.unwrap(), first);

    let rotated = s
        .rotate_signing_keys(&key("k3", KeyStatus::Next, T0 + 10), T0 + 100)
        .await
        .unwrap();
    assert_eq!(rotated, ("k2".to_string(), "k1".to_string()));
    let rotated = s
        .rotate_signing_keys(&key("k4", KeyStatus::Next, T0 + 20), T0 + 200)
        .await
        .unwrap();
    assert_eq!(rotated, ("k3".to_string(), "k2".to_string()));
    let keys = s.signing_keys().await.unwrap();
    let states: Vec<_> = keys
        .iter()
        .map(|k| (k.kid.as_str(), k.status, k.publish_until))
        .collect();
    assert_eq!(
        states,
        [
            ("k1", KeyStatus::Retired, Some(T0 + 100)),
            ("k2", KeyStatus::Retired, Some(T0 + 200)),
            ("k3", KeyStatus::Current, None),
            ("k4", KeyStatus::Next, None),
        ]
    );
    assert_eq!(
        keys[3].private_key_enc,
        key("k4", KeyStatus::Next, 0).private_key_enc
    );

    assert_eq!(
        s.purge_expired(T0 + 100).await.unwrap(),
        0,
        "published until (inclusive)"
    );
    assert_eq!(s.purge_expired(T0 + 101).await.unwrap(), 1);
    let kids: Vec<_> = s
        .signing_keys()
        .await
        .unwrap()
        .into_iter()
        .map(|k| k.kid)
        .collect();
    assert_eq!(kids, ["k2", "k3", "k4"]);
}
