//! The verifier's conformance table, played through the real pipeline.
//!
//! Each file in `tests/relay/conformance/` lists cases in the habit of
//! indigo's relay scenario tests: accounts (with the DID document each has),
//! then steps, each an input for the upstream host and the outcome the relay
//! must reach: forwarded to subscribers, dropped with a reason, ignored with
//! a reason, consumed by the crawler, or an operator action applied; a step
//! may also name the account state `getRepoStatus` must then report.
//!
//! Inputs are real signed commits (real keys, real repos built with
//! `repo::builder`), or a named mutation of one: a mutation is built on a
//! fork of the account, so the account itself stays where the relay has it.
//! One runner plays every case against the `atrelay serve` binary (crawler →
//! verifier → sequencer → log), fed by the library's emulated PDS host and
//! the test PLC directory, all on 127.0.0.1 with ports from port 0. Outcomes
//! are read from the relay's own metrics (`atrelay_relay_events_dropped_total`
//! and `_ignored_total` by reason, all of which must match the table after
//! every step) and from a subscriber.
//!
//! The runner fails if a `DropReason` or `IgnoreReason` has no case, unless
//! it is named in [`UNREACHABLE`] with why: adding a reason forces a case.

mod mutation;
mod runner;
mod table;

use std::collections::BTreeSet;
use std::time::Duration;

use atrelay::relay::verifier::{DropReason, IgnoreReason};

use runner::Runner;
use table::{tables, Expect, Table};

/// Reasons no input from an upstream host can produce, with why.
const UNREACHABLE: &[(&str, &str)] = &[
    (
        "storage",
        "the verifier reads account state from the relay's own log; a failed \
         read cannot be caused from the wire",
    ),
    (
        "not_forwarded",
        "the crawler consumes #info and unknown types and ends the connection \
         on an error frame, before anything reaches the verifier (the table's \
         `consumed` cases cover those frames)",
    ),
];

/// Fails unless every reason is covered by a case or named unreachable, and
/// every label a case names is a reason.
fn check_coverage(tables: &[(String, Table)]) {
    let drops: BTreeSet<&str> = DropReason::ALL.iter().map(|r| r.as_str()).collect();
    let ignores: BTreeSet<&str> = IgnoreReason::ALL.iter().map(|r| r.as_str()).collect();
    let mut covered = BTreeSet::new();
    for (file, table) in tables {
        for case in &table.cases {
            for step in &case.steps {
                let (known, label) = match &step.expect {
                    Expect::Dropped(l) => (&drops, l.as_str()),
                    Expect::Ignored(l) => (&ignores, l.as_str()),
                    _ => continue,
                };
                assert!(
                    known.contains(label),
                    "{file}, case {:?}: {label:?} is not a reason of that kind (one of {known:?})",
                    case.name
                );
                covered.insert(label);
            }
        }
    }
    let unreachable: BTreeSet<&str> = UNREACHABLE.iter().map(|(r, _)| *r).collect();
    for reason in drops.iter().chain(&ignores) {
        match (covered.contains(reason), unreachable.contains(reason)) {
            (true, false) | (false, true) => {}
            (false, false) => panic!(
                "reason {reason:?} has no conformance case: add one to tests/relay/conformance/ \
                 (or, if no upstream input can produce it, name it in UNREACHABLE with why)"
            ),
            (true, true) => panic!("reason {reason:?} is covered, so it is not UNREACHABLE"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_verifier_outcome_matches_the_conformance_table() {
    let tables = tables();
    check_coverage(&tables);
    tokio::time::timeout(Duration::from_secs(300), async {
        let mut runner = Runner::start().await;
        for (file, table) in &tables {
            for case in &table.cases {
                runner.play(file, case).await;
            }
        }
        runner.finish().await;
    })
    .await
    .expect("the conformance table timed out");
}
