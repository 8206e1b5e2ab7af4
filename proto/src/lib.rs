//! Generated Rust types, clients and servers for the `auth.v1` gRPC contract (`proto/auth/v1`).
//!
//! The `.proto` files are the source of truth; this crate only compiles them (with `protox`, so no
//! system `protoc` is needed) and exposes the encoded descriptor set for gRPC server reflection.

#![allow(missing_docs, clippy::all)]

/// `auth.v1`: the authentication and administration services.
pub mod v1 {
    tonic::include_proto!("auth.v1");
}

/// `demo.v1`: a small greeter service for the interceptor's examples, tests and load generator.
pub mod demo {
    tonic::include_proto!("demo.v1");
}

/// Encoded `FileDescriptorSet` of `auth.v1` and `demo.v1` (with their imports), for `tonic-reflection`.
pub const FILE_DESCRIPTOR_SET: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/descriptor.bin"));

/// Encoded `FileDescriptorSet` of Envoy's `envoy.service.auth.v3` external authorization API (with its
/// imports), compiled from the files vendored in `proto/third_party/` — those the `envoy-types` crate's
/// types were generated from — for `tonic-reflection`. No code is generated from it.
pub const ENVOY_AUTH_V3_FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/envoy_auth_v3.bin"));
