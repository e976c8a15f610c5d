//! The layering every atrelay config shares: a schema's defaults, overlaid
//! by a TOML file, then by `<prefix><SECTION>_<KEY>` environment variables,
//! each layer refusing keys the defaults do not have. Separate from any one
//! schema because the relay's, PDS mode's and the devnet's configs all load
//! through it, so a typo is refused with the same message everywhere.

use std::path::{Path, PathBuf};

use serde::Serialize;

use super::ConfigError;

/// Prefix of PDS mode's environment variables (`ATRELAY_PDS_<SECTION>_<KEY>`).
pub const PDS_ENV_PREFIX: &str = "ATRELAY_PDS_";

/// `defaults`, overlaid by the TOML `file` (if given), then by
/// `<prefix><SECTION>_<KEY>` variables from `env`: the layering every
/// atrelay config shares. Unknown keys in either layer are errors.
pub fn load_layers<T: Serialize + serde::de::DeserializeOwned>(
    defaults: T,
    file: Option<&Path>,
    env: impl IntoIterator<Item = (String, String)>,
    prefix: &str,
) -> Result<T, ConfigError> {
    from_table(layer_table(defaults, file, env, prefix)?, file)
}

/// The layers of [`load_layers`] merged into one table, before it is typed.
pub(super) fn layer_table<T: Serialize>(
    defaults: T,
    file: Option<&Path>,
    env: impl IntoIterator<Item = (String, String)>,
    prefix: &str,
) -> Result<toml::Table, ConfigError> {
    let mut table = toml::Table::try_from(defaults).map_err(|e| ConfigError::Parse {
        path: PathBuf::from("<defaults>"),
        err: e.to_string(),
    })?;
    if let Some(path) = file {
        let text = std::fs::read_to_string(path).map_err(|err| ConfigError::Read {
            path: path.to_owned(),
            err,
        })?;
        let overlay: toml::Table =
            text.parse()
                .map_err(|e: toml::de::Error| ConfigError::Parse {
                    path: path.to_owned(),
                    err: e.to_string(),
                })?;
        merge(&mut table, overlay, path)?;
    }
    for (var, value) in env {
        apply_env(&mut table, prefix, &var, &value)?;
    }
    Ok(table)
}

/// Types the merged `table`; an error names `file` (or the environment).
pub(super) fn from_table<T: serde::de::DeserializeOwned>(
    table: toml::Table,
    file: Option<&Path>,
) -> Result<T, ConfigError> {
    toml::Value::Table(table)
        .try_into()
        .map_err(|e: toml::de::Error| ConfigError::Parse {
            path: file.map_or_else(|| PathBuf::from("<environment>"), Path::to_owned),
            err: e.to_string(),
        })
}

/// Refuses `key` (`section.name`) in the merged `table` when it is text
/// that `known` rejects, as [`ConfigError::Invalid`] with `reason`. (A value
/// of another type is left to serde, which names the type it expected.)
pub(super) fn check_choice(
    table: &toml::Table,
    key: &'static str,
    known: fn(&str) -> bool,
    reason: &str,
) -> Result<(), ConfigError> {
    let (section, name) = key.split_once('.').unwrap_or(("", key));
    let value = table
        .get(section)
        .and_then(|s| s.get(name))
        .and_then(toml::Value::as_str);
    match value {
        Some(v) if !known(v) => Err(ConfigError::Invalid {
            key,
            reason: reason.to_owned(),
        }),
        _ => Ok(()),
    }
}

/// Overlays `overlay` onto `base`, refusing keys the defaults do not have.
fn merge(base: &mut toml::Table, overlay: toml::Table, path: &Path) -> Result<(), ConfigError> {
    for (section, value) in overlay {
        let Some(toml::Value::Table(target)) = base.get_mut(&section) else {
            return Err(ConfigError::Parse {
                path: path.to_owned(),
                err: format!("unknown section [{section}]"),
            });
        };
        let toml::Value::Table(entries) = value else {
            return Err(ConfigError::Parse {
                path: path.to_owned(),
                err: format!("[{section}] must be a table"),
            });
        };
        for (key, v) in entries {
            if !target.contains_key(&key) {
                let hint = match (section.as_str(), key.as_str()) {
                    ("fanout", "linger_ms") => {
                        " (replaced by fanout.coalesce_max_ms: see config/relay.toml)"
                    }
                    _ => "",
                };
                return Err(ConfigError::Parse {
                    path: path.to_owned(),
                    err: format!("unknown key {section}.{key}{hint}"),
                });
            }
            target.insert(key, v);
        }
    }
    Ok(())
}

/// `ATRELAY_*` variables that are not config keys: the log filter (read by
/// `atrelay serve`), the test vectors' location (read by the test suite), and
/// the interop stage's install cache and binary (read by `tests/interop/run`,
/// whose relay inherits its environment).
pub const NOT_CONFIG: [&str; 4] = [
    "ATRELAY_LOG",
    "ATRELAY_VECTORS",
    "ATRELAY_INTEROP_CACHE",
    "ATRELAY_BIN",
];

/// Applies one `ATRELAY_<SECTION>_<KEY>` variable, typed by the default's type.
/// Lists are comma-separated. Other `ATRELAY_*` names are errors (a typo should
/// not be silently ignored); unrelated variables are skipped.
fn apply_env(
    table: &mut toml::Table,
    prefix: &str,
    var: &str,
    value: &str,
) -> Result<(), ConfigError> {
    let Some(name) = var.strip_prefix(prefix) else {
        return Ok(());
    };
    if NOT_CONFIG.contains(&var) {
        return Ok(());
    }
    let name = name.to_ascii_lowercase();
    let env_err = |reason: String| ConfigError::Env {
        var: var.to_owned(),
        reason,
    };
    for (section, entries) in table.iter_mut() {
        let Some(key) = name.strip_prefix(&format!("{section}_")) else {
            continue;
        };
        let toml::Value::Table(entries) = entries else {
            continue;
        };
        let Some(current) = entries.get(key) else {
            continue;
        };
        let parsed = match current {
            toml::Value::String(_) => toml::Value::String(value.to_owned()),
            toml::Value::Integer(_) => toml::Value::Integer(
                value
                    .parse()
                    .map_err(|_| env_err(format!("{value:?} is not an integer")))?,
            ),
            toml::Value::Boolean(_) => toml::Value::Boolean(match value {
                "true" | "1" | "yes" => true,
                "false" | "0" | "no" => false,
                _ => return Err(env_err(format!("{value:?} is not true/false"))),
            }),
            toml::Value::Array(_) => toml::Value::Array(
                value
                    .split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(|s| toml::Value::String(s.to_owned()))
                    .collect(),
            ),
            _ => {
                return Err(env_err(
                    "this key cannot be set from the environment".into(),
                ))
            }
        };
        entries.insert(key.to_owned(), parsed);
        return Ok(());
    }
    Err(env_err("no such config key".into()))
}
