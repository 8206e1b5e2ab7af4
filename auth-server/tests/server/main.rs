//! Tests of the real `auth-server` binary as one test binary, a module per area: refused configuration,
//! zero-config start, the operator subcommands and SIGTERM (`binary`), and TLS (`tls`).

mod support;

mod binary;
mod tls;
