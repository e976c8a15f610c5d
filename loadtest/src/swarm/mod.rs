//! A swarm of firehose subscribers: S websocket clients of a relay's
//! `subscribeRepos`, each counting frames and checking the stream.
//!
//! Every subscriber checks seq continuity (a gap or a repeat is counted, not
//! hidden) and counts frames by type from the header. "Checkers" (the first
//! `check` subscribers) also decode each body fully: they check that every
//! repo's revs strictly increase and measure end-to-end latency from the
//! emit time the generator stamped (see `emit_time`). Decoding is kept to the
//! checkers so a thousand-subscriber swarm does not need more CPU than the
//! relay it measures.
//!
//! A subscriber that loses its connection (or is closed as too slow)
//! reconnects with its last seq as the cursor, which is how a real consumer
//! catches up; `max_rate` caps a subscriber's reading speed to exercise that.

mod subscriber;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::histogram::Histogram;
pub use subscriber::{SubscriberStats, TYPES};

/// Swarm shape.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SwarmConfig {
    pub subscribers: usize,
    /// Start cursor; `None` starts live.
    pub cursor: Option<u64>,
    /// Subscribers that decode fully (latency, per-repo rev order).
    pub check: usize,
    /// Frames per second each subscriber reads at most; 0 = unlimited.
    pub max_rate: f64,
}

impl Default for SwarmConfig {
    fn default() -> SwarmConfig {
        SwarmConfig {
            subscribers: 10,
            cursor: None,
            check: 2,
            max_rate: 0.0,
        }
    }
}

/// Running subscribers.
pub struct Swarm {
    pub stats: Vec<Arc<SubscriberStats>>,
    stop: Arc<AtomicBool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

/// Totals over every subscriber.
#[derive(Clone, Debug, Default, Serialize)]
pub struct SwarmTotals {
    pub subscribers: usize,
    pub connected: usize,
    pub frames: u64,
    pub bytes: u64,
    pub min_frames: u64,
    pub max_frames: u64,
    pub gaps: u64,
    pub duplicates: u64,
    pub rev_violations: u64,
    pub decode_errors: u64,
    pub reconnects: u64,
    pub too_slow: u64,
    /// Frames by type as counted by the first checker.
    pub checker_types: std::collections::BTreeMap<String, u64>,
}

impl Swarm {
    /// Connects `cfg.subscribers` clients to `url` (a `ws://…/subscribeRepos`).
    pub fn start(url: &str, cfg: &SwarmConfig) -> Swarm {
        let stop = Arc::new(AtomicBool::new(false));
        let mut stats = Vec::with_capacity(cfg.subscribers);
        let mut tasks = Vec::with_capacity(cfg.subscribers);
        for i in 0..cfg.subscribers {
            let s = Arc::new(SubscriberStats::new(i < cfg.check));
            stats.push(s.clone());
            tasks.push(tokio::spawn(subscriber::run(
                url.to_owned(),
                cfg.cursor,
                (cfg.max_rate > 0.0).then_some(cfg.max_rate),
                s,
                stop.clone(),
            )));
        }
        Swarm { stats, stop, tasks }
    }

    pub fn totals(&self) -> SwarmTotals {
        let mut t = SwarmTotals {
            subscribers: self.stats.len(),
            min_frames: u64::MAX,
            ..SwarmTotals::default()
        };
        for s in &self.stats {
            let frames = s.frames.load(Ordering::Relaxed);
            t.connected += s.connected.load(Ordering::Relaxed) as usize;
            t.frames += frames;
            t.bytes += s.bytes.load(Ordering::Relaxed);
            t.min_frames = t.min_frames.min(frames);
            t.max_frames = t.max_frames.max(frames);
            t.gaps += s.gaps.load(Ordering::Relaxed);
            t.duplicates += s.duplicates.load(Ordering::Relaxed);
            t.rev_violations += s.rev_violations.load(Ordering::Relaxed);
            t.decode_errors += s.decode_errors.load(Ordering::Relaxed);
            t.reconnects += s.reconnects.load(Ordering::Relaxed);
            t.too_slow += s.too_slow.load(Ordering::Relaxed);
        }
        if t.min_frames == u64::MAX {
            t.min_frames = 0;
        }
        if let Some(first) = self.stats.iter().find(|s| s.checker) {
            for (name, n) in TYPES.iter().zip(first.by_type.iter()) {
                let n = n.load(Ordering::Relaxed);
                if n > 0 {
                    t.checker_types.insert((*name).to_owned(), n);
                }
            }
        }
        t
    }

    /// The checkers' latency since the last call, merged; resets them.
    pub fn take_latency(&self) -> Histogram {
        let mut all = Histogram::new();
        for s in &self.stats {
            if s.checker {
                let mut h = s.latency.lock().expect("latency lock");
                all.merge(&h);
                *h = Histogram::new();
            }
        }
        all
    }

    /// Frames the slowest subscriber has.
    pub fn min_frames(&self) -> u64 {
        self.stats
            .iter()
            .map(|s| s.frames.load(Ordering::Relaxed))
            .min()
            .unwrap_or(0)
    }

    pub async fn stop(self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.tasks {
            t.abort();
            let _ = t.await;
        }
    }
}
