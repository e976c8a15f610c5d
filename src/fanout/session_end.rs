//! [`SessionEnd`]: why a subscriber session ended, as the socket
//! (`conn.rs`) and the session (`session.rs`) report it and the metrics
//! count it.

/// Why a subscriber session ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SessionEnd {
    /// The client sent a close frame (answered) or hung up.
    ClientClosed,
    /// The socket stopped draining for `too_slow_after`; `ConsumerTooSlow`
    /// was sent if the socket took it.
    TooSlow,
    /// The cursor was beyond the current seq: `FutureCursor` was sent.
    FutureCursor,
    /// The socket failed, or the log could not be read.
    Io(String),
    /// The client broke the WebSocket protocol (closed with 1002, 1007 or
    /// 1009).
    Protocol(String),
}

impl SessionEnd {
    /// A short fixed name for the end reason (the metrics label).
    pub fn reason(&self) -> &'static str {
        match self {
            SessionEnd::ClientClosed => "client_closed",
            SessionEnd::TooSlow => "too_slow",
            SessionEnd::FutureCursor => "future_cursor",
            SessionEnd::Io(_) => "io",
            SessionEnd::Protocol(_) => "protocol",
        }
    }
}
