//! The end-to-end benches' workload: accounts with real k256 keys and repos
//! built with `repo::builder`, and their signed one-post `#commit` frames,
//! split over upstream hosts; plus the verify-only ceilings on those frames.
//!
//! Moved here from `benches/ingest.rs` so `ingest` and `pipeline` run the
//! very same workload.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use atrelay::crypto::{Curve, PrivateKey, PublicKey};
use atrelay::repo::builder::{RecordWrite, RepoHead};
use atrelay::repo::commit::Commit;
use atrelay::repo::verify::{verify_commit, VerifyOptions};
use atrelay::wire::car::{Car, CarLimits};
use atrelay::wire::frame::Event;
use bytes::Bytes;
use sha2::{Digest, Sha256};

use super::sys::cores;

/// How many accounts, commits, records and hosts; and the frames' `time`.
#[derive(Clone, Debug)]
pub struct Shape {
    pub accounts: usize,
    /// Timed commits per account.
    pub per_account: usize,
    /// Posts in each account's repo before the first frame.
    pub records: usize,
    pub hosts: usize,
    /// Every frame's `time` field (a host may overwrite it when it writes
    /// the frame, see `Upstream::start_stamped`).
    pub time: &'static str,
}

impl Shape {
    pub fn timed(&self) -> usize {
        self.accounts * self.per_account
    }

    /// Accounts on host `h` (account `i` lives on host `i % hosts`).
    pub fn on_host(&self, h: usize) -> usize {
        (self.accounts - h).div_ceil(self.hosts)
    }
}

pub struct Workload {
    pub dids: Vec<String>,
    pub keys: Vec<PublicKey>,
    /// Per host: every frame in upstream order (upstream seq = index + 1).
    pub streams: Vec<Arc<Vec<Bytes>>>,
    /// Per host: how many leading frames are warm-up commits.
    pub warm: Vec<usize>,
    /// The timed frames with their account index, for the ceilings.
    pub timed: Vec<(usize, Bytes)>,
}

/// A `did:plc` and a k256 key derived from the account index, so every run
/// builds the same repos (see `DeterministicClock`).
pub fn identity_for(i: usize) -> (String, PrivateKey) {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz234567";
    let h = Sha256::digest(format!("atrelay ingest bench did {i}"));
    let did = format!(
        "did:plc:{}",
        h.iter()
            .take(24)
            .map(|b| ALPHABET[(b % 32) as usize] as char)
            .collect::<String>()
    );
    let seed = Sha256::digest(format!("atrelay ingest bench key {i}"));
    let key = PrivateKey::from_bytes(Curve::K256, &seed).expect("a valid scalar");
    (did, key)
}

/// Account `i`'s frames: one warm-up commit, then `per_account` timed ones,
/// each with its upstream seq on its host.
pub fn build_account(p: &Shape, i: usize) -> (String, PublicKey, Vec<Bytes>) {
    let (did, key) = identity_for(i);
    let clock = super::DeterministicClock::new();
    let mut store = HashMap::new();
    let mut head = RepoHead::empty(&did, &mut store);
    let mut n = 0u64;
    let mut post = |len: usize| {
        n += 1;
        RecordWrite::Create {
            path: format!("app.bsky.feed.post/{}", clock.next()),
            record: super::post_record(len, n),
        }
    };
    // The existing repo, which the relay never sees built.
    if p.records > 0 {
        let writes = (0..p.records).map(|_| post(200)).collect();
        let built = head.commit(&store, writes, &key, clock.next()).unwrap();
        built.store_into(&mut store);
        head = built.head;
    }
    let m = p.on_host(i % p.hosts);
    let l = i / p.hosts;
    let mut frames = Vec::with_capacity(1 + p.per_account);
    for j in 0..=p.per_account {
        let built = head
            .commit(&store, vec![post(300)], &key, clock.next())
            .unwrap();
        built.store_into(&mut store);
        head = built.head.clone();
        let seq = if j == 0 { l + 1 } else { m * j + l + 1 };
        let strings = built.frame_strings();
        let mut frame = Vec::with_capacity(built.car.len() + 512);
        Event::Commit(built.to_frame(&strings, seq as i64, p.time)).encode(&mut frame);
        frames.push(Bytes::from(frame));
    }
    (did, key.public_key(), frames)
}

/// Builds every account on one thread per core, then lays the frames out per
/// host: each host's warm-up commits first, then the timed ones round-robin
/// over its accounts.
pub fn generate(p: &Shape) -> Workload {
    let threads = cores().min(p.accounts);
    let mut built: Vec<Option<(String, PublicKey, Vec<Bytes>)>> =
        (0..p.accounts).map(|_| None).collect();
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                s.spawn(move || {
                    (t..p.accounts)
                        .step_by(threads)
                        .map(|i| (i, build_account(p, i)))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        for h in handles {
            for (i, a) in h.join().unwrap() {
                built[i] = Some(a);
            }
        }
    });
    let mut streams: Vec<Vec<Bytes>> = (0..p.hosts)
        .map(|h| vec![Bytes::new(); p.on_host(h) * (1 + p.per_account)])
        .collect();
    let mut dids = Vec::with_capacity(p.accounts);
    let mut keys = Vec::with_capacity(p.accounts);
    let mut per_account_frames = Vec::with_capacity(p.accounts);
    for (i, a) in built.into_iter().enumerate() {
        let (did, key, frames) = a.unwrap();
        let (m, l) = (p.on_host(i % p.hosts), i / p.hosts);
        for (j, f) in frames.iter().enumerate() {
            streams[i % p.hosts][m * j + l] = f.clone();
        }
        dids.push(did);
        keys.push(key);
        per_account_frames.push(frames);
    }
    // Timed frames in the order the hosts interleave them (round-robin).
    let mut timed = Vec::with_capacity(p.timed());
    for j in 1..=p.per_account {
        for (i, frames) in per_account_frames.iter().enumerate() {
            timed.push((i, frames[j].clone()));
        }
    }
    Workload {
        dids,
        keys,
        warm: (0..p.hosts).map(|h| p.on_host(h)).collect(),
        streams: streams.into_iter().map(Arc::new).collect(),
        timed,
    }
}

// ---------------------------------------------------------------------------
// Ceilings

/// Runs `work` over `items` on one thread per core (strided split) and
/// returns items per second.
pub fn on_all_cores<T: Sync>(items: &[T], work: impl Fn(&T) + Sync) -> f64 {
    let threads = cores().min(items.len().max(1));
    let started = Instant::now();
    std::thread::scope(|s| {
        for t in 0..threads {
            let work = &work;
            s.spawn(move || items.iter().skip(t).step_by(threads).for_each(work));
        }
    });
    items.len() as f64 / started.elapsed().as_secs_f64()
}

pub struct Ceilings {
    pub verify: f64,
    pub signature: f64,
}

/// Decode + strict `verify_commit` (with inversion) of every timed frame, and
/// the signature check alone, each on one thread per core: events/s.
pub fn measure_ceilings(w: &Workload, signed: &[(usize, Vec<u8>, [u8; 64])]) -> Ceilings {
    let opts = VerifyOptions::strict_now();
    let verify = on_all_cores(&w.timed, |(account, frame)| {
        let Ok(Event::Commit(ev)) = Event::decode(frame) else {
            panic!("a #commit frame")
        };
        let v = verify_commit(&ev, &w.keys[*account], &opts).expect("valid commit");
        assert!(v.inverted, "inversion ran");
        std::hint::black_box(v);
    });
    let signature = on_all_cores(signed, |(account, unsigned, sig)| {
        w.keys[*account]
            .verify(std::hint::black_box(unsigned), sig)
            .expect("valid signature");
    });
    Ceilings { verify, signature }
}

/// Each timed commit's unsigned bytes and signature.
pub fn unsigned_commits(w: &Workload) -> Vec<(usize, Vec<u8>, [u8; 64])> {
    w.timed
        .iter()
        .map(|(account, frame)| {
            let Ok(Event::Commit(ev)) = Event::decode(frame) else {
                panic!("a #commit frame")
            };
            let car = Car::parse(ev.blocks, CarLimits::FIREHOSE).unwrap();
            let commit = Commit::decode(car.get(&ev.commit).unwrap()).unwrap();
            (
                *account,
                commit.unsigned_bytes(),
                commit.sig.try_into().unwrap(),
            )
        })
        .collect()
}
