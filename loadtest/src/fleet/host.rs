//! The fleet's synthetic PDS hosts: the library's emulated host
//! ([`atrelay::upstream_sim`]) answering as a live PDS does: a subscription
//! without a cursor starts at the live tail, one with a cursor replays from
//! it, and every frame's emit-time placeholder is stamped as it is written
//! (see `emit_time`).

pub use atrelay::upstream_sim::{HostFrame, SimHost as Host};
use atrelay::upstream_sim::{SimHostConfig, WithoutCursor};

/// Starts one host on `127.0.0.1`, port 0.
pub async fn start() -> std::io::Result<Host> {
    Host::start(SimHostConfig {
        without_cursor: WithoutCursor::Live,
        server_did: None,
        user_domains: vec![".fleet.test".to_owned()],
        version: "atrelay-loadtest".to_owned(),
    })
    .await
}
