//! `record` and `replay`: capture any firehose to a file, and play a file
//! back as one or many PDS hosts.
//!
//! Replay has two identity modes:
//! - `captured`: the DID documents saved while recording are served by the
//!   embedded directory (their PDS endpoint pointed at the replay host), and
//!   frames keep their original signatures — real commits verified as real.
//! - `resign`: every DID gets a fresh key derived from the seed and every
//!   commit (and `#sync`) is re-signed with it; the commit's CID changes, its
//!   tree and records do not. Works for any recording, with or without docs.
//!
//! Either way each frame gets its host's own seq and an emit-time stamp, and
//! replay paces frames by their recorded spacing divided by `speed`, or as
//! fast as the sockets take them.

pub mod format;

use std::collections::{HashMap, HashSet};
use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use atrelay::crypto::{Curve, PrivateKey};
use atrelay::repo::commit::Commit;
use atrelay::wire::car::{Car, CarLimits, CarWriter};
use atrelay::wire::frame::Event;
use futures_util::StreamExt;
use serde::Serialize;
use serde_json::Value;
use sha2::{Digest, Sha256};
use tokio_tungstenite::tungstenite::Message;

use crate::directory::{document, Directory};
use crate::emit_time::PLACEHOLDER;
use crate::fleet::host::{self, Host, HostFrame};
use format::{Entry, Reader, Writer};

/// What `record` captured.
#[derive(Debug, Default, Serialize)]
pub struct Recorded {
    pub frames: u64,
    pub bytes: u64,
    pub docs: u64,
    pub doc_errors: u64,
    pub seconds: f64,
}

/// Why a recording could not be made or loaded for replay.
#[derive(Debug, thiserror::Error)]
pub enum RecordingError {
    #[error("connecting to {target}: {err}")]
    Connect {
        target: String,
        err: tokio_tungstenite::tungstenite::Error,
    },
    #[error("reading {target}: {err}")]
    Read {
        target: String,
        err: tokio_tungstenite::tungstenite::Error,
    },
    #[error("{}: {err}", path.display())]
    File { path: PathBuf, err: std::io::Error },
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Http(reqwest::Error),
}

/// Why a DID document could not be fetched while recording (counted, not fatal).
#[derive(Debug, thiserror::Error)]
enum DocFetchError {
    #[error(transparent)]
    Http(#[from] reqwest::Error),
    #[error("{url}: {status}")]
    Status {
        url: String,
        status: reqwest::StatusCode,
    },
}

/// Reads `url` (a `ws://…/subscribeRepos`, with `cursor` if given) into
/// `out` until `max_frames` frames or `max_seconds` pass. With `plc_url`,
/// each new DID's document is fetched and saved before its first frame.
pub async fn record(
    url: &str,
    cursor: Option<u64>,
    out: &Path,
    max_frames: u64,
    max_seconds: f64,
    plc_url: Option<&str>,
) -> Result<Recorded, RecordingError> {
    let target = match cursor {
        Some(c) => format!("{url}?cursor={c}"),
        None => url.to_owned(),
    };
    let (ws, _) = tokio_tungstenite::connect_async(&target)
        .await
        .map_err(|err| RecordingError::Connect {
            target: target.clone(),
            err,
        })?;
    let (_tx, mut rx) = ws.split();
    let at_out = |err| RecordingError::File {
        path: out.to_owned(),
        err,
    };
    let file = std::fs::File::create(out).map_err(at_out)?;
    let mut w = Writer::new(std::io::BufWriter::new(file)).map_err(at_out)?;
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .map_err(RecordingError::Http)?;
    let mut seen: HashSet<String> = HashSet::new();
    let mut r = Recorded::default();
    let started = Instant::now();
    let deadline = started + Duration::from_secs_f64(max_seconds.max(0.0));
    let mut last = started;
    while r.frames < max_frames {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        let msg = match tokio::time::timeout(left, rx.next()).await {
            Err(_) | Ok(None) => break,
            Ok(Some(Err(err))) => return Err(RecordingError::Read { target, err }),
            Ok(Some(Ok(m))) => m,
        };
        let Message::Binary(frame) = msg else {
            continue;
        };
        let now = Instant::now();
        if let (Some(plc), Ok(event)) = (plc_url, Event::decode(&frame)) {
            if let Some(did) = event.did() {
                if seen.insert(did.to_owned()) {
                    match fetch_doc(&http, plc, did).await {
                        Ok(doc) => {
                            w.doc(did, &doc)?;
                            r.docs += 1;
                        }
                        Err(_) => r.doc_errors += 1,
                    }
                }
            }
        }
        w.frame(now.duration_since(last).as_micros() as u64, &frame)?;
        last = now;
        r.frames += 1;
        r.bytes += frame.len() as u64;
    }
    w.finish()?;
    r.seconds = started.elapsed().as_secs_f64();
    Ok(r)
}

async fn fetch_doc(http: &reqwest::Client, plc: &str, did: &str) -> Result<Value, DocFetchError> {
    let url = if let Some(host) = did.strip_prefix("did:web:") {
        format!("https://{}/.well-known/did.json", host.replace("%3A", ":"))
    } else {
        format!("{}/{did}", plc.trim_end_matches('/'))
    };
    let res = http.get(&url).send().await?;
    if !res.status().is_success() {
        return Err(DocFetchError::Status {
            status: res.status(),
            url,
        });
    }
    Ok(res.json().await?)
}

/// How replayed events prove their identity.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, Serialize)]
pub enum IdentityMode {
    Captured,
    Resign,
}

/// A recording loaded and rewritten for its replay hosts.
pub struct Replay {
    pub directory: Directory,
    pub hosts: Vec<Host>,
    /// Host index and release time (µs from the start at 1×) of each frame.
    schedule: Vec<(u32, u64)>,
    pub skipped_no_doc: u64,
    pub skipped_undecodable: u64,
}

/// Summary of one replay.
#[derive(Debug, Serialize)]
pub struct Replayed {
    pub frames: usize,
    pub seconds: f64,
    pub rate: f64,
    pub skipped_no_doc: u64,
    pub skipped_undecodable: u64,
}

fn host_of(did: &str, hosts: usize) -> usize {
    let h = Sha256::digest(did.as_bytes());
    (u64::from_le_bytes(h[..8].try_into().expect("8 bytes")) % hosts as u64) as usize
}

fn resign_key(seed: u64, did: &str) -> PrivateKey {
    let bytes = Sha256::digest(format!("atrelay replay {seed} {did}"));
    PrivateKey::from_bytes(Curve::K256, &bytes).expect("a hash is a valid scalar")
}

/// `blocks` with its root commit re-signed by `key`: (new commit CID, CAR).
fn resign_car(blocks: &[u8], key: &PrivateKey) -> Option<(atrelay::wire::cid::Cid, Vec<u8>)> {
    let car = Car::parse(blocks, CarLimits::FIREHOSE).ok()?;
    let root = *car.root()?;
    let old = Commit::decode(car.get(&root)?).ok()?;
    let signed = Commit::sign(old.did, old.rev, old.data, old.prev, key);
    let mut out = CarWriter::new(&[signed.cid]);
    out.push(&signed.cid, &signed.bytes);
    for b in car.blocks() {
        if b.cid != root {
            out.push(&b.cid, b.data);
        }
    }
    Some((signed.cid, out.finish()))
}

impl Replay {
    /// Loads `file` and stages its frames on `hosts` new hosts.
    pub async fn load(
        file: &Path,
        hosts: usize,
        mode: IdentityMode,
        seed: u64,
        directory_listen: std::net::SocketAddr,
    ) -> Result<Replay, RecordingError> {
        let f = std::fs::File::open(file).map_err(|err| RecordingError::File {
            path: file.to_owned(),
            err,
        })?;
        let mut reader = Reader::new(BufReader::new(f))?;
        let directory = Directory::start(directory_listen).await?;
        let mut started = Vec::new();
        for _ in 0..hosts.max(1) {
            started.push(host::start().await?);
        }
        let hosts = started;
        let mut docs: HashMap<String, Value> = HashMap::new();
        let mut keys: HashMap<String, PrivateKey> = HashMap::new();
        let mut published: HashSet<String> = HashSet::new();
        let mut per_host: Vec<Vec<HostFrame>> = hosts.iter().map(|_| Vec::new()).collect();
        let mut schedule = Vec::new();
        let (mut at, mut no_doc, mut bad) = (0u64, 0u64, 0u64);
        while let Some(entry) = reader.next_entry()? {
            let (delta, bytes) = match entry {
                Entry::Doc { did, doc } => {
                    docs.insert(did, doc);
                    continue;
                }
                Entry::Frame {
                    delta_micros,
                    bytes,
                } => (delta_micros, bytes),
            };
            at += delta;
            let Ok(mut event) = Event::decode(&bytes) else {
                bad += 1;
                continue;
            };
            let Some(did) = event.did().map(str::to_owned) else {
                bad += 1;
                continue;
            };
            let h = host_of(&did, hosts.len());
            let endpoint = hosts[h].endpoint();
            if !published.contains(&did) {
                let doc = match mode {
                    IdentityMode::Captured => docs.get(&did).map(|d| repoint(d, &endpoint)),
                    IdentityMode::Resign => {
                        let key = resign_key(seed, &did);
                        let handle = format!("{}.replay.test", &did[did.len().min(8)..]);
                        let doc = document(&did, &handle, &key.public_key(), &endpoint);
                        keys.insert(did.clone(), key);
                        Some(doc)
                    }
                };
                match doc {
                    Some(doc) => {
                        directory.insert(&did, &doc);
                        published.insert(did.clone());
                    }
                    None => {
                        no_doc += 1;
                        continue;
                    }
                }
            }
            let resigned;
            match (&mut event, keys.get(&did)) {
                (Event::Commit(c), Some(key)) => {
                    let Some(r) = resign_car(c.blocks, key) else {
                        bad += 1;
                        continue;
                    };
                    resigned = r;
                    c.commit = resigned.0;
                    c.blocks = &resigned.1;
                    c.time = PLACEHOLDER;
                }
                (Event::Sync(s), Some(key)) => {
                    let Some(r) = resign_car(s.blocks, key) else {
                        bad += 1;
                        continue;
                    };
                    resigned = r;
                    s.blocks = &resigned.1;
                    s.time = PLACEHOLDER;
                }
                (Event::Commit(c), None) => c.time = PLACEHOLDER,
                (Event::Sync(s), None) => s.time = PLACEHOLDER,
                (Event::Identity(i), _) => i.time = PLACEHOLDER,
                (Event::Account(a), _) => a.time = PLACEHOLDER,
                _ => {}
            }
            let seq = per_host[h].len() as i64 + 1;
            if !event.set_seq(seq) {
                bad += 1;
                continue;
            }
            let mut frame = Vec::with_capacity(bytes.len() + 64);
            event.encode(&mut frame);
            per_host[h].push(HostFrame::new(frame));
            schedule.push((h as u32, at));
        }
        for (host, frames) in hosts.iter().zip(per_host) {
            host.stream.stage(frames);
        }
        Ok(Replay {
            directory,
            hosts,
            schedule,
            skipped_no_doc: no_doc,
            skipped_undecodable: bad,
        })
    }

    pub fn hostnames(&self) -> Vec<String> {
        self.hosts.iter().map(Host::hostname).collect()
    }

    pub fn len(&self) -> usize {
        self.schedule.len()
    }

    /// Releases every frame at its recorded time divided by `speed`
    /// (`None`: all at once). Blocks until all are released.
    pub fn play(&self, speed: Option<f64>, bar: &indicatif::ProgressBar) -> Replayed {
        let started = Instant::now();
        let mut i = 0;
        while i < self.schedule.len() {
            let now = started.elapsed().as_micros() as f64;
            let mut released = vec![0usize; self.hosts.len()];
            while i < self.schedule.len() {
                let (h, at) = self.schedule[i];
                if let Some(s) = speed {
                    if at as f64 / s > now {
                        break;
                    }
                }
                released[h as usize] += 1;
                i += 1;
            }
            for (host, n) in self.hosts.iter().zip(released) {
                if n > 0 {
                    host.stream.release(n);
                    host.stream.wake();
                }
            }
            bar.set_position(i as u64);
            if i < self.schedule.len() {
                std::thread::sleep(Duration::from_micros(250));
            }
        }
        let seconds = started.elapsed().as_secs_f64();
        Replayed {
            frames: self.schedule.len(),
            seconds,
            rate: self.schedule.len() as f64 / seconds.max(1e-9),
            skipped_no_doc: self.skipped_no_doc,
            skipped_undecodable: self.skipped_undecodable,
        }
    }
}

/// A captured document with its PDS service pointed at `endpoint`.
fn repoint(doc: &Value, endpoint: &str) -> Value {
    let mut doc = doc.clone();
    if let Some(services) = doc.get_mut("service").and_then(Value::as_array_mut) {
        for s in services {
            if s.get("id").and_then(Value::as_str) == Some("#atproto_pds") {
                s["serviceEndpoint"] = Value::String(endpoint.to_owned());
            }
        }
    }
    doc
}
