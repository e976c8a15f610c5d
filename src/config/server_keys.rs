//! The `[server]` keys every config shares (the relay's and PDS mode's):
//! their limits and the checks on their timeouts, so both schemas answer a
//! bad timeout with the same message.

use super::ConfigError;

/// [`crate::net::http_server::ServerLimits`] from the `[server]` keys every
/// config shares.
pub fn server_limits(
    header_read_timeout_secs: u64,
    idle_timeout_secs: u64,
    max_connections: usize,
) -> crate::net::http_server::ServerLimits {
    crate::net::http_server::ServerLimits {
        header_read_timeout: std::time::Duration::from_secs(header_read_timeout_secs),
        idle_timeout: std::time::Duration::from_secs(idle_timeout_secs),
        max_connections,
    }
}

/// Checks the `[server]` timeouts every config shares: each must be
/// positive (and at most a day: a larger value is a unit mistake).
pub fn validate_server_timeouts(
    header_read_timeout_secs: u64,
    idle_timeout_secs: u64,
) -> Result<(), ConfigError> {
    for (key, secs) in [
        ("server.header_read_timeout_secs", header_read_timeout_secs),
        ("server.idle_timeout_secs", idle_timeout_secs),
    ] {
        if secs == 0 || secs > 86_400 {
            return Err(ConfigError::Invalid {
                key,
                reason: "must be between 1 and 86400 seconds".into(),
            });
        }
    }
    Ok(())
}
