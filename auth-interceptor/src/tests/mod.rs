//! Unit tests of the verifier core against the catalogue's forgery (F) and claim (C) cases.

mod claims;
mod expiry;
mod forgery;
mod keys;
mod policy;
mod service_tokens;
