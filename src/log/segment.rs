//! The segment index: the events CF cut into consecutive seq ranges, each
//! with its logical byte span and receive-time span, kept in `meta`.
//!
//! Retention needs two facts about old events without reading them: how many
//! bytes a prefix of the log holds, and whether all of it is older than the
//! window. A segment record answers both for a whole range at once, so
//! retention is a walk over a few hundred in-memory records followed by one
//! `delete_range` — no scan of the data it drops, and no dependence on
//! RocksDB's compaction-lagged size properties (which keep counting deleted
//! data until compaction, and would make size retention overshoot).
//!
//! Byte offsets are *logical* (key + value of every event ever appended, see
//! [`event_logical_size`](super::schema::event_logical_size)): `bytes_start`
//! of a segment is the total appended before its first event. The open (last)
//! segment's record is rewritten in every append's WriteBatch, so the index is
//! exactly as durable as the events it describes.

use std::collections::BTreeMap;
use std::time::Duration;

use super::error::LogError;
use super::options::LogOptions;
use super::schema::decode_u64s;

/// One contiguous range of seqs: `[first_seq, next segment's first_seq)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Segment {
    /// Logical bytes appended before this segment's first event.
    pub bytes_start: u64,
    /// Logical bytes appended up to and including this segment's last event.
    pub bytes_end: u64,
    /// Smallest `received_micros` in the segment.
    pub min_received: u64,
    /// Largest `received_micros` in the segment.
    pub max_received: u64,
}

impl Segment {
    fn starting(bytes_start: u64, received: u64) -> Segment {
        Segment {
            bytes_start,
            bytes_end: bytes_start,
            min_received: received,
            max_received: received,
        }
    }

    /// Logical bytes in the segment.
    pub fn bytes(&self) -> u64 {
        self.bytes_end - self.bytes_start
    }

    fn add(&mut self, size: u64, received: u64) {
        self.bytes_end += size;
        self.min_received = self.min_received.min(received);
        self.max_received = self.max_received.max(received);
    }

    /// The `meta` value: four u64 BE (start, end, min, max).
    pub fn encode(&self) -> [u8; 32] {
        let mut out = [0u8; 32];
        for (chunk, v) in out.chunks_exact_mut(8).zip([
            self.bytes_start,
            self.bytes_end,
            self.min_received,
            self.max_received,
        ]) {
            chunk.copy_from_slice(&v.to_be_bytes());
        }
        out
    }

    /// Decodes a `meta` value; `first_seq` only names it in errors.
    pub fn decode(first_seq: u64, value: &[u8]) -> Result<Segment, LogError> {
        let [bytes_start, bytes_end, min_received, max_received] =
            decode_u64s::<4>(value, &format!("segment {first_seq}"))?;
        if bytes_end < bytes_start || max_received < min_received {
            return Err(LogError::Corrupt(format!(
                "segment {first_seq}: inverted span (bytes {bytes_start}..{bytes_end}, time {min_received}..{max_received})"
            )));
        }
        Ok(Segment {
            bytes_start,
            bytes_end,
            min_received,
            max_received,
        })
    }
}

/// When the open segment is closed and a new one started. Derived from the
/// retention options so retention can cut within ~1/16 of its bounds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct SegmentPolicy {
    /// Close a segment once it holds this many logical bytes.
    pub max_bytes: u64,
    /// Close a segment once an event arrives this long after its first one.
    pub max_age_micros: u64,
}

impl SegmentPolicy {
    const MIN_BYTES: u64 = 4 << 10;
    const MAX_BYTES: u64 = 64 << 20;
    const MIN_AGE: Duration = Duration::from_secs(1);
    const MAX_AGE: Duration = Duration::from_secs(3600);

    /// 1/16 of each retention bound, clamped to [4 KiB, 64 MiB] and [1 s, 1 h]
    /// (the upper ends when there is no bound): retention then keeps at most
    /// ~1/16 more than asked, and the index stays small (≤ ~1,000 records per
    /// 64 GiB or per 40 days).
    pub fn from_options(opts: &LogOptions) -> SegmentPolicy {
        let max_bytes = opts
            .retention_max_bytes
            .map_or(Self::MAX_BYTES, |b| b / 16)
            .clamp(Self::MIN_BYTES, Self::MAX_BYTES);
        let age = opts
            .retention_max_age
            .map_or(Self::MAX_AGE, |a| a / 16)
            .clamp(Self::MIN_AGE, Self::MAX_AGE);
        SegmentPolicy {
            max_bytes,
            max_age_micros: age.as_micros() as u64,
        }
    }

    fn should_roll(&self, seg: &Segment, received: u64) -> bool {
        seg.bytes() >= self.max_bytes
            || received.saturating_sub(seg.min_received) >= self.max_age_micros
    }
}

/// A prefix of the log that retention may drop: seqs `[first_seq, cut_seq)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct RetentionPlan {
    pub first_seq: u64,
    pub cut_seq: u64,
    pub removed_bytes: u64,
}

/// All segment records, in seq order; mirrors `meta`'s `log/seg/` range.
#[derive(Clone, Debug, Default)]
pub(crate) struct SegmentIndex {
    segs: BTreeMap<u64, Segment>,
}

impl SegmentIndex {
    /// Inserts a record read from disk.
    pub fn insert(&mut self, first_seq: u64, seg: Segment) {
        self.segs.insert(first_seq, seg);
    }

    /// Number of segments.
    pub fn len(&self) -> usize {
        self.segs.len()
    }

    /// Logical bytes of all retained events.
    pub fn retained_bytes(&self) -> u64 {
        match (self.segs.first_key_value(), self.segs.last_key_value()) {
            (Some((_, first)), Some((_, last))) => last.bytes_end - first.bytes_start,
            _ => 0,
        }
    }

    /// Checks the index against the events CF's first and last seq (0 when
    /// empty): same emptiness, first segment starts at the oldest event, the
    /// byte spans chain without holes.
    pub fn validate(&self, oldest_seq: u64, last_seq: u64) -> Result<(), LogError> {
        let Some((&first, _)) = self.segs.first_key_value() else {
            return if last_seq == 0 {
                Ok(())
            } else {
                Err(LogError::Corrupt(format!(
                    "events {oldest_seq}..={last_seq} exist but the segment index is empty"
                )))
            };
        };
        if last_seq == 0 {
            return Err(LogError::Corrupt(format!(
                "segment index starts at seq {first} but the events CF is empty"
            )));
        }
        if first != oldest_seq {
            return Err(LogError::Corrupt(format!(
                "segment index starts at seq {first}, oldest event is {oldest_seq}"
            )));
        }
        if let Some((&last, _)) = self.segs.last_key_value() {
            if last > last_seq {
                return Err(LogError::Corrupt(format!(
                    "segment at seq {last} is beyond the last event {last_seq}"
                )));
            }
        }
        let mut prev: Option<(u64, &Segment)> = None;
        for (&seq, seg) in &self.segs {
            if let Some((pseq, p)) = prev {
                if p.bytes_end != seg.bytes_start {
                    return Err(LogError::Corrupt(format!(
                        "segment {pseq} ends at byte {}, segment {seq} starts at {}",
                        p.bytes_end, seg.bytes_start
                    )));
                }
            }
            prev = Some((seq, seg));
        }
        Ok(())
    }

    /// The segment records an append of `events` (seq, logical size,
    /// received_micros) must write, without changing the index: the open
    /// segment if it grew, and every segment the batch opened.
    pub fn stage(
        &self,
        policy: &SegmentPolicy,
        events: impl IntoIterator<Item = (u64, u64, u64)>,
    ) -> Vec<(u64, Segment)> {
        let mut touched = Vec::new();
        let mut cur = self.segs.last_key_value().map(|(&k, &v)| (k, v));
        let mut dirty = false;
        for (seq, size, received) in events {
            let roll = match &cur {
                Some((_, seg)) => policy.should_roll(seg, received),
                None => true,
            };
            if roll {
                let start = cur.map_or(0, |(_, s)| s.bytes_end);
                if let (Some(c), true) = (cur, dirty) {
                    touched.push(c);
                }
                cur = Some((seq, Segment::starting(start, received)));
            }
            if let Some((_, seg)) = &mut cur {
                seg.add(size, received);
                dirty = true;
            }
        }
        if let (Some(c), true) = (cur, dirty) {
            touched.push(c);
        }
        touched
    }

    /// Applies records returned by [`SegmentIndex::stage`] once their batch
    /// is written.
    pub fn commit(&mut self, staged: &[(u64, Segment)]) {
        for &(seq, seg) in staged {
            self.segs.insert(seq, seg);
        }
    }

    /// The longest prefix of whole, closed segments that is entirely received
    /// before `cutoff_micros`, or must go for the rest to fit in `max_bytes`.
    /// The open (last) segment, which holds the newest event, is never part
    /// of it. `None` when nothing should be removed.
    pub fn plan_retention(
        &self,
        cutoff_micros: Option<u64>,
        max_bytes: Option<u64>,
    ) -> Option<RetentionPlan> {
        let (&first_seq, _) = self.segs.first_key_value()?;
        let mut retained = self.retained_bytes();
        let mut removed_bytes = 0;
        let mut cut_seq = None;
        let closed = self.segs.len().saturating_sub(1);
        let mut iter = self.segs.iter().peekable();
        for _ in 0..closed {
            let Some((_, seg)) = iter.next() else { break };
            let too_old = cutoff_micros.is_some_and(|c| seg.max_received < c);
            let too_big = max_bytes.is_some_and(|m| retained > m);
            if !(too_old || too_big) {
                break;
            }
            retained -= seg.bytes();
            removed_bytes += seg.bytes();
            cut_seq = iter.peek().map(|(&k, _)| k);
        }
        cut_seq.map(|cut_seq| RetentionPlan {
            first_seq,
            cut_seq,
            removed_bytes,
        })
    }

    /// Drops the records of segments before `cut_seq` once their removal is written.
    pub fn remove_before(&mut self, cut_seq: u64) {
        self.segs = self.segs.split_off(&cut_seq);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(bytes: u64, age: u64) -> SegmentPolicy {
        SegmentPolicy {
            max_bytes: bytes,
            max_age_micros: age,
        }
    }

    /// Appends `n` events of `size` bytes at times from `t`, step `dt`.
    fn append(
        idx: &mut SegmentIndex,
        p: &SegmentPolicy,
        first: u64,
        n: u64,
        size: u64,
        t: u64,
        dt: u64,
    ) {
        let staged = idx.stage(p, (0..n).map(|i| (first + i, size, t + i * dt)));
        idx.commit(&staged);
    }

    #[test]
    fn segment_value_round_trip() {
        let s = Segment {
            bytes_start: 1,
            bytes_end: 100,
            min_received: 5,
            max_received: 9,
        };
        assert_eq!(Segment::decode(1, &s.encode()).unwrap(), s);
        assert!(Segment::decode(1, &s.encode()[..31]).is_err());
        let bad = Segment { bytes_end: 0, ..s };
        assert!(Segment::decode(1, &bad.encode()).is_err());
    }

    #[test]
    fn policy_from_options() {
        let p = SegmentPolicy::from_options(&LogOptions::default());
        assert_eq!(p.max_bytes, 64 << 20);
        assert_eq!(p.max_age_micros, 3600 * 1_000_000); // 72h / 16 clamps to 1h
        let small = LogOptions {
            retention_max_bytes: Some(1 << 20),
            retention_max_age: Some(Duration::from_secs(160)),
            ..LogOptions::default()
        };
        let p = SegmentPolicy::from_options(&small);
        assert_eq!(p.max_bytes, 64 << 10);
        assert_eq!(p.max_age_micros, 10_000_000);
    }

    #[test]
    fn rolls_by_size_and_age_and_chains_bytes() {
        let p = policy(100, 1_000);
        let mut idx = SegmentIndex::default();
        append(&mut idx, &p, 1, 10, 30, 0, 1); // 4 events per segment (120 >= 100)
        assert_eq!(idx.len(), 3);
        assert_eq!(idx.retained_bytes(), 300);
        idx.validate(1, 10).unwrap();
        append(&mut idx, &p, 11, 1, 30, 5_000, 0); // time jump: new segment
        assert_eq!(idx.len(), 4);
        idx.validate(1, 11).unwrap();
        assert!(idx.validate(2, 11).is_err());
        assert!(idx.validate(0, 0).is_err());
        assert!(SegmentIndex::default().validate(1, 5).is_err());
        SegmentIndex::default().validate(0, 0).unwrap();
    }

    #[test]
    fn stage_writes_only_touched_segments() {
        let p = policy(1 << 20, u64::MAX);
        let mut idx = SegmentIndex::default();
        append(&mut idx, &p, 1, 3, 10, 0, 1);
        let staged = idx.stage(&p, [(4, 10, 5)]);
        assert_eq!(staged.len(), 1);
        assert_eq!(staged[0].0, 1);
        assert_eq!(staged[0].1.bytes(), 40);
        assert!(idx.stage(&p, []).is_empty());
    }

    #[test]
    fn retention_plans_whole_closed_segments() {
        let p = policy(100, u64::MAX);
        let mut idx = SegmentIndex::default();
        append(&mut idx, &p, 1, 20, 50, 0, 10); // 10 segments of 2 events
        assert_eq!(idx.len(), 10);
        assert_eq!(idx.plan_retention(None, None), None);
        // By size: keep at most 350 bytes -> keep 3 segments (300).
        let plan = idx.plan_retention(None, Some(350)).unwrap();
        assert_eq!(
            plan,
            RetentionPlan {
                first_seq: 1,
                cut_seq: 15,
                removed_bytes: 700
            }
        );
        // By age: events at 0,10,..,190; cutoff 45 -> segments with max < 45: [0,10], [20,30].
        let plan = idx.plan_retention(Some(45), None).unwrap();
        assert_eq!(plan.cut_seq, 5);
        // Both: the further cut wins.
        assert_eq!(idx.plan_retention(Some(45), Some(350)).unwrap().cut_seq, 15);
        // Never the open segment, even with a zero bound or a cutoff in the future.
        assert_eq!(
            idx.plan_retention(Some(u64::MAX), Some(0)).unwrap().cut_seq,
            19
        );
        idx.remove_before(19);
        assert_eq!(idx.len(), 1);
        assert_eq!(idx.retained_bytes(), 100);
        idx.validate(19, 20).unwrap();
        assert_eq!(idx.plan_retention(Some(u64::MAX), Some(0)), None);
    }

    #[test]
    fn age_retention_takes_a_prefix_only() {
        let p = policy(100, u64::MAX);
        let mut idx = SegmentIndex::default();
        append(&mut idx, &p, 1, 2, 50, 0, 1); // old
        append(&mut idx, &p, 3, 2, 50, 1_000, 1); // new
        append(&mut idx, &p, 5, 2, 50, 0, 1); // old again (clock skew)
        append(&mut idx, &p, 7, 2, 50, 2_000, 1);
        assert_eq!(idx.plan_retention(Some(500), None).unwrap().cut_seq, 3);
    }
}
