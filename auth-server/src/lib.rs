//! The auth server: a tonic `AuthService` and `AdminService` over PostgreSQL or SQLite.
//!
//! [`server::serve`] runs the whole server on a listener; `main.rs` only parses the command line.

pub mod audit;
pub mod cli;
pub mod clock;
pub mod codec_errors;
pub mod config;
pub mod error;
mod housekeeping;
pub mod input;
pub mod keys;
pub mod password;
pub mod policy;
pub mod server;
pub mod service;
pub mod startup;
pub mod state;
pub mod store;
pub mod telemetry;
pub mod throttle;
pub mod token;
