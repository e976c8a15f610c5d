//! The verifier's unit tests: real signed commits from a test repo, decided
//! one by one, for each event kind and the account cache.

use std::collections::HashMap as Map;
use std::sync::Arc;

use bytes::Bytes;

use super::*;
use crate::clock::now_micros;
use crate::crypto::{Curve, PrivateKey};
use crate::identity::Identity;
use crate::repo::builder::{BuiltCommit, RecordWrite, RepoHead};
use crate::wire::cid::Cid;
use crate::wire::frame::{Info, Sync};
use crate::wire::tid::TidClock;

const DID: &str = "did:plc:abcdefghijklmnopqrstuvwx";
const HOST: &str = "127.0.0.1:2583";
const TIME: &str = "2026-11-24T12:00:00.000Z";

struct NoState;
impl AccountLookup for NoState {
    fn load(&self, _: &str) -> Result<Option<AccountState>, LogError> {
        Ok(None)
    }
}

/// A repo that commits one post at a time.
struct TestRepo {
    did: String,
    key: PrivateKey,
    head: RepoHead,
    store: Map<Cid, Vec<u8>>,
    clock: TidClock,
    seq: i64,
}

impl TestRepo {
    fn new() -> TestRepo {
        TestRepo::of(DID)
    }

    fn of(did: &str) -> TestRepo {
        let mut store = Map::new();
        let head = RepoHead::empty(did, &mut store);
        TestRepo {
            did: did.to_owned(),
            key: PrivateKey::generate(Curve::K256),
            head,
            store,
            clock: TidClock::new(),
            seq: 0,
        }
    }

    fn post(&mut self) -> BuiltCommit {
        let path = format!("app.bsky.feed.post/{}", self.clock.next());
        let built = self
            .head
            .commit(
                &self.store,
                vec![RecordWrite::Create {
                    path,
                    record: vec![0xa1, 0x61, b'n', 0x01],
                }],
                &self.key,
                self.clock.next(),
            )
            .unwrap();
        built.store_into(&mut self.store);
        self.head = built.head.clone();
        built
    }

    fn frame(&mut self, built: &BuiltCommit) -> Bytes {
        self.seq += 1;
        let s = built.frame_strings();
        let mut out = Vec::new();
        Event::Commit(built.to_frame(&s, self.seq, TIME)).encode(&mut out);
        Bytes::from(out)
    }

    fn identity(&self, host: &str) -> Arc<Identity> {
        Arc::new(Identity {
            did: self.did.as_str().into(),
            handle: None,
            signing_key: Some(self.key.public_key()),
            pds_endpoint: Some(format!("http://{host}").into()),
            pds_host: Some(host.into()),
        })
    }
}

fn inbound(frame: Bytes, host: &str, identity: Arc<Identity>) -> Inbound {
    Inbound {
        host: host.into(),
        upstream_seq: 1,
        frame,
        received_micros: 0,
        identity: Some(identity),
        refreshed: false,
    }
}

fn decide<L: AccountLookup>(v: &mut Verifier<L>, ev: &Inbound) -> Decision {
    v.decide(ev, now_micros())
}

fn accepted(d: Decision) -> Box<Accepted> {
    match d {
        Decision::Accept(a) => a,
        other => panic!("expected Accept, got {other:?}"),
    }
}

fn frame_of(ev: Event) -> Bytes {
    let mut out = Vec::new();
    ev.encode(&mut out);
    Bytes::from(out)
}

#[test]
fn chained_commits_are_accepted_and_replays_ignored() {
    let mut repo = TestRepo::new();
    let mut v = Verifier::new(NoState, false);
    let id = repo.identity(HOST);
    let c1 = repo.post();
    let f1 = repo.frame(&c1);
    let a = accepted(decide(&mut v, &inbound(f1.clone(), HOST, id.clone())));
    assert!(a.created && !a.chain_break);
    assert_eq!(a.account.as_ref().unwrap().data, Some(c1.data));
    let out = a.frame.with_seq(77);
    let Event::Commit(c) = Event::decode(&out).unwrap() else {
        panic!()
    };
    assert_eq!(c.seq, 77);
    assert_eq!(c.commit, c1.commit);

    let c2 = repo.post();
    let f2 = repo.frame(&c2);
    let a = accepted(decide(&mut v, &inbound(f2.clone(), HOST, id.clone())));
    assert!(!a.created && !a.chain_break);

    for replay in [f1, f2] {
        assert!(matches!(
            decide(&mut v, &inbound(replay, HOST, id.clone())),
            Decision::Ignore(IgnoreReason::Duplicate)
        ));
    }
}

#[test]
fn forged_signature_refreshes_once_then_drops() {
    let mut repo = TestRepo::new();
    let mut v = Verifier::new(NoState, false);
    let c1 = repo.post();
    let f1 = repo.frame(&c1);
    let mut wrong = (*repo.identity(HOST)).clone();
    wrong.signing_key = Some(PrivateKey::generate(Curve::K256).public_key());
    let mut ev = inbound(f1, HOST, Arc::new(wrong));
    assert!(matches!(decide(&mut v, &ev), Decision::Refresh));
    ev.refreshed = true;
    assert!(matches!(
        decide(&mut v, &ev),
        Decision::Drop(DropReason::BadSignature)
    ));
    // The right key after a refresh is accepted.
    ev.identity = Some(repo.identity(HOST));
    accepted(decide(&mut v, &ev));
}

#[test]
fn host_matching_and_migration() {
    let mut repo = TestRepo::new();
    let mut v = Verifier::new(NoState, false);
    let c1 = repo.post();
    let f1 = repo.frame(&c1);
    // The document names another PDS: refresh, then drop.
    let mut ev = inbound(f1.clone(), HOST, repo.identity("pds.example.com"));
    assert!(matches!(decide(&mut v, &ev), Decision::Refresh));
    ev.refreshed = true;
    assert!(matches!(
        decide(&mut v, &ev),
        Decision::Drop(DropReason::WrongHost)
    ));

    accepted(decide(&mut v, &inbound(f1, HOST, repo.identity(HOST))));
    // The account migrates: its document now names the new host.
    let c2 = repo.post();
    let f2 = repo.frame(&c2);
    let new_host = "127.0.0.1:2999";
    let a = accepted(decide(
        &mut v,
        &inbound(f2, new_host, repo.identity(new_host)),
    ));
    assert_eq!(a.moved_from.as_deref(), Some(HOST));
    assert_eq!(a.account.unwrap().host, new_host);
    // The old host may no longer speak for it.
    let c3 = repo.post();
    let f3 = repo.frame(&c3);
    let mut ev = inbound(f3, HOST, repo.identity(new_host));
    ev.refreshed = true;
    assert!(matches!(
        decide(&mut v, &ev),
        Decision::Drop(DropReason::WrongHost)
    ));
}

#[test]
fn inactive_accounts_are_dropped_until_reactivated() {
    let mut repo = TestRepo::new();
    let mut v = Verifier::new(NoState, false);
    let id = repo.identity(HOST);
    let c1 = repo.post();
    let f1 = repo.frame(&c1);
    accepted(decide(&mut v, &inbound(f1, HOST, id.clone())));
    let deactivate = frame_of(Event::Account(Account {
        seq: 9,
        did: DID,
        time: TIME,
        active: false,
        status: Some("deactivated"),
    }));
    let a = accepted(decide(&mut v, &inbound(deactivate, HOST, id.clone())));
    assert_eq!(
        a.account.unwrap().upstream_status.as_deref(),
        Some("deactivated")
    );
    let c2 = repo.post();
    let f2 = repo.frame(&c2);
    assert!(matches!(
        decide(&mut v, &inbound(f2.clone(), HOST, id.clone())),
        Decision::Drop(DropReason::Inactive)
    ));
    let activate = frame_of(Event::Account(Account {
        seq: 10,
        did: DID,
        time: TIME,
        active: true,
        status: None,
    }));
    accepted(decide(&mut v, &inbound(activate, HOST, id.clone())));
    // c2 continues the chain from c1 (its inversion proves prevData).
    accepted(decide(&mut v, &inbound(f2, HOST, id)));
}

#[test]
fn chain_breaks_are_forwarded_and_flagged() {
    let mut repo = TestRepo::new();
    let mut v = Verifier::new(NoState, false);
    let id = repo.identity(HOST);
    let c1 = repo.post();
    let f1 = repo.frame(&c1);
    accepted(decide(&mut v, &inbound(f1, HOST, id.clone())));
    let _missed = repo.post();
    let c3 = repo.post();
    let f3 = repo.frame(&c3);
    let a = accepted(decide(&mut v, &inbound(f3, HOST, id)));
    assert!(
        a.chain_break,
        "since/prevData skip a commit the relay never saw"
    );
}

#[test]
fn missing_prev_data_with_history() {
    let mut repo = TestRepo::new();
    let id = repo.identity(HOST);
    let c1 = repo.post();
    let f1 = repo.frame(&c1);
    let c2 = repo.post();
    let s = c2.frame_strings();
    let mut ev2 = c2.to_frame(&s, 2, TIME);
    ev2.prev_data = None;
    let f2 = frame_of(Event::Commit(ev2));
    for lenient in [false, true] {
        let mut v = Verifier::new(NoState, lenient);
        accepted(decide(&mut v, &inbound(f1.clone(), HOST, id.clone())));
        let d = decide(&mut v, &inbound(f2.clone(), HOST, id.clone()));
        if lenient {
            accepted(d);
        } else {
            assert!(matches!(d, Decision::Drop(DropReason::MissingPrevData)));
        }
    }
}

#[test]
fn bad_input_is_dropped() {
    let mut repo = TestRepo::new();
    let mut v = Verifier::new(NoState, false);
    let id = repo.identity(HOST);
    let garbage = Bytes::from_static(b"\xa2\x61t\x67#commit\x62op\x01\xff");
    assert!(matches!(
        decide(&mut v, &inbound(garbage, HOST, id.clone())),
        Decision::Drop(DropReason::Malformed)
    ));
    // A tampered record block fails its hash.
    let c1 = repo.post();
    let mut tampered = repo.frame(&c1).to_vec();
    // The record {n: 1} inside the diff CAR.
    let at = tampered
        .windows(4)
        .position(|w| w == [0xa1, 0x61, b'n', 0x01])
        .unwrap();
    tampered[at + 3] = 0x02;
    assert!(matches!(
        decide(&mut v, &inbound(Bytes::from(tampered), HOST, id.clone())),
        Decision::Drop(DropReason::BadCar)
    ));
    // No identity at all.
    let mut ev = inbound(repo.frame(&c1), HOST, id);
    ev.identity = None;
    assert!(matches!(
        decide(&mut v, &ev),
        Decision::Drop(DropReason::NoIdentity)
    ));
}

#[test]
fn sync_and_info() {
    let mut repo = TestRepo::new();
    let mut v = Verifier::new(NoState, false);
    let id = repo.identity(HOST);
    let c1 = repo.post();
    let c2 = repo.post();
    let f2 = repo.frame(&c2);
    accepted(decide(&mut v, &inbound(f2, HOST, id.clone())));

    // A #sync for the older c1 is stale; one for a newer commit resets.
    let sync_for = |c: &BuiltCommit| {
        let car =
            crate::wire::car::Car::parse(&c.car, crate::wire::car::CarLimits::FIREHOSE).unwrap();
        let mut w = crate::wire::car::CarWriter::new(&[c.commit]);
        w.push(&c.commit, car.get(&c.commit).unwrap());
        let blocks = w.finish();
        let rev = c.rev.to_string();
        frame_of(Event::Sync(Sync {
            seq: 3,
            did: DID,
            blocks: &blocks,
            rev: &rev,
            time: TIME,
        }))
    };
    assert!(matches!(
        decide(&mut v, &inbound(sync_for(&c1), HOST, id.clone())),
        Decision::Ignore(IgnoreReason::StaleSync)
    ));
    let c3 = repo.post();
    let a = accepted(decide(&mut v, &inbound(sync_for(&c3), HOST, id.clone())));
    assert_eq!(a.account.unwrap().data, Some(c3.data));

    let info = frame_of(Event::Info(Info {
        name: "OutdatedCursor",
        message: None,
    }));
    assert!(matches!(
        decide(&mut v, &inbound(info, HOST, id)),
        Decision::Ignore(IgnoreReason::NotForwarded)
    ));
}

#[test]
fn identity_only_from_the_current_host_and_handles_only_when_confirmed() {
    let repo = TestRepo::new();
    let mut v = Verifier::new(NoState, false);
    let mut doc = (*repo.identity(HOST)).clone();
    doc.handle = Some("alice.example.com".into());
    let doc = Arc::new(doc);
    let ident = |handle: Option<&str>| {
        frame_of(Event::Identity(crate::wire::frame::Identity {
            seq: 4,
            did: DID,
            time: TIME,
            handle,
        }))
    };
    // Always decided on a document fetched after the event.
    let mut ev = inbound(ident(Some("alice.example.com")), HOST, doc.clone());
    assert!(matches!(decide(&mut v, &ev), Decision::Refresh));
    ev.refreshed = true;
    let a = accepted(decide(&mut v, &ev));
    let frame = a.frame.with_seq(1);
    let Event::Identity(out) = Event::decode(&frame).unwrap() else {
        panic!()
    };
    assert_eq!(out.handle, Some("alice.example.com"));
    assert!(a.account.is_none(), "an #identity changes no account state");

    // A handle the document does not claim is not forwarded.
    let mut ev = inbound(ident(Some("hijacked.example.com")), HOST, doc.clone());
    ev.refreshed = true;
    let a = accepted(decide(&mut v, &ev));
    let frame = a.frame.with_seq(2);
    let Event::Identity(out) = Event::decode(&frame).unwrap() else {
        panic!()
    };
    assert_eq!(out.handle, None);

    // From a host the document does not name: dropped.
    let mut ev = inbound(ident(Some("hijacked.example.com")), "evil.example.com", doc);
    assert!(matches!(decide(&mut v, &ev), Decision::Refresh));
    ev.refreshed = true;
    assert!(matches!(
        decide(&mut v, &ev),
        Decision::Drop(DropReason::WrongHost)
    ));
    ev.identity = None;
    assert!(matches!(
        decide(&mut v, &ev),
        Decision::Drop(DropReason::NoIdentity)
    ));
}

/// The log as the verifier sees it through [`AccountLookup`]: written
/// by the test, standing in for the sequencer.
#[derive(Clone, Default)]
struct Store(std::rc::Rc<std::cell::RefCell<Map<String, AccountState>>>);

impl AccountLookup for Store {
    fn load(&self, did: &str) -> Result<Option<AccountState>, LogError> {
        Ok(self.0.borrow().get(did).cloned())
    }
}

#[test]
fn chains_verify_across_cache_evictions() {
    const CAPACITY: usize = 16;
    let store = Store::default();
    let mut v = Verifier::new(store.clone(), false).with_cache_capacity(CAPACITY);
    let mut repos: Vec<TestRepo> = (0..40)
        .map(|i: u8| {
            let tail = [b'a' + i / 26, b'a' + i % 26];
            let did = format!(
                "did:plc:{}{}",
                "a".repeat(22),
                std::str::from_utf8(&tail).unwrap()
            );
            TestRepo::of(&did)
        })
        .collect();
    let ids: Vec<Arc<Identity>> = repos.iter().map(|r| r.identity(HOST)).collect();
    // Written to the store once "the sequencer" gets to them.
    let mut unwritten: Vec<(String, AccountState)> = Vec::new();
    let write_all = |v: &Verifier<Store>, unwritten: &mut Vec<(String, AccountState)>| {
        let done = v.written();
        for (did, state) in unwritten.drain(..) {
            store.0.borrow_mut().insert(did, state);
        }
        done.done();
    };

    for round in 0..8 {
        for (repo, id) in repos.iter_mut().zip(&ids) {
            let built = repo.post();
            let frame = repo.frame(&built);
            let a = accepted(decide(&mut v, &inbound(frame, HOST, id.clone())));
            // prevData and since continue the state the verifier holds,
            // whether it stayed cached or was reloaded from the store.
            assert!(!a.chain_break, "round {round}: chain continues");
            assert_eq!(a.created, round == 0);
            assert_eq!(a.account.as_ref().unwrap().data, Some(built.data));
            unwritten.push((a.did.clone(), a.account.unwrap()));
            // A replay is a duplicate even across evictions.
            if round > 1 {
                let old = repo.frame(&built);
                assert!(matches!(
                    decide(&mut v, &inbound(old, HOST, id.clone())),
                    Decision::Ignore(IgnoreReason::Duplicate)
                ));
            }
            // Rounds 1, 3, 5: nothing is written until the round ends,
            // so all 40 updates are pending at once, far more than the
            // capacity; evicting any of them would reload the previous
            // state and break the chain next round. The other rounds
            // are written at once, so entries may be evicted right away.
            if round % 2 == 1 && round < 6 {
                assert!(v.cached_accounts() >= unwritten.len());
            } else {
                write_all(&v, &mut unwritten);
            }
        }
        write_all(&v, &mut unwritten);
    }
    assert!(v.cache_evictions() > 100, "{}", v.cache_evictions());
    assert!(v.cached_accounts() <= CAPACITY, "{}", v.cached_accounts());
}
