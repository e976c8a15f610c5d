//! The registry of live subscriber sessions, for the admin API's subscriber
//! list (address, cursor, lag).
//!
//! ```
//! use atrelay::fanout::Subscribers;
//!
//! let subscribers = Subscribers::new();
//! let session = subscribers.register(None, Some("my-consumer/1.0".into()), None, 100);
//! session.set_delivered(140); // the session wrote up to seq 140
//! let listed = subscribers.list(150);
//! assert_eq!((listed[0].delivered_seq, listed[0].lag), (140, 10));
//! drop(session); // the session ended
//! assert_eq!(subscribers.count(), 0);
//! ```
//!
//! Sessions register themselves (see [`Peer`] and
//! [`serve_subscriber`](super::serve_subscriber)); the [`Registration`] guard
//! removes the entry on drop, so every way a session ends — returning, an
//! error, its task aborted at shutdown — unlists it.
//!
//! Why a `std::sync::Mutex<BTreeMap>` and not a `DashMap`: the map changes
//! only when a session starts or ends and is read only by the admin listing.
//! The per-batch hot path never touches it: each session publishes its
//! progress through its own `AtomicU64`, shared with the map by an `Arc`. With
//! that few map operations sharding buys nothing, and a `BTreeMap` keyed by id
//! gives the listing its order for free. The lock is held for one insert, one
//! remove or cloning the `Arc`s out, never across an `.await`.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use crate::clock::now_micros;

/// Longest `User-Agent` kept per session, in bytes (longer ones are cut at a
/// character boundary): the header is client-controlled, and the listing
/// should cost bounded memory per subscriber.
pub const MAX_USER_AGENT_BYTES: usize = 256;

/// Source of registry ids: process-wide, so an id is never reused, even by
/// another registry.
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// One live subscriber as the admin sees it.
#[derive(Clone, Debug, serde::Serialize)]
pub struct SubscriberInfo {
    /// Registry id, unique for the process's life.
    pub id: u64,
    /// The peer's address.
    pub remote: Option<SocketAddr>,
    /// The client's `User-Agent`, if it sent one.
    pub user_agent: Option<String>,
    /// When the session started, microseconds since the Unix epoch.
    pub connected_micros: u64,
    /// The cursor the client asked for.
    pub cursor: Option<u64>,
    /// The highest seq written to the socket so far.
    pub delivered_seq: u64,
    /// Events the session is behind the ring's head.
    pub lag: u64,
}

/// Who is on the other end of a session, and the registry to list it in:
/// the optional last argument of [`serve_subscriber`](super::serve_subscriber).
#[derive(Clone, Debug)]
pub struct Peer {
    /// Where the session registers while it runs.
    pub registry: Subscribers,
    /// The client's address, if known.
    pub remote: Option<SocketAddr>,
    /// The client's `User-Agent` (cut to [`MAX_USER_AGENT_BYTES`]).
    pub user_agent: Option<String>,
}

/// Live sessions. Cheap to clone (two `Arc`s); clones share the sessions
/// and the cap.
#[derive(Clone, Default)]
pub struct Subscribers {
    sessions: Arc<Mutex<BTreeMap<u64, Arc<Slot>>>>,
    admission: Arc<Admission>,
}

/// The subscriber cap: how many may be admitted and how many are.
#[derive(Default)]
struct Admission {
    /// 0: no cap.
    limit: usize,
    admitted: AtomicUsize,
}

/// A place among the capped subscribers, held by a session from before its
/// upgrade is answered until it ends; see [`Subscribers::admit`].
#[derive(Debug)]
pub struct Admitted {
    admission: Arc<Admission>,
}

impl Drop for Admitted {
    fn drop(&mut self) {
        self.admission.admitted.fetch_sub(1, Ordering::Relaxed);
    }
}

impl fmt::Debug for Admission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Admission")
            .field("limit", &self.limit)
            .field("admitted", &self.admitted.load(Ordering::Relaxed))
            .finish()
    }
}

/// [`Subscribers::admit`] refused: the cap is reached.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("this server streams to at most {limit} subscribers at once and all are taken; retry later, or use a mirror of this relay")]
pub struct SubscribersFull {
    /// The cap.
    pub limit: usize,
}

/// A session's entry: fixed facts plus its progress, which only the session
/// writes.
struct Slot {
    id: u64,
    remote: Option<SocketAddr>,
    user_agent: Option<String>,
    connected_micros: u64,
    cursor: Option<u64>,
    /// Highest seq fully written to the socket. `Relaxed` is enough: it is a
    /// single monotonic value that publishes no other data.
    delivered: AtomicU64,
}

impl Subscribers {
    /// An empty registry with no cap of its own.
    pub fn new() -> Subscribers {
        Subscribers::default()
    }

    /// An empty registry admitting at most `limit` sessions at once (0: no
    /// cap). Why a cap of its own besides the server's connection cap: a
    /// subscriber holds its socket for hours and costs memory and a share
    /// of every event's writes, so an operator sizes the two apart, and a
    /// full firehose should still leave room for health checks, crawl
    /// requests and the admin API.
    pub fn with_limit(limit: usize) -> Subscribers {
        Subscribers {
            sessions: Arc::default(),
            admission: Arc::new(Admission {
                limit,
                admitted: AtomicUsize::new(0),
            }),
        }
    }

    /// Takes a place for one more session, or says the cap is reached.
    /// Counted apart from [`Subscribers::register`] (which lists a session
    /// once its cursor is resolved) so the check comes before the upgrade
    /// is answered, where a refusal can still be an HTTP error.
    pub fn admit(&self) -> Result<Admitted, SubscribersFull> {
        let a = &self.admission;
        let before = a.admitted.fetch_add(1, Ordering::Relaxed);
        let admitted = Admitted {
            admission: self.admission.clone(),
        };
        if a.limit > 0 && before >= a.limit {
            return Err(SubscribersFull { limit: a.limit }); // `admitted` drops: undone
        }
        Ok(admitted)
    }

    /// The cap (0: none) and how many places are taken now.
    pub fn admission(&self) -> (usize, usize) {
        let a = &self.admission;
        (a.limit, a.admitted.load(Ordering::Relaxed))
    }

    /// Lists a session until the returned guard is dropped. `delivered_seq`
    /// is what the client already has: the ring head for a live start, the
    /// cursor for a replay.
    pub fn register(
        &self,
        remote: Option<SocketAddr>,
        user_agent: Option<String>,
        cursor: Option<u64>,
        delivered_seq: u64,
    ) -> Registration {
        let slot = Arc::new(Slot {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            remote,
            user_agent: user_agent.map(truncate_user_agent),
            connected_micros: now_micros(),
            cursor,
            delivered: AtomicU64::new(delivered_seq),
        });
        self.lock().insert(slot.id, slot.clone());
        Registration {
            registry: self.clone(),
            slot,
        }
    }

    /// The live sessions sorted by id, with `lag` measured against
    /// `ring_head` (the seq of the newest published event).
    pub fn list(&self, ring_head: u64) -> Vec<SubscriberInfo> {
        // Clone the handles out so the lock is not held while strings are
        // copied.
        let slots: Vec<Arc<Slot>> = self.lock().values().cloned().collect();
        slots
            .iter()
            .map(|s| {
                let delivered_seq = s.delivered.load(Ordering::Relaxed);
                SubscriberInfo {
                    id: s.id,
                    remote: s.remote,
                    user_agent: s.user_agent.clone(),
                    connected_micros: s.connected_micros,
                    cursor: s.cursor,
                    delivered_seq,
                    lag: ring_head.saturating_sub(delivered_seq),
                }
            })
            .collect()
    }

    /// How many sessions are live.
    pub fn count(&self) -> usize {
        self.lock().len()
    }

    /// The map; a panic elsewhere cannot leave it inconsistent (every
    /// critical section is one map operation), so poisoning is ignored.
    fn lock(&self) -> MutexGuard<'_, BTreeMap<u64, Arc<Slot>>> {
        self.sessions.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl fmt::Debug for Subscribers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Subscribers")
            .field("count", &self.count())
            .finish()
    }
}

/// A session's listing; dropping it unlists the session.
pub struct Registration {
    registry: Subscribers,
    slot: Arc<Slot>,
}

impl Registration {
    /// The session's registry id.
    pub fn id(&self) -> u64 {
        self.slot.id
    }

    /// Records that every frame up to `seq` has been written to the socket.
    /// One relaxed atomic store: call it per written batch.
    pub fn set_delivered(&self, seq: u64) {
        self.slot.delivered.store(seq, Ordering::Relaxed);
    }

    /// The last value given to [`Registration::set_delivered`] (or at
    /// registration).
    pub fn delivered(&self) -> u64 {
        self.slot.delivered.load(Ordering::Relaxed)
    }
}

impl fmt::Debug for Registration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Registration")
            .field("id", &self.slot.id)
            .field("delivered", &self.delivered())
            .finish()
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.registry.lock().remove(&self.slot.id);
    }
}

/// Cuts `ua` to at most [`MAX_USER_AGENT_BYTES`], at a character boundary.
fn truncate_user_agent(mut ua: String) -> String {
    if ua.len() > MAX_USER_AGENT_BYTES {
        let mut end = MAX_USER_AGENT_BYTES;
        while !ua.is_char_boundary(end) {
            end -= 1;
        }
        ua.truncate(end);
    }
    ua
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admission_stops_at_the_limit_and_frees_on_drop() {
        let subs = Subscribers::with_limit(2);
        let a = subs.admit().unwrap();
        let _b = subs.clone().admit().unwrap();
        assert_eq!(subs.admit().unwrap_err(), SubscribersFull { limit: 2 });
        assert_eq!(subs.admission(), (2, 2), "a refusal takes no place");
        drop(a);
        let _c = subs.admit().unwrap();
        let open = Subscribers::new();
        let held: Vec<_> = (0..1000).map(|_| open.admit().unwrap()).collect();
        assert_eq!(open.admission(), (0, 1000));
        drop(held);
        assert_eq!(open.admission(), (0, 0));
    }

    #[test]
    fn guard_registers_and_unregisters() {
        let subs = Subscribers::new();
        assert_eq!(subs.count(), 0);
        let addr: SocketAddr = "127.0.0.1:4000".parse().unwrap();
        let a = subs.register(Some(addr), Some("a/1".into()), None, 5);
        let b = subs.clone().register(None, None, Some(2), 2);
        assert!(b.id() > a.id());
        assert_eq!(subs.count(), 2);
        let listed = subs.list(5);
        assert_eq!(
            listed.iter().map(|s| s.id).collect::<Vec<_>>(),
            vec![a.id(), b.id()]
        );
        assert_eq!(listed[0].remote, Some(addr));
        assert_eq!(listed[0].user_agent.as_deref(), Some("a/1"));
        assert_eq!(listed[1].cursor, Some(2));
        assert!(listed[0].connected_micros > 0);

        let a_id = a.id();
        drop(a);
        let listed = subs.list(5);
        assert_eq!(listed.len(), 1);
        assert_ne!(listed[0].id, a_id);
        drop(b);
        assert_eq!(subs.count(), 0);
        assert!(subs.list(5).is_empty());
    }

    #[test]
    fn guard_unregisters_when_its_task_is_aborted() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let subs = Subscribers::new();
        rt.block_on(async {
            let s = subs.clone();
            let task = tokio::spawn(async move {
                let _reg = s.register(None, None, None, 0);
                std::future::pending::<()>().await;
            });
            tokio::task::yield_now().await;
            assert_eq!(subs.count(), 1);
            task.abort();
            assert!(task.await.unwrap_err().is_cancelled());
        });
        assert_eq!(subs.count(), 0);
    }

    #[test]
    fn lag_is_head_minus_delivered() {
        let subs = Subscribers::new();
        // Started live at head 100, nothing written yet: no lag at 100.
        let live = subs.register(None, None, None, 100);
        // Replaying from cursor 10.
        let replay = subs.register(None, None, Some(10), 10);
        let lags = |head| {
            subs.list(head)
                .iter()
                .map(|s| (s.delivered_seq, s.lag))
                .collect::<Vec<_>>()
        };
        assert_eq!(lags(100), vec![(100, 0), (10, 90)]);
        assert_eq!(lags(130), vec![(100, 30), (10, 120)]);
        live.set_delivered(130);
        replay.set_delivered(60);
        assert_eq!(live.delivered(), 130);
        assert_eq!(lags(130), vec![(130, 0), (60, 70)]);
        // A head read before the last write must not underflow.
        assert_eq!(lags(120), vec![(130, 0), (60, 60)]);
    }

    #[test]
    fn user_agent_is_bounded() {
        let subs = Subscribers::new();
        let long = "é".repeat(200); // 400 bytes, 2 per char
        let _r = subs.register(None, Some(long), None, 0);
        let ua = subs.list(0)[0].user_agent.clone().unwrap();
        assert_eq!(ua.len(), MAX_USER_AGENT_BYTES);
        let odd = format!("x{}", "é".repeat(200));
        assert_eq!(truncate_user_agent(odd).len(), MAX_USER_AGENT_BYTES - 1);
        assert_eq!(truncate_user_agent("short".into()), "short");
    }
}
