//! The devnet's traffic generator: what a small social network's accounts
//! do, one operation per [`Traffic::step`], straight through the PDSes' core
//! (no HTTP, so the rate is spent on the network under test, not on JSON).
//!
//! ```no_run
//! # async fn demo(net: &atrelay::devnet::Devnet) {
//! let mut traffic = net.traffic(7);
//! for _ in 0..100 {
//!     let _ = traffic.step().await;
//! }
//! println!("{:?}", traffic.counts());
//! # }
//! ```
//!
//! The mix: posts (some with a link facet), likes and reposts of recent
//! posts (a strong ref `{uri, cid}`), follows, deletes of the account's own
//! earlier records, profile updates (`app.bsky.actor.profile/self`), and now
//! and then a handle change or a deactivation (the account is reactivated
//! when a later step picks it). Every choice comes from one seeded RNG, so a
//! seed replays the same script; TIDs and timestamps still differ per run.
//!
//! Memory is bounded: each account remembers at most [`RECENT_PER_ACCOUNT`]
//! of its records (what it may delete) and the network at most
//! [`RECENT_POSTS`] posts (what may be liked or reposted).

use std::collections::{BTreeMap, VecDeque};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};

use super::DevAccount;
use crate::clock::now_micros;
use crate::pds::service::{Pds, PdsError};
use crate::pds::writes::WriteRequest;
use crate::wire::frame::AccountStatus;
use crate::wire::syntax::format_datetime_micros;

/// Records each account remembers for later deletes.
pub const RECENT_PER_ACCOUNT: usize = 200;
/// Posts the network remembers as like and repost subjects.
pub const RECENT_POSTS: usize = 500;

/// One kind of operation; each is one call on a PDS (one or two events).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    Post,
    Like,
    Repost,
    Follow,
    Delete,
    Profile,
    Handle,
    Deactivate,
    Reactivate,
}

impl Kind {
    /// Every kind, in summary order.
    pub const ALL: [Kind; 9] = [
        Kind::Post,
        Kind::Like,
        Kind::Repost,
        Kind::Follow,
        Kind::Delete,
        Kind::Profile,
        Kind::Handle,
        Kind::Deactivate,
        Kind::Reactivate,
    ];

    /// Its name in the summary.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Post => "post",
            Kind::Like => "like",
            Kind::Repost => "repost",
            Kind::Follow => "follow",
            Kind::Delete => "delete",
            Kind::Profile => "profile",
            Kind::Handle => "handle",
            Kind::Deactivate => "deactivate",
            Kind::Reactivate => "reactivate",
        }
    }
}

/// A record an account wrote and may delete later.
#[derive(Clone, Debug)]
struct Owned {
    collection: &'static str,
    rkey: String,
}

/// A post others may like or repost.
#[derive(Clone, Debug)]
struct PostRef {
    author: usize,
    uri: String,
    cid: String,
}

/// What the generator knows of one account.
#[derive(Debug)]
struct AccountState {
    account: DevAccount,
    active: bool,
    /// Handle changes so far (the next handle's suffix).
    renames: u32,
    recent: VecDeque<Owned>,
}

/// The generator. Not `Clone`: it holds the only copy of the script's state.
pub struct Traffic {
    pds: Vec<Pds>,
    accounts: Vec<AccountState>,
    posts: VecDeque<PostRef>,
    rng: StdRng,
    counts: BTreeMap<Kind, u64>,
    errors: u64,
}

/// Relative weights of the write kinds (handle changes and deactivations
/// are rarer: each costs a PLC round trip or takes an account out).
const WEIGHTS: &[(Kind, u32)] = &[
    (Kind::Post, 35),
    (Kind::Like, 22),
    (Kind::Repost, 7),
    (Kind::Follow, 10),
    (Kind::Delete, 10),
    (Kind::Profile, 8),
    (Kind::Handle, 4),
    (Kind::Deactivate, 4),
];

const WORDS: &[&str] = &[
    "relay", "firehose", "repo", "commit", "hello", "world", "sky", "blue", "today", "coffee",
    "build", "ship", "test", "network", "cursor", "merkle", "tree", "signed", "event", "again",
];

impl Traffic {
    /// A generator over `accounts` (whose `pds` index into `pds`).
    pub fn new(pds: Vec<Pds>, accounts: Vec<DevAccount>, seed: u64) -> Traffic {
        Traffic {
            pds,
            accounts: accounts
                .into_iter()
                .map(|account| AccountState {
                    account,
                    active: true,
                    renames: 0,
                    recent: VecDeque::new(),
                })
                .collect(),
            posts: VecDeque::new(),
            rng: StdRng::seed_from_u64(seed),
            counts: BTreeMap::new(),
            errors: 0,
        }
    }

    /// Operations done so far, per kind.
    pub fn counts(&self) -> &BTreeMap<Kind, u64> {
        &self.counts
    }

    /// Operations done so far.
    pub fn total(&self) -> u64 {
        self.counts.values().sum()
    }

    /// Operations that failed (each also returned its error).
    pub fn errors(&self) -> u64 {
        self.errors
    }

    /// Does one operation and returns its kind. An error leaves the
    /// generator usable; it is counted in [`Traffic::errors`].
    pub async fn step(&mut self) -> Result<Kind, PdsError> {
        let result = self.step_inner().await;
        match &result {
            Ok(kind) => *self.counts.entry(*kind).or_default() += 1,
            Err(_) => self.errors += 1,
        }
        result
    }

    async fn step_inner(&mut self) -> Result<Kind, PdsError> {
        if self.accounts.is_empty() {
            return Err(PdsError::Internal("the devnet has no accounts".into()));
        }
        let who = self.rng.gen_range(0..self.accounts.len());
        if !self.accounts[who].active {
            // Picking a deactivated account ends its deactivation: this
            // makes deactivate / reactivate cycles of random length.
            let (pds, did) = self.target(who);
            pds.set_status(&did, None).await?;
            self.accounts[who].active = true;
            return Ok(Kind::Reactivate);
        }
        let mut kind = self.pick_kind();
        // Fall back to a post when the chosen kind has nothing to act on.
        let others_exist = self.accounts.len() > 1;
        match kind {
            Kind::Like | Kind::Repost if self.posts.is_empty() => kind = Kind::Post,
            Kind::Follow if !others_exist => kind = Kind::Post,
            Kind::Delete if self.accounts[who].recent.is_empty() => kind = Kind::Post,
            // Keep most of the network writing.
            Kind::Deactivate
                if self.accounts.iter().filter(|a| !a.active).count() * 4
                    >= self.accounts.len() =>
            {
                kind = Kind::Post
            }
            _ => {}
        }
        match kind {
            Kind::Post => self.post(who).await?,
            Kind::Like => self.subject_ref(who, "app.bsky.feed.like").await?,
            Kind::Repost => self.subject_ref(who, "app.bsky.feed.repost").await?,
            Kind::Follow => self.follow(who).await?,
            Kind::Delete => self.delete(who).await?,
            Kind::Profile => self.profile(who).await?,
            Kind::Handle => self.rename(who).await?,
            Kind::Deactivate => {
                let (pds, did) = self.target(who);
                pds.set_status(&did, Some(AccountStatus::Deactivated))
                    .await?;
                self.accounts[who].active = false;
            }
            Kind::Reactivate => unreachable!("reactivation is chosen above"),
        }
        Ok(kind)
    }

    fn pick_kind(&mut self) -> Kind {
        let total: u32 = WEIGHTS.iter().map(|(_, w)| w).sum();
        let mut n = self.rng.gen_range(0..total);
        for (kind, w) in WEIGHTS {
            if n < *w {
                return *kind;
            }
            n -= w;
        }
        Kind::Post
    }

    /// The account's PDS (a cheap clone, so no borrow of `self` spans an
    /// await) and DID.
    fn target(&self, who: usize) -> (Pds, String) {
        let a = &self.accounts[who].account;
        (self.pds[a.pds].clone(), a.did.clone())
    }

    fn words(&mut self, n: usize) -> String {
        (0..n)
            .map(|_| WORDS[self.rng.gen_range(0..WORDS.len())])
            .collect::<Vec<_>>()
            .join(" ")
    }

    async fn post(&mut self, who: usize) -> Result<(), PdsError> {
        let n = self.rng.gen_range(3..12);
        let mut text = self.words(n);
        let mut record = json!({
            "$type": "app.bsky.feed.post",
            "text": "",
            "langs": ["en"],
            "createdAt": now(),
        });
        // One post in four carries a link with its facet (byte offsets).
        if self.rng.gen_ratio(1, 4) {
            let url = format!("https://example.com/{}", self.rng.gen_range(0..10_000u32));
            text.push(' ');
            let start = text.len();
            text.push_str(&url);
            record["facets"] = json!([{
                "index": {"byteStart": start, "byteEnd": text.len()},
                "features": [{"$type": "app.bsky.richtext.facet#link", "uri": url}],
            }]);
        }
        record["text"] = Value::String(text);
        let (uri, cid) = self.create(who, "app.bsky.feed.post", record).await?;
        push_bounded(
            &mut self.posts,
            PostRef {
                author: who,
                uri,
                cid,
            },
            RECENT_POSTS,
        );
        Ok(())
    }

    /// A like or repost of a recent post.
    async fn subject_ref(&mut self, who: usize, collection: &'static str) -> Result<(), PdsError> {
        let subject = self.posts[self.rng.gen_range(0..self.posts.len())].clone();
        let record = json!({
            "$type": collection,
            "subject": {"uri": subject.uri, "cid": subject.cid},
            "createdAt": now(),
        });
        self.create(who, collection, record).await.map(drop)
    }

    async fn follow(&mut self, who: usize) -> Result<(), PdsError> {
        let mut other = self.rng.gen_range(0..self.accounts.len() - 1);
        if other >= who {
            other += 1;
        }
        let record = json!({
            "$type": "app.bsky.graph.follow",
            "subject": self.accounts[other].account.did,
            "createdAt": now(),
        });
        self.create(who, "app.bsky.graph.follow", record)
            .await
            .map(drop)
    }

    async fn delete(&mut self, who: usize) -> Result<(), PdsError> {
        let recent = &mut self.accounts[who].recent;
        let i = self.rng.gen_range(0..recent.len());
        let Some(owned) = recent.remove(i) else {
            return Ok(());
        };
        let (pds, did) = self.target(who);
        let write = WriteRequest::Delete {
            collection: owned.collection.into(),
            rkey: owned.rkey.clone(),
        };
        pds.write(&did, vec![write.into()], None).await?;
        if owned.collection == "app.bsky.feed.post" {
            let uri = format!("at://{did}/{}/{}", owned.collection, owned.rkey);
            self.posts.retain(|p| p.author != who || p.uri != uri);
        }
        Ok(())
    }

    async fn profile(&mut self, who: usize) -> Result<(), PdsError> {
        let name = self.accounts[who].account.handle.clone();
        let description = self.words(6);
        let record = json!({
            "$type": "app.bsky.actor.profile",
            "displayName": name.trim_end_matches(".test"),
            "description": description,
        });
        let (pds, did) = self.target(who);
        let write = WriteRequest::Put {
            collection: "app.bsky.actor.profile".into(),
            rkey: "self".into(),
            record,
        };
        pds.write(&did, vec![write.into()], None).await.map(drop)
    }

    /// A new handle: the account's original name with a counter, so it
    /// stays unique across the network. A reused data directory may hold the
    /// next name already (from an earlier run): the counter then moves on.
    async fn rename(&mut self, who: usize) -> Result<(), PdsError> {
        let (pds, did) = self.target(who);
        let mut tries = 0;
        loop {
            let state = &mut self.accounts[who];
            state.renames += 1;
            let base = state
                .account
                .handle
                .split(['.', '-'])
                .next()
                .unwrap_or("user");
            let handle = format!("{base}-{}.test", state.renames);
            match pds.update_handle(&did, &handle).await {
                Ok(()) => {
                    self.accounts[who].account.handle = handle;
                    return Ok(());
                }
                Err(e) if e.name() == "HandleNotAvailable" && tries < 8 => tries += 1,
                Err(e) => return Err(e),
            }
        }
    }

    /// Creates a record under a fresh TID and remembers it for deletes.
    async fn create(
        &mut self,
        who: usize,
        collection: &'static str,
        record: Value,
    ) -> Result<(String, String), PdsError> {
        let (pds, did) = self.target(who);
        let write = WriteRequest::Create {
            collection: collection.into(),
            rkey: None,
            record,
        };
        let out = pds.write(&did, vec![write.into()], None).await?;
        let (uri, cid) = out
            .results
            .into_iter()
            .next()
            .flatten()
            .ok_or_else(|| PdsError::Internal("a create returned no record".into()))?;
        let rkey = uri.rsplit('/').next().unwrap_or_default().to_owned();
        push_bounded(
            &mut self.accounts[who].recent,
            Owned { collection, rkey },
            RECENT_PER_ACCOUNT,
        );
        Ok((uri, cid.to_string()))
    }
}

/// Appends, dropping the oldest beyond `cap`.
fn push_bounded<T>(q: &mut VecDeque<T>, item: T, cap: usize) {
    if q.len() >= cap {
        q.pop_front();
    }
    q.push_back(item);
}

fn now() -> String {
    format_datetime_micros(now_micros())
}
