//! `auth-server service-account create` (issue 11): the operator command creates an account on the
//! server's database with the server's key material, prints its secret once, and is audited; the
//! running server accepts that secret.

use crate::support::*;

both_backends!(the_cli_creates_an_account_whose_secret_works);

const ORDERS: &str = "orders.v1.OrderService";

async fn the_cli_creates_an_account_whose_secret_works(backend: Backend) {
    use clap::Parser;
    let s = TestServer::start(backend).await;
    let master = s.master_key.clone().expect("master key");
    let cli = auth_server::cli::Cli::try_parse_from([
        "auth-server",
        "service-account",
        "create",
        "cli-bot",
        "--role",
        "orders:read",
        "--audience",
        ORDERS,
        "--database-url",
        &s.db_url,
        "--master-key",
        &master,
    ])
    .expect("the command parses");
    let Some(auth_server::cli::Command::ServiceAccount {
        command: auth_server::cli::ServiceAccountCommand::Create(cmd),
    }) = cli.command
    else {
        panic!("not the service-account command");
    };
    let created = auth_server::cli::create_service_account(cmd)
        .await
        .expect("created");
    let secret = secrecy::ExposeSecret::expose_secret(&created.client_secret).to_owned();
    assert!(secret.starts_with("svcsec_"));
    // The running server (same database, same master key) accepts the secret.
    let token = s
        .issue_service_token("cli-bot", &secret, ORDERS)
        .await
        .expect("the CLI's secret works")
        .access_token;
    assert_eq!(claims_of(&token)["sub"], created.id.as_str());
    assert_eq!(
        claims_of(&token)["roles"],
        serde_json::json!(["orders:read"])
    );
    let events = s.audit_events().await;
    assert!(events.iter().any(|e| e.event == "service_account.created"
        && e.actor == "cli"
        && e.subject == created.id));
    // Without an audience the command is refused before anything is stored.
    assert!(
        auth_server::cli::Cli::try_parse_from(["auth-server", "service-account", "create", "x"])
            .is_err()
    );
}
