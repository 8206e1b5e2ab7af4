//! Compiles `auth/v1/*.proto` and `demo/v1/*.proto` with the pure-Rust `protox` compiler (no system
//! `protoc`) and emits the tonic/prost code plus a file descriptor set for server reflection; also
//! compiles the descriptor set (no code: the types come from `envoy-types`) of Envoy's
//! `envoy.service.auth.v3` API vendored in `third_party/`, for reflection of the ext_authz service.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let files = [
        "auth/v1/auth.proto",
        "auth/v1/admin.proto",
        "auth/v1/service_accounts.proto",
        "demo/v1/greeter.proto",
    ];
    for f in &files {
        println!("cargo:rerun-if-changed={f}");
    }
    println!("cargo:rerun-if-changed=third_party");
    let fds = protox::compile(files, ["."])?;
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(
        out.join("descriptor.bin"),
        prost::Message::encode_to_vec(&fds),
    )?;
    let envoy = protox::Compiler::new(["third_party"])?
        .include_imports(true)
        .include_source_info(false)
        .open_file("envoy/service/auth/v3/external_auth.proto")?
        .file_descriptor_set();
    std::fs::write(
        out.join("envoy_auth_v3.bin"),
        prost::Message::encode_to_vec(&envoy),
    )?;
    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        .compile_fds(fds)?;
    Ok(())
}
