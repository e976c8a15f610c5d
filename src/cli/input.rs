//! Reading an input file (or stdin) and telling what kind of data it holds.
//!
//! `inspect` and `verify` take whatever a user has at hand: a frame captured
//! off the wire, a CAR export, one DAG-CBOR block, or an event body in atproto
//! JSON. Detection looks at structure, not file names, and tries the most
//! specific shape first so that one format is never mistaken for another:
//!
//! 1. CAR: a varint length followed by a DAG-CBOR map with `roots` and
//!    `version` (a CAR header of 123 bytes starts with `{`, so this goes
//!    before JSON);
//! 2. JSON: the first non-blank byte is `{` (as CBOR that would announce a
//!    text string with a 64-bit length, which no real frame or block starts with);
//! 3. frame: a valid `{t, op}` header map followed by more bytes;
//! 4. a single DAG-CBOR value.
//!
//! When nothing fits, the error reports why each candidate was rejected.

use std::io::Read;

use atrelay::wire::cbor::{DecodeError, Value};
use atrelay::wire::frame::decode_header;

use super::error::{CliError, CliResult};

/// The input formats `inspect` understands (`--format` forces one).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// A binary `subscribeRepos` frame: header map then body map.
    Frame,
    /// A CAR v1 file (a repo export or a `#commit` diff).
    Car,
    /// A single DAG-CBOR value (a record, a commit or an MST node block).
    Cbor,
    /// An event body in atproto JSON (`$link`, `$bytes`), e.g. a `#commit`.
    Json,
}

impl Format {
    /// The name used on the command line and in output.
    pub fn name(self) -> &'static str {
        match self {
            Format::Frame => "frame",
            Format::Car => "car",
            Format::Cbor => "cbor",
            Format::Json => "json",
        }
    }
}

/// A file's bytes and the name to show for it in messages.
pub struct Input {
    /// Shown in messages: the path, or `<stdin>`.
    pub name: String,
    pub bytes: Vec<u8>,
}

/// Reads `path` whole; `-` reads standard input.
pub fn read(path: &str) -> CliResult<Input> {
    if path == "-" {
        let mut bytes = Vec::new();
        std::io::stdin()
            .lock()
            .read_to_end(&mut bytes)
            .map_err(|e| CliError::new(format!("reading <stdin>: {e}")))?;
        return Ok(Input {
            name: "<stdin>".to_owned(),
            bytes,
        });
    }
    let bytes = std::fs::read(path).map_err(|e| CliError::new(format!("reading {path}: {e}")))?;
    Ok(Input {
        name: path.to_owned(),
        bytes,
    })
}

/// Works out the format of `bytes` (see the module documentation for the order).
pub fn detect(bytes: &[u8]) -> CliResult<Format> {
    if bytes.is_empty() {
        return Err(CliError::new("the input is empty"));
    }
    let car = car_header_check(bytes);
    if car.is_ok() {
        return Ok(Format::Car);
    }
    if first_non_blank(bytes) == Some(b'{') {
        return Ok(Format::Json);
    }
    let frame = match decode_header(bytes) {
        Ok(_) => return Ok(Format::Frame),
        Err(e) => e.to_string(),
    };
    let cbor = match Value::decode(bytes) {
        Ok(_) => return Ok(Format::Cbor),
        Err(e) => e.to_string(),
    };
    let car = car.err().map(|e| e.to_string()).unwrap_or_default();
    Err(CliError::new(format!(
        "unrecognised input ({} bytes): not a firehose frame ({frame}); \
         not a CAR file ({car}); not a single DAG-CBOR value ({cbor}); \
         not atproto JSON (it does not start with `{{`). \
         Pass --format to force a format and see its full error",
        bytes.len()
    )))
}

fn first_non_blank(bytes: &[u8]) -> Option<u8> {
    bytes.iter().copied().find(|b| !b.is_ascii_whitespace())
}

/// Whether `bytes` start like a CAR v1: a varint header length within the
/// input, and a header that is a DAG-CBOR map holding `roots` and `version`.
/// Blocks are not looked at (parsing checks them).
fn car_header_check(bytes: &[u8]) -> Result<(), NotCar> {
    let (len, used) = read_varint(bytes).ok_or(NotCar::NoHeaderLength)?;
    let header = usize::try_from(len)
        .ok()
        .and_then(|len| bytes.get(used..used.checked_add(len)?))
        .ok_or(NotCar::HeaderPastEnd(len))?;
    let value = Value::decode(header).map_err(NotCar::HeaderNotCbor)?;
    if value.get("roots").is_some() && value.get("version").is_some() {
        Ok(())
    } else {
        Err(NotCar::HeaderFields)
    }
}

/// Why the input does not start like a CAR v1 (part of the "unrecognised
/// input" message).
#[derive(Debug, thiserror::Error)]
enum NotCar {
    #[error("no valid varint header length")]
    NoHeaderLength,
    #[error("header length {0} runs past the end of the input")]
    HeaderPastEnd(u64),
    #[error("header is not DAG-CBOR: {0}")]
    HeaderNotCbor(DecodeError),
    #[error("header map lacks `roots` and `version`")]
    HeaderFields,
}

/// An unsigned LEB128 varint of at most 9 bytes, and the bytes it took.
fn read_varint(bytes: &[u8]) -> Option<(u64, usize)> {
    let mut value = 0u64;
    for (i, &b) in bytes.iter().take(9).enumerate() {
        value |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Some((value, i + 1));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_each_format() {
        assert_eq!(detect(b" {\"a\":1}").ok(), Some(Format::Json));
        assert_eq!(detect(b"\xa0").ok(), Some(Format::Cbor));
        let mut frame = Vec::new();
        atrelay::wire::frame::Event::Info(atrelay::wire::frame::Info {
            name: "OutdatedCursor",
            message: None,
        })
        .encode(&mut frame);
        assert_eq!(detect(&frame).ok(), Some(Format::Frame));
        let cid = atrelay::wire::cid::Cid::for_cbor(b"\xa0");
        let mut car = atrelay::wire::car::CarWriter::new(&[cid]);
        car.push(&cid, b"\xa0");
        assert_eq!(detect(&car.finish()).ok(), Some(Format::Car));
        assert!(detect(b"garbage, not data").is_err());
        assert!(detect(b"").is_err());
    }
}
