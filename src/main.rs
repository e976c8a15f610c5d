//! The `atrelay` command line.
//!
//! Each subcommand is a thin layer over the library (see `src/cli/`): parse
//! arguments, read input, call the library, print. Failures come back as one
//! message with its context, printed here on stderr with exit status 1; clap
//! itself exits with 2 on a usage error.

mod cli;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use cli::output::eprint;

/// atrelay: a throughput-focused AT Protocol relay (firehose aggregator).
///
/// These commands work with the relay's keys and data: generate signing keys,
/// decode firehose frames, CAR files and DAG-CBOR blocks into readable JSON, and
/// verify #commit and #sync events against an account's key exactly as the
/// relay does. Errors go to stderr and exit with status 1.
#[derive(Debug, Parser)]
#[command(name = "atrelay", version, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Generate a signing key (k256 or p256) and print its did:key, Multikey
    /// and private key.
    Keygen(cli::keygen::KeygenArgs),
    /// Decode a firehose frame, a CAR, a DAG-CBOR block or a JSON event body
    /// and print it as data-model JSON (the format is detected).
    Inspect(cli::inspect::InspectArgs),
    /// Verify a #commit or #sync event (frame or JSON body) against an
    /// account's signing key, as the relay does.
    Verify(cli::verify::VerifyArgs),
    /// Run the relay: crawl PDS hosts, verify every event, log it and serve
    /// the firehose (com.atproto.sync.subscribeRepos) and sync endpoints.
    Serve(cli::serve::ServeArgs),
    /// Run a minimal PLC directory (did:plc registry) for local networks and
    /// tests, with its own database.
    Plc(cli::plc::PlcArgs),
    /// Run PDS mode: host accounts and their signed repos, register their
    /// did:plc identities, serve the repo, sync and account XRPC endpoints
    /// and the PDS's own firehose, and ask relays to crawl it.
    Pds(cli::pds::PdsArgs),
    /// Run a whole local network in one process: a PLC directory, N PDSes
    /// and a relay crawling them, with generated traffic (posts, likes,
    /// follows, deletes, handle changes, deactivations), a live status line
    /// and a summary on exit.
    Devnet(cli::devnet::DevnetArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match &cli.command {
        Command::Keygen(args) => cli::keygen::run(args),
        Command::Inspect(args) => cli::inspect::run(args),
        Command::Verify(args) => cli::verify::run(args),
        Command::Serve(args) => cli::serve::run(args),
        Command::Plc(args) => cli::plc::run(args),
        Command::Pds(args) => cli::pds::run(args),
        Command::Devnet(args) => cli::devnet::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprint(&format!("atrelay: error: {e}"));
            ExitCode::FAILURE
        }
    }
}
