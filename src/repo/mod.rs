//! The repository: Merkle Search Tree, signed commits, diffs carrying the proof
//! nodes that inversion needs, and verification of firehose commits.

pub mod builder;
pub mod commit;
pub mod diff;
pub mod invert;
pub mod mst;
pub mod verify;
