//! One policy language (issue 10): the shipped `deploy/extauthz-policy.toml`, loaded with
//! `Policy::load` by an in-process `auth_interceptor` layer in front of the demo greeter, decides the
//! same table of (method, caller) cases as the auth server's Envoy ext_authz does with that file
//! (`extauthz::the_shipped_policy_decides_the_table`).

use crate::support::*;
use auth_interceptor::Policy;

both_backends!(the_layer_decides_the_table_from_the_same_file);

async fn the_layer_decides_the_table_from_the_same_file(backend: Backend) {
    let s = TestServer::start(backend).await;
    let callers = Callers::log_in(&s).await;
    let policy = Policy::load(POLICY_FILE).expect("the shipped policy loads");
    policy
        .check_services(&["demo.v1.GreeterService"])
        .expect("it names only the greeter (and presets)");
    let greeter = GreeterServer::start_enforcing(&s, policy).await;
    for (path, caller, expected) in CASES {
        let auth = callers.authorization(*caller);
        let result = raw_unary(greeter.channel(), path, Vec::new(), |m| {
            if let Some(a) = &auth {
                m.insert("authorization", a.parse().expect("ascii"));
            }
        })
        .await;
        let code = result.err().map_or(tonic::Code::Ok, |status| status.code());
        assert_eq!(
            as_decision(code),
            *expected,
            "{path} as {caller:?}: the layer answered {code:?}"
        );
    }
    greeter.shutdown().await;
    s.shutdown().await;
}
