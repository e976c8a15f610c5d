//! One synthetic account: a k256 key, a `did:plc`, a real repo (MST and
//! signed commits from `repo::builder`), and the frames its events become.
//!
//! Keys and DIDs derive from the fleet seed and the account index, so a run
//! can be repeated and a separate process (a swarm, a checker) can rebuild an
//! account's identity. Only MST nodes the current tree references are kept
//! (pruned every [`PRUNE_EVERY`] commits), so a long run's memory stays
//! proportional to repo size, not to history.

use std::collections::{HashMap, VecDeque};

use atrelay::crypto::{Curve, PrivateKey, PublicKey};
use atrelay::repo::builder::{BuiltCommit, RecordWrite, RepoHead};
use atrelay::repo::mst::Mst;
use atrelay::wire::car::{Car, CarLimits, CarWriter};
use atrelay::wire::cid::Cid;
use atrelay::wire::frame::{Account, Event, Identity, Sync};
use atrelay::wire::syntax::format_datetime_micros;
use atrelay::wire::tid::{Tid, TidClock};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use sha2::{Digest, Sha256};

use super::mix::{Attack, Op, Planned};
use super::records;
use super::synthetic_did::did_from_bytes;
use crate::emit_time::PLACEHOLDER;

/// Commits between prunes of unreferenced MST nodes.
pub const PRUNE_EVERY: u32 = 64;
/// Own records remembered as delete targets.
const OWN_RECORDS: usize = 256;

fn derive(seed: u64, index: u32, what: &str) -> [u8; 32] {
    Sha256::digest(format!("atrelay loadtest {seed} {index} {what}")).into()
}

/// A synthetic account and its repo.
pub struct SyntheticAccount {
    pub index: u32,
    pub did: String,
    pub handle: String,
    key: PrivateKey,
    /// A key the DID document does not name, for forged signatures.
    impostor: PrivateKey,
    head: RepoHead,
    /// MST nodes of the current tree (plus some not yet pruned).
    store: HashMap<Cid, Vec<u8>>,
    own: VecDeque<String>,
    has_profile: bool,
    clock: TidClock,
    rng: StdRng,
    since_prune: u32,
}

impl SyntheticAccount {
    pub fn new(seed: u64, index: u32) -> SyntheticAccount {
        let did = did_from_bytes(&derive(seed, index, "did"));
        let key = PrivateKey::from_bytes(Curve::K256, &derive(seed, index, "key"))
            .expect("a hash is a valid k256 scalar with overwhelming probability");
        let impostor = PrivateKey::from_bytes(Curve::K256, &derive(seed, index, "impostor"))
            .expect("a hash is a valid k256 scalar with overwhelming probability");
        let mut store = HashMap::new();
        let head = RepoHead::empty(&did, &mut store);
        SyntheticAccount {
            index,
            handle: format!("user{index}.fleet.test"),
            did,
            key,
            impostor,
            head,
            store,
            own: VecDeque::new(),
            has_profile: false,
            clock: TidClock::new(),
            rng: StdRng::from_seed(derive(seed, index, "rng")),
            since_prune: 0,
        }
    }

    /// The same account under `did` (a DID a PLC directory derived from the
    /// account's genesis operation). Only before the first event.
    pub fn with_did(mut self, did: String) -> SyntheticAccount {
        debug_assert!(self.head.rev.is_none(), "renamed after its first commit");
        self.store.clear();
        self.head = RepoHead::empty(&did, &mut self.store);
        self.did = did;
        self
    }

    /// The key that signs this account's commits (and, when registered at a
    /// PLC directory, its rotation key too).
    pub fn private_key(&self) -> &PrivateKey {
        &self.key
    }

    pub fn public_key(&self) -> PublicKey {
        self.key.public_key()
    }

    /// The frame for `planned` at upstream `seq`, its `time` the emit-time
    /// placeholder. Well-formed events advance the repo; attacks never do,
    /// exactly as a relay that drops them must see it.
    pub fn event(&mut self, planned: Planned, seq: i64) -> Vec<u8> {
        let now = format_datetime_micros(crate::emit_time::now_micros());
        let mut frame = Vec::with_capacity(2_048);
        match planned {
            Planned::Normal(Op::Identity) => Event::Identity(Identity {
                seq,
                did: &self.did,
                time: PLACEHOLDER,
                handle: Some(&self.handle),
            })
            .encode(&mut frame),
            Planned::Normal(Op::Account) => Event::Account(Account {
                seq,
                did: &self.did,
                time: PLACEHOLDER,
                active: true,
                status: None,
            })
            .encode(&mut frame),
            Planned::Normal(Op::Sync) => {
                let write = self.create("app.bsky.feed.post", &now);
                let built = self.build(vec![write]);
                let (commit_cid, commit_bytes) = &built.new_blocks[0];
                let mut car = CarWriter::new(&[*commit_cid]);
                car.push(commit_cid, commit_bytes);
                let car = car.finish();
                let rev = built.rev.to_string();
                Event::Sync(Sync {
                    seq,
                    did: &self.did,
                    blocks: &car,
                    rev: &rev,
                    time: PLACEHOLDER,
                })
                .encode(&mut frame);
                self.apply(&built);
            }
            Planned::Normal(op) => {
                let write = self.write_for(op, &now);
                let built = self.build(vec![write]);
                encode_commit(&built, None, seq, &mut frame);
                self.apply(&built);
            }
            Planned::Attack(attack) => self.attack(attack, seq, &now, &mut frame),
        }
        frame
    }

    fn attack(&mut self, attack: Attack, seq: i64, now: &str, frame: &mut Vec<u8>) {
        match attack {
            Attack::ForgedSignature => {
                let write = self.create("app.bsky.feed.like", now);
                let built = self
                    .head
                    .commit(&self.store, vec![write], &self.impostor, self.clock.next())
                    .expect("a create on our own tree applies");
                encode_commit(&built, None, seq, frame);
            }
            Attack::BrokenProof => {
                let write = self.create("app.bsky.feed.post", now);
                let built = self.build(vec![write]);
                let car = Car::parse(&built.car, CarLimits::FIREHOSE).expect("our own CAR");
                let mut broken = CarWriter::new(&[built.commit]);
                for block in car.blocks() {
                    if block.cid != built.data {
                        broken.push(&block.cid, block.data);
                    }
                }
                encode_commit(&built, Some(&broken.finish()), seq, frame);
            }
            Attack::RevRollback => {
                let Some(rev) = self.head.rev else {
                    // Nothing to roll back from in this repo yet. The fleet
                    // never plans this (`Planned::for_account`: the relay
                    // would have no rev to compare with either); made
                    // directly, it builds a first commit it does not emit
                    // and rolls back from that.
                    let write = self.create("app.bsky.feed.post", now);
                    let built = self.build(vec![write]);
                    self.apply(&built);
                    return self.attack(attack, seq, now, frame);
                };
                let old = Tid::from_u64(rev.as_u64().saturating_sub(1 << 20)).unwrap_or(rev);
                let mut stale = self.head.clone();
                stale.rev = None;
                let write = self.create("app.bsky.feed.like", now);
                let built = stale
                    .commit(&self.store, vec![write], &self.key, old)
                    .expect("a create on our own tree applies");
                encode_commit(&built, None, seq, frame);
            }
            Attack::Oversize => {
                let path = format!("app.bsky.feed.post/{}", self.clock.next());
                let built = self.build(vec![RecordWrite::Create {
                    path,
                    record: records::oversize(now),
                }]);
                encode_commit(&built, None, seq, frame);
            }
        }
    }

    fn create(&mut self, collection: &str, now: &str) -> RecordWrite {
        let record = match collection {
            "app.bsky.feed.like" => records::like(&mut self.rng, now),
            "app.bsky.feed.repost" => records::repost(&mut self.rng, now),
            "app.bsky.graph.follow" => records::follow(&mut self.rng, now),
            _ => records::post(&mut self.rng, now),
        };
        RecordWrite::Create {
            path: format!("{collection}/{}", self.clock.next()),
            record,
        }
    }

    fn write_for(&mut self, op: Op, now: &str) -> RecordWrite {
        match op {
            Op::Like => self.create("app.bsky.feed.like", now),
            Op::Repost => self.create("app.bsky.feed.repost", now),
            Op::Follow => self.create("app.bsky.graph.follow", now),
            Op::Delete if !self.own.is_empty() => {
                let i = self.rng.gen_range(0..self.own.len());
                let path = self.own.swap_remove_back(i).expect("index in range");
                RecordWrite::Delete { path }
            }
            Op::Profile => {
                let record = records::profile(&mut self.rng, now);
                let path = "app.bsky.actor.profile/self".to_owned();
                if self.has_profile {
                    RecordWrite::Update { path, record }
                } else {
                    RecordWrite::Create { path, record }
                }
            }
            // A post, and a delete with nothing to delete yet.
            _ => self.create("app.bsky.feed.post", now),
        }
    }

    fn build(&self, writes: Vec<RecordWrite>) -> BuiltCommit {
        self.head
            .commit(&self.store, writes, &self.key, self.clock.next())
            .expect("writes planned from the account's own state apply")
    }

    /// Makes `built` the repo's head.
    fn apply(&mut self, built: &BuiltCommit) {
        for op in &built.ops {
            let path = op.path.as_str();
            if path == "app.bsky.actor.profile/self" {
                self.has_profile = true;
            } else if op.cid.is_some() && op.prev.is_none() {
                if self.own.len() == OWN_RECORDS {
                    self.own.pop_front();
                }
                self.own.push_back(path.to_owned());
            }
        }
        // Commit and record blocks are never read back; only nodes are.
        for (cid, bytes) in built.new_blocks.iter().skip(1) {
            self.store.insert(*cid, bytes.clone());
        }
        self.head = built.head.clone();
        self.since_prune += 1;
        if self.since_prune >= PRUNE_EVERY {
            self.prune();
        }
    }

    /// Keeps only the blocks the current tree references.
    fn prune(&mut self) {
        self.since_prune = 0;
        let Ok(mut tree) = Mst::load(self.head.data, &self.store) else {
            return;
        };
        if tree.load_all(&self.store).is_err() {
            return;
        }
        let keep: std::collections::HashSet<Cid> = tree.loaded_nodes().iter().copied().collect();
        self.store.retain(|cid, _| keep.contains(cid));
    }

    /// Blocks held (pruning keeps this proportional to the repo).
    #[cfg(test)]
    pub fn stored_blocks(&self) -> usize {
        self.store.len()
    }
}

/// Encodes `built` as a `#commit` frame, optionally with other `blocks`.
fn encode_commit(built: &BuiltCommit, blocks: Option<&[u8]>, seq: i64, out: &mut Vec<u8>) {
    let strings = built.frame_strings();
    let mut commit = built.to_frame(&strings, seq, PLACEHOLDER);
    if let Some(blocks) = blocks {
        commit.blocks = blocks;
    }
    Event::Commit(commit).encode(out);
}

#[cfg(test)]
mod tests {
    use super::*;
    use atrelay::repo::verify::{verify_commit, VerifyOptions};

    fn opts() -> VerifyOptions {
        VerifyOptions {
            lenient: false,
            now_micros: crate::emit_time::now_micros(),
        }
    }

    fn decode_commit(frame: &[u8]) -> atrelay::wire::frame::Commit<'_> {
        match Event::decode(frame).unwrap() {
            Event::Commit(c) => c,
            other => panic!("not a commit: {other:?}"),
        }
    }

    #[test]
    fn a_chain_of_mixed_events_verifies_and_pruning_keeps_it_going() {
        let mut a = SyntheticAccount::new(9, 1);
        let key = a.public_key();
        let ops = [
            Op::Post,
            Op::Like,
            Op::Follow,
            Op::Repost,
            Op::Profile,
            Op::Delete,
            Op::Profile,
        ];
        let mut prev_data = None;
        // Blocks held right after the last prune, and the most the commits
        // since can have added: each stores its frame's blocks but the commit.
        let (mut at_prune, mut added) = (None, 0);
        for i in 0..(2 * PRUNE_EVERY as usize + 5) {
            let frame = a.event(Planned::Normal(ops[i % ops.len()]), i as i64 + 1);
            let c = decode_commit(&frame);
            if let Some(p) = prev_data {
                assert_eq!(c.prev_data, Some(p), "commit {i} chains");
            }
            verify_commit(&c, &key, &opts()).unwrap_or_else(|e| panic!("commit {i}: {e}"));
            prev_data = Some(a.head.data);
            if a.since_prune == 0 {
                // Right after a prune the store holds exactly the current
                // tree's nodes.
                let mut tree = Mst::load(a.head.data, &a.store).unwrap();
                tree.load_all(&a.store).unwrap();
                assert_eq!(a.stored_blocks(), tree.loaded_nodes().len(), "commit {i}");
                (at_prune, added) = (Some(a.stored_blocks()), 0);
            } else {
                added += Car::parse(c.blocks, CarLimits::FIREHOSE).unwrap().len() - 1;
            }
        }
        // Every commit since adds only its own new blocks: the store stays
        // proportional to the repo, not to its history.
        let at_prune = at_prune.expect("the loop crosses two prunes");
        assert!(
            a.stored_blocks() <= at_prune + added,
            "{} stored, {at_prune} at the prune, {added} added since",
            a.stored_blocks()
        );
    }

    #[test]
    fn attacks_fail_verification_and_leave_the_repo_unchanged() {
        let mut a = SyntheticAccount::new(9, 2);
        let key = a.public_key();
        a.event(Planned::Normal(Op::Post), 1);
        let before = a.head.clone();
        for (n, attack) in Attack::ALL.into_iter().enumerate() {
            let frame = a.event(Planned::Attack(attack), n as i64 + 2);
            assert_eq!(a.head, before, "{attack:?} left the head alone");
            let c = decode_commit(&frame);
            let verdict = verify_commit(&c, &key, &opts());
            match attack {
                // Well-formed and signed: the relay's rev check catches it.
                Attack::RevRollback => {
                    verdict.unwrap();
                    assert!(c.rev < before.rev.unwrap().to_string().as_str());
                }
                _ => assert!(verdict.is_err(), "{attack:?} verified"),
            }
        }
    }
}
