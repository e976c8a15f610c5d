//! How the log is opened: caller-facing [`LogOptions`] and the RocksDB tuning
//! behind them.

use std::time::Duration;

use rocksdb::{
    BlockBasedOptions, Cache, ColumnFamilyDescriptor, DBCompressionType, DBRecoveryMode, LogLevel,
    Options, WriteOptions,
};

use super::schema::{CF_ACCOUNTS, CF_EVENTS, CF_HOSTS, CF_META};

/// When an [`append`](super::EventLog::append) counts as committed. Spelled
/// `fsync` / `buffered` in config (`log.durability`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Durability {
    /// The WAL is fsynced before `append` returns: a committed batch survives
    /// power loss. The default, because design invariant 1 says an event is
    /// durable before anyone sees it.
    #[default]
    Fsync,
    /// The WAL is written (to the OS) but not fsynced: a committed batch
    /// survives a process crash or `kill -9`, not a power loss or kernel
    /// panic. For test networks and benchmarks.
    Buffered,
}

impl Durability {
    /// The config spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Durability::Fsync => "fsync",
            Durability::Buffered => "buffered",
        }
    }

    /// Parses the config spelling, `fsync` / `buffered`.
    pub fn parse(s: &str) -> Option<Durability> {
        [Durability::Fsync, Durability::Buffered]
            .into_iter()
            .find(|d| d.as_str() == s)
    }
}

/// Which seqs an [`append`](super::EventLog::append) accepts after the log's
/// last one.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SeqRule {
    /// Exactly `last_seq + 1`, then `+ 2`, ...: the relay's and PDS mode's
    /// own seqs, which they assign gap-free (design invariant 2), so a gap
    /// is a bug and refused. The default.
    #[default]
    Contiguous,
    /// Any seq above the previous one: a mirror stores its upstream's seqs
    /// unchanged, and an upstream's seqs may have gaps (digest §1.5).
    Increasing,
}

/// Options for [`EventLog::open`](super::EventLog::open).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogOptions {
    /// When an append is committed.
    pub durability: Durability,
    /// Drop events received longer ago than this (the replay window, digest
    /// §1.5). `None` keeps events regardless of age.
    pub retention_max_age: Option<Duration>,
    /// Keep the logical size of retained events (keys + values, before
    /// compression) under this many bytes. `None` means no size bound.
    pub retention_max_bytes: Option<u64>,
    /// How much memory RocksDB may hold for the log.
    pub memory: LogMemory,
    /// Whether appended seqs must continue the log without a gap.
    pub seqs: SeqRule,
}

/// The log's RocksDB memory: the two figures an operator trades against
/// throughput. Each is a ceiling that fills as the log is written and read,
/// not an allocation at open.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LogMemory {
    /// One memtable of the events and of the accounts column families, in
    /// bytes. The events CF keeps up to three, the accounts CF two, so the
    /// memtables hold at most five times this (plus 16 MiB for hosts and
    /// meta). Larger memtables mean fewer flushes and more of the recent tail
    /// served from memory to catching-up subscribers.
    pub memtable_bytes: usize,
    /// The block caches, in bytes: two thirds for the account, host and meta
    /// blocks read on every event, one third for event blocks that catch-up
    /// scans read, kept apart so a scan cannot evict account blocks.
    pub block_cache_bytes: usize,
}

impl Default for LogMemory {
    /// 64 MiB memtables (at most 336 MiB in all) and 192 MiB of block cache:
    /// sized for ingest throughput and catch-up, not for a small machine.
    fn default() -> LogMemory {
        LogMemory {
            memtable_bytes: 64 << 20,
            block_cache_bytes: 192 << 20,
        }
    }
}

impl Default for LogOptions {
    /// Fsync, a 72-hour window, no size bound, gap-free seqs.
    fn default() -> LogOptions {
        LogOptions {
            durability: Durability::Fsync,
            retention_max_age: Some(Duration::from_secs(72 * 3600)),
            retention_max_bytes: None,
            memory: LogMemory::default(),
            seqs: SeqRule::Contiguous,
        }
    }
}

/// Most table files RocksDB keeps open (its default, -1, keeps every one:
/// a long retention window of 64 MiB files would then take thousands of
/// descriptors and starve the sockets). Beyond it, RocksDB closes the least
/// recently used table and reopens it when read again; the hot tail of the
/// log stays open.
pub const MAX_OPEN_FILES: i32 = 256;

/// Descriptors the log may hold: [`MAX_OPEN_FILES`] tables, plus WAL
/// files, the manifest, info logs and the lock. What the HTTP server's
/// connection cap leaves aside for it ([`crate::net::fd_limit::Reserve`]).
pub const FILE_DESCRIPTORS: u64 = MAX_OPEN_FILES as u64 + 32;

/// DB-wide options: create what is missing, keep the WAL on (no manual WAL
/// flush: every write reaches the OS before `append` returns), recover to the
/// last consistent point after a crash.
pub(crate) fn db_options() -> Options {
    let mut o = Options::default();
    o.create_if_missing(true);
    o.create_missing_column_families(true);
    o.set_wal_recovery_mode(DBRecoveryMode::PointInTime);
    // Two cores here; background flush and compaction must not starve ingest.
    o.increase_parallelism(2);
    o.set_max_background_jobs(2);
    // Smooth writeback instead of multi-second stalls at flush time.
    o.set_bytes_per_sync(1 << 20);
    o.set_wal_bytes_per_sync(1 << 20);
    // The small CFs share WAL files with the events; force their flush so WAL
    // files can be recycled.
    o.set_max_total_wal_size(512 << 20);
    o.set_keep_log_file_num(4);
    o.set_max_log_file_size(16 << 20);
    o.set_log_level(LogLevel::Warn);
    o.set_max_open_files(MAX_OPEN_FILES);
    o
}

/// The four column families with their tuning. `compression` is applied to
/// all of them (see [`PREFERRED_COMPRESSION`]).
pub(crate) fn cf_descriptors(
    compression: DBCompressionType,
    memory: LogMemory,
) -> Vec<ColumnFamilyDescriptor> {
    // The state cache: hot accounts are read on every event, so their blocks
    // should stay in memory. The events cache, separate so catch-up scans
    // cannot evict account blocks, holds the recent tail that reconnecting
    // subscribers replay at once (decompressed, so each block is decoded
    // once). A cache that cannot be created leaves RocksDB's default (8 MiB).
    let events_cache_bytes = (memory.block_cache_bytes / 3).max(1 << 20);
    let state_cache_bytes = memory
        .block_cache_bytes
        .saturating_sub(events_cache_bytes)
        .max(1 << 20);
    let state_cache = Cache::new_lru_cache(state_cache_bytes).ok();
    let events_cache = Cache::new_lru_cache(events_cache_bytes).ok();
    let memtable = memory.memtable_bytes.max(1 << 20);

    // events: append-only with increasing keys, read by forward scans. Large
    // memtables (64 MiB by default, at most 3) so flushes are few and
    // the recent tail that most catch-ups read is served from memory; big
    // blocks for scan efficiency; no bloom filter (no point lookups on the
    // hot path). Keys arrive in order, so level compaction is almost only
    // trivial moves; 64 MiB files bound what retention's edge compaction
    // rewrites.
    let mut ev = Options::default();
    ev.set_compression_type(compression);
    ev.set_write_buffer_size(memtable);
    ev.set_max_write_buffer_number(3);
    ev.set_target_file_size_base(64 << 20);
    ev.set_max_bytes_for_level_base(1 << 30);
    ev.set_level_compaction_dynamic_level_bytes(true);
    let mut ev_table = BlockBasedOptions::default();
    ev_table.set_block_size(64 << 10);
    if let Some(c) = &events_cache {
        ev_table.set_block_cache(c);
    }
    ev.set_block_based_table_factory(&ev_table);

    // accounts, hosts, meta: point lookups and small scans; bloom filters and
    // the shared cache.
    let small = |buffer: usize| {
        let mut o = Options::default();
        o.set_compression_type(compression);
        o.set_write_buffer_size(buffer);
        o.set_level_compaction_dynamic_level_bytes(true);
        let mut t = BlockBasedOptions::default();
        t.set_block_size(16 << 10);
        t.set_bloom_filter(10.0, false);
        t.set_cache_index_and_filter_blocks(true);
        t.set_pin_l0_filter_and_index_blocks_in_cache(true);
        if let Some(c) = &state_cache {
            t.set_block_cache(c);
        }
        o.set_block_based_table_factory(&t);
        o
    };

    vec![
        ColumnFamilyDescriptor::new(CF_EVENTS, ev),
        ColumnFamilyDescriptor::new(CF_ACCOUNTS, small(memtable)),
        ColumnFamilyDescriptor::new(CF_HOSTS, small(4 << 20)),
        ColumnFamilyDescriptor::new(CF_META, small(4 << 20)),
    ]
}

/// The compression to try first. LZ4 costs little CPU at flush time and
/// shrinks frames (CBOR records, repeated DIDs and NSIDs) noticeably; CIDs
/// and signatures do not compress, so a stronger codec is not worth it.
/// [`EventLog::open`](super::EventLog::open) falls back to
/// [`DBCompressionType::None`] if the linked RocksDB lacks LZ4.
pub(crate) const PREFERRED_COMPRESSION: DBCompressionType = DBCompressionType::Lz4;

/// Whether an open error means the linked RocksDB lacks the codec.
pub(crate) fn is_missing_codec(err: &rocksdb::Error) -> bool {
    let msg = err.as_ref();
    msg.contains("not linked") || msg.contains("ompression type")
}

/// Write options for `durability`. The WAL is always on.
pub(crate) fn write_options(durability: Durability) -> WriteOptions {
    let mut w = WriteOptions::default();
    w.set_sync(durability == Durability::Fsync);
    w.disable_wal(false);
    w
}
