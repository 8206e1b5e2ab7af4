//! Tokens: signed JWT access tokens (of users and of service accounts) and opaque refresh tokens.

pub mod access;
pub mod refresh;
pub mod service;
