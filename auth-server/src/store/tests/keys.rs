//! Signing keys: first-start initialisation, rotation (conditional, one winner among racing
//! replicas) and purging.

use std::sync::Arc;

use tokio::sync::Barrier;

use super::*;
use crate::store::KeyRotation;

both_backends!(
    signing_key_lifecycle,
    rotation_conditions,
    racing_rotations_rotate_once
);

fn key(kid: &str, status: KeyStatus, created_at: i64) -> SigningKeyRecord {
    SigningKeyRecord {
        kid: kid.into(),
        alg: "EdDSA".into(),
        status,
        private_key_enc: vec![1, 2, 3, kid.len() as u8],
        public_jwk: format!(r#"{{"kty":"OKP","kid":"{kid}"}}"#),
        created_at,
        publish_until: None,
        activated_at: (status == KeyStatus::Current).then_some(created_at),
    }
}

/// A rotation at `now` whose conditions always hold.
fn at(now: i64, retire_until: i64) -> KeyRotation {
    KeyRotation {
        now,
        retire_until,
        current_since: now,
        next_since: now,
        revoke_retired: false,
    }
}

async fn signing_key_lifecycle(s: &dyn TestStore) {
    let err = s
        .rotate_signing_keys(&key("k0", KeyStatus::Next, T0), &at(T0, T0))
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
        .rotate_signing_keys(&key("k3", KeyStatus::Next, T0 + 10), &at(T0 + 10, T0 + 100))
        .await
        .unwrap();
    assert_eq!(rotated, Some(("k2".to_string(), "k1".to_string())));
    let rotated = s
        .rotate_signing_keys(&key("k4", KeyStatus::Next, T0 + 20), &at(T0 + 20, T0 + 200))
        .await
        .unwrap();
    assert_eq!(rotated, Some(("k3".to_string(), "k2".to_string())));
    let keys = s.signing_keys().await.unwrap();
    let states: Vec<_> = keys
        .iter()
        .map(|k| (k.kid.as_str(), k.status, k.publish_until, k.activated_at))
        .collect();
    assert_eq!(
        states,
        [
            ("k1", KeyStatus::Retired, Some(T0 + 100), Some(T0)),
            ("k2", KeyStatus::Retired, Some(T0 + 200), Some(T0 + 10)),
            ("k3", KeyStatus::Current, None, Some(T0 + 20)),
            ("k4", KeyStatus::Next, None, None),
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

/// A rotation that is not due, or whose next key has not been published long enough, changes
/// nothing; the boundaries are inclusive.
async fn rotation_conditions(s: &dyn TestStore) {
    // Current since T0, next published since T0 + 50.
    let first = [
        key("k1", KeyStatus::Current, T0),
        key("k2", KeyStatus::Next, T0 + 50),
    ];
    assert!(s.init_signing_keys(&first).await.unwrap());
    let refused = [
        // The current key became current after T0 - 1: not due.
        KeyRotation {
            current_since: T0 - 1,
            ..at(T0 + 100, T0 + 200)
        },
        // The next key was published after T0 + 49: too young.
        KeyRotation {
            next_since: T0 + 49,
            ..at(T0 + 100, T0 + 200)
        },
    ];
    for rotation in refused {
        let r = s
            .rotate_signing_keys(&key("k3", KeyStatus::Next, T0 + 100), &rotation)
            .await
            .unwrap();
        assert_eq!(r, None, "{rotation:?}");
        assert_eq!(s.signing_keys().await.unwrap(), first, "{rotation:?}");
    }
    let exact = KeyRotation {
        current_since: T0,
        next_since: T0 + 50,
        ..at(T0 + 100, T0 + 200)
    };
    let r = s
        .rotate_signing_keys(&key("k3", KeyStatus::Next, T0 + 100), &exact)
        .await
        .unwrap();
    assert_eq!(r, Some(("k2".to_string(), "k1".to_string())));
}

/// Replicas that find the same rotation due at once: exactly one rotates, the others change
/// nothing, in every round.
async fn racing_rotations_rotate_once(s: &dyn TestStore) {
    let first = [
        key("c0", KeyStatus::Current, T0),
        key("n0", KeyStatus::Next, T0),
    ];
    assert!(s.init_signing_keys(&first).await.unwrap());
    for round in 1..=5i64 {
        let now = T0 + round * 100;
        let due = KeyRotation {
            now,
            retire_until: now + 1000,
            current_since: now - 100,
            next_since: now - 100,
            revoke_retired: false,
        };
        let barrier = Arc::new(Barrier::new(3));
        let tasks: Vec<_> = (0..3)
            .map(|replica| {
                let (store, barrier) = (s.shared(), barrier.clone());
                let next = key(&format!("r{round}-{replica}"), KeyStatus::Next, now);
                tokio::spawn(async move {
                    barrier.wait().await;
                    store.rotate_signing_keys(&next, &due).await
                })
            })
            .collect();
        let mut won = 0;
        for t in tasks {
            match t.await.unwrap() {
                Ok(Some(_)) => won += 1,
                Ok(None) => {}
                other => panic!("round {round}: {other:?}"),
            }
        }
        assert_eq!(won, 1, "round {round}: exactly one replica rotated");
        let keys = s.signing_keys().await.unwrap();
        let count = |st: KeyStatus| keys.iter().filter(|k| k.status == st).count();
        assert_eq!(
            (count(KeyStatus::Current), count(KeyStatus::Next)),
            (1, 1),
            "round {round}"
        );
        assert_eq!(count(KeyStatus::Retired), round as usize, "round {round}");
    }
}
