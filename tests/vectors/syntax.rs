//! `atproto-interop-tests/syntax/`: every `*_syntax_valid.txt` line must pass its
//! validator, every `*_syntax_invalid.txt` line must fail it, and every
//! `*_parse_invalid.txt` line must pass syntax but fail the semantic parse.

use crate::common::{interop, read_lines};
use atrelay::wire::syntax::{self, SyntaxError};
use atrelay::wire::tid::{Tid, TidClock};

type Check = fn(&str) -> Result<(), SyntaxError>;

/// The validator each vector family exercises.
const FAMILIES: [(&str, Check); 11] = [
    ("atidentifier", syntax::validate_at_identifier),
    ("aturi", syntax::validate_at_uri),
    ("cid", syntax::validate_cid_string),
    ("datetime", syntax::validate_datetime),
    ("did", syntax::validate_did),
    ("handle", syntax::validate_handle),
    ("language", syntax::validate_language),
    ("nsid", syntax::validate_nsid),
    ("recordkey", syntax::validate_record_key),
    ("tid", syntax::validate_tid),
    ("uri", syntax::validate_uri),
];

/// The cases of one vector file with their 1-based line numbers (so failures point
/// at the file), cross-checked against the shared reader so both agree on what a
/// case is.
fn cases(file: &str) -> Vec<(usize, String)> {
    let path = interop(&format!("syntax/{file}"));
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    let numbered: Vec<(usize, String)> = text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.is_empty() && !l.starts_with('#'))
        .map(|(i, l)| (i + 1, l.to_owned()))
        .collect();
    let plain = read_lines(path);
    assert_eq!(
        numbered.iter().map(|(_, l)| l.as_str()).collect::<Vec<_>>(),
        plain,
        "{file}: case extraction disagrees with common::read_lines"
    );
    assert!(!numbered.is_empty(), "{file}: no cases read");
    numbered
}

/// Shortens very long vector lines (some are 8 KB) for failure messages.
fn show(line: &str) -> String {
    if line.len() <= 80 {
        format!("{line:?}")
    } else {
        format!("{:?}… ({} bytes)", &line[..60], line.len())
    }
}

/// Runs `check` over a file; `expect_ok` says whether each case should pass.
/// Returns the number of cases and reports every failure at once.
fn run(file: &str, check: impl Fn(&str) -> Result<(), SyntaxError>, expect_ok: bool) -> usize {
    let cases = cases(file);
    let failures: Vec<String> = cases
        .iter()
        .filter_map(|(n, line)| match (check(line), expect_ok) {
            (Ok(()), true) | (Err(_), false) => None,
            (Err(e), true) => Some(format!("{file}:{n}: {} rejected: {e}", show(line))),
            (Ok(()), false) => Some(format!("{file}:{n}: {} accepted", show(line))),
        })
        .collect();
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
    cases.len()
}

#[test]
fn syntax_valid_and_invalid() {
    let mut report = Vec::new();
    for (family, check) in FAMILIES {
        let valid = run(&format!("{family}_syntax_valid.txt"), check, true);
        let invalid = run(&format!("{family}_syntax_invalid.txt"), check, false);
        report.push(format!("{family}: {valid} valid, {invalid} invalid"));
    }
    println!("{}", report.join("\n"));
}

#[test]
fn every_vector_file_is_covered() {
    let dir = interop("syntax");
    let mut known: Vec<String> = FAMILIES
        .iter()
        .flat_map(|(f, _)| {
            [
                format!("{f}_syntax_valid.txt"),
                format!("{f}_syntax_invalid.txt"),
            ]
        })
        .collect();
    known.push("datetime_parse_invalid.txt".into());
    known.push("language_parse_invalid.txt".into());
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let name = entry.expect("directory entry").file_name();
        let name = name.to_string_lossy();
        if name.ends_with(".txt") {
            assert!(
                known.iter().any(|k| k == &*name),
                "vector file {name} is not tested"
            );
        }
    }
}

#[test]
fn datetime_parse_invalid() {
    let file = "datetime_parse_invalid.txt";
    let n = run(file, syntax::validate_datetime, true);
    let m = run(file, |s| syntax::parse_datetime(s).map(|_| ()), false);
    assert_eq!(n, m);
    println!("datetime_parse_invalid: {n} pass syntax and fail parse");
}

#[test]
fn datetime_valid_vectors_parse() {
    // Every syntactically valid vector is also a real instant.
    run(
        "datetime_syntax_valid.txt",
        |s| syntax::parse_datetime(s).map(|_| ()),
        true,
    );
}

#[test]
fn language_parse_invalid() {
    let file = "language_parse_invalid.txt";
    let n = run(file, syntax::validate_language, true);
    let m = run(file, syntax::parse_language, false);
    assert_eq!(n, m);
    println!("language_parse_invalid: {n} pass syntax and fail parse");
}

#[test]
fn language_valid_vectors_parse() {
    run("language_syntax_valid.txt", syntax::parse_language, true);
}

#[test]
fn tid_vectors_round_trip() {
    // The valid vectors all have the top bit clear, so Tid::parse takes them too.
    for (n, line) in cases("tid_syntax_valid.txt") {
        let tid = Tid::parse(&line).unwrap_or_else(|e| panic!("tid_syntax_valid.txt:{n}: {e}"));
        assert_eq!(tid.to_string(), line, "tid_syntax_valid.txt:{n}");
        assert_eq!(Tid::from_parts(tid.timestamp_micros(), tid.clock_id()), tid);
    }
    for (n, line) in cases("tid_syntax_invalid.txt") {
        assert!(
            Tid::parse(&line).is_err(),
            "tid_syntax_invalid.txt:{n}: {line:?} parsed"
        );
    }
    let tid = Tid::parse("3jzfcijpj2z2a").expect("digest example");
    let micros = syntax::parse_datetime("2023-06-30T15:03:01.887007Z").expect("datetime");
    assert_eq!(i64::try_from(tid.timestamp_micros()), Ok(micros));
    assert_eq!(tid.clock_id(), 6);
    assert_eq!(Tid::parse("2222222222222").map(Tid::as_u64), Ok(0));
}

#[test]
fn tid_clock_survives_backwards_step() {
    let clock = TidClock::with_clock_id(42);
    let noon = syntax::parse_datetime("2024-01-01T12:00:00Z").expect("datetime") as u64;
    let first = clock.next_at(noon);
    let same_instant = clock.next_at(noon);
    let stepped_back = clock.next_at(noon - 3_600_000_000); // NTP pulls the clock back an hour
    let later = clock.next_at(noon + 1);
    assert!(first < same_instant && same_instant < stepped_back && stepped_back < later);
    // the string forms sort the same way (revs are compared as strings)
    let strings: Vec<String> = [first, same_instant, stepped_back, later]
        .iter()
        .map(Tid::to_string)
        .collect();
    assert!(strings.windows(2).all(|w| w[0] < w[1]), "{strings:?}");
    // a rev from another generator that ran ahead is still exceeded
    let foreign = Tid::from_parts(noon + 10_000_000, 1023);
    let rev = clock.next_after(foreign);
    assert!(rev > foreign && rev > later);
    assert!(clock.next() > rev);
}
