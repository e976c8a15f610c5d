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
//!
//! Threads: the subscribers are dealt out over `threads` OS threads (named
//! `swarm-N`, so `thread_cpu` can tell their CPU from the fleet's), each
//! running a single-threaded tokio runtime over its share of sockets. The
//! default `raw` client reads each socket in 64 KiB chunks into the thread's
//! one buffer and parses frames in place (`raw_client`); the `tungstenite`
//! client is the first, heavier read path, kept for `wss://` and for A/B
//! runs of the generator's own cost.
//!
//! Endpoints: a swarm may be spread over several URLs serving the same
//! stream (a relay and its mirrors), subscriber `i` on URL `i mod n`, so the
//! first `n` checkers land one on each URL and latency can be told apart by
//! endpoint.

mod frame_peek;
mod handshake;
mod raw_client;
mod subscriber;
#[cfg(test)]
mod tests;
mod tungstenite_client;
mod ws_frame;
mod ws_reader;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::{oneshot, Semaphore};

use crate::histogram::Histogram;
use handshake::{Target, TargetError};
pub use subscriber::{SubscriberStats, TYPES};

/// Name prefix of the swarm's threads (under the kernel's 15-byte `comm`).
pub const THREAD_PREFIX: &str = "swarm-";

/// Upgrades one swarm thread has in flight at once: ten thousand
/// subscribers connecting together would overflow the relay's accept
/// backlog (SYNs dropped, retried a second later).
const CONNECTS_IN_FLIGHT: usize = 64;

/// Which websocket client the subscribers use.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum SwarmClient {
    /// Our own reader: 64 KiB reads, frames parsed in place (`ws://` only).
    #[default]
    Raw,
    /// tokio-tungstenite, one message allocated per frame (`wss://` too).
    Tungstenite,
}

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
    /// The raw client paces per read of at most 4 KiB (a few frames), the
    /// tungstenite client per frame.
    pub max_rate: f64,
    /// Threads the subscribers are spread over; 0 = 1. One thread reads a
    /// thousand subscribers at 200 events/s with room to spare (raw client).
    pub threads: usize,
    pub client: SwarmClient,
    /// Raw client: least milliseconds between two reads of a non-checker's
    /// socket; 0 reads on every wake-up. Frames gather in the socket
    /// meanwhile and one read takes them all, so the swarm pays fewer
    /// wake-ups, `read`s and ACKs than frames; a read that fills the 64 KiB
    /// buffer is followed at once by another, so no interval leaves a
    /// reader behind. Default `DEFAULT_READ_INTERVAL_MS`. Checkers, which
    /// time latency, always read at once.
    pub read_interval_ms: u64,
}

/// The raw client's default least time between two reads of a
/// non-checker's socket. Measured on `fanout-1000`, 2 rounds interleaved
/// (BENCHMARKS.md, 2026-12-08), against 10 ms: the generator's CPU per
/// delivery fell 14–22% at 200 events/s, 8–10% at 500/s and not at all at
/// 1,000/s (generator / relay 0.44–0.47 rather than 0.47–0.58); the
/// relay's rose 2–9% at 200/s and 2–5% at 500/s (on loopback the relay's
/// writes also pay the receiver's queueing, which a fuller queue costs a
/// little more). The receive queue then holds about 35 KiB at 1,000
/// events/s, under the initial receive window.
pub const DEFAULT_READ_INTERVAL_MS: u64 = 25;

impl Default for SwarmConfig {
    fn default() -> SwarmConfig {
        SwarmConfig {
            subscribers: 10,
            cursor: None,
            check: 2,
            max_rate: 0.0,
            threads: 1,
            client: SwarmClient::Raw,
            read_interval_ms: DEFAULT_READ_INTERVAL_MS,
        }
    }
}

/// Running subscribers.
pub struct Swarm {
    pub stats: Vec<Arc<SubscriberStats>>,
    /// Each subscriber's URL, an index into the URLs the swarm started with.
    endpoint_of: Vec<usize>,
    endpoints: usize,
    stop: Arc<AtomicBool>,
    /// Dropping one ends its thread's runtime, and every socket in it.
    stop_threads: Vec<oneshot::Sender<()>>,
    threads: Vec<std::thread::JoinHandle<()>>,
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

/// Why a swarm did not start.
#[derive(Debug, thiserror::Error)]
pub enum SwarmStartError {
    #[error("a swarm needs at least one URL")]
    NoUrl,
    #[error(transparent)]
    Target(#[from] TargetError),
    #[error("swarm runtime: {0}")]
    Runtime(std::io::Error),
    #[error("swarm thread: {0}")]
    Thread(std::io::Error),
}

impl Swarm {
    /// Connects `cfg.subscribers` clients to `url` (a `ws://…/subscribeRepos`)
    /// on `cfg.threads` threads of their own.
    pub fn start(url: &str, cfg: &SwarmConfig) -> Result<Swarm, SwarmStartError> {
        Swarm::start_spread(&[url.to_owned()], cfg)
    }

    /// Connects `cfg.subscribers` clients dealt round-robin over `urls`
    /// (each a `ws://…/subscribeRepos` of the same stream).
    pub fn start_spread(urls: &[String], cfg: &SwarmConfig) -> Result<Swarm, SwarmStartError> {
        if urls.is_empty() {
            return Err(SwarmStartError::NoUrl);
        }
        let targets = urls
            .iter()
            .map(|url| match cfg.client {
                SwarmClient::Raw => Target::parse(url).map(|t| Some(Arc::new(t))),
                SwarmClient::Tungstenite => Ok(None),
            })
            .collect::<Result<Vec<_>, TargetError>>()?;
        let urls: Vec<Arc<str>> = urls.iter().map(|u| u.as_str().into()).collect();
        let stop = Arc::new(AtomicBool::new(false));
        let stats: Vec<Arc<SubscriberStats>> = (0..cfg.subscribers)
            .map(|i| Arc::new(SubscriberStats::new(i < cfg.check)))
            .collect();
        let endpoint_of: Vec<usize> = (0..cfg.subscribers).map(|i| i % urls.len()).collect();
        let n_threads = cfg.threads.max(1).min(cfg.subscribers.max(1));
        let max_rate = (cfg.max_rate > 0.0).then_some(cfg.max_rate);
        let mut swarm = Swarm {
            stats: stats.clone(),
            endpoint_of: endpoint_of.clone(),
            endpoints: urls.len(),
            stop: stop.clone(),
            stop_threads: Vec::new(),
            threads: Vec::new(),
        };
        for t in 0..n_threads {
            let mine: Vec<(Arc<SubscriberStats>, usize)> = stats
                .iter()
                .cloned()
                .zip(endpoint_of.iter().copied())
                .skip(t)
                .step_by(n_threads)
                .collect();
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(SwarmStartError::Runtime)?;
            let (tx, rx) = oneshot::channel::<()>();
            let (targets, urls, stop, cursor) =
                (targets.clone(), urls.clone(), stop.clone(), cfg.cursor);
            let interval = Duration::from_millis(cfg.read_interval_ms);
            let thread = std::thread::Builder::new()
                .name(format!("{THREAD_PREFIX}{t}"))
                .spawn(move || {
                    rt.block_on(async move {
                        let connecting = Arc::new(Semaphore::new(CONNECTS_IN_FLIGHT));
                        for (s, e) in mine {
                            match &targets[e] {
                                Some(target) => tokio::spawn(raw_client::run(
                                    target.clone(),
                                    raw_client::Reading {
                                        cursor,
                                        max_rate,
                                        interval: if s.checker { Duration::ZERO } else { interval },
                                    },
                                    s,
                                    stop.clone(),
                                    connecting.clone(),
                                )),
                                None => tokio::spawn(tungstenite_client::run(
                                    urls[e].clone(),
                                    cursor,
                                    max_rate,
                                    s,
                                    stop.clone(),
                                )),
                            };
                        }
                        let _ = rx.await;
                    });
                    // Dropping the runtime drops every subscriber task and
                    // closes its socket.
                    drop(rt);
                })
                .map_err(SwarmStartError::Thread)?;
            swarm.stop_threads.push(tx);
            swarm.threads.push(thread);
        }
        Ok(swarm)
    }

    pub fn totals(&self) -> SwarmTotals {
        self.totals_where(|_| true)
    }

    /// Totals of the subscribers on each URL, in the order given.
    pub fn endpoint_totals(&self) -> Vec<SwarmTotals> {
        (0..self.endpoints)
            .map(|e| self.totals_where(|i| self.endpoint_of[i] == e))
            .collect()
    }

    /// Totals over the subscribers whose index `pick` takes.
    fn totals_where(&self, pick: impl Fn(usize) -> bool) -> SwarmTotals {
        let mine = || {
            self.stats
                .iter()
                .enumerate()
                .filter(|(i, _)| pick(*i))
                .map(|(_, s)| s)
        };
        let mut t = SwarmTotals {
            subscribers: mine().count(),
            min_frames: u64::MAX,
            ..SwarmTotals::default()
        };
        for s in mine() {
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
        if let Some(first) = mine().find(|s| s.checker) {
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
        Histogram::merged(&self.take_latency_by_endpoint())
    }

    /// The checkers' latency since the last call, merged per URL; resets
    /// them.
    pub fn take_latency_by_endpoint(&self) -> Vec<Histogram> {
        let mut out: Vec<Histogram> = (0..self.endpoints).map(|_| Histogram::new()).collect();
        for (s, e) in self.stats.iter().zip(&self.endpoint_of) {
            if s.checker {
                let mut h = s.latency.lock().expect("latency lock");
                out[*e].merge(&h);
                *h = Histogram::new();
            }
        }
        out
    }

    /// Frames the slowest subscriber has.
    pub fn min_frames(&self) -> u64 {
        self.stats
            .iter()
            .map(|s| s.frames.load(Ordering::Relaxed))
            .min()
            .unwrap_or(0)
    }

    /// Closes every subscriber and waits for the swarm's threads to end.
    pub fn stop(self) {
        drop(self)
    }
}

impl Drop for Swarm {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        self.stop_threads.clear();
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}
