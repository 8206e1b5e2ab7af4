//! The end-to-end suite as one test binary (one link of the server, tonic and sqlx instead of one per
//! file): each module is one area, its tests named `<module>::<scenario>[::postgres|::sqlite]`.
//!
//! `security_logs` is not here: it installs a process-global TRACE subscriber, so it is a test binary
//! of its own (`tests/tests/security_logs.rs`, which says why).
//!
//! The shared support (`tests/src/`) is compiled in as the module `support`: scenario modules start
//! with `use crate::support::*;`.

#[path = "../../src/lib.rs"]
mod support;

mod admin;
mod cancelled_logins;
mod current_state;
mod database_lost;
mod extauthz;
mod held_open;
mod hs256_downstream;
mod key_rotation;
mod keys;
mod login;
mod metrics;
mod passwords;
mod policy_file;
mod probes;
mod refresh;
mod revocation_watch;
mod revocations;
mod security_login;
mod security_tokens;
mod server;
mod service_account_admin;
mod service_account_cli;
mod service_accounts;
mod service_to_service;
mod side_port;
mod timing;
mod transport_limits;
mod usernames;
mod validate;
