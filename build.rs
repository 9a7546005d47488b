//! Compiles the .proto files with protox (pure Rust), so that the build
//! needs no system `protoc`, and writes the descriptor set that server
//! reflection serves.

use std::{env, fs, path::PathBuf};

const PROTOS: &[&str] = &[
    "proto/complianceguard/v1/guard.proto",
    "proto/complianceguard/journal/v1/journal.proto",
];
const INCLUDES: &[&str] = &["proto"];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // compile_fds emits no rerun-if-changed of its own.
    println!("cargo:rerun-if-changed=proto");
    let fds = protox::compile(PROTOS, INCLUDES)?;
    let out_dir = PathBuf::from(env::var("OUT_DIR")?);
    fs::write(
        out_dir.join("compliance_descriptor.bin"),
        protox::prost::Message::encode_to_vec(&fds),
    )?;
    tonic_prost_build::configure()
        // Malformed protobuf (a string that is not UTF-8, a wrong wire
        // type) is the caller's error: INVALID_ARGUMENT, not INTERNAL.
        .codec_path("crate::api::codec::ProtoCodec")
        .build_client(true)
        .build_server(true)
        .compile_fds(fds)?;
    Ok(())
}
