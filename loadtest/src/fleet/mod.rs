//! A fleet of synthetic PDS hosts: K hosts on loopback, A accounts spread
//! over them, a DID directory naming each account's key and host, and a
//! pacer that releases pre-signed events at a target rate.
//!
//! Work is split so the generator's CPU stays small next to the relay's while
//! the relay is measured: [`Fleet::prepare`] plans a stage (which account
//! does what, in which order), then signs and encodes every frame on all
//! cores before anything is sent; [`Fleet::emit`] only releases them, and
//! the hosts copy each frame once to stamp its emit time.
//!
//! The fleet also knows what the relay must do with every event it staged
//! ([`Tally`]): accepted by type, or dropped / ignored for a named reason for
//! the adversarial share.

pub mod account;
pub mod host;
pub mod mix;
pub mod records;
pub mod synthetic_did;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use indicatif::ProgressBar;
use rand::rngs::StdRng;
use rand::SeedableRng;
use serde::{Deserialize, Serialize};

use crate::directory::{document, Directory};
use account::SyntheticAccount;
use host::{Host, HostFrame};
use mix::{draw_account, Expect, Mix, MixError, Planned};

/// Fleet shape.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FleetConfig {
    /// Synthetic PDS hosts.
    pub hosts: usize,
    /// Accounts in all (account `i` lives on host `i % hosts`).
    pub accounts: usize,
    /// Seeds keys, DIDs, the schedule and record contents.
    pub seed: u64,
    /// Generator threads for signing ahead; 0 = one per core.
    pub threads: usize,
    /// Who acts next: `skewed` (a fifth of the accounts make about half of
    /// the events, as on the network) or `round_robin` (every account in
    /// turn, so N events reach N accounts: the memory scenario).
    pub account_order: AccountOrder,
    /// Register every account at this PLC directory (e.g. `atrelay plc`)
    /// with a signed genesis operation, instead of serving documents from
    /// the embedded directory. One synced write per account there: meant
    /// for fleets of thousands, not millions.
    pub plc_url: Option<String>,
    pub mix: Mix,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AccountOrder {
    #[default]
    Skewed,
    RoundRobin,
}

impl Default for FleetConfig {
    fn default() -> FleetConfig {
        FleetConfig {
            hosts: 4,
            accounts: 200,
            seed: 1,
            threads: 0,
            account_order: AccountOrder::Skewed,
            plc_url: None,
            mix: Mix::default(),
        }
    }
}

impl FleetConfig {
    pub fn validate(&self) -> Result<(), FleetConfigError> {
        if self.hosts == 0 || self.accounts == 0 {
            return Err(FleetConfigError::Empty);
        }
        if self.accounts < self.hosts {
            return Err(FleetConfigError::TooFewAccounts {
                accounts: self.accounts,
                hosts: self.hosts,
            });
        }
        if self.hosts > 20_000 {
            return Err(FleetConfigError::TooManyHosts);
        }
        Ok(self.mix.validate()?)
    }
}

/// Why a [`FleetConfig`] cannot run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FleetConfigError {
    #[error("fleet needs at least one host and one account")]
    Empty,
    #[error("{accounts} accounts cannot cover {hosts} hosts (each host needs one)")]
    TooFewAccounts { accounts: usize, hosts: usize },
    #[error("more than 20,000 hosts would exhaust loopback sockets")]
    TooManyHosts,
    #[error(transparent)]
    Mix(#[from] MixError),
}

/// Expected outcomes, counted.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Tally(pub BTreeMap<Expect, u64>);

impl Tally {
    pub fn add(&mut self, e: Expect, n: u64) {
        *self.0.entry(e).or_default() += n;
    }

    pub fn merge(&mut self, other: &Tally) {
        for (e, n) in &other.0 {
            self.add(*e, *n);
        }
    }

    pub fn total(&self) -> u64 {
        self.0.values().sum()
    }

    /// Events every subscriber must receive.
    pub fn accepted(&self) -> u64 {
        self.0
            .iter()
            .filter(|(e, _)| matches!(e, Expect::Accepted(_)))
            .map(|(_, n)| n)
            .sum()
    }

    /// Counts under one label kind ("accepted", "dropped", "ignored").
    pub fn by_label(&self, kind: &str) -> BTreeMap<&'static str, u64> {
        let mut out = BTreeMap::new();
        for (e, n) in &self.0 {
            let (k, label) = match e {
                Expect::Accepted(l) => ("accepted", *l),
                Expect::Dropped(l) => ("dropped", *l),
                Expect::Ignored(l) => ("ignored", *l),
            };
            if k == kind {
                *out.entry(label).or_default() += n;
            }
        }
        out
    }
}

/// A prepared batch of events: staged on the hosts, not yet released.
pub struct Stage {
    /// Host of each event, in release order.
    order: Vec<u32>,
    pub tally: Tally,
    pub bytes: u64,
    /// Wall time spent signing and encoding.
    pub prepare_seconds: f64,
}

/// What one [`Fleet::emit`] did.
#[derive(Clone, Debug, Serialize)]
pub struct Emitted {
    pub events: usize,
    pub seconds: f64,
    /// Events per second actually released.
    pub rate: f64,
}

/// A running fleet.
pub struct Fleet {
    cfg: FleetConfig,
    pub directory: Directory,
    pub hosts: Vec<Host>,
    accounts: Vec<SyntheticAccount>,
    schedule: StdRng,
    /// Next account in round-robin order.
    next_account: usize,
    /// Accounts with a commit or `#sync` planned so far: the relay holds a
    /// rev for them once those are processed, so a rev rollback is
    /// recognisable as one.
    has_rev: Vec<bool>,
    /// Everything staged so far.
    pub tally: Tally,
}

impl Fleet {
    /// Starts the hosts and the directory (on `directory_listen`; port 0 for
    /// any) and publishes every account's DID document.
    pub async fn start(cfg: FleetConfig, directory_listen: SocketAddr) -> std::io::Result<Fleet> {
        let directory = Directory::start(directory_listen).await?;
        let mut hosts = Vec::with_capacity(cfg.hosts);
        for _ in 0..cfg.hosts {
            hosts.push(host::start().await?);
        }
        let seed = cfg.seed;
        let n = cfg.accounts;
        let threads = generator_threads(cfg.threads);
        // Key derivation is a scalar multiplication per account: spread it.
        let accounts: Vec<SyntheticAccount> = std::thread::scope(|s| {
            let per = n.div_ceil(threads);
            let handles: Vec<_> = (0..threads)
                .map(|t| {
                    s.spawn(move || {
                        (t * per..((t + 1) * per).min(n))
                            .map(|i| SyntheticAccount::new(seed, i as u32))
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            handles
                .into_iter()
                .flat_map(|h| h.join().expect("account derivation"))
                .collect()
        });
        let accounts = match &cfg.plc_url {
            None => {
                for a in &accounts {
                    let host = &hosts[a.index as usize % hosts.len()];
                    directory.insert(
                        &a.did,
                        &document(&a.did, &a.handle, &a.public_key(), &host.endpoint()),
                    );
                }
                accounts
            }
            Some(plc) => register(plc, accounts, &hosts).await?,
        };
        Ok(Fleet {
            schedule: StdRng::seed_from_u64(cfg.seed ^ 0x5ced_u64),
            next_account: 0,
            has_rev: vec![false; accounts.len()],
            cfg,
            directory,
            hosts,
            accounts,
            tally: Tally::default(),
        })
    }

    /// Where the relay resolves the fleet's DIDs (`--plc-url`).
    pub fn plc_url(&self) -> String {
        self.cfg
            .plc_url
            .clone()
            .unwrap_or_else(|| self.directory.url())
    }

    /// Hostnames (`127.0.0.1:port`) the relay should crawl.
    pub fn hostnames(&self) -> Vec<String> {
        self.hosts.iter().map(Host::hostname).collect()
    }

    /// Plans `events` events, then signs and encodes them on every core and
    /// stages them on their hosts. Nothing is sent until [`Fleet::emit`].
    pub fn prepare(&mut self, events: usize, bar: &ProgressBar) -> Stage {
        let started = Instant::now();
        let hosts = self.hosts.len();
        let plan: Vec<(u32, Planned)> = (0..events)
            .map(|_| {
                let n = self.accounts.len();
                let a = match self.cfg.account_order {
                    AccountOrder::Skewed => draw_account(&mut self.schedule, n),
                    AccountOrder::RoundRobin => {
                        self.next_account = (self.next_account + 1) % n;
                        (self.next_account + n - 1) % n
                    }
                };
                let planned = self.cfg.mix.draw(&mut self.schedule);
                (a as u32, planned.for_account(&mut self.has_rev[a]))
            })
            .collect();
        let mut next_seq: Vec<i64> = self
            .hosts
            .iter()
            .map(|h| h.stream.len() as i64 + 1)
            .collect();
        let mut seqs = Vec::with_capacity(events);
        let mut order = Vec::with_capacity(events);
        let mut by_account: Vec<Vec<u32>> = vec![Vec::new(); self.accounts.len()];
        let mut tally = Tally::default();
        for (i, (a, planned)) in plan.iter().enumerate() {
            let h = *a as usize % hosts;
            seqs.push(next_seq[h]);
            next_seq[h] += 1;
            order.push(h as u32);
            by_account[*a as usize].push(i as u32);
            tally.add(planned.expect(), 1);
        }

        let threads = generator_threads(self.cfg.threads);
        let per = self.accounts.len().div_ceil(threads);
        let (plan, seqs) = (&plan, &seqs);
        let generated: Vec<Vec<(u32, Vec<u8>)>> = std::thread::scope(|s| {
            let handles: Vec<_> = self
                .accounts
                .chunks_mut(per)
                .zip(by_account.chunks(per))
                .map(|(accounts, positions)| {
                    let bar = bar.clone();
                    s.spawn(move || {
                        let mut out = Vec::new();
                        for (account, positions) in accounts.iter_mut().zip(positions) {
                            for &p in positions {
                                let p = p as usize;
                                out.push((p as u32, account.event(plan[p].1, seqs[p])));
                                bar.inc(1);
                            }
                        }
                        out
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("generator thread"))
                .collect()
        });
        let mut slots: Vec<Option<Vec<u8>>> = (0..events).map(|_| None).collect();
        for (p, frame) in generated.into_iter().flatten() {
            slots[p as usize] = Some(frame);
        }
        let mut per_host: Vec<Vec<HostFrame>> = (0..hosts).map(|_| Vec::new()).collect();
        let mut bytes = 0u64;
        for (slot, h) in slots.into_iter().zip(&order) {
            let frame = slot.expect("every planned event was generated");
            bytes += frame.len() as u64;
            per_host[*h as usize].push(HostFrame::new(frame));
        }
        for (host, frames) in self.hosts.iter().zip(per_host) {
            host.stream.stage(frames);
        }
        self.tally.merge(&tally);
        Stage {
            order,
            tally,
            bytes,
            prepare_seconds: started.elapsed().as_secs_f64(),
        }
    }

    /// Releases `stage` at `rate` events/s (`None`: all at once), spread in
    /// schedule order over the hosts. Blocks until everything is released.
    pub fn emit(&self, stage: &Stage, rate: Option<f64>, bar: &ProgressBar) -> Emitted {
        let started = Instant::now();
        let n = stage.order.len();
        let mut released = 0usize;
        let mut counts = vec![0usize; self.hosts.len()];
        while released < n {
            let due = match rate {
                None => n,
                Some(r) => ((started.elapsed().as_secs_f64() * r) as usize).min(n),
            };
            if due > released {
                for h in &stage.order[released..due] {
                    counts[*h as usize] += 1;
                }
                for (host, c) in self.hosts.iter().zip(counts.iter_mut()) {
                    if *c > 0 {
                        host.stream.release(*c);
                        host.stream.wake();
                        *c = 0;
                    }
                }
                released = due;
                bar.set_position(released as u64);
            } else {
                std::thread::sleep(Duration::from_micros(250));
            }
        }
        let seconds = started.elapsed().as_secs_f64();
        Emitted {
            events: n,
            seconds,
            rate: if seconds > 0.0 {
                n as f64 / seconds
            } else {
                f64::INFINITY
            },
        }
    }

    /// Frames the hosts wrote to sockets (reconnects count again).
    pub fn sent(&self) -> u64 {
        self.hosts
            .iter()
            .map(|h| h.stream.sent.load(std::sync::atomic::Ordering::Relaxed))
            .sum()
    }
}

/// Registers every account at the PLC directory `plc` (its own key as the
/// rotation key), 32 at a time; returns them under the DIDs PLC derived.
async fn register(
    plc: &str,
    accounts: Vec<SyntheticAccount>,
    hosts: &[Host],
) -> std::io::Result<Vec<SyntheticAccount>> {
    use futures_util::StreamExt;
    let client = atrelay::plc::client::PlcClient::new(plc);
    let client = &client;
    let registered: Vec<Result<SyntheticAccount, RegisterError>> =
        futures_util::stream::iter(accounts)
            .map(|a| async move {
                let key = a.private_key();
                let did_key = key.public_key().to_did_key();
                let endpoint = hosts[a.index as usize % hosts.len()].endpoint();
                let genesis = atrelay::plc::client::genesis_op(
                    &did_key,
                    &a.handle,
                    &endpoint,
                    std::slice::from_ref(&did_key),
                    key,
                )
                .map_err(|err| RegisterError::Genesis {
                    index: a.index,
                    err,
                })?;
                client
                    .submit(&genesis.did, &genesis.op)
                    .await
                    .map_err(|err| RegisterError::Submit {
                        did: genesis.did.clone(),
                        plc: plc.to_owned(),
                        err,
                    })?;
                Ok(a.with_did(genesis.did))
            })
            .buffered(32)
            .collect()
            .await;
    registered
        .into_iter()
        .collect::<Result<Vec<_>, RegisterError>>()
        .map_err(std::io::Error::other)
}

/// Why an account could not be registered at the PLC directory.
#[derive(Debug, thiserror::Error)]
enum RegisterError {
    #[error("genesis for account {index}: {err}")]
    Genesis {
        index: u32,
        err: atrelay::plc::OpError,
    },
    #[error("registering {did} at {plc}: {err}")]
    Submit {
        did: String,
        plc: String,
        err: atrelay::plc::ClientError,
    },
}

fn generator_threads(configured: usize) -> usize {
    if configured > 0 {
        configured
    } else {
        std::thread::available_parallelism().map_or(2, |n| n.get())
    }
}
