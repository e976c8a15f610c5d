//! Every official vector in `../shared/vectors/` run against our implementation.
//! One test binary (one link step) with a module per vector family.

mod common;
mod crypto;
mod syntax;
