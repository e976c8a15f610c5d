//! The `atrelay` subcommands. Each command's arguments and behaviour live in
//! its own file; the helpers they share (input reading and format detection,
//! the JSON event form, CAR rendering, error reporting, output) each have theirs.
//!
//! This is a binary-only module: the library stays free of CLI concerns
//! (argument parsing, printing, exit codes), and everything here is built on
//! the library's public API only.

pub mod car_view;
pub mod daemon;
pub mod devnet;
pub mod error;
pub mod event;
pub mod event_json;
pub mod input;
pub mod inspect;
pub mod keygen;
pub mod output;
pub mod pds;
pub mod plc;
pub mod serve;
pub mod verify;
