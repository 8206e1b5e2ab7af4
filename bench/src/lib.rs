//! Benchmark harness of the workspace: a load generator (`loadgen`) for the auth server's RPCs and for
//! a demo service with and without the `auth-interceptor` layer, plus the pieces it is made of.
//!
//! See `BENCHMARKS.md` at the repository root for the figures and `bench/run.sh` for the one command
//! that reproduces them.

pub mod fanout;
pub mod greeter;
pub mod http1;
pub mod load;
pub mod procs;
pub mod report;
pub mod tokens;
