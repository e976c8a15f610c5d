//! Secrets (the admin passwords): taken from their environment variable
//! before the config layers see the environment, checked once, and never
//! printed. Separate from the layers because a secret must not pass through
//! them (or their error messages), and shared because the relay and PDS
//! mode both have an admin password.

use super::ConfigError;

/// A secret string: compared and used, never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(pub String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// The admin API password's variable (kept out of config files).
pub const ADMIN_PASSWORD_VAR: &str = "ATRELAY_ADMIN_PASSWORD";

/// Shortest admin password (`ATRELAY_ADMIN_PASSWORD`,
/// `ATRELAY_PDS_ADMIN_PASSWORD`) accepted, in characters: the admin APIs
/// face the network, and the README's `head -c 24 /dev/urandom | base64`
/// gives 32.
pub const MIN_ADMIN_PASSWORD_CHARS: usize = 16;

/// Checks the admin password taken from `var`: a set variable enables an
/// admin API, so it must hold a real password. Blank (empty or only white
/// space) or shorter than [`MIN_ADMIN_PASSWORD_CHARS`] is a configuration
/// error, never a silently open or silently disabled admin API.
pub fn check_admin_password(var: &str, password: &Secret) -> Result<(), ConfigError> {
    let fix = format!(
        "set a password of at least {MIN_ADMIN_PASSWORD_CHARS} characters (e.g. from `head -c 24 /dev/urandom | base64`), or unset {var} to run without the admin API"
    );
    let reason = if password.0.trim().is_empty() {
        format!("blank (empty or only white space): {fix}")
    } else if password.0.chars().count() < MIN_ADMIN_PASSWORD_CHARS {
        format!("too short: {fix}")
    } else {
        return Ok(());
    };
    Err(ConfigError::Env {
        var: var.to_owned(),
        reason,
    })
}

/// Splits the secret `var` from the other variables, so it never passes
/// through the config layers (or their error messages). Set but empty is
/// still set (`Some("")`): [`check_admin_password`] refuses it.
pub fn take_secret(
    env: impl IntoIterator<Item = (String, String)>,
    var: &str,
) -> (Option<Secret>, Vec<(String, String)>) {
    let mut secret = None;
    let rest = env
        .into_iter()
        .filter_map(|(name, value)| {
            if name == var {
                secret = Some(Secret(value));
                None
            } else {
                Some((name, value))
            }
        })
        .collect();
    (secret, rest)
}
