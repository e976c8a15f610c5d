//! The protocol's bytes: strict DAG-CBOR, CIDs, CAR, event-stream frames, TIDs and
//! identifier syntax. Nothing here knows about relays, PDSes or storage.

pub mod base32;
pub mod car;
pub mod cbor;
pub mod cid;
pub mod frame;
pub mod json;
pub mod syntax;
pub mod tid;
