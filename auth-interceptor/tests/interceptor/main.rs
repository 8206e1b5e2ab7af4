//! The interceptor's integration and property tests as one test binary (one link instead of one per
//! file), a module per area: the server layer, key lifecycle and the client side on real sockets
//! against the small auth service of `support`, and property tests of token verification and of
//! metadata extraction (`proptest_*`; run longer with `PROPTEST_CASES=100000 cargo test -p
//! auth-interceptor --test interceptor proptest_`).

mod support;

mod client;
mod fake_revocations;
mod keys;
mod layer;
mod limits;
mod proptest_extract;
mod proptest_verify;
mod revocation;
mod service_source;
