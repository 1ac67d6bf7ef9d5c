//! Generates the raftpb types from `proto/raftpb.proto` with prost. The proto file is parsed by
//! protox, a pure-Rust compiler, so no `protoc` binary is needed on the machine.

fn main() {
    println!("cargo:rerun-if-changed=proto/raftpb.proto");
    let fds = protox::compile(["raftpb.proto"], ["proto"]).expect("parse proto/raftpb.proto");
    let mut config = prost_build::Config::new();
    // Payload fields (entry data, message context, snapshot data, conf-change context) are
    // `bytes::Bytes`, so cloning an entry or a message never copies its payload.
    config.bytes(["."]);
    config
        .compile_fds(fds)
        .expect("generate Rust types for raftpb");
}
