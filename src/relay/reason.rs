//! Why the verifier dropped or ignored an event ([`DropReason`],
//! [`IgnoreReason`]): small fixed sets, each reason a metrics label.
//!
//! Their own file so the relay's metric table ([`super::metrics`]) can
//! register every reason at zero without importing the verifier, which
//! records through that table's names.

/// Why an event was dropped. Bounded set: each is a metrics label.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DropReason {
    Malformed,
    NoIdentity,
    NoSigningKey,
    WrongHost,
    Inactive,
    BadSignature,
    MissingPrevData,
    Oversize,
    BadCar,
    BadCommit,
    FieldMismatch,
    FutureRev,
    Deprecated,
    OpShape,
    RecordMissing,
    Inversion,
    PrevDataMismatch,
    Storage,
    /// A new account on a host at its account limit.
    AccountThrottled,
    /// The operator took the account down.
    TakenDown,
}

impl DropReason {
    /// Every reason, so a table over them (the metrics' zero registration,
    /// the conformance runner's coverage check) cannot miss a new one.
    pub const ALL: [DropReason; 20] = [
        DropReason::Malformed,
        DropReason::NoIdentity,
        DropReason::NoSigningKey,
        DropReason::WrongHost,
        DropReason::Inactive,
        DropReason::BadSignature,
        DropReason::MissingPrevData,
        DropReason::Oversize,
        DropReason::BadCar,
        DropReason::BadCommit,
        DropReason::FieldMismatch,
        DropReason::FutureRev,
        DropReason::Deprecated,
        DropReason::OpShape,
        DropReason::RecordMissing,
        DropReason::Inversion,
        DropReason::PrevDataMismatch,
        DropReason::Storage,
        DropReason::AccountThrottled,
        DropReason::TakenDown,
    ];

    /// The metrics label.
    pub fn as_str(self) -> &'static str {
        match self {
            DropReason::Malformed => "malformed",
            DropReason::NoIdentity => "no_identity",
            DropReason::NoSigningKey => "no_signing_key",
            DropReason::WrongHost => "wrong_host",
            DropReason::Inactive => "inactive",
            DropReason::BadSignature => "bad_signature",
            DropReason::MissingPrevData => "missing_prev_data",
            DropReason::Oversize => "oversize",
            DropReason::BadCar => "bad_car",
            DropReason::BadCommit => "bad_commit",
            DropReason::FieldMismatch => "field_mismatch",
            DropReason::FutureRev => "future_rev",
            DropReason::Deprecated => "deprecated_flag",
            DropReason::OpShape => "op_shape",
            DropReason::RecordMissing => "record_missing",
            DropReason::Inversion => "inversion",
            DropReason::PrevDataMismatch => "prev_data_mismatch",
            DropReason::Storage => "storage",
            DropReason::AccountThrottled => "account_throttled",
            DropReason::TakenDown => "taken_down",
        }
    }
}

/// Why an event was consumed without forwarding.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum IgnoreReason {
    /// Rev not above the stored rev: a replay or duplicate.
    Duplicate,
    /// `#sync` not newer than the stored state.
    StaleSync,
    /// `#info`, error frames and unknown types are not forwarded.
    NotForwarded,
}

impl IgnoreReason {
    /// Every reason (see [`DropReason::ALL`]).
    pub const ALL: [IgnoreReason; 3] = [
        IgnoreReason::Duplicate,
        IgnoreReason::StaleSync,
        IgnoreReason::NotForwarded,
    ];

    /// The metrics label.
    pub fn as_str(self) -> &'static str {
        match self {
            IgnoreReason::Duplicate => "duplicate",
            IgnoreReason::StaleSync => "stale_sync",
            IgnoreReason::NotForwarded => "not_forwarded",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reason_lists_hold_every_reason_once_in_declaration_order() {
        for (i, r) in DropReason::ALL.iter().enumerate() {
            assert_eq!(*r as usize, i, "{r:?}");
        }
        assert_eq!(
            DropReason::ALL.len(),
            DropReason::TakenDown as usize + 1,
            "TakenDown is the last DropReason; a new one goes in ALL"
        );
        for (i, r) in IgnoreReason::ALL.iter().enumerate() {
            assert_eq!(*r as usize, i, "{r:?}");
        }
        assert_eq!(
            IgnoreReason::ALL.len(),
            IgnoreReason::NotForwarded as usize + 1
        );
    }
}
