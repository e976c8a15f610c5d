//! One pre-encoded frame a [`super::SimHost`] serves.

use bytes::Bytes;

use super::emit_time;

/// A pre-encoded frame and, when it carries one, where its emit-time
/// placeholder ([`emit_time::PLACEHOLDER`]) sits.
#[derive(Clone, Debug)]
pub struct HostFrame {
    pub bytes: Bytes,
    /// Offset of the placeholder's bytes, found once when the frame is made
    /// so a host does not search every frame it writes.
    time_at: Option<u32>,
}

impl HostFrame {
    /// A frame, stamped on the way out when it carries the placeholder.
    pub fn new(bytes: impl Into<Bytes>) -> HostFrame {
        let bytes = bytes.into();
        let time_at = emit_time::locate(&bytes);
        HostFrame { bytes, time_at }
    }

    /// A frame written exactly as given, placeholder or not.
    pub fn verbatim(bytes: impl Into<Bytes>) -> HostFrame {
        HostFrame {
            bytes: bytes.into(),
            time_at: None,
        }
    }

    /// Whether the host stamps this frame's `time` as it writes it.
    pub fn is_stamped(&self) -> bool {
        self.time_at.is_some()
    }

    /// The frame as sent now: a copy stamped with the current time, or the
    /// bytes as they are (without reading the clock).
    pub(super) fn as_sent(&self) -> Bytes {
        let Some(at) = self.time_at else {
            return self.bytes.clone();
        };
        let mut copy = self.bytes.to_vec();
        emit_time::stamp(&mut copy, at, emit_time::now_micros());
        Bytes::from(copy)
    }
}
