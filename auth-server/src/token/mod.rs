//! Tokens: signed JWT access tokens and opaque refresh tokens.

pub mod access;
pub mod refresh;
