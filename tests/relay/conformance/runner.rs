//! The runner: one `atrelay serve` fed by the emulated PDS host, each step
//! played and its outcome read from the relay's metrics, a subscriber and
//! `getRepoStatus`.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use atrelay::repo::builder::BuiltCommit;
use atrelay::wire::car::CarWriter;
use atrelay::wire::cid::Cid;
use atrelay::wire::frame::{Event, Info, Sync};
use serde_json::{json, Value};

use super::mutation::{build_mutated, mutate};
use super::table::{Action, Case, Document, Expect, ExpectState, Step};
use crate::binary::{RelayProcess, Sample, Scrape};
use crate::harness::{garbage_commit, Subscriber, TestAccount, TIME};
use crate::pipeline::Net;

const PASSWORD: &str = "conformance table password";
const DROPPED: &str = "atrelay_relay_events_dropped_total";
const IGNORED: &str = "atrelay_relay_events_ignored_total";
const RECEIVED: &str = "atrelay_relay_events_received_total";
/// The `type`s of [`RECEIVED`] the crawler consumes without dispatching.
const CONSUMED_TYPES: [&str; 2] = ["info", "unknown"];
/// How long one step may take to reach its outcome.
const STEP_TIMEOUT: Duration = Duration::from_secs(15);

/// An account in a case, with what the relay has seen of it.
struct CaseAccount {
    account: TestAccount,
    /// The last commit sent to the relay.
    last_sent: Option<BuiltCommit>,
    /// The rev of the last commit the relay forwarded.
    last_forwarded: Option<String>,
}

/// The relay under test and what the table expects of its counters.
pub struct Runner {
    net: Net,
    relay: RelayProcess,
    sub: Subscriber,
    /// (family, label) → the count the relay must report (see [`counts`]).
    expected: BTreeMap<(String, String), f64>,
}

impl Runner {
    pub async fn start() -> Runner {
        let net = Net::start().await;
        let relay = RelayProcess::spawn(&net, true, &[("ATRELAY_ADMIN_PASSWORD", PASSWORD)]).await;
        let sub = Subscriber::connect(relay.addr, None).await;
        let scrape = relay.scrape().await;
        Runner {
            net,
            relay,
            sub,
            expected: counts(&scrape),
        }
    }

    pub async fn play(&mut self, file: &str, case: &Case) {
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
            Action::UnknownType { name } => {
                let seq = self.net.pds.next_seq();
                self.net.pds.emit_raw(seq, unknown_type(name, seq));
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
            Expect::Consumed => {
                let kind = match step.action {
                    Action::Info { .. } => "info",
                    Action::UnknownType { .. } => "unknown",
                    _ => panic!("{at}: only #info and unknown types are consumed"),
                };
                self.bump(RECEIVED, kind)
            }
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

    /// A last valid commit: nothing the table did not expect is still on
    /// its way, and nothing comes after it.
    pub async fn finish(&mut self) {
        let mut last = self.account(Document::Hosted);
        let built = last.account.post("the end");
        self.net.pds.emit_commit(&built);
        let frame = self.sub.next(STEP_TIMEOUT).await.expect("the last commit");
        Sent::Commit(built.commit, built.rev.to_string()).check(
            "the end",
            &last.account.did,
            &frame,
        );
        self.settle("the end").await;
        assert!(
            self.sub.next(Duration::from_millis(500)).await.is_none(),
            "nothing after the last commit"
        );
    }

    fn bump(&mut self, family: &str, label: &str) {
        *self
            .expected
            .entry((family.to_owned(), label.to_owned()))
            .or_default() += 1.0;
    }

    /// Waits until the relay's counters are exactly what the table expects
    /// so far: the step's own outcome, and nothing else moved.
    async fn settle(&mut self, at: &str) {
        let deadline = Instant::now() + STEP_TIMEOUT;
        loop {
            let scrape = self.relay.scrape().await;
            let actual = counts(&scrape);
            if actual == self.expected {
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
                        (a != e).then(|| format!("{}{{{}}}: relay {a}, table {e}", k.0, k.1))
                    })
                    .collect();
                panic!(
                    "{at}: the relay's counters do not match the table: {diff:?}\n--- relay log ---\n{}",
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
        Action::Info { .. }
        | Action::UnknownType { .. }
        | Action::GarbageCommit
        | Action::FillHost => None,
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

/// The counters the table decides: dropped and ignored by reason, and the
/// frames the crawler consumed by type (`#info`, unknown types).
fn counts(scrape: &Scrape) -> BTreeMap<(String, String), f64> {
    let label = |s: &Sample, key: &str| {
        s.labels
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    scrape
        .samples
        .iter()
        .filter_map(|s| match s.name.as_str() {
            DROPPED | IGNORED => Some(((s.name.clone(), label(s, "reason")), s.value)),
            RECEIVED => {
                let kind = label(s, "type");
                CONSUMED_TYPES
                    .contains(&kind.as_str())
                    .then(|| ((s.name.clone(), kind), s.value))
            }
            _ => None,
        })
        .filter(|(_, v)| *v != 0.0)
        .collect()
}

/// A frame of type `#name` whose body holds only its seq.
fn unknown_type(name: &str, seq: u64) -> bytes::Bytes {
    use atrelay::wire::cbor::Encoder;
    use atrelay::wire::frame::Header;
    let t = format!("#{name}");
    let mut frame = Vec::new();
    Header::message(&t).encode(&mut Encoder::new(&mut frame));
    let mut e = Encoder::new(&mut frame);
    e.map(1);
    e.text("seq");
    e.u64(seq);
    frame.into()
}
