//! Language tag syntax: BCP 47 (RFC 5646) tags such as `en`, `pt-BR`,
//! `zh-Hant-TW`, `de-CH-1901`, `x-private`.
//!
//! Two levels, mirroring datetimes:
//! - [`validate_language`] checks that the tag is *well-formed* (the RFC 5646 §2.1
//!   grammar, with the atproto reference implementation's narrowing that the primary
//!   language subtag is 2–3 **lower-case** letters, so `JA` and the reserved 4-letter
//!   form `jaja` are refused). This is what Lexicon's `language` format means.
//! - [`parse_language`] additionally checks that the tag is *valid* in the sense of
//!   RFC 5646 §2.2.5/§2.2.6 and §4.1: no variant subtag repeated and no extension
//!   singleton repeated, both compared case-insensitively (`de-DE-1901-1901`,
//!   `en-a-foo-a-bar` are well-formed but not valid). Use it where a tag is about to
//!   be interpreted rather than passed through.
//!
//! Neither consults the IANA subtag registry. Grandfathered tags are accepted exactly
//! as the RFC spells them. Private-use subtags (after `x-`) are opaque and may repeat.

use super::error::{SyntaxError, SyntaxKind};

fn err(reason: &'static str) -> SyntaxError {
    SyntaxError::new(SyntaxKind::Language, reason)
}

/// The 26 grandfathered tags of RFC 5646 §2.1 (irregular, then regular). They are
/// valid as a whole even where the grammar would reject them (`i-klingon`).
const GRANDFATHERED: [&str; 26] = [
    "en-GB-oed",
    "i-ami",
    "i-bnn",
    "i-default",
    "i-enochian",
    "i-hak",
    "i-klingon",
    "i-lux",
    "i-mingo",
    "i-navajo",
    "i-pwn",
    "i-tao",
    "i-tay",
    "i-tsu",
    "sgn-BE-FR",
    "sgn-BE-NL",
    "sgn-CH-DE",
    "art-lojban",
    "cel-gaulish",
    "no-bok",
    "no-nyn",
    "zh-guoyu",
    "zh-hakka",
    "zh-min",
    "zh-min-nan",
    "zh-xiang",
];

fn is_alpha(t: &str, len: usize) -> bool {
    t.len() == len && t.bytes().all(|b| b.is_ascii_alphabetic())
}

fn is_alnum(t: &str, min: usize, max: usize) -> bool {
    (min..=max).contains(&t.len()) && t.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// `5*8alphanum / (DIGIT 3alphanum)`.
fn is_variant(t: &str) -> bool {
    is_alnum(t, 5, 8) || (is_alnum(t, 4, 4) && t.as_bytes()[0].is_ascii_digit())
}

/// `2ALPHA / 3DIGIT`.
fn is_region(t: &str) -> bool {
    is_alpha(t, 2) || (t.len() == 3 && t.bytes().all(|b| b.is_ascii_digit()))
}

/// An extension singleton: one letter or digit other than `x`.
fn is_singleton(t: &str) -> bool {
    t.len() == 1 && is_alnum(t, 1, 1) && !t.eq_ignore_ascii_case("x")
}

/// Lower-cased subtag of at most 8 bytes packed into a `u64`, for case-insensitive
/// comparison without allocating. Distinct subtags of different lengths pack to
/// distinct values because no byte is zero.
fn pack(t: &str) -> u64 {
    t.bytes()
        .fold(0u64, |k, b| (k << 8) | u64::from(b.to_ascii_lowercase()))
}

/// Remembers the variants seen so far: inline for the usual handful, spilling to a
/// sorted vector only for absurdly long tags so the check stays O(n log n).
enum SeenVariants {
    Inline([u64; 16], usize),
    Heap(Vec<u64>),
}

impl SeenVariants {
    /// Records `key`; returns `false` if it was already seen. In heap mode
    /// duplicates are found later by [`Self::has_duplicate`].
    fn insert(&mut self, key: u64) -> bool {
        match self {
            SeenVariants::Inline(arr, n) => {
                if arr[..*n].contains(&key) {
                    return false;
                }
                if *n < arr.len() {
                    arr[*n] = key;
                    *n += 1;
                } else {
                    let mut v = arr.to_vec();
                    v.push(key);
                    *self = SeenVariants::Heap(v);
                }
                true
            }
            SeenVariants::Heap(v) => {
                v.push(key);
                true
            }
        }
    }

    fn has_duplicate(&mut self) -> bool {
        match self {
            SeenVariants::Inline(..) => false,
            SeenVariants::Heap(v) => {
                v.sort_unstable();
                v.windows(2).any(|w| w[0] == w[1])
            }
        }
    }
}

/// The remainder after a private-use `x`: one or more subtags of 1–8 letters or digits.
fn private_use<'a>(rest: impl Iterator<Item = &'a str>) -> Result<(), SyntaxError> {
    let mut count = 0usize;
    for t in rest {
        if !is_alnum(t, 1, 8) {
            return Err(err("private-use subtag must be 1-8 letters or digits"));
        }
        count += 1;
    }
    if count == 0 {
        return Err(err(
            "private-use 'x' must be followed by at least one subtag",
        ));
    }
    Ok(())
}

/// Shared scanner; `valid` adds the no-repeats checks of [`parse_language`].
fn scan(s: &str, valid: bool) -> Result<(), SyntaxError> {
    if s.is_empty() {
        return Err(err("empty"));
    }
    if GRANDFATHERED.contains(&s) {
        return Ok(());
    }
    if s.split('-').any(str::is_empty) {
        return Err(err("empty subtag (leading, trailing or double hyphen)"));
    }
    let mut tags = s.split('-').peekable();
    let first = tags.next().unwrap_or("");
    if first.eq_ignore_ascii_case("x") {
        return private_use(tags);
    }
    if !(2..=3).contains(&first.len()) || !first.bytes().all(|b| b.is_ascii_lowercase()) {
        return Err(err(
            "primary language subtag must be 2-3 lower-case letters (or 'x' for private use)",
        ));
    }
    // extlang: up to three 3-letter subtags
    let mut extlangs = 0;
    while extlangs < 3 && tags.next_if(|t| is_alpha(t, 3)).is_some() {
        extlangs += 1;
    }
    // script, then region, each optional
    tags.next_if(|t| is_alpha(t, 4));
    tags.next_if(|t| is_region(t));
    let mut seen_variants = SeenVariants::Inline([0; 16], 0);
    while let Some(v) = tags.next_if(|t| is_variant(t)) {
        if valid && !seen_variants.insert(pack(v)) {
            return Err(err("variant subtag repeated"));
        }
    }
    if valid && seen_variants.has_duplicate() {
        return Err(err("variant subtag repeated"));
    }
    let mut seen_singletons = 0u64; // bit per 0-9a-z
    while let Some(single) = tags.next_if(|t| is_singleton(t)) {
        let c = single.as_bytes()[0].to_ascii_lowercase();
        let bit = 1u64
            << if c.is_ascii_digit() {
                c - b'0'
            } else {
                c - b'a' + 10
            };
        if valid && seen_singletons & bit != 0 {
            return Err(err("extension singleton repeated"));
        }
        seen_singletons |= bit;
        let mut subtags = 0;
        while tags.next_if(|t| is_alnum(t, 2, 8)).is_some() {
            subtags += 1;
        }
        if subtags == 0 {
            return Err(err(
                "extension singleton must be followed by subtags of 2-8 letters or digits",
            ));
        }
    }
    if tags.next_if(|t| t.eq_ignore_ascii_case("x")).is_some() {
        return private_use(tags);
    }
    if tags.next().is_some() {
        return Err(err("subtag out of place or malformed"));
    }
    Ok(())
}

/// Checks that a language tag is well-formed BCP 47 (see the module documentation).
pub fn validate_language(s: &str) -> Result<(), SyntaxError> {
    scan(s, false)
}

/// Checks that a language tag is well-formed *and* valid: [`validate_language`] plus
/// no repeated variant subtags and no repeated extension singletons (RFC 5646
/// §2.2.5, §2.2.6), compared case-insensitively. Allocation-free except for tags
/// with more than 16 variants.
pub fn parse_language(s: &str) -> Result<(), SyntaxError> {
    scan(s, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn well_formed() {
        for ok in [
            "en",
            "zh-yue-abc-def",
            "zh-Hant-TW",
            "i-klingon",
            "x-a-12345678",
            "en-x-a-x-b",
            "ab-abc-Latn",
            "de-CH-1901",
            "en-u-co-phonebk-t-en-US",
        ] {
            assert_eq!(validate_language(ok), Ok(()), "{ok}");
            assert_eq!(parse_language(ok), Ok(()), "{ok}");
        }
    }

    #[test]
    fn reasons() {
        let cases = [
            ("", "empty"),
            ("ja-", "empty subtag (leading, trailing or double hyphen)"),
            (
                "JA",
                "primary language subtag must be 2-3 lower-case letters (or 'x' for private use)",
            ),
            (
                "x",
                "private-use 'x' must be followed by at least one subtag",
            ),
            (
                "x-123456789",
                "private-use subtag must be 1-8 letters or digits",
            ),
            (
                "en-a",
                "extension singleton must be followed by subtags of 2-8 letters or digits",
            ),
            ("de-419-DE", "subtag out of place or malformed"),
            ("en-abc-abc-abc-abc", "subtag out of place or malformed"),
        ];
        for (input, reason) in cases {
            assert_eq!(
                validate_language(input).map_err(|e| e.reason()),
                Err(reason),
                "{input}"
            );
        }
    }

    #[test]
    fn repeats_fail_only_the_strict_check() {
        for (input, reason) in [
            ("de-DE-1901-1901", "variant subtag repeated"),
            ("en-rozaj-ROZAJ", "variant subtag repeated"),
            ("en-a-foo-a-bar", "extension singleton repeated"),
            (
                "en-u-co-phonebk-U-ca-buddhist",
                "extension singleton repeated",
            ),
        ] {
            assert_eq!(validate_language(input), Ok(()), "{input}");
            assert_eq!(parse_language(input).map_err(|e| e.reason()), Err(reason));
        }
        // private-use subtags may repeat
        assert_eq!(parse_language("en-x-foo-foo"), Ok(()));
    }

    #[test]
    fn many_variants_spill_and_still_detect_repeats() {
        let distinct: Vec<String> = (0..40).map(|i| format!("v{i:04}")).collect();
        let tag = format!("en-{}", distinct.join("-"));
        assert_eq!(parse_language(&tag), Ok(()));
        let repeated = format!("{tag}-v0003");
        assert_eq!(validate_language(&repeated), Ok(()));
        assert!(parse_language(&repeated).is_err());
    }
}
