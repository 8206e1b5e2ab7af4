//! The auth server: a tonic `AuthService` and `AdminService` over PostgreSQL or SQLite.
//!
//! [`server::serve`] runs the whole server on a listener; `main.rs` only parses the command line.

pub(crate) mod audit;
mod availability;
pub mod cli;
pub mod clock;
pub(crate) mod codec_errors;
pub mod config;
pub(crate) mod error;
pub(crate) mod extauthz;
mod housekeeping;
pub mod http;
pub mod input;
pub mod keys;
pub(crate) mod labels;
pub mod password;
pub(crate) mod policy;
pub(crate) mod revocation;
pub mod server;
pub(crate) mod service;
mod shutdown;
pub(crate) mod startup;
pub(crate) mod state;
pub mod store;
pub mod telemetry;
pub(crate) mod throttle;
pub mod token;
pub mod username;
