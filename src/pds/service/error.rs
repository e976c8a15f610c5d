//! Why a [`Pds`](super::Pds) operation failed, and the XRPC error name each
//! failure answers with. Its own file because every operation (sessions,
//! account lifecycle, writes) and every XRPC handler shares it, while none of
//! them owns it.

use crate::log::LogError;
use crate::pds::session_token;
use crate::pds::store::StoreError;
use crate::pds::writes::WriteError;
use crate::wire::frame::AccountStatus;

/// Why an operation failed. Each maps to an XRPC error name and status.
#[derive(Debug, thiserror::Error)]
pub enum PdsError {
    #[error("{1}")]
    Invalid(&'static str, String),
    #[error("{0}")]
    Write(#[from] WriteError),
    #[error("authentication: {0}")]
    Auth(String),
    #[error("account {0} not found")]
    AccountNotFound(String),
    #[error("account is {0}")]
    AccountInactive(String),
    #[error("PLC directory: {0}")]
    Plc(String),
    #[error("storage: {0}")]
    Store(#[from] StoreError),
    #[error("event log: {0}")]
    Log(#[from] LogError),
    #[error("internal: {0}")]
    Internal(String),
}

impl PdsError {
    /// `AccountTakedown`: what a taken-down account's owner hears when
    /// logging in, refreshing a session or (re)activating the account.
    pub fn taken_down() -> PdsError {
        PdsError::Invalid("AccountTakedown", "this account has been taken down".into())
    }

    /// The XRPC error name.
    pub fn name(&self) -> &'static str {
        match self {
            PdsError::Invalid(name, _) => name,
            PdsError::Write(w) => w.name(),
            PdsError::Auth(_) => "AuthenticationRequired",
            PdsError::AccountNotFound(_) => "RepoNotFound",
            PdsError::AccountInactive(status) => AccountStatus::parse(status)
                .and_then(AccountStatus::repo_error)
                .unwrap_or("RepoDeactivated"),
            PdsError::Plc(_) => "UpstreamFailure",
            PdsError::Store(StoreError::HandleTaken) => "HandleNotAvailable",
            PdsError::Store(StoreError::EmailTaken) => "InvalidRequest",
            PdsError::Store(StoreError::Invalid(_)) => "InvalidRequest",
            PdsError::Store(StoreError::HeadChanged(_)) => "InvalidSwap",
            PdsError::Store(_) | PdsError::Log(_) | PdsError::Internal(_) => "InternalServerError",
        }
    }
}

pub(super) fn token_error_name(e: &session_token::TokenError) -> &'static str {
    match e {
        session_token::TokenError::Expired => "ExpiredToken",
        session_token::TokenError::Invalid(_) => "InvalidToken",
    }
}
