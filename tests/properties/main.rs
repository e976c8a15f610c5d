//! Property tests: the MST is a function of its key set, diffs always invert,
//! and no decoder panics on any input. Case counts are bounded so the suite
//! stays fast on a 2-core CI machine.

mod decoders;
mod mst;
