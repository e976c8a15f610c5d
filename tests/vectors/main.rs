//! Every official vector in `../shared/vectors/` run against our implementation.
//! One test binary (one link step) with a module per vector family.

mod commit_proof;
mod common;
mod crypto;
mod data_model;
mod firehose_commits;
mod frames;
mod mst;
mod syntax;
