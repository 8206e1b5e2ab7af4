//! Binary-level tests of `auth-server`: refused configuration, zero-config start, the operator
//! subcommands, and SIGTERM.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use auth_proto::v1::auth_service_client::AuthServiceClient;
use auth_proto::v1::{GetJwksRequest, LoginRequest};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

use crate::support::{auth_server_command, free_port};

/// [`auth_server_command`] logging at `info`.
fn cmd(dir: &Path) -> Command {
    let mut c = auth_server_command(dir);
    c.env("RUST_LOG", "info");
    c
}

/// Runs to completion with a time bound.
fn run(mut c: Command, stdin: Option<&str>) -> Output {
    c.stdout(Stdio::piped()).stderr(Stdio::piped());
    if stdin.is_some() {
        c.stdin(Stdio::piped());
    }
    let mut child = c.spawn().expect("spawn auth-server");
    if let Some(input) = stdin {
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(input.as_bytes())
            .expect("write stdin");
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if child.try_wait().expect("wait").is_some() {
            return child.wait_with_output().expect("output");
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("auth-server did not exit: {:?}", child.wait_with_output());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn master_key() -> String {
    auth_server::keys::master::MasterKey::generate_base64()
        .expect("key")
        .to_string()
}

#[test]
fn bad_configuration_exits_with_one_line_naming_the_setting() {
    let dir = tempfile::tempdir().expect("dir");
    let short_key = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, [9u8; 16]);
    let pg = "postgres://postgres@127.0.0.1:5432/postgres";
    // A policy file with a malformed rule on its third line.
    let policy = dir.path().join("extauthz-policy.toml");
    std::fs::write(
        &policy,
        "presets = [\"health\"]\n[methods]\n\"demo.v1.GreeterService\" = \"public\"\n",
    )
    .expect("write policy");
    let policy = policy.display().to_string();
    let policy_error = format!(
        "AUTH_EXTAUTHZ_POLICY: {policy} line 3: invalid method pattern \"demo.v1.GreeterService\""
    );
    let cases: Vec<(Vec<(&str, &str)>, &str)> = vec![
        (vec![("AUTH_DATABASE_URL", pg)], "AUTH_MASTER_KEY: "),
        (
            vec![("AUTH_DATABASE_URL", pg), ("AUTH_MASTER_KEY", &short_key)],
            "AUTH_MASTER_KEY: ",
        ),
        (
            vec![
                ("AUTH_SIGNING_ALG", "HS256"),
                ("AUTH_HS256_SECRET", "short-secret"),
            ],
            "AUTH_HS256_SECRET: ",
        ),
        (
            vec![("AUTH_ACCESS_TOKEN_TTL", "5")],
            "AUTH_ACCESS_TOKEN_TTL: ",
        ),
        (
            vec![("AUTH_GRPC_ADDR", "127.0.0.1:0"), ("AUTH_LEEWAY", "100000")],
            "AUTH_LEEWAY: ",
        ),
        // Values the command line cannot even parse: named by variable and flag, on one line.
        (
            vec![("AUTH_SIGNING_ALG", "hs256")],
            "AUTH_SIGNING_ALG (--signing-alg): invalid value 'hs256'",
        ),
        (
            vec![("AUTH_ACCESS_TOKEN_TTL", "ten")],
            "AUTH_ACCESS_TOKEN_TTL (--access-token-ttl): invalid value 'ten'",
        ),
        (
            vec![("AUTH_LOGIN_THROTTLE", "yes")],
            "AUTH_LOGIN_THROTTLE (--login-throttle): invalid value 'yes'",
        ),
        (
            vec![("AUTH_DATA_DIR", "/proc/no-such-dir/data")],
            "AUTH_DATA_DIR: cannot create /proc/no-such-dir/data",
        ),
        (vec![("AUTH_EXTAUTHZ_POLICY", &policy)], &policy_error),
    ];
    for (env, setting) in cases {
        let mut c = cmd(dir.path());
        c.envs(env.iter().copied());
        let out = run(c, None);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{env:?} accepted");
        let lines: Vec<&str> = stderr.lines().collect();
        assert_eq!(lines.len(), 1, "{env:?}: stderr is not one line: {stderr}");
        assert!(lines[0].contains(setting), "{env:?}: {stderr}");
        assert!(
            !stderr.contains('\x1b'),
            "no ANSI colour off a terminal: {stderr:?}"
        );
        assert!(
            !stderr.contains(&short_key) && !stderr.contains("short-secret"),
            "{stderr}"
        );
    }
    // Refused configuration never created the zero-config files.
    assert!(!dir.path().join("data").exists());
}

#[test]
fn unreachable_database_fails_with_one_error_line() {
    let dir = tempfile::tempdir().expect("dir");
    let mut c = cmd(dir.path());
    c.env(
        "AUTH_DATABASE_URL",
        "postgres://postgres:hunter2-secret@127.0.0.1:1/auth",
    )
    .env("AUTH_MASTER_KEY", master_key())
    .env("AUTH_GRPC_ADDR", "127.0.0.1:0");
    let out = run(c, None);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !stderr.contains("hunter2-secret"),
        "password leaked: {stderr}"
    );
    let errors: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("auth-server: "))
        .collect();
    assert_eq!(errors.len(), 1, "{stderr}");
    assert!(errors[0].contains("database"), "{stderr}");
}

#[test]
fn weak_passwords_are_refused_by_user_create_and_the_bootstrap_admin() {
    let dir = tempfile::tempdir().expect("dir");
    let fast_argon = [
        ("AUTH_ARGON2_MEMORY_KIB", "8192"),
        ("AUTH_ARGON2_ITERATIONS", "1"),
    ];
    let too_easy = "password is too easy to guess";
    let one_error_line = |out: &Output| {
        let stderr = String::from_utf8_lossy(&out.stderr).to_string();
        let lines: Vec<&str> = stderr
            .lines()
            .filter(|l| l.starts_with("auth-server: "))
            .collect();
        assert_eq!(lines.len(), 1, "{stderr}");
        lines[0].to_owned()
    };
    // user create: a breached password and the username itself, refused; no user stored.
    for (pw, why) in [
        ("qwerty123", too_easy),
        ("iloveyou2", too_easy),
        ("Henrietta99", "password must not be the username"),
    ] {
        let mut c = cmd(dir.path());
        c.args(["user", "create", "henrietta99", "--password-stdin"])
            .envs(fast_argon);
        let out = run(c, Some(&format!("{pw}\n")));
        assert!(!out.status.success(), "{pw} accepted");
        let line = one_error_line(&out);
        assert!(line.contains(why), "{pw}: {line}");
        let all = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(!all.contains(pw), "echoed: {all}");
    }
    // The bootstrap admin: a startup error naming the variable, never the value.
    let mut c = cmd(dir.path());
    c.env("AUTH_GRPC_ADDR", "127.0.0.1:0")
        .env("AUTH_BOOTSTRAP_ADMIN_USERNAME", "root")
        .env("AUTH_BOOTSTRAP_ADMIN_PASSWORD", "qwerty123")
        .envs(fast_argon);
    let out = run(c, None);
    assert!(!out.status.success(), "weak bootstrap password accepted");
    let line = one_error_line(&out);
    assert!(
        line.contains("AUTH_BOOTSTRAP_ADMIN_PASSWORD: ") && line.contains(too_easy),
        "{line}"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("qwerty123"), "echoed: {stderr}");
    // A strong one: user create succeeds.
    let mut c = cmd(dir.path());
    c.args(["user", "create", "henrietta99", "--password-stdin"])
        .envs(fast_argon);
    let out = run(c, Some("vivid-otter-lantern-42\n"));
    assert!(out.status.success(), "{out:?}");
}

/// Collects a child's stderr in the background.
fn capture_stderr(child: &mut Child) -> Arc<Mutex<String>> {
    let buf = Arc::new(Mutex::new(String::new()));
    let stderr = child.stderr.take().expect("stderr");
    let b = buf.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let mut g = b.lock().expect("lock");
            g.push_str(&line);
            g.push('\n');
        }
    });
    buf
}

#[cfg(unix)]
fn mode(p: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).expect("metadata").permissions().mode() & 0o777
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zero_config_operator_commands_and_sigterm() {
    let dir = tempfile::tempdir().expect("dir");
    let fast_argon = [
        ("AUTH_ARGON2_MEMORY_KIB", "8192"),
        ("AUTH_ARGON2_ITERATIONS", "1"),
    ];

    // migrate: creates the zero-config database privately.
    let mut c = cmd(dir.path());
    c.args(["migrate"]);
    let out = run(c, None);
    assert!(out.status.success(), "migrate: {out:?}");
    let data = dir.path().join("data");
    assert!(data.join("auth.db").exists());
    assert_eq!(mode(&data.join("auth.db")), 0o600, "auth.db mode");
    assert_eq!(mode(&data), 0o700, "data dir mode");

    // user create: the password comes from stdin, never the command line.
    let mut c = cmd(dir.path());
    c.args(["user", "create", "bob", "--role", "ops"]);
    let out = run(c, None);
    assert!(
        !out.status.success(),
        "user create without --password-stdin accepted"
    );
    let mut c = cmd(dir.path());
    c.args(["user", "create", "bob", "--role", "ops", "--password-stdin"])
        .envs(fast_argon);
    let out = run(c, Some("bob-password-1\n"));
    assert!(out.status.success(), "user create: {out:?}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("bob") && stdout.contains("ops"), "{stdout}");
    assert!(!String::from_utf8_lossy(&out.stderr).contains("bob-password-1"));
    // Creating a user touches no signing key (the command takes no key settings).
    assert!(!data.join("master.key").exists());
    // Duplicate (case-insensitive): refused.
    let mut c = cmd(dir.path());
    c.args(["user", "create", "BOB", "--password-stdin"])
        .envs(fast_argon);
    let out = run(c, Some("bob-password-2\n"));
    assert!(!out.status.success(), "duplicate user accepted");

    // keys rotate right after the keys were made: the next key has not been published for
    // AUTH_KEY_PREPUBLISH (1 h) yet, so it is refused unless forced.
    let mut c = cmd(dir.path());
    c.args(["keys", "rotate"]);
    let out = run(c, None);
    assert!(
        !out.status.success(),
        "rotation before pre-publication: {out:?}"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("AUTH_KEY_PREPUBLISH"), "{stderr}");
    // keys rotate --force: prints the new current key.
    let mut c = cmd(dir.path());
    c.args(["keys", "rotate", "--force"]);
    let out = run(c, None);
    assert!(out.status.success(), "keys rotate: {out:?}");
    assert!(data.join("master.key").exists());
    assert_eq!(mode(&data.join("master.key")), 0o600, "master.key mode");
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let current = stdout
        .lines()
        .find_map(|l| l.strip_prefix("current "))
        .expect("current kid printed")
        .trim()
        .to_owned();

    // The operator commands are in the audit trail, not only in the logs.
    let db = sqlx::SqlitePool::connect(&format!("sqlite://{}", data.join("auth.db").display()))
        .await
        .expect("audit db");
    let rows: Vec<(String, String)> =
        sqlx::query_as("SELECT event, actor FROM audit_events WHERE actor = 'cli' ORDER BY id")
            .fetch_all(&db)
            .await
            .expect("audit rows");
    assert_eq!(
        rows,
        vec![
            ("user.created".to_owned(), "cli".to_owned()),
            ("key.rotated".to_owned(), "cli".to_owned())
        ]
    );
    db.close().await;

    // serve (zero-config): bob logs in with a token signed by the rotated key.
    let port = free_port();
    let mut c = cmd(dir.path());
    c.env("AUTH_GRPC_ADDR", format!("127.0.0.1:{port}"))
        .envs(fast_argon)
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = c.spawn().expect("spawn serve");
    let log = capture_stderr(&mut child);
    let url = format!("http://127.0.0.1:{port}");
    let channel = tonic::transport::Endpoint::from_shared(url)
        .expect("endpoint")
        .connect_timeout(Duration::from_secs(2))
        .connect_lazy();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let r = tokio::time::timeout(
            Duration::from_secs(2),
            HealthClient::new(channel.clone()).check(HealthCheckRequest {
                service: String::new(),
            }),
        )
        .await;
        if let Ok(Ok(r)) = r
            && r.get_ref().status == ServingStatus::Serving as i32
        {
            break;
        }
        if let Some(status) = child.try_wait().expect("wait") {
            panic!("serve exited {status}: {}", log.lock().expect("lock"));
        }
        assert!(
            Instant::now() < deadline,
            "not serving: {}",
            log.lock().expect("lock")
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut auth = AuthServiceClient::new(channel.clone());
    let login = auth
        .login(LoginRequest {
            username: "Bob".into(),
            password: "bob-password-1".into(),
        })
        .await
        .expect("bob logs in")
        .into_inner();
    let header: serde_json::Value = serde_json::from_slice(
        &base64::Engine::decode(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
            login.access_token.split('.').next().expect("header"),
        )
        .expect("b64"),
    )
    .expect("json");
    assert_eq!(header["kid"], current.as_str());
    let jwks: serde_json::Value = serde_json::from_str(
        &auth
            .get_jwks(GetJwksRequest {})
            .await
            .expect("jwks")
            .into_inner()
            .jwks_json,
    )
    .expect("json");
    // Current and next: the forced rotation unpublished the retired key at once (it may be
    // compromised) and revoked its tokens.
    assert_eq!(jwks["keys"].as_array().expect("keys").len(), 2);

    // SIGTERM: the health watch reports NOT_SERVING and the process exits 0.
    let watch_channel = tonic::transport::Endpoint::from_shared(format!("http://127.0.0.1:{port}"))
        .expect("endpoint")
        .connect()
        .await
        .expect("connect");
    let mut watch = HealthClient::new(watch_channel)
        .watch(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .expect("watch")
        .into_inner();
    let first = watch.message().await.expect("stream").expect("status");
    assert_eq!(first.status, ServingStatus::Serving as i32);
    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(killed.success());
    let next = tokio::time::timeout(Duration::from_secs(10), watch.message())
        .await
        .expect("status after SIGTERM")
        .expect("stream")
        .expect("status");
    assert_eq!(next.status, ServingStatus::NotServing as i32);
    // The watch stays open, as gRPC client-side health checking keeps it: the server ends it
    // (UNAVAILABLE) instead of waiting the 20 s grace period for it.
    let ended = tokio::time::timeout(Duration::from_secs(5), watch.message())
        .await
        .expect("the server ends the watch stream");
    assert_eq!(
        ended.expect_err("ended with a status").code(),
        tonic::Code::Unavailable
    );
    let sigterm_at = Instant::now();
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("serve did not exit after SIGTERM");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(
        sigterm_at.elapsed() < Duration::from_secs(5),
        "exited {:?} after the watch ended, not after the grace period",
        sigterm_at.elapsed()
    );
    drop((watch, auth, channel));
    assert!(
        status.success(),
        "exit status {status}: {}",
        log.lock().expect("lock")
    );
    let log = log.lock().expect("lock").clone();
    assert!(log.contains("auth-server listening"), "{log}");
    for secret in ["bob-password-1", &login.refresh_token, &login.access_token] {
        assert!(!log.contains(secret), "log leaks a secret");
    }
}
