//! The broadcast ring: the last `capacity` published frames, indexed by seq,
//! shared lock-free between one writer (the sequencer) and every subscriber.
//!
//! ```
//! use atrelay::fanout::Ring;
//! use bytes::Bytes;
//!
//! let ring = Ring::new(4, 10); // the log already holds seqs up to 10
//! assert_eq!((ring.head(), ring.oldest()), (10, 11)); // nothing in the ring yet
//! for seq in 11..=16 {
//!     ring.publish(seq, Bytes::from(format!("frame {seq}")));
//! }
//! assert_eq!(ring.head(), 16);
//! assert_eq!(ring.oldest(), 13); // 11 and 12 were overwritten
//! assert_eq!(ring.get(12), None); // a reader must go to the log for it
//! assert_eq!(ring.get(16).as_deref(), Some(&b"frame 16"[..]));
//! ```
//!
//! # Why this shape
//!
//! - **No per-subscriber queue.** A frame is published once, into one slot;
//!   every subscriber keeps only its own cursor (`next` seq) and copies
//!   `Bytes` handles (a refcount increment) out of the ring when its socket
//!   can take more. The writer's cost per event is O(1) whatever the number of
//!   subscribers, and a slow subscriber holds no memory of its own: once it
//!   falls more than `capacity` frames behind, its frames are simply gone from
//!   the ring and it reads them from the log instead.
//! - **The writer never waits.** Publishing swaps a pointer into a slot; it
//!   takes no lock a reader could hold and never checks where readers are.
//! - **Epoch reclamation for slots.** A reader copies the `Bytes` handle out of
//!   a slot while the writer may be replacing that very slot. Freeing the old
//!   entry immediately would be a use-after-free; reference-counting the slot
//!   itself would make every read contend on the slot's counter. Epoch-based
//!   reclamation (`crossbeam::epoch`) lets readers read without writing any
//!   shared cache line except the frame's own refcount, and defers the free of
//!   a replaced entry until no reader pinned before the swap can still see it.
//! - **A seq check per slot.** Each entry carries its seq, so a reader can tell
//!   "not yet published" and "already overwritten" from "here it is" without
//!   any coordination with the writer beyond one pointer load.
//! - **Gaps are marked once.** The relay's own seqs are consecutive, but a
//!   mirror publishes its upstream's seqs, which may skip some (digest §1.5).
//!   A publish that skips seqs leaves one marker in the slot of the first
//!   skipped seq, naming the seq published after the gap. A reader is always
//!   at "the seq after the last one it took", i.e. at that first skipped seq,
//!   so it jumps the whole gap in one step: no walk over every missing seq,
//!   and no trip to the log for it. (A reader whose cursor points inside a
//!   gap finds no marker and reads the log once, which skips the rest.)

use std::pin::pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use crossbeam::epoch::{self, Atomic, Guard, Owned};
use crossbeam::utils::CachePadded;

use super::wakeup::{Coalescing, Wakeup};

/// One published frame, owned by its slot until the next lap replaces it.
struct Entry {
    seq: u64,
    frame: Bytes,
    /// 0 for a frame. For a gap marker (`frame` empty, `seq` the first seq
    /// the writer skipped): the seq published right after the gap.
    resume: u64,
}

/// State shared by every [`Ring`] handle.
struct Inner {
    /// Last published seq (or the start seq). Written by the writer only,
    /// after the slot; readers that see it may read every slot up to it.
    head: CachePadded<AtomicU64>,
    /// Who waits in [`Ring::wait_beyond`] and when they are woken: at once,
    /// or coalesced into shared ticks when many wait (`wakeup.rs`).
    wakeup: Arc<Wakeup>,
    /// `capacity` slots; seq `s` lives in `slots[s & mask]`.
    slots: Box<[Atomic<Entry>]>,
    mask: u64,
    /// The seq the ring started after: nothing at or below it is ever in the
    /// ring (it is only in the log, if anywhere). Raised once, by the first
    /// publish, to just below that seq: a mirror's first seq may be far
    /// above its log's head, and the seqs between are in neither the ring
    /// nor the log, so they must not count as in the ring's window.
    start: AtomicU64,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // SAFETY: we have `&mut self`, so no other handle and no reader exists;
        // every non-null slot pointer is an owned, live `Entry` that nobody else
        // will free (replaced entries were handed to the epoch collector and
        // are no longer in any slot).
        unsafe {
            let guard = epoch::unprotected();
            for slot in self.slots.iter() {
                let p = slot.load(Ordering::Relaxed, guard);
                if !p.is_null() {
                    drop(p.into_owned());
                }
            }
        }
    }
}

/// A fixed-capacity broadcast ring of encoded frames, indexed by seq.
///
/// Cloning is cheap (an `Arc`); all clones share the same slots. There is one
/// writer (the sequencer, calling [`Ring::publish`] with consecutive seqs, or
/// a mirror's writer, with increasing ones) and
/// any number of readers ([`Ring::get`], [`Ring::read_batch`],
/// [`Ring::wait_beyond`]). See the module docs for why it is built this way.
#[derive(Clone)]
pub struct Ring {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Ring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ring")
            .field("capacity", &self.capacity())
            .field("head", &self.head())
            .field("oldest", &self.oldest())
            .finish()
    }
}

/// Counts a task as waiting for the lifetime of the guard.
struct WaitingGuard<'a>(&'a AtomicUsize);

impl<'a> WaitingGuard<'a> {
    fn new(count: &'a AtomicUsize) -> WaitingGuard<'a> {
        count.fetch_add(1, Ordering::SeqCst);
        WaitingGuard(count)
    }
}

impl Drop for WaitingGuard<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Ring {
    /// A ring of `capacity` slots (rounded up to a power of two, at least 1)
    /// continuing a log whose last seq is `last_seq_in_log` (0 for an empty
    /// log): the first publish must be `last_seq_in_log + 1` (above it, for
    /// a mirror's log, whose seqs are its upstream's).
    ///
    /// Capacity is a power of two so the slot index is a mask, not a division.
    /// Size it to cover a few seconds of peak traffic: subscribers further
    /// behind than that read from the log.
    pub fn new(capacity: usize, last_seq_in_log: u64) -> Ring {
        Ring::with_coalescing(capacity, last_seq_in_log, Coalescing::OFF)
    }

    /// [`Ring::new`] whose wake-ups of waiting readers are coalesced as
    /// `coalescing` says (see [`Coalescing`]): the relay's ring, which
    /// many subscribers wait on.
    pub fn with_coalescing(capacity: usize, last_seq_in_log: u64, coalescing: Coalescing) -> Ring {
        let capacity = capacity.max(1).next_power_of_two();
        let slots = (0..capacity).map(|_| Atomic::null()).collect();
        Ring {
            inner: Arc::new(Inner {
                head: CachePadded::new(AtomicU64::new(last_seq_in_log)),
                wakeup: Arc::new(Wakeup::new(coalescing)),
                slots,
                mask: capacity as u64 - 1,
                start: AtomicU64::new(last_seq_in_log),
            }),
        }
    }

    /// Number of slots (a power of two).
    pub fn capacity(&self) -> usize {
        self.inner.slots.len()
    }

    /// Publishes the frame for `seq`, overwriting the frame `capacity` seqs
    /// older, then advances [`head`](Ring::head) and wakes waiting readers.
    ///
    /// Single writer: `seq` must be above `head()` (checked in debug builds);
    /// the relay's seqs are exactly `head() + 1`, a mirror's may skip some
    /// (see "Gaps are marked once" in the module docs). The frame must
    /// already be durable in the log, because readers
    /// that fall behind the ring rely on the log holding every seq ≤ head.
    /// Never blocks and never looks at readers.
    pub fn publish(&self, seq: u64, frame: Bytes) {
        let guard = epoch::pin();
        self.store(seq, frame, &guard);
        drop(guard);
        self.wake();
    }

    /// Publishes a run of increasing frames (as [`Ring::publish`] does one),
    /// pinning the epoch once and waking readers once at the end: the
    /// sequencer publishes whole group commits this way.
    pub fn publish_batch<I: IntoIterator<Item = (u64, Bytes)>>(&self, frames: I) {
        let guard = epoch::pin();
        let mut any = false;
        for (seq, frame) in frames {
            self.store(seq, frame, &guard);
            any = true;
        }
        drop(guard);
        if any {
            self.wake();
        }
    }

    fn store(&self, seq: u64, frame: Bytes, guard: &Guard) {
        let inner = &*self.inner;
        let head = inner.head.load(Ordering::Relaxed);
        debug_assert!(seq > head, "Ring::publish: seqs must increase");
        if head == inner.start.load(Ordering::Relaxed) {
            // The first publish (see `Inner::start`); readers that see the
            // new head see this too (it is stored before the head).
            inner.start.store(seq - 1, Ordering::Release);
        }
        let gap_start = head + 1;
        // A marker only where it stays in the window once `seq` is in: a
        // reader further back is below `oldest()` and goes to the log anyway
        // (and the marker's slot cannot be `seq`'s, a full lap away).
        if seq > gap_start && seq - gap_start < inner.mask + 1 {
            self.put(gap_start, Bytes::new(), seq, guard);
        }
        self.put(seq, frame, 0, guard);
        // SeqCst pairs with the SeqCst `waiting` increment and head re-check
        // in `wait_beyond` (a store-load handshake, see `wake`).
        inner.head.store(seq, Ordering::SeqCst);
    }

    /// Replaces the entry in `seq`'s slot.
    fn put(&self, seq: u64, frame: Bytes, resume: u64, guard: &Guard) {
        let slot = &self.inner.slots[(seq & self.inner.mask) as usize];
        let entry = Owned::new(Entry { seq, frame, resume });
        let old = slot.swap(entry, Ordering::AcqRel, guard);
        if !old.is_null() {
            // SAFETY: `old` was just unlinked from its slot by this swap, so no
            // reader pinning from now on can reach it; readers pinned earlier
            // are covered by deferring the free past their epoch. Each swap
            // returns a given pointer exactly once, so it is freed once.
            unsafe { guard.defer_destroy(old) };
        }
    }

    /// Wakes tasks in [`Ring::wait_beyond`], if any, now or at the end of
    /// the current coalescing interval. The `waiting` load is ordered after
    /// the head store (both SeqCst); a waiter increments `waiting` before
    /// re-checking head (both SeqCst). So either we see the waiter and wake
    /// it, or it sees our new head: no lost wakeup.
    fn wake(&self) {
        Wakeup::published(&self.inner.wakeup);
    }

    /// Changes how wake-ups are coalesced, from the next publish on.
    pub fn set_coalescing(&self, coalescing: Coalescing) {
        self.inner.wakeup.set(coalescing);
    }

    /// How wake-ups are coalesced.
    pub fn coalescing(&self) -> Coalescing {
        self.inner.wakeup.get()
    }

    /// Wakes of waiting readers so far: (done at publish, deferred to the
    /// end of a coalescing interval).
    pub fn wakes(&self) -> (u64, u64) {
        let w = &self.inner.wakeup;
        (
            w.wakes_immediate.load(Ordering::Relaxed),
            w.wakes_deferred.load(Ordering::Relaxed),
        )
    }

    /// How many readers wait in [`Ring::wait_beyond`] now.
    pub fn waiting(&self) -> usize {
        self.inner.wakeup.waiting.load(Ordering::Relaxed)
    }

    /// The last published seq, or the `last_seq_in_log` the ring was created
    /// with if nothing was published yet. Every seq ≤ head is in the log.
    pub fn head(&self) -> u64 {
        self.inner.head.load(Ordering::Acquire)
    }

    /// The lowest seq still in the ring; `head() + 1` when the ring holds
    /// nothing. Seqs below it must be read from the log. Only ever grows; by
    /// the time a caller uses it, it may already be stale, which
    /// [`Ring::get`] detects.
    pub fn oldest(&self) -> u64 {
        let head = self.head();
        let cap = self.inner.mask + 1;
        let start = self.inner.start.load(Ordering::Acquire);
        (start + 1).max((head + 1).saturating_sub(cap))
    }

    /// The frame of `seq`, or `None` if it is not published yet or was
    /// already overwritten (then read it from the log). The returned `Bytes`
    /// shares the ring's allocation: no copy.
    pub fn get(&self, seq: u64) -> Option<Bytes> {
        let guard = epoch::pin();
        self.load(seq, &guard).cloned()
    }

    fn load<'g>(&self, seq: u64, guard: &'g Guard) -> Option<&'g Bytes> {
        self.load_entry(seq, guard)
            .filter(|e| e.resume == 0)
            .map(|e| &e.frame)
    }

    /// `seq`'s entry, frame or gap marker, if its slot holds it.
    fn load_entry<'g>(&self, seq: u64, guard: &'g Guard) -> Option<&'g Entry> {
        let slot = &self.inner.slots[(seq & self.inner.mask) as usize];
        let p = slot.load(Ordering::Acquire, guard);
        // SAFETY: a non-null slot pointer is a live `Entry`; it cannot be freed
        // while `guard` is pinned (frees are deferred through the epoch).
        let entry = unsafe { p.as_ref() }?;
        (entry.seq == seq).then_some(entry)
    }

    /// Hands `f` the frames from seq `from` on, in seq order and jumping the
    /// gaps the writer marked, as many as are in the ring, up to
    /// `max_frames` frames and `max_bytes` bytes (but always at least one
    /// frame if `from` is in the ring, however large). Returns how many were
    /// handed over (the caller continues after the last seq `f` got, not at
    /// `from + n`); 0 means `from` is not in the ring (not yet published,
    /// overwritten, or inside an unmarked gap). Pins the epoch once for the
    /// whole batch.
    pub fn read_batch(
        &self,
        from: u64,
        max_frames: usize,
        max_bytes: usize,
        mut f: impl FnMut(u64, Bytes),
    ) -> usize {
        let guard = epoch::pin();
        let mut n = 0;
        let mut bytes = 0usize;
        let mut seq = from;
        while n < max_frames {
            let Some(entry) = self.load_entry(seq, &guard) else {
                break;
            };
            if entry.resume != 0 {
                seq = entry.resume;
                continue;
            }
            let frame = &entry.frame;
            if n > 0 && bytes + frame.len() > max_bytes {
                break;
            }
            bytes += frame.len();
            f(seq, frame.clone());
            n += 1;
            seq += 1;
        }
        n
    }

    /// Completes once [`head`](Ring::head) is greater than `seq`, i.e. once the
    /// frame `seq + 1` is published (immediately if it already is).
    ///
    /// Cannot miss a wakeup: it registers interest first, then re-checks the
    /// head, and only then sleeps. Cancel-safe (dropping it just unregisters).
    pub async fn wait_beyond(&self, seq: u64) {
        if self.head() > seq {
            return;
        }
        let inner = &*self.inner;
        let _waiting = WaitingGuard::new(&inner.wakeup.waiting);
        loop {
            let mut notified = pin!(inner.wakeup.notify.notified());
            notified.as_mut().enable();
            if inner.head.load(Ordering::SeqCst) > seq {
                return;
            }
            notified.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::sync::atomic::AtomicBool;
    use std::time::Duration;

    /// A frame whose content says which seq it is, and whose length varies.
    fn frame_for(seq: u64) -> Bytes {
        let mut v = seq.to_be_bytes().to_vec();
        v.resize(8 + (seq % 37) as usize, (seq % 251) as u8);
        Bytes::from(v)
    }

    fn check_frame(seq: u64, frame: &[u8]) {
        assert_eq!(frame, &frame_for(seq)[..], "frame content for seq {seq}");
    }

    #[test]
    fn capacity_rounds_up() {
        assert_eq!(Ring::new(0, 0).capacity(), 1);
        assert_eq!(Ring::new(5, 0).capacity(), 8);
        assert_eq!(Ring::new(1024, 0).capacity(), 1024);
    }

    #[test]
    fn empty_ring_starts_after_the_log() {
        let ring = Ring::new(8, 41);
        assert_eq!(ring.head(), 41);
        assert_eq!(ring.oldest(), 42);
        assert_eq!(ring.get(41), None);
        assert_eq!(ring.get(42), None);
        assert_eq!(ring.get(0), None);
        assert_eq!(ring.read_batch(42, 10, 1000, |_, _| ()), 0);
    }

    #[test]
    fn publish_get_overwrite() {
        let ring = Ring::new(4, 0);
        for seq in 1..=3 {
            ring.publish(seq, frame_for(seq));
        }
        assert_eq!((ring.head(), ring.oldest()), (3, 1));
        for seq in 1..=3 {
            check_frame(seq, &ring.get(seq).unwrap());
        }
        assert_eq!(ring.get(4), None);
        for seq in 4..=10 {
            ring.publish(seq, frame_for(seq));
        }
        assert_eq!((ring.head(), ring.oldest()), (10, 7));
        assert_eq!(ring.get(6), None);
        assert_eq!(ring.get(2), None); // same slot as 10, overwritten
        for seq in 7..=10 {
            check_frame(seq, &ring.get(seq).unwrap());
        }
    }

    #[test]
    fn publish_batch_is_publish() {
        let ring = Ring::new(8, 100);
        ring.publish_batch((101..=105).map(|s| (s, frame_for(s))));
        ring.publish_batch(std::iter::empty());
        assert_eq!(ring.head(), 105);
        check_frame(103, &ring.get(103).unwrap());
    }

    #[test]
    fn gaps_are_jumped_by_readers() {
        let ring = Ring::new(8, 10);
        // 11, then a gap of 12..=14, 15, a gap wider than the ring, 40.
        for seq in [11, 15, 16, 40] {
            ring.publish(seq, frame_for(seq));
        }
        assert_eq!(ring.head(), 40);
        assert_eq!(ring.get(12), None, "a marker is not a frame");
        // The gap 17..=39 is wider than the ring: no marker (17 is out of
        // the window), and 33, inside the window, is inside the gap.
        assert_eq!(ring.oldest(), 33);
        assert_eq!(ring.read_batch(33, 100, usize::MAX, |_, _| ()), 0);
        let mut got = Vec::new();
        ring.read_batch(40, 100, usize::MAX, |s, _| got.push(s));
        assert_eq!(got, [40]);
        // 11, 15, 16 are a lap behind 40: gone from the ring.
        assert_eq!(ring.read_batch(16, 100, usize::MAX, |_, _| ()), 0);

        let ring = Ring::new(16, 0);
        for seq in [1, 2, 5, 6, 9] {
            ring.publish(seq, frame_for(seq));
        }
        let mut got = Vec::new();
        ring.read_batch(1, 100, usize::MAX, |s, f| {
            check_frame(s, &f);
            got.push(s)
        });
        assert_eq!(got, [1, 2, 5, 6, 9]);
        // From the first seq after each frame, as a reader resumes.
        let mut got = Vec::new();
        ring.read_batch(3, 2, usize::MAX, |s, _| got.push(s));
        assert_eq!(got, [5, 6]);
        // Inside a gap, past its first seq: no marker, the log serves it.
        assert_eq!(ring.read_batch(4, 100, usize::MAX, |_, _| ()), 0);

        // A first seq far above the log's head: the seqs between are not
        // in the ring's window (a cursor there is older than the window).
        let ring = Ring::new(1024, 0);
        ring.publish(500, frame_for(500));
        assert_eq!((ring.oldest(), ring.head()), (500, 500));
    }

    #[test]
    fn read_batch_limits() {
        let ring = Ring::new(16, 0);
        for seq in 1..=10 {
            ring.publish(seq, Bytes::from(vec![seq as u8; 10]));
        }
        let mut got = Vec::new();
        assert_eq!(ring.read_batch(3, 4, 1000, |s, b| got.push((s, b))), 4);
        assert_eq!(
            got.iter().map(|(s, _)| *s).collect::<Vec<_>>(),
            [3, 4, 5, 6]
        );
        assert!(got.iter().all(|(s, b)| b[..] == [*s as u8; 10]));
        // byte limit: 25 bytes fit two 10-byte frames
        assert_eq!(ring.read_batch(1, 100, 25, |_, _| ()), 2);
        // a frame larger than the byte limit still comes alone
        assert_eq!(ring.read_batch(1, 100, 3, |_, _| ()), 1);
        // stops at head
        assert_eq!(ring.read_batch(8, 100, 1000, |_, _| ()), 3);
        assert_eq!(ring.read_batch(11, 100, 1000, |_, _| ()), 0);
    }

    #[test]
    fn frames_are_shared_not_copied() {
        let ring = Ring::new(4, 0);
        let frame = Bytes::from(vec![7u8; 1000]);
        ring.publish(1, frame.clone());
        let got = ring.get(1).unwrap();
        assert_eq!(got.as_ptr(), frame.as_ptr());
    }

    #[test]
    fn dropping_the_ring_frees_the_frames() {
        let witness = Arc::new(());
        struct Tracked(Arc<()>);
        impl AsRef<[u8]> for Tracked {
            fn as_ref(&self) -> &[u8] {
                let _ = &self.0;
                b"x"
            }
        }
        let ring = Ring::new(4, 0);
        for seq in 1..=10 {
            let owner = Tracked(witness.clone());
            ring.publish(seq, Bytes::from_owner(owner));
        }
        // replaced entries go through the epoch collector; force it along
        drop(ring);
        for _ in 0..1000 {
            epoch::pin().flush();
            if Arc::strong_count(&witness) == 1 {
                break;
            }
        }
        assert_eq!(Arc::strong_count(&witness), 1);
    }

    #[tokio::test]
    async fn wait_beyond_wakes_and_returns_at_once_when_published() {
        let ring = Ring::new(8, 0);
        tokio::time::timeout(Duration::from_secs(1), ring.wait_beyond(0))
            .await
            .expect_err("nothing published yet");
        let r = ring.clone();
        let waiter = tokio::spawn(async move { r.wait_beyond(0).await });
        tokio::time::sleep(Duration::from_millis(20)).await;
        ring.publish(1, frame_for(1));
        tokio::time::timeout(Duration::from_secs(5), waiter)
            .await
            .expect("woken")
            .unwrap();
        // already beyond: immediate
        tokio::time::timeout(Duration::from_millis(100), ring.wait_beyond(0))
            .await
            .unwrap();
        assert_eq!(ring.waiting(), 0);
    }

    /// Many waiters on a multi-threaded runtime racing a fast writer: every
    /// waiter must see every seq eventually (a lost wakeup would hang it).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn wait_beyond_never_misses_a_wakeup() {
        let ring = Ring::new(1024, 0);
        const LAST: u64 = 20_000;
        let mut waiters = Vec::new();
        for _ in 0..8 {
            let r = ring.clone();
            waiters.push(tokio::spawn(async move {
                let mut seen = 0;
                while seen < LAST {
                    r.wait_beyond(seen).await;
                    seen = r.head();
                }
                seen
            }));
        }
        let writer = {
            let r = ring.clone();
            std::thread::spawn(move || {
                for seq in 1..=LAST {
                    r.publish(seq, frame_for(seq));
                    if seq % 64 == 0 {
                        std::thread::yield_now();
                    }
                }
            })
        };
        for w in waiters {
            let seen = tokio::time::timeout(Duration::from_secs(30), w)
                .await
                .expect("a waiter hung: lost wakeup")
                .unwrap();
            assert_eq!(seen, LAST);
        }
        writer.join().unwrap();
    }

    /// One writer thread, several reader threads hammering the slots that
    /// are being overwritten: every frame a reader gets must be the frame of
    /// the seq it asked for, and batches must be consecutive.
    #[test]
    fn stress_one_writer_many_readers() {
        let ring = Ring::new(64, 0);
        const LAST: u64 = 300_000;
        let done = Arc::new(AtomicBool::new(false));
        let readers: Vec<_> = (0..3)
            .map(|r| {
                let ring = ring.clone();
                let done = done.clone();
                std::thread::spawn(move || {
                    let mut hits = 0u64;
                    let mut i = r as u64;
                    while !done.load(Ordering::Relaxed) {
                        let head = ring.head();
                        i = i.wrapping_mul(6364136223846793005).wrapping_add(1);
                        // mostly near the head, where the writer is overwriting
                        let back = i % 80;
                        let seq = head.saturating_sub(back).max(1);
                        if let Some(f) = ring.get(seq) {
                            check_frame(seq, &f);
                            hits += 1;
                        }
                        let mut expect = seq;
                        ring.read_batch(seq, 32, usize::MAX, |s, f| {
                            assert_eq!(s, expect);
                            check_frame(s, &f);
                            expect += 1;
                        });
                        assert!(ring.oldest() <= ring.head() + 1);
                    }
                    hits
                })
            })
            .collect();
        for seq in 1..=LAST {
            ring.publish(seq, frame_for(seq));
        }
        done.store(true, Ordering::Relaxed);
        let hits: u64 = readers.into_iter().map(|r| r.join().unwrap()).sum();
        assert!(hits > 0);
        assert_eq!(ring.head(), LAST);
        for seq in LAST - 63..=LAST {
            check_frame(seq, &ring.get(seq).unwrap());
        }
    }

    proptest! {
        /// The ring behaves like "the last `capacity` frames of the full log".
        #[test]
        fn matches_a_model(
            cap in 1usize..20,
            start in 0u64..1000,
            ops in proptest::collection::vec((0u8..3, 0u64..40), 1..60),
        ) {
            let ring = Ring::new(cap, start);
            let cap = ring.capacity() as u64;
            let mut log: Vec<u64> = Vec::new(); // published seqs
            for (op, arg) in ops {
                let head = start + log.len() as u64;
                match op {
                    0 => {
                        for _ in 0..=arg % 7 {
                            let seq = start + log.len() as u64 + 1;
                            ring.publish(seq, frame_for(seq));
                            log.push(seq);
                        }
                    }
                    1 => {
                        let seq = (head + 3).saturating_sub(arg);
                        let in_ring = seq > start && seq <= head && seq + cap > head;
                        let got = ring.get(seq);
                        prop_assert_eq!(got.is_some(), in_ring, "seq {}", seq);
                        if let Some(f) = got {
                            prop_assert_eq!(&f[..], &frame_for(seq)[..]);
                        }
                    }
                    _ => {
                        let from = (head + 2).saturating_sub(arg);
                        let max = (arg % 5 + 1) as usize;
                        let mut got = Vec::new();
                        let n = ring.read_batch(from, max, usize::MAX, |s, _| got.push(s));
                        let lo = ring.oldest();
                        let want: Vec<u64> = if from >= lo && from <= head {
                            (from..=head).take(max).collect()
                        } else {
                            Vec::new()
                        };
                        prop_assert_eq!(n, want.len());
                        prop_assert_eq!(got, want);
                    }
                }
                let head = start + log.len() as u64;
                prop_assert_eq!(ring.head(), head);
                prop_assert_eq!(ring.oldest(), (start + 1).max((head + 1).saturating_sub(cap)));
            }
        }
    }
}
