//! Cancelled logins change nothing (issue 15): a storm of wrong-password logins that give up after a
//! few milliseconds (client deadline, RST_STREAM) is counted and audited like any other — exactly the
//! allowed number is checked against the hash, the account is then locked — and leaves no leaked
//! hashing slot behind: genuine logins afterwards are served, not shed.

use std::time::Duration;

use crate::support::*;
use auth_proto::v1::LoginRequest;
use tonic::{Code, Request};

both_backends!(a_storm_of_cancelled_logins_is_counted_and_leaks_nothing);

async fn a_storm_of_cancelled_logins_is_counted_and_leaks_nothing(backend: Backend) {
    let s = TestServer::start_with(
        backend,
        Options::with_args(&["--trusted-proxy-header", "x-forwarded-for"]),
    )
    .await;
    s.seed_user("victim", "victim-password-1", &[]).await;
    let failed = || async {
        s.db.scalar("SELECT COUNT(*) FROM audit_events WHERE event = 'login.failed'")
            .await
    };
    let before = failed().await;
    // 16 clients, each giving up after 2 ms, for a while (the server's clock stands still, so no
    // lock expires meanwhile).
    let storm: Vec<_> = (0..16)
        .map(|_| {
            let client = s.auth_client();
            tokio::spawn(async move {
                for _ in 0..15 {
                    let mut c = client.clone();
                    let mut req = Request::new(LoginRequest {
                        username: "victim".into(),
                        password: "wrong-password-9".into(),
                    });
                    req.metadata_mut()
                        .insert("x-forwarded-for", "203.0.113.9".parse().expect("ascii"));
                    let _ = tokio::time::timeout(Duration::from_millis(2), c.login(req)).await;
                }
            })
        })
        .collect();
    for t in storm {
        bounded("storm", t).await.expect("storm task");
    }
    // Once the logins that did start have run to their end: exactly five were checked and audited.
    let checked = poll_until(
        "the storm's logins settle",
        Duration::from_secs(20),
        || async {
            let a = failed().await;
            tokio::time::sleep(Duration::from_millis(300)).await;
            (a == failed().await).then_some(a)
        },
    )
    .await;
    assert_eq!(
        checked - before,
        5,
        "the allowed attempts were checked, no more"
    );
    // The pair is locked: even the right password from that address is refused, without a hash.
    let mut req = Request::new(LoginRequest {
        username: "victim".into(),
        password: "victim-password-1".into(),
    });
    req.metadata_mut()
        .insert("x-forwarded-for", "203.0.113.9".parse().expect("ascii"));
    let refused = s.auth_client().login(req).await.expect_err("locked");
    assert_eq!(refused.code(), Code::ResourceExhausted);
    // No hashing slot or queue place leaked: genuine logins (from elsewhere) are all served.
    let genuine: Vec<_> = (0..6)
        .map(|i| {
            let client = s.auth_client();
            tokio::spawn(async move {
                let mut c = client;
                let mut req = Request::new(LoginRequest {
                    username: "victim".into(),
                    password: "victim-password-1".into(),
                });
                req.metadata_mut().insert(
                    "x-forwarded-for",
                    format!("198.51.100.{i}").parse().expect("ascii"),
                );
                c.login(req).await
            })
        })
        .collect();
    for g in genuine {
        bounded("genuine login", g)
            .await
            .expect("task")
            .expect("served, not shed");
    }
    s.shutdown().await;
}
