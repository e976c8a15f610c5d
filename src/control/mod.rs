//! The relay's control plane: what the operator decides, as opposed to what
//! the protocol decides (the data plane in [`crate::relay`]).
//!
//! - [`Policy`] (`policy.rs`): crawl mode, allowlist, bans, pending requests,
//!   per-host limit overrides, the global pause; persisted.
//! - [`limits_for`] (`limits.rs`): a host's effective limits.
//! - [`HostBudget`] (`budget.rs`): per-host event budgets (pace, hourly and
//!   daily windows).
//! - [`Clock`] (`clock.rs`): wall time tests can advance.
//! - Host and domain-suffix matching for lists and bans is
//!   [`crate::net::covers`].

mod budget;
mod clock;
mod limits;
mod policy;

pub use budget::{Admit, HostBudget, Usage, Windows};
pub use clock::Clock;
pub use limits::{limits_for, LimitOverride, Limits};
pub use policy::{CrawlMode, Pending, Policy, PolicyError, MAX_PENDING};
