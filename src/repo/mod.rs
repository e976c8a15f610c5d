//! The repository: Merkle Search Tree, signed commits, diffs carrying the proof
//! nodes that inversion needs, and verification of firehose commits.
