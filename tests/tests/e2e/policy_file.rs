//! One policy language (issue 10): the shipped `deploy/extauthz-policy.toml`, loaded with
//! `Policy::load` by an in-process `auth_interceptor` layer in front of the demo greeter, decides the
//! same table of (method, caller) cases as the auth server's Envoy ext_authz does with that file
//! (`extauthz::the_shipped_policy_decides_the_table`); and likewise for the rules naming service
//! accounts ([`CLIENTS_POLICY`], `extauthz::a_clients_policy_decides_its_table`).

use crate::support::*;
use auth_interceptor::Policy;

both_backends!(
    the_layer_decides_the_table_from_the_same_file,
    the_layer_decides_the_client_rules_table,
);

async fn the_layer_decides_the_table_from_the_same_file(backend: Backend) {
    let s = TestServer::start(backend).await;
    let callers = Callers::log_in(&s).await;
    let policy = Policy::load(POLICY_FILE).expect("the shipped policy loads");
    policy
        .check_services(&["demo.v1.GreeterService"])
        .expect("it names only the greeter (and presets)");
    let greeter = GreeterServer::start_enforcing(&s, policy).await;
    assert_layer_decides(&greeter, &callers, CASES).await;
    greeter.shutdown().await;
    s.shutdown().await;
}

async fn the_layer_decides_the_client_rules_table(backend: Backend) {
    let s = TestServer::start(backend).await;
    let callers = Callers::log_in(&s).await;
    let policy = Policy::from_toml(CLIENTS_POLICY).expect("the clients policy parses");
    let greeter = GreeterServer::start_enforcing(&s, policy).await;
    assert_layer_decides(&greeter, &callers, CLIENT_CASES).await;
    greeter.shutdown().await;
    s.shutdown().await;
}
