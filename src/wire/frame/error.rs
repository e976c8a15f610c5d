//! Why a `subscribeRepos` frame was rejected.

use super::MAX_FRAME_LEN;
use crate::wire::cbor::DecodeError;

/// A frame that cannot be accepted. Every variant is fatal for the frame; per
/// the event-stream spec, malformed framing or CBOR should end the connection,
/// while the limit variants ([`FrameError::TooManyOps`],
/// [`FrameError::BlocksTooLarge`]) describe a well-formed event that breaks a
/// lexicon limit, which a caller may choose to treat as a per-event failure.
///
/// Byte offsets inside [`FrameError::Header`] are relative to the frame; those
/// inside [`FrameError::Body`] are relative to the body (the bytes after the
/// header), which is what [`super::decode_header`] hands out.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// The frame is over [`MAX_FRAME_LEN`]; rejected before any parsing.
    #[error(
        "frame of {len} bytes exceeds the {MAX_FRAME_LEN}-byte limit: \
         the sender must not emit events this large"
    )]
    TooLarge { len: usize },
    /// The header (the first CBOR item) is not a valid `{op, t}` map.
    #[error("invalid frame header (expected a map like {{t:\"#commit\", op:1}}): {0}")]
    Header(DecodeError),
    /// The body (the second CBOR item) is malformed or fails a field check.
    #[error("invalid frame body: {0}")]
    Body(#[from] DecodeError),
    /// Nothing follows the header.
    #[error("frame has a header but no body: a frame is a header map followed by a body map")]
    MissingBody,
    /// Bytes (a third item, or garbage) follow the body.
    #[error(
        "{len} bytes after the frame body: a frame holds exactly two CBOR items, \
         a header map and a body map"
    )]
    TrailingItem { len: usize },
    /// A regular message (`op: 1`) whose header has no `t`.
    #[error(
        "header has op=1 but no `t`: regular messages must name their type, e.g. t:\"#commit\""
    )]
    MissingType,
    /// A `#commit` lists more than [`super::MAX_COMMIT_OPS`] ops.
    #[error(
        "#commit has {count} ops, more than the lexicon's limit of {max}: \
         large changes must be split into several commits"
    )]
    TooManyOps { count: usize, max: usize },
    /// A `blocks` field is longer than its lexicon `maxLength`.
    #[error(
        "{event} `blocks` is {len} bytes, more than the lexicon's maxLength of {max}: \
         the sender must keep the CAR slice within the limit"
    )]
    BlocksTooLarge {
        /// `"#commit"` or `"#sync"`.
        event: &'static str,
        len: usize,
        max: usize,
    },
}
