//! Locating and reading the shared vectors.

use std::path::PathBuf;

/// `../shared/vectors` beside the checkout, or `$ATRELAY_VECTORS`. A missing
/// directory fails the test: vectors are part of the suite, never skipped.
pub fn vectors_dir() -> PathBuf {
    let dir = std::env::var_os("ATRELAY_VECTORS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/vectors"));
    assert!(
        dir.is_dir(),
        "test vectors not found at {} (set ATRELAY_VECTORS)",
        dir.display()
    );
    dir
}

/// A file under `atproto-interop-tests/`.
#[allow(dead_code)]
pub fn interop(rel: &str) -> PathBuf {
    vectors_dir().join("atproto-interop-tests").join(rel)
}

/// Parses a JSON vector file.
#[allow(dead_code)]
pub fn read_json(path: PathBuf) -> serde_json::Value {
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("parsing {}: {e}", path.display()))
}

/// The entries of a line-per-value vector file: empty lines and `#` comments dropped
/// (as the reference harness does; whitespace-only lines are cases).
#[allow(dead_code)]
pub fn read_lines(path: PathBuf) -> Vec<String> {
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    text.lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_owned)
        .collect()
}
