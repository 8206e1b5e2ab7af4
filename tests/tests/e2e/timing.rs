//! L02, statistically: unknown user versus wrong password, 200 interleaved trials each, on a server with
//! the production argon2 parameters (m=19456 KiB, t=2, p=1) and throttling off. An unknown user is
//! verified against a dummy hash, so the median difference must be a small fraction of one hash.
//!
//! And after a cost change (issue 14, finding 4): a user created while the server ran with the
//! cheapest parameters (m=8192 KiB, t=1) and not yet rehashed — the server was restarted on the same
//! database with the production ones — must not answer a wrong password faster than an unknown user
//! (without padding it takes about a fifth of the time).
//!
//! Slow (hundreds of production hashes): `cargo test -p e2e-tests --test e2e -- --ignored timing::`.

use std::time::{Duration, Instant};

use crate::support::*;
use tonic::Code;

const TRIALS: usize = 200;

/// The PHC prefix of a hash made with the harness's default (cheapest) parameters.
const CHEAP_PHC: &str = "$argon2id$v=19$m=8192,t=1,p=1$%";

fn median(v: &mut [Duration]) -> Duration {
    v.sort();
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "slow: run with --ignored (CI does)"]
async fn unknown_user_and_wrong_password_take_the_same_time() {
    tokio::time::timeout(Duration::from_secs(600), async {
        // First the cheapest parameters: olga's hash is made with them.
        let no_throttle = ["--login-throttle", "false"];
        let mut s = TestServer::start_with(Backend::Sqlite, Options::with_args(&no_throttle)).await;
        let admin = s.admin_token().await;
        s.create_user(&admin, "olga", "olga-password-1", &[]).await;
        // Then the cost is raised to the production parameters on the same database.
        s.restart_with(Options::with_args(&[
            "--argon2-memory-kib",
            "19456",
            "--argon2-iterations",
            "2",
            "--argon2-parallelism",
            "1",
            "--login-throttle",
            "false",
        ]))
        .await;
        // The known user's hash must carry the production parameters too (seed_user hashes cheaply),
        // so the account is created through the API.
        let admin = s.admin_token().await;
        s.create_user(&admin, "tina", "tina-password-1", &[]).await;
        let olga_is_cheap = format!(
            "SELECT COUNT(*) FROM users WHERE username_key = 'olga' AND password_hash LIKE '{CHEAP_PHC}'"
        );
        assert_eq!(s.db.scalar(&olga_is_cheap).await, 1, "olga keeps the old cost");
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
        // Warm-up (connections, caches, the dummy hash, the padding's recent durations).
        for _ in 0..5 {
            attempt("tina").await;
            attempt("olga").await;
            attempt("nobody-at-all").await;
        }
        let (mut unknown, mut wrong, mut old) = (Vec::new(), Vec::new(), Vec::new());
        for i in 0..TRIALS {
            // Interleaved, rotating which goes first, so drift hits all three alike.
            for k in 0..3 {
                match (i + k) % 3 {
                    0 => unknown.push(attempt(&format!("nobody-{i}")).await),
                    1 => wrong.push(attempt("tina").await),
                    _ => old.push(attempt("olga").await),
                }
            }
        }
        let (mu, mw, mo) = (median(&mut unknown), median(&mut wrong), median(&mut old));
        let diff = mu.as_secs_f64() - mw.as_secs_f64();
        let diff_old = mu.as_secs_f64() - mo.as_secs_f64();
        println!(
            "L02 over {TRIALS} interleaved trials: median unknown user {:.2} ms, median wrong password \
             {:.2} ms, difference {:+.2} ms ({:+.1}% of one login)",
            ms(mu),
            ms(mw),
            diff * 1e3,
            100.0 * diff / mw.as_secs_f64()
        );
        println!(
            "L02 after a cost change: median wrong password for a hash with the old, cheaper cost \
             {:.2} ms, unknown user {:.2} ms, difference {:+.2} ms ({:+.1}% of one login)",
            ms(mo),
            ms(mu),
            diff_old * 1e3,
            100.0 * diff_old / mw.as_secs_f64()
        );
        assert!(
            diff.abs() < 0.25 * mw.as_secs_f64(),
            "unknown users answer measurably faster or slower: {diff:+.4} s vs {:.4} s",
            mw.as_secs_f64()
        );
        assert!(
            diff_old.abs() < 0.25 * mw.as_secs_f64(),
            "a hash with the old cost answers measurably faster or slower than an unknown user: \
             {diff_old:+.4} s vs {:.4} s",
            mw.as_secs_f64()
        );
        // Wrong passwords never rehash: olga was on the old cost throughout.
        assert_eq!(s.db.scalar(&olga_is_cheap).await, 1, "olga still on the old cost");
        s.shutdown().await;
    })
    .await
    .expect("timing test bounded");
}
