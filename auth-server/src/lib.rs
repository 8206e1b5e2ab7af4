//! The auth server: a tonic `AuthService` and `AdminService` over PostgreSQL or SQLite.

pub mod store;
