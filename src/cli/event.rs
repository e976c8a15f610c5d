//! A firehose event from either of its forms — a binary frame, or a body in
//! atproto JSON — decoded with the library's strict frame decoder, with errors
//! that say where in the input they point.
//!
//! Library errors count byte offsets from the start of what they were given:
//! the frame for header errors, the body for body errors. A user holding a
//! file wants file offsets, so body errors are annotated with where the body
//! starts; for JSON input (re-encoded as DAG-CBOR before decoding) they are
//! marked as offsets into that encoding.

use atrelay::wire::frame::{decode_header, Event, FrameError};

use super::error::{CliError, CliResult};
use super::event_json::frame_from_json;
use super::input::Format;

/// Where the frame bytes came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    /// The input was a binary frame, used as is.
    Frame,
    /// The input was a JSON body, encoded into a frame with a synthesised header.
    Json,
}

/// A frame's bytes and where they came from.
pub struct FrameBytes {
    pub bytes: Vec<u8>,
    pub origin: Origin,
}

impl FrameBytes {
    /// Takes `bytes` as a frame (`Format::Frame`) or converts them from a JSON
    /// body (`Format::Json`).
    pub fn load(bytes: Vec<u8>, format: Format) -> CliResult<FrameBytes> {
        match format {
            Format::Frame => Ok(FrameBytes {
                bytes,
                origin: Origin::Frame,
            }),
            Format::Json => {
                let frame = frame_from_json(&bytes).map_err(|e| e.context("JSON body"))?;
                Ok(FrameBytes {
                    bytes: frame,
                    origin: Origin::Json,
                })
            }
            Format::Car | Format::Cbor => Err(CliError::new(format!(
                "expected a firehose event (a binary frame or a JSON body), \
                 but the input is {}",
                match format {
                    Format::Car => "a CAR file",
                    _ => "a single DAG-CBOR value",
                }
            ))),
        }
    }

    /// Decodes the event; also returns the offset at which the body starts.
    pub fn decode(&self) -> CliResult<(Event<'_>, usize)> {
        let (header, body) = decode_header(&self.bytes).map_err(|e| self.error(&e, 0))?;
        let body_at = self.bytes.len() - body.len();
        let event = Event::decode_body(&header, body).map_err(|e| self.error(&e, body_at))?;
        Ok((event, body_at))
    }

    /// Describes a frame error with the reference point of its byte offsets.
    fn error(&self, err: &FrameError, body_at: usize) -> CliError {
        let part = match err {
            FrameError::Header(_) | FrameError::MissingType | FrameError::TooLarge { .. } => {
                "frame header"
            }
            _ => "frame body",
        };
        // Only messages that carry an offset need to say where it counts from.
        let has_offset = err.to_string().contains("byte ");
        let note = match (self.origin, err) {
            _ if !has_offset => String::new(),
            (Origin::Json, _) => {
                " (byte offsets are into the DAG-CBOR encoding of the JSON)".to_owned()
            }
            (Origin::Frame, FrameError::Body(_)) => format!(
                " (byte offsets count from the start of the body, which is byte {body_at} \
                 of the frame)"
            ),
            (Origin::Frame, _) => String::new(),
        };
        CliError::new(format!("{part}: {err}{note}"))
    }

    /// Says where the byte offsets of an error inside `blocks` (a slice of
    /// this frame) count from; empty when `message` has no offset.
    pub fn blocks_offset_note(&self, blocks: &[u8], message: &str) -> String {
        if !message.contains("byte ") {
            return String::new();
        }
        match self.origin {
            // `blocks` borrows from the frame, so its address gives its offset.
            Origin::Frame => format!(
                " (byte offsets count from the start of the CAR, which is byte {} of the frame)",
                (blocks.as_ptr() as usize).saturating_sub(self.bytes.as_ptr() as usize)
            ),
            Origin::Json => " (byte offsets count from the start of the CAR decoded from \
                             blocks.$bytes)"
                .to_owned(),
        }
    }
}
