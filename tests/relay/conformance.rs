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

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use atrelay::crypto::PrivateKey;
use atrelay::relay::verifier::{DropReason, IgnoreReason};
use atrelay::repo::builder::BuiltCommit;
use atrelay::repo::commit::Commit as SignedCommit;
use atrelay::wire::car::{Car, CarLimits, CarWriter};
use atrelay::wire::cid::Cid;
use atrelay::wire::frame::{Event, Info, Sync};
use atrelay::wire::tid::Tid;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::binary::{RelayProcess, Scrape};
use crate::harness::{garbage_commit, Subscriber, TestAccount, TIME};
use crate::pipeline::Net;

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

const PASSWORD: &str = "conformance table password";
const DROPPED: &str = "atrelay_relay_events_dropped_total";
const IGNORED: &str = "atrelay_relay_events_ignored_total";
const RECEIVED: &str = "atrelay_relay_events_received_total";
/// How long one step may take to reach its outcome.
const STEP_TIMEOUT: Duration = Duration::from_secs(15);

/// One file of the table.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Table {
    #[allow(dead_code)] // read by people: what the file covers
    description: String,
    cases: Vec<Case>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    name: String,
    /// Account aliases and the DID document each has.
    #[serde(default)]
    accounts: BTreeMap<String, Document>,
    steps: Vec<Step>,
}

/// What the PLC directory serves for an account.
#[derive(Clone, Copy, Debug, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Document {
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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Step {
    #[serde(rename = "do")]
    action: Action,
    expect: Expect,
    /// What `getRepoStatus` reports for the step's account afterwards.
    #[serde(default)]
    state: Option<ExpectState>,
}

/// An input for the upstream host, or an operator action.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
enum Action {
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
enum Mutation {
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
enum Expect {
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
struct ExpectState {
    /// Whether the relay knows the account at all.
    #[serde(default = "yes")]
    found: bool,
    #[serde(default)]
    active: Option<bool>,
    #[serde(default)]
    status: Option<String>,
    /// The rev is the account's last forwarded commit's.
    #[serde(default)]
    rev_is_last_forwarded: bool,
}

fn yes() -> bool {
    true
}

/// Every table in `tests/relay/conformance/`, by file name.
fn tables() -> Vec<(String, Table)> {
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

/// An account in a case, with what the relay has seen of it.
struct CaseAccount {
    account: TestAccount,
    /// The last commit sent to the relay.
    last_sent: Option<BuiltCommit>,
    /// The rev of the last commit the relay forwarded.
    last_forwarded: Option<String>,
}

/// The relay under test and what the table expects of its counters.
struct Runner {
    net: Net,
    relay: RelayProcess,
    sub: Subscriber,
    /// (family, reason) → the count the relay must report.
    expected: BTreeMap<(String, String), f64>,
    /// Frames the crawler counted as `#info`.
    infos: f64,
}

impl Runner {
    async fn start() -> Runner {
        let net = Net::start().await;
        let relay = RelayProcess::spawn(&net, true, &[("ATRELAY_ADMIN_PASSWORD", PASSWORD)]).await;
        let sub = Subscriber::connect(relay.addr, None).await;
        let scrape = relay.scrape().await;
        let mut runner = Runner {
            net,
            relay,
            sub,
            expected: BTreeMap::new(),
            infos: 0.0,
        };
        runner.expected = counts(&scrape);
        runner.infos = scrape.value(RECEIVED, &[("type", "info")]);
        runner
    }

    async fn play(&mut self, file: &str, case: &Case) {
        let mut accounts: BTreeMap<&str, CaseAccount> = BTreeMap::new();
        for (alias, document) in &case.accounts {
            accounts.insert(alias, self.account(*document));
        }
        let mut host_filled = false;
        for (i, step) in case.steps.iter().enumerate() {
            let at = format!("{file}, case {:?}, step {}", case.name, i + 1);
            host_filled |= matches!(step.action, Action::FillHost);
            self.step(&at, step, &mut accounts).await;
        }
        if host_filled {
            let hostname = self.net.pds.hostname();
            self.admin("/admin/hosts/limits", json!({ "hostname": hostname }))
                .await;
        }
    }

    /// A new account with `document` published for it.
    fn account(&self, document: Document) -> CaseAccount {
        let account = TestAccount::new();
        let plc = &self.net.plc;
        let (did, key) = (&account.did, &account.key);
        match document {
            Document::Hosted => plc.register(did, key, &self.net.pds.endpoint()),
            Document::Unregistered => {}
            Document::WithoutSigningKey => {
                let mut doc = atrelay::identity::account_document(
                    did,
                    &format!("{}.test", &did[8..16]),
                    &key.public_key(),
                    &self.net.pds.endpoint(),
                );
                doc.as_object_mut().unwrap().remove("verificationMethod");
                plc.register_document(did, doc);
            }
            Document::HostedElsewhere => plc.register(did, key, "https://elsewhere.example.com"),
        }
        CaseAccount {
            account,
            last_sent: None,
            last_forwarded: None,
        }
    }

    async fn step(&mut self, at: &str, step: &Step, accounts: &mut BTreeMap<&str, CaseAccount>) {
        // What a forwarded frame must be: (type, DID, commit CID).
        let (sent, did): (Sent, Option<String>) = match &step.action {
            Action::Commit { account, mutation } => {
                let a = account_mut(accounts, at, account);
                let built = match mutation {
                    None => {
                        let built = a.account.post("conformance");
                        self.net.pds.emit_commit(&built);
                        built
                    }
                    Some(m) => {
                        let built = build_mutated(&a.account, *m);
                        let seq = self.net.pds.next_seq();
                        let frame = mutate(&built, *m, &a.account.key, seq);
                        self.net.pds.emit_raw(seq, frame.into());
                        built
                    }
                };
                let commit = built.commit;
                let rev = built.rev.to_string();
                a.last_sent = Some(built);
                (Sent::Commit(commit, rev), Some(a.account.did.clone()))
            }
            Action::Advance { account } => {
                let a = account_mut(accounts, at, account);
                a.account.post("not sent");
                (Sent::Nothing, Some(a.account.did.clone()))
            }
            Action::Replay { account } => {
                let a = account_mut(accounts, at, account);
                let built = a
                    .last_sent
                    .as_ref()
                    .unwrap_or_else(|| panic!("{at}: nothing sent to replay"));
                self.net.pds.emit_commit(built);
                (
                    Sent::Commit(built.commit, built.rev.to_string()),
                    Some(a.account.did.clone()),
                )
            }
            Action::Sync { account } => {
                let a = account_mut(accounts, at, account);
                let head = &a.account.head;
                let commit = head.commit.expect("a #sync needs a commit");
                let mut car = CarWriter::new(&[commit]);
                car.push(&commit, &a.account.store[&commit]);
                let blocks = car.finish();
                let rev = head.rev.expect("a committed head has a rev").to_string();
                self.net.pds.emit(Event::Sync(Sync {
                    seq: 0,
                    did: &a.account.did,
                    blocks: &blocks,
                    rev: &rev,
                    time: TIME,
                }));
                (Sent::Sync(rev), Some(a.account.did.clone()))
            }
            Action::Identity { account } => {
                let a = account_mut(accounts, at, account);
                self.net.pds.emit_identity(&a.account.did);
                (Sent::Identity, Some(a.account.did.clone()))
            }
            Action::AccountStatus {
                account,
                active,
                status,
            } => {
                let a = account_mut(accounts, at, account);
                self.net
                    .pds
                    .emit_account(&a.account.did, *active, status.as_deref());
                (
                    Sent::Account(*active, status.clone()),
                    Some(a.account.did.clone()),
                )
            }
            Action::Info { name } => {
                self.net.pds.emit(Event::Info(Info {
                    name,
                    message: Some("conformance"),
                }));
                (Sent::Nothing, None)
            }
            Action::GarbageCommit => {
                let seq = self.net.pds.next_seq();
                self.net.pds.emit_raw(seq, garbage_commit(seq));
                (Sent::Nothing, None)
            }
            Action::Takedown { account } => {
                let did = account_mut(accounts, at, account).account.did.clone();
                self.admin("/admin/accounts/takedown", json!({ "did": did }))
                    .await;
                (
                    Sent::Account(false, Some("takendown".to_owned())),
                    Some(did),
                )
            }
            Action::FillHost => {
                let hostname = self.net.pds.hostname();
                let hosts = self.admin_get("/admin/hosts").await;
                let count = hosts["hosts"]
                    .as_array()
                    .and_then(|hs| hs.iter().find(|h| h["hostname"] == hostname.as_str()))
                    .and_then(|h| h["accountCount"].as_u64())
                    .unwrap_or_else(|| panic!("{at}: {hostname} not in /admin/hosts: {hosts}"));
                assert!(
                    count > 0,
                    "{at}: fill_host needs an account on the host first"
                );
                self.admin(
                    "/admin/hosts/limits",
                    json!({ "hostname": hostname, "accounts": count }),
                )
                .await;
                (Sent::Nothing, None)
            }
        };

        match &step.expect {
            Expect::Forwarded => {
                let frame = self
                    .sub
                    .next(STEP_TIMEOUT)
                    .await
                    .unwrap_or_else(|| panic!("{at}: expected a forwarded frame, none came"));
                let did = did.as_deref().expect("a forwarded step names an account");
                sent.check(at, did, &frame);
                if let Sent::Commit(_, rev) = &sent {
                    let alias = step_account(&step.action).unwrap();
                    account_mut(accounts, at, alias).last_forwarded = Some(rev.clone());
                }
            }
            Expect::Dropped(reason) => self.bump(DROPPED, reason),
            Expect::Ignored(reason) => self.bump(IGNORED, reason),
            Expect::Consumed => self.infos += 1.0,
            Expect::Applied => {}
        }
        self.settle(at).await;
        if let Some(state) = &step.state {
            let alias = step_account(&step.action)
                .unwrap_or_else(|| panic!("{at}: a state check needs the step's account"));
            let a = account_mut(accounts, at, alias);
            let (did, last) = (a.account.did.clone(), a.last_forwarded.clone());
            self.check_state(at, &did, last.as_deref(), state).await;
        }
    }

    fn bump(&mut self, family: &str, reason: &str) {
        *self
            .expected
            .entry((family.to_owned(), reason.to_owned()))
            .or_default() += 1.0;
    }

    /// Waits until the relay's counters are exactly what the table expects
    /// so far: the step's own outcome, and nothing else moved.
    async fn settle(&mut self, at: &str) {
        let deadline = Instant::now() + STEP_TIMEOUT;
        loop {
            let scrape = self.relay.scrape().await;
            let actual = counts(&scrape);
            let infos = scrape.value(RECEIVED, &[("type", "info")]);
            if actual == self.expected && infos == self.infos {
                return;
            }
            if Instant::now() > deadline {
                let diff: Vec<String> = actual
                    .keys()
                    .chain(self.expected.keys())
                    .collect::<BTreeSet<_>>()
                    .into_iter()
                    .filter_map(|k| {
                        let (a, e) = (
                            actual.get(k).copied().unwrap_or(0.0),
                            self.expected.get(k).copied().unwrap_or(0.0),
                        );
                        (a != e).then(|| format!("{}{{reason={}}}: relay {a}, table {e}", k.0, k.1))
                    })
                    .collect();
                panic!(
                    "{at}: the relay's counters do not match the table: {diff:?}; #info frames \
                     counted {infos}, expected {}\n--- relay log ---\n{}",
                    self.infos,
                    self.relay.stderr.tail()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn check_state(&self, at: &str, did: &str, last: Option<&str>, want: &ExpectState) {
        let url = self
            .relay
            .url(&format!("/xrpc/com.atproto.sync.getRepoStatus?did={did}"));
        let got: Value = reqwest::get(url).await.unwrap().json().await.unwrap();
        if !want.found {
            assert_eq!(
                got["error"], "RepoNotFound",
                "{at}: the relay knows {did}: {got}"
            );
            return;
        }
        assert_eq!(got["did"], did, "{at}: getRepoStatus: {got}");
        if let Some(active) = want.active {
            assert_eq!(got["active"], active, "{at}: active: {got}");
        }
        if let Some(status) = &want.status {
            assert_eq!(got["status"], status.as_str(), "{at}: status: {got}");
        }
        if want.rev_is_last_forwarded {
            let last = last.unwrap_or_else(|| panic!("{at}: nothing was forwarded"));
            assert_eq!(got["rev"], last, "{at}: rev: {got}");
        }
    }

    async fn admin(&self, path: &str, body: Value) {
        let res = reqwest::Client::new()
            .post(self.relay.url(path))
            .basic_auth("admin", Some(PASSWORD))
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = res.status().as_u16();
        let text = res.text().await.unwrap_or_default();
        assert_eq!(status, 200, "POST {path} {body}: {text}");
    }

    async fn admin_get(&self, path: &str) -> Value {
        let res = reqwest::Client::new()
            .get(self.relay.url(path))
            .basic_auth("admin", Some(PASSWORD))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status().as_u16(), 200, "GET {path}");
        res.json().await.unwrap()
    }
}

/// The case's account `alias`.
fn account_mut<'m>(
    accounts: &'m mut BTreeMap<&str, CaseAccount>,
    at: &str,
    alias: &str,
) -> &'m mut CaseAccount {
    accounts
        .get_mut(alias)
        .unwrap_or_else(|| panic!("{at}: no account {alias:?} in the case"))
}

/// The account a step acts on, if any.
fn step_account(action: &Action) -> Option<&str> {
    match action {
        Action::Commit { account, .. }
        | Action::Advance { account }
        | Action::Replay { account }
        | Action::Sync { account }
        | Action::Identity { account }
        | Action::AccountStatus { account, .. }
        | Action::Takedown { account } => Some(account),
        Action::Info { .. } | Action::GarbageCommit | Action::FillHost => None,
    }
}

/// What a step sent, to check a forwarded frame against.
enum Sent {
    Nothing,
    /// Commit CID and rev.
    Commit(Cid, String),
    /// The rev.
    Sync(String),
    Identity,
    /// `active` and `status`.
    Account(bool, Option<String>),
}

impl Sent {
    fn check(&self, at: &str, did: &str, frame: &[u8]) {
        let ev = Event::decode(frame).unwrap_or_else(|e| panic!("{at}: relay frame: {e}"));
        match (self, &ev) {
            (Sent::Commit(cid, rev), Event::Commit(c)) => {
                assert_eq!((c.repo, c.commit, c.rev), (did, *cid, rev.as_str()), "{at}")
            }
            (Sent::Sync(rev), Event::Sync(s)) => {
                assert_eq!((s.did, s.rev), (did, rev.as_str()), "{at}")
            }
            (Sent::Identity, Event::Identity(i)) => assert_eq!(i.did, did, "{at}"),
            (Sent::Account(active, status), Event::Account(a)) => assert_eq!(
                (a.did, a.active, a.status),
                (did, *active, status.as_deref()),
                "{at}"
            ),
            (sent, _) => panic!("{at}: sent {}, the relay forwarded {ev:?}", sent.name()),
        }
    }

    fn name(&self) -> &'static str {
        match self {
            Sent::Nothing => "nothing to forward",
            Sent::Commit(..) => "a #commit",
            Sent::Sync(_) => "a #sync",
            Sent::Identity => "an #identity",
            Sent::Account(..) => "an #account",
        }
    }
}

/// The dropped and ignored counters by (family, reason).
fn counts(scrape: &Scrape) -> BTreeMap<(String, String), f64> {
    scrape
        .samples
        .iter()
        .filter(|s| s.name == DROPPED || s.name == IGNORED)
        .map(|s| {
            let reason = s
                .labels
                .iter()
                .find(|(k, _)| k == "reason")
                .map(|(_, v)| v.clone())
                .unwrap_or_default();
            ((s.name.clone(), reason), s.value)
        })
        .filter(|(_, v)| *v != 0.0)
        .collect()
}

/// A new post on a fork of `account` (a foreign key's fork for
/// [`Mutation::ForeignKey`], at a future rev for [`Mutation::RevInFuture`]).
fn build_mutated(account: &TestAccount, m: Mutation) -> BuiltCommit {
    match m {
        Mutation::ForeignKey => account.impostor().post("forged"),
        Mutation::RevInFuture => {
            let day = 86_400_000_000;
            let rev = Tid::from_parts(atrelay::repo::verify::now_micros() + day, 0);
            account.fork().post_at("from tomorrow", rev)
        }
        Mutation::OversizeRecord => account.fork().post(&"x".repeat(1_000_001)),
        _ => account.fork().post("mutated"),
    }
}

/// The `#commit` frame at upstream `seq` for `built`, spoiled by `m` (`key`
/// signs what is re-signed).
fn mutate(built: &BuiltCommit, m: Mutation, key: &PrivateKey, seq: u64) -> Vec<u8> {
    let strings = built.frame_strings();
    let mut ev = built.to_frame(&strings, seq as i64, TIME);
    let oversize;
    let rev_ahead;
    let car;
    let resigned;
    match m {
        Mutation::ForeignKey | Mutation::RevInFuture | Mutation::OversizeRecord => {}
        Mutation::NoPrevData => ev.prev_data = None,
        Mutation::OversizeBlocks => {
            oversize = vec![0u8; 2_000_001];
            ev.blocks = &oversize;
        }
        Mutation::BlocksNotCar => ev.blocks = b"this is not a CAR file",
        Mutation::CommitRevNotTid => {
            resigned = resign_with_bad_rev(built, key);
            ev.commit = resigned.0;
            ev.blocks = &resigned.1;
        }
        Mutation::FrameRevAhead => {
            rev_ahead = Tid::from_u64(built.rev.as_u64() + (1 << 10))
                .unwrap()
                .to_string();
            ev.rev = &rev_ahead;
        }
        Mutation::TooBigFlag => ev.too_big = true,
        Mutation::CreateWithPrev => ev.ops[0].prev = Some(built.data),
        Mutation::RecordBlockMissing => {
            let record = ev.ops[0].cid.expect("a create has a cid");
            car = car_without(&built.car, record);
            ev.blocks = &car;
        }
        Mutation::MstRootMissing => {
            car = car_without(&built.car, built.data);
            ev.blocks = &car;
        }
        Mutation::PrevDataWrong => ev.prev_data = Some(built.data),
    }
    let mut frame = Vec::new();
    Event::Commit(ev).encode(&mut frame);
    frame
}

/// `car` without the block `cid`.
fn car_without(car: &[u8], cid: Cid) -> Vec<u8> {
    let car = Car::parse(car, CarLimits::FIREHOSE).unwrap();
    let mut out = CarWriter::new(car.roots());
    for b in car.blocks().iter().filter(|b| b.cid != cid) {
        out.push(&b.cid, b.data);
    }
    out.finish()
}

/// The commit re-signed by `key` over the same tree with a `rev` that is not
/// a TID, and the diff CAR rooted at it.
fn resign_with_bad_rev(built: &BuiltCommit, key: &PrivateKey) -> (Cid, Vec<u8>) {
    let signed = SignedCommit::sign(&built.head.did, "not-a-tid", built.data, None, key);
    let car = Car::parse(&built.car, CarLimits::FIREHOSE).unwrap();
    let mut out = CarWriter::new(&[signed.cid]);
    out.push(&signed.cid, &signed.bytes);
    for b in car.blocks().iter().filter(|b| b.cid != built.commit) {
        out.push(&b.cid, b.data);
    }
    (signed.cid, out.finish())
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
        // A last valid commit: nothing the table did not expect is still on
        // its way.
        let mut last = runner.account(Document::Hosted);
        let built = last.account.post("the end");
        runner.net.pds.emit_commit(&built);
        let frame = runner
            .sub
            .next(STEP_TIMEOUT)
            .await
            .expect("the last commit");
        Sent::Commit(built.commit, built.rev.to_string()).check(
            "the end",
            &last.account.did,
            &frame,
        );
        runner.settle("the end").await;
        assert!(
            runner.sub.next(Duration::from_millis(500)).await.is_none(),
            "nothing after the last commit"
        );
    })
    .await
    .expect("the conformance table timed out");
}
