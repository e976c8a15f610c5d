//! The error-frame body (`op: -1`): the stream's last frame, after which both
//! sides close.

use super::field::{self, required};
use super::{Body, FrameError};
use crate::wire::cbor::{Decoder, Encoder, KeyOrder};

/// An error-frame body. Strings borrow from the frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ErrorFrame<'a> {
    /// The bare error name (no NSID, no `#`), e.g. `FutureCursor` or
    /// `ConsumerTooSlow`. Open set, not validated.
    pub error: &'a str,
    /// Human-readable detail. A `null` is read as absent.
    pub message: Option<&'a str>,
}

impl<'a> ErrorFrame<'a> {
    /// Sent when a requested cursor is beyond the server's current sequence.
    pub const FUTURE_CURSOR: &'static str = "FutureCursor";

    /// Sent before disconnecting a consumer that cannot keep up.
    pub const CONSUMER_TOO_SLOW: &'static str = "ConsumerTooSlow";
}

impl<'a> Body<'a> for ErrorFrame<'a> {
    /// Reads one error map from `d`; unknown keys are skipped.
    fn read(d: &mut Decoder<'a>) -> Result<ErrorFrame<'a>, FrameError> {
        let n = d.map()?;
        let mut keys = KeyOrder::new();
        let (mut error, mut message) = (None, None);
        for _ in 0..n {
            match keys.next(d)? {
                "error" => error = Some(d.text()?),
                "message" => message = field::nullable_text(d)?,
                _ => d.skip()?,
            }
        }
        Ok(ErrorFrame {
            error: required(error, "error")?,
            message,
        })
    }

    /// Writes the body map in canonical key order: `error, message`;
    /// `message` is omitted when `None`.
    fn encode(&self, e: &mut Encoder) {
        e.map(1 + usize::from(self.message.is_some()));
        e.text("error");
        e.text(self.error);
        if let Some(message) = self.message {
            e.text("message");
            e.text(message);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::cbor::DecodeError;
    use crate::wire::frame::testutil::*;
    use crate::wire::frame::{Event, Header};

    #[test]
    fn canonical_bytes_from_the_digest() {
        let ev = Event::Error(ErrorFrame {
            error: ErrorFrame::FUTURE_CURSOR,
            message: Some("x"),
        });
        let frame = frame_of(&ev);
        let mut want = b"\xa1\x62op\x20".to_vec();
        want.extend_from_slice(b"\xa2\x65error\x6cFutureCursor\x67message\x61x");
        assert_eq!(frame, want);
        assert_eq!(Event::decode(&frame), Ok(ev));
    }

    #[test]
    fn header_forms_accepted() {
        let mut body = Vec::new();
        ErrorFrame {
            error: ErrorFrame::CONSUMER_TOO_SLOW,
            message: None,
        }
        .encode(&mut Encoder::new(&mut body));
        assert_canonical(&body);
        let want = Event::Error(ErrorFrame {
            error: "ConsumerTooSlow",
            message: None,
        });
        // {op:-1} (canonical), indigo's {t:"", op:-1}, and a stray t
        for t in [None, Some(""), Some("#commit")] {
            let frame = raw_frame(t, -1, &body);
            assert_eq!(Event::decode(&frame), Ok(want.clone()), "{t:?}");
            // re-encoding normalises to {op:-1}
            assert_eq!(frame_of(&want), raw_frame(None, -1, &body));
        }
        assert_eq!(want.header(), Header::error());
    }

    #[test]
    fn error_is_required() {
        let frame = raw_frame(None, -1, b"\xa1\x67message\x61x");
        assert_eq!(
            Event::decode(&frame),
            Err(FrameError::Body(DecodeError::MissingField("error")))
        );
    }
}
