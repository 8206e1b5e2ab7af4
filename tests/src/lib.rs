//! Shared support of the end-to-end tests: starts a real `auth-server` in-process on a fresh PostgreSQL
//! database or SQLite file, with a hand-driven clock, and offers clients, helpers and a token forger
//! holding the server's signing key (the catalogue's `S(h,p)`).
//!
//! Not a library: the `e2e-tests` package has no `[lib]` (`autolib = false`), and this file is
//! compiled into each test binary as its module `support` (`#[path = "../../src/lib.rs"] mod
//! support;` in `tests/tests/e2e/main.rs`, `#[path = "../src/lib.rs"]` in
//! `tests/tests/security_logs.rs`). All of the package's dependencies are dev-dependencies, so
//! `auth-interceptor`'s `testing` feature (the token forging helpers) is only enabled when tests are
//! built, never by feature unification in a normal `cargo build --workspace`.
//!
//! Scenarios live in `tests/tests/e2e/` (one test binary, a module per area) and
//! `tests/tests/security_logs.rs`; [`both_backends!`] turns one `async fn(Backend)` into a test
//! per storage backend. Everything is re-exported here, so a scenario file needs only
//! `use crate::support::*;`.
//!
//! - [`harness`]: starting and stopping a [`TestServer`], [`Options`], flag parsing, time bounds;
//! - [`database`]: the fresh database of each server and row access to it ([`Db`]);
//! - [`clients`]: gRPC clients and the common calls;
//! - [`tokens`]: the server's signing key and the toolkit to sign and take apart any JWT;
//! - [`forge`]: the catalogue's forged-token and forged-claim cases, built with [`tokens`];
//! - [`assertions`]: statuses, messages, `Validate` refusals, public JWKS, still healthy;
//! - [`greeter`]: a demo service behind the interceptor layer, trusting a [`TestServer`]'s keys;
//! - [`side_port`]: HTTP/1.1 requests to a [`TestServer`]'s side port, well-formed and raw;
//! - [`exposition`]: a strict parser of the `/metrics` text formats.
//! - [`policy_cases`]: the shipped policy file's decision table, shared by the ext_authz and layer
//!   scenarios, and the Envoy `Check` client.
//! - [`process`]: real `auth-server` processes on one PostgreSQL database, killable with SIGKILL.
//! - [`service_accounts`]: creating service accounts, their tokens (secret or signed assertion) and
//!   `Validate` with an audience.

// Test support code: a failed expectation is a failed test, and panicking with a message is the point.
// Each test binary uses only part of it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, dead_code)]

pub mod assertions;
pub mod clients;
pub mod cluster;
pub mod database;
pub mod exposition;
pub mod forge;
pub mod greeter;
pub mod harness;
pub mod policy_cases;
pub mod process;
pub mod service_accounts;
pub mod side_port;
pub mod tokens;

// Re-exported for the scenarios; a test binary that uses none of a module's items would call these
// imports unused.
#[allow(unused_imports)]
pub use {
    assertions::*, clients::*, cluster::PgCluster, database::*, exposition::*, forge::*,
    greeter::*, harness::*, policy_cases::*, process::*, service_accounts::*, side_port::*,
    tokens::*,
};
