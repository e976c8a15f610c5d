//! The table's schema: what a file in `tests/relay/conformance/` holds.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;

/// One file of the table.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Table {
    #[allow(dead_code)] // read by people: what the file covers
    pub description: String,
    pub cases: Vec<Case>,
}

/// Accounts, then steps played in order on them.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Case {
    pub name: String,
    /// Account aliases and the DID document each has.
    #[serde(default)]
    pub accounts: BTreeMap<String, Document>,
    pub steps: Vec<Step>,
}

/// What the PLC directory serves for an account.
#[derive(Clone, Copy, Debug, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Document {
    /// Its key, and the test host as its PDS.
    #[default]
    Hosted,
    /// No document at all.
    Unregistered,
    /// The test host as its PDS, but no signing key.
    WithoutSigningKey,
    /// Its key, and another PDS.
    HostedElsewhere,
}

/// One input and the outcome the relay must reach.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Step {
    #[serde(rename = "do")]
    pub action: Action,
    pub expect: Expect,
    /// What `getRepoStatus` reports for the step's account afterwards.
    #[serde(default)]
    pub state: Option<ExpectState>,
}

/// An input for the upstream host, or an operator action.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Action {
    /// A new signed post, or a mutation of one.
    Commit {
        account: String,
        #[serde(default)]
        mutation: Option<Mutation>,
    },
    /// A new post committed in the account's repo but not sent.
    Advance {
        account: String,
    },
    /// The account's last sent commit, again.
    Replay {
        account: String,
    },
    /// A `#sync` of the account's current head.
    Sync {
        account: String,
    },
    Identity {
        account: String,
    },
    /// An upstream `#account`.
    AccountStatus {
        account: String,
        active: bool,
        #[serde(default)]
        status: Option<String>,
    },
    Info {
        name: String,
    },
    /// A frame of a type the protocol does not (yet) define: `#name`.
    UnknownType {
        name: String,
    },
    /// A `#commit` header and seq with a body that is not a `#commit`.
    GarbageCommit,
    /// The operator takes the account down.
    Takedown {
        account: String,
    },
    /// The operator sets the host's account limit to its current count
    /// (restored when the case ends).
    FillHost,
}

/// How a validly signed commit is spoiled.
#[derive(Clone, Copy, Debug, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mutation {
    /// Signed by a key the DID document does not name.
    ForeignKey,
    /// `prevData` left out.
    NoPrevData,
    /// `blocks` over the 2,000,000-byte limit.
    OversizeBlocks,
    /// A post whose record is over the 1,000,000-byte limit (the commit
    /// itself is valid and signed).
    OversizeRecord,
    /// `blocks` that are not a CAR file.
    BlocksNotCar,
    /// The commit block re-signed with a `rev` that is not a TID.
    CommitRevNotTid,
    /// The frame's `rev` a microsecond ahead of the signed commit's.
    FrameRevAhead,
    /// Signed at a rev a day in the future.
    RevInFuture,
    /// The deprecated `tooBig` flag set.
    TooBigFlag,
    /// A create op that carries `prev`.
    CreateWithPrev,
    /// The created record's block left out of the CAR.
    RecordBlockMissing,
    /// The new MST root left out of the CAR, so the diff cannot be inverted.
    MstRootMissing,
    /// `prevData` naming the new root instead of the previous one.
    PrevDataWrong,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Expect {
    /// Sequenced and sent to subscribers.
    Forwarded,
    /// Dropped, counted under this reason label.
    Dropped(String),
    /// Ignored, counted under this reason label.
    Ignored(String),
    /// Read and counted by the crawler, never dispatched.
    Consumed,
    /// An operator action that sends nothing.
    Applied,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExpectState {
    /// Whether the relay knows the account at all.
    #[serde(default = "yes")]
    pub found: bool,
    #[serde(default)]
    pub active: Option<bool>,
    #[serde(default)]
    pub status: Option<String>,
    /// The rev is the account's last forwarded commit's.
    #[serde(default)]
    pub rev_is_last_forwarded: bool,
}

pub fn yes() -> bool {
    true
}

/// Every table in `tests/relay/conformance/`, by file name.
pub fn tables() -> Vec<(String, Table)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/relay/conformance");
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    paths.sort();
    assert!(!paths.is_empty(), "no tables in {}", dir.display());
    paths
        .into_iter()
        .map(|p| {
            let text = std::fs::read_to_string(&p).unwrap();
            let table =
                serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            (p.file_name().unwrap().to_string_lossy().into_owned(), table)
        })
        .collect()
}
