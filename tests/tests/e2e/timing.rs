//! L02, statistically: unknown user versus wrong password, 200 interleaved trials each, on a server with
//! the production argon2 parameters (m=19456 KiB, t=2, p=1) and throttling off. An unknown user is
//! verified against a dummy hash, so the median difference must be a small fraction of one hash.
//!
//! Slow (hundreds of production hashes): `cargo test -p e2e-tests --test e2e -- --ignored timing::`.

use std::time::{Duration, Instant};

use crate::support::*;
use tonic::Code;

const TRIALS: usize = 200;

fn median(v: &mut [Duration]) -> Duration {
    v.sort();
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "slow: run with --ignored (CI does)"]
async fn unknown_user_and_wrong_password_take_the_same_time() {
    tokio::time::timeout(Duration::from_secs(600), async {
        let s = TestServer::start_with(
            Backend::Sqlite,
            Options::with_args(&[
                "--argon2-memory-kib",
                "19456",
                "--argon2-iterations",
                "2",
                "--argon2-parallelism",
                "1",
                "--login-throttle",
                "false",
            ]),
        )
        .await;
        // The known user's hash must carry the production parameters too (seed_user hashes cheaply),
        // so the account is created through the API.
        let admin = s.admin_token().await;
        s.create_user(&admin, "tina", "tina-password-1", &[]).await;
        let mut client = s.auth_client();
        let mut attempt = async |user: &str| {
            let started = Instant::now();
            let st = client
                .login(auth_proto::v1::LoginRequest {
                    username: user.into(),
                    password: "not-the-password-1".into(),
                })
                .await
                .expect_err("must fail");
            let took = started.elapsed();
            assert_eq!(
                (st.code(), st.message()),
                (Code::Unauthenticated, "invalid credentials")
            );
            took
        };
        // Warm-up (connections, caches, the dummy hash).
        for _ in 0..5 {
            attempt("tina").await;
            attempt("nobody-at-all").await;
        }
        let (mut unknown, mut wrong) = (Vec::new(), Vec::new());
        for i in 0..TRIALS {
            // Interleaved, alternating which goes first, so drift hits both alike.
            if i % 2 == 0 {
                unknown.push(attempt(&format!("nobody-{i}")).await);
                wrong.push(attempt("tina").await);
            } else {
                wrong.push(attempt("tina").await);
                unknown.push(attempt(&format!("nobody-{i}")).await);
            }
        }
        let (mu, mw) = (median(&mut unknown), median(&mut wrong));
        let diff = mu.as_secs_f64() - mw.as_secs_f64();
        println!(
            "L02 over {TRIALS} interleaved trials: median unknown user {:.2} ms, median wrong password \
             {:.2} ms, difference {:+.2} ms ({:+.1}% of one login)",
            mu.as_secs_f64() * 1e3,
            mw.as_secs_f64() * 1e3,
            diff * 1e3,
            100.0 * diff / mw.as_secs_f64()
        );
        assert!(
            diff.abs() < 0.25 * mw.as_secs_f64(),
            "unknown users answer measurably faster or slower: {diff:+.4} s vs {:.4} s",
            mw.as_secs_f64()
        );
        s.shutdown().await;
    })
    .await
    .expect("timing test bounded");
}
