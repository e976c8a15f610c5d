//! What the fleet's accounts do: the event mix, the adversarial share, and
//! the outcome the relay must reach for each planned event.
//!
//! The default weights follow the shape of the live network's firehose:
//! likes dominate, then follows, posts and reposts, a tail of deletes and
//! profile updates, and a trickle of `#identity`, `#account` and `#sync`.

use atrelay::relay::verifier::{DropReason, IgnoreReason};
use atrelay::wire::frame::EventKind;
use rand::Rng;
use serde::{Deserialize, Serialize};

/// A well-formed event an account emits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Op {
    Post,
    Like,
    Repost,
    Follow,
    Delete,
    Profile,
    /// `#identity` (the handle, unchanged).
    Identity,
    /// `#account` with `active: true`.
    Account,
    /// A new commit announced as `#sync` instead of `#commit`.
    Sync,
}

/// A deliberately bad event and the relay's required reaction.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Attack {
    /// A commit signed with a key the DID document does not name.
    ForgedSignature,
    /// A commit whose CAR lacks its new MST root node, so the inversion
    /// proof cannot be checked.
    BrokenProof,
    /// A validly signed commit with a rev below the account's current one.
    RevRollback,
    /// A commit carrying a record over the 1 MB record limit.
    Oversize,
}

impl Attack {
    pub const ALL: [Attack; 4] = [
        Attack::ForgedSignature,
        Attack::BrokenProof,
        Attack::RevRollback,
        Attack::Oversize,
    ];
}

/// One slot of the schedule.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Planned {
    Normal(Op),
    Attack(Attack),
}

/// What the relay must do with an event, in the relay's own metric labels
/// (`atrelay_events_accepted_total{type}`, `atrelay_events_dropped_total{reason}`,
/// `atrelay_events_ignored_total{reason}`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub enum Expect {
    Accepted(&'static str),
    Dropped(&'static str),
    Ignored(&'static str),
}

/// Why a [`Mix`] cannot produce events.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum MixError {
    #[error("every event weight is 0")]
    NoWeight,
    #[error("adversarial_percent must be within 0..=100")]
    AdversarialPercent,
    #[error("adversarial_percent is set but attacks is empty")]
    NoAttacks,
}

impl Planned {
    /// What to plan for an account: `self`, unless it is a rev rollback of an
    /// account the relay holds no rev for yet. That "rollback" would be the
    /// account's first commit there, and accepted, so the account's first
    /// real commit is planned instead. `has_rev` says whether a rev-setting
    /// event was planned for the account before; it is updated.
    pub fn for_account(self, has_rev: &mut bool) -> Planned {
        let planned = match self {
            Planned::Attack(Attack::RevRollback) if !*has_rev => Planned::Normal(Op::Post),
            other => other,
        };
        *has_rev |= planned.sets_rev();
        planned
    }

    /// Whether the relay stores a rev for the account once it accepts this.
    fn sets_rev(self) -> bool {
        match self {
            Planned::Normal(Op::Identity | Op::Account) => false,
            Planned::Normal(_) => true,
            Planned::Attack(_) => false,
        }
    }

    pub fn expect(self) -> Expect {
        match self {
            Planned::Normal(Op::Identity) => Expect::Accepted(EventKind::Identity.label()),
            Planned::Normal(Op::Account) => Expect::Accepted(EventKind::Account.label()),
            Planned::Normal(Op::Sync) => Expect::Accepted(EventKind::Sync.label()),
            Planned::Normal(_) => Expect::Accepted(EventKind::Commit.label()),
            Planned::Attack(Attack::ForgedSignature) => {
                Expect::Dropped(DropReason::BadSignature.as_str())
            }
            Planned::Attack(Attack::BrokenProof) => Expect::Dropped(DropReason::Inversion.as_str()),
            Planned::Attack(Attack::RevRollback) => {
                Expect::Ignored(IgnoreReason::Duplicate.as_str())
            }
            Planned::Attack(Attack::Oversize) => Expect::Dropped(DropReason::Oversize.as_str()),
        }
    }
}

/// Relative weights of the well-formed events (any scale).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Mix {
    pub like: u32,
    pub follow: u32,
    pub post: u32,
    pub repost: u32,
    pub delete: u32,
    pub profile: u32,
    pub identity: u32,
    pub account: u32,
    pub sync: u32,
    /// Percent of all events that are adversarial (0–100), spread evenly
    /// over the attacks in `attacks`.
    pub adversarial_percent: f64,
    pub attacks: Vec<Attack>,
}

impl Default for Mix {
    fn default() -> Mix {
        Mix {
            like: 450,
            follow: 150,
            post: 150,
            repost: 100,
            delete: 100,
            profile: 20,
            identity: 12,
            account: 10,
            sync: 8,
            adversarial_percent: 0.0,
            attacks: Attack::ALL.to_vec(),
        }
    }
}

impl Mix {
    fn weights(&self) -> [(Op, u32); 9] {
        [
            (Op::Like, self.like),
            (Op::Follow, self.follow),
            (Op::Post, self.post),
            (Op::Repost, self.repost),
            (Op::Delete, self.delete),
            (Op::Profile, self.profile),
            (Op::Identity, self.identity),
            (Op::Account, self.account),
            (Op::Sync, self.sync),
        ]
    }

    /// Checks the mix can produce events.
    pub fn validate(&self) -> Result<(), MixError> {
        if self.weights().iter().all(|(_, w)| *w == 0) {
            return Err(MixError::NoWeight);
        }
        if !(0.0..=100.0).contains(&self.adversarial_percent) {
            return Err(MixError::AdversarialPercent);
        }
        if self.adversarial_percent > 0.0 && self.attacks.is_empty() {
            return Err(MixError::NoAttacks);
        }
        Ok(())
    }

    /// Draws one event.
    pub fn draw(&self, rng: &mut impl Rng) -> Planned {
        if self.adversarial_percent > 0.0 && rng.gen_bool(self.adversarial_percent / 100.0) {
            return Planned::Attack(self.attacks[rng.gen_range(0..self.attacks.len())]);
        }
        let weights = self.weights();
        let total: u32 = weights.iter().map(|(_, w)| w).sum();
        let mut pick = rng.gen_range(0..total);
        for (op, w) in weights {
            if pick < w {
                return Planned::Normal(op);
            }
            pick -= w;
        }
        Planned::Normal(Op::Like)
    }
}

/// Picks the account of the next event: a skew where a fifth of the accounts
/// make about half of the events, as active users do.
pub fn draw_account(rng: &mut impl Rng, accounts: usize) -> usize {
    let u: f64 = rng.gen();
    ((u * u * accounts as f64) as usize).min(accounts - 1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn draws_follow_the_weights_and_the_adversarial_share() {
        let mix = Mix {
            adversarial_percent: 10.0,
            ..Mix::default()
        };
        let mut rng = rand::rngs::StdRng::seed_from_u64(3);
        let n = 100_000;
        let draws: Vec<_> = (0..n).map(|_| mix.draw(&mut rng)).collect();
        let attacks = draws
            .iter()
            .filter(|p| matches!(p, Planned::Attack(_)))
            .count();
        assert!((9_000..11_000).contains(&attacks), "{attacks}");
        let likes = draws
            .iter()
            .filter(|p| **p == Planned::Normal(Op::Like))
            .count();
        // 450 of 1,000 weight, 90% of draws.
        assert!((38_000..43_000).contains(&likes), "{likes}");
        assert!(Mix {
            like: 0,
            follow: 0,
            post: 0,
            repost: 0,
            delete: 0,
            profile: 0,
            identity: 0,
            account: 0,
            sync: 0,
            ..Mix::default()
        }
        .validate()
        .is_err());
    }

    #[test]
    fn a_rollback_needs_a_rev_to_roll_back_from() {
        let rollback = Planned::Attack(Attack::RevRollback);
        let mut has_rev = false;
        // No rev yet: identities, accounts and dropped attacks set none.
        for planned in [
            Planned::Normal(Op::Identity),
            Planned::Normal(Op::Account),
            Planned::Attack(Attack::ForgedSignature),
            Planned::Attack(Attack::BrokenProof),
            Planned::Attack(Attack::Oversize),
        ] {
            assert_eq!(planned.for_account(&mut has_rev), planned);
            assert!(!has_rev, "{planned:?}");
        }
        let first = rollback.for_account(&mut has_rev);
        assert_eq!(first, Planned::Normal(Op::Post));
        assert_eq!(first.expect(), Expect::Accepted("commit"));
        assert!(has_rev);
        assert_eq!(rollback.for_account(&mut has_rev), rollback);
        // A #sync sets the rev as a commit does.
        let mut synced = false;
        Planned::Normal(Op::Sync).for_account(&mut synced);
        assert_eq!(rollback.for_account(&mut synced), rollback);
    }

    #[test]
    fn account_draws_are_skewed_but_cover_everyone() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(4);
        let mut hits = vec![0u32; 100];
        for _ in 0..100_000 {
            hits[draw_account(&mut rng, 100)] += 1;
        }
        let top: u32 = hits[..20].iter().sum();
        assert!(top > 40_000, "{top}");
        assert!(hits.iter().all(|h| *h > 0));
    }
}
