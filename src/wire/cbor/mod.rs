//! Strict DAG-CBOR (DRISL): the only CBOR atproto allows.
//!
//! - [`Decoder`] reads borrowed slices out of the input (no copies, no
//!   allocation) and rejects everything that is not canonical DRISL:
//!   non-shortest integers and lengths, indefinite lengths, floats, tags other
//!   than 42, simple values other than false/true/null, map keys that are not
//!   text or are out of canonical order (which also rules out duplicates),
//!   invalid UTF-8, trailing bytes, and structures beyond [`Limits`].
//! - [`Encoder`] writes canonical CBOR; typed callers write map keys in
//!   canonical order themselves, [`Value`] sorts them.
//! - [`Value`] is the generic data model, for records and tests; the hot path
//!   (frames, commits, MST nodes) decodes straight into typed structs.
//!
//! ```
//! use atrelay::wire::cbor::{Decoder, Encoder};
//! let mut buf = Vec::new();
//! let mut enc = Encoder::new(&mut buf);
//! enc.map(1);
//! enc.text("hello");
//! enc.text("world");
//! assert_eq!(buf, b"\xa1\x65hello\x65world");
//!
//! let mut dec = Decoder::new(&buf);
//! assert_eq!(dec.map().unwrap(), 1);
//! assert_eq!(dec.text().unwrap(), "hello");
//! assert_eq!(dec.text().unwrap(), "world");
//! dec.finish().unwrap();
//! ```

mod decode;
mod encode;
mod error;
mod value;

pub use decode::{Decoder, KeyOrder, Kind, Limits};
pub use encode::Encoder;
pub use error::DecodeError;
pub use value::{canonical_key_cmp, Map, Value};
