//! `atrelay verify`: check a `#commit` or `#sync` against an account's key.
//!
//! This is the relay's stateless verification (the library's
//! `verify_commit` / `verify_sync`): the CAR's hashes, the commit object, the
//! event agreeing with it, the rev not being in the future, op shapes and
//! record blocks, MST inversion onto `prevData`, and the signature. What needs
//! the relay's stored state (is this rev newer, does `prevData` continue the
//! chain) can be supplied by hand with `--prev-data`.

use atrelay::clock::now_micros;
use atrelay::crypto::PublicKey;
use atrelay::repo::verify::{
    verify_commit, verify_sync, VerifiedCommit, VerifyError, VerifyOptions,
};
use atrelay::wire::cid::Cid;
use atrelay::wire::frame::{Commit, Event, Sync};
use atrelay::wire::syntax::parse_datetime;

use super::error::{CliError, CliResult};
use super::event::FrameBytes;
use super::input;
use super::output::{eprint, print};

/// Arguments of `atrelay verify`.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Exit status: 0 when the event verifies, 1 when it does not \
    (the reason is printed on stderr).\n\n\
    Examples:\n  \
    atrelay verify event.frame --key did:key:zQ3sh...\n  \
    atrelay verify commit.json --key did:key:zQ3sh... --now 2025-02-06T01:43:22Z --lenient"
)]
pub struct VerifyArgs {
    /// The event: a binary #commit or #sync frame, or its body in atproto
    /// JSON; `-` reads standard input.
    #[arg(value_name = "FILE|-")]
    pub input: String,
    /// The account's current signing key, as a did:key (a bare Multikey also works).
    #[arg(long, value_name = "DID_KEY")]
    pub key: String,
    /// The repo's MST root before this commit (the previous commit's `data`).
    /// If the event carries prevData, it must equal this; if it does not
    /// (older events), this is used to run the inversion check.
    #[arg(long, value_name = "CID")]
    pub prev_data: Option<String>,
    /// Accept legacy commits whose updates and deletes lack `prev`, skipping
    /// inversion for them.
    #[arg(long)]
    pub lenient: bool,
    /// Verify as of this time (RFC 3339) instead of now, to replay old events:
    /// the rev may run at most 5 minutes ahead of it.
    #[arg(long, value_name = "RFC3339")]
    pub now: Option<String>,
}

/// Runs `atrelay verify`.
pub fn run(args: &VerifyArgs) -> CliResult {
    let input = input::read(&args.input)?;
    let name = input.name.clone();
    verify(input.bytes, args).map_err(|e| e.context(format!("verify {name}")))
}

fn verify(bytes: Vec<u8>, args: &VerifyArgs) -> CliResult {
    let key = parse_key(&args.key)?;
    let prev_data = args
        .prev_data
        .as_deref()
        .map(|s| {
            s.parse::<Cid>()
                .map_err(|e| CliError::new(format!("--prev-data {s}: not a valid CID: {e}")))
        })
        .transpose()?;
    let opts = VerifyOptions {
        lenient: args.lenient,
        now_micros: match &args.now {
            Some(now) => parse_now(now)?,
            None => now_micros(),
        },
    };
    let format = input::detect(&bytes)?;
    let frame = FrameBytes::load(bytes, format)?;
    let (event, _) = frame.decode()?;
    match event {
        Event::Commit(commit) => check_commit(&frame, commit, &key, prev_data, &opts),
        Event::Sync(sync) => {
            if prev_data.is_some() {
                return Err(CliError::new(
                    "--prev-data applies to #commit events; a #sync has no ops to invert",
                ));
            }
            check_sync(&frame, &sync, &key, &opts)
        }
        other => Err(CliError::new(format!(
            "verify checks #commit and #sync events, but this is {}",
            other
                .kind()
                .type_name()
                .unwrap_or("an error or unknown frame")
        ))),
    }
}

/// Verifies a `#commit`, with `--prev-data` standing in for or checking the
/// event's own `prevData`.
fn check_commit(
    frame: &FrameBytes,
    mut ev: Commit,
    key: &PublicKey,
    given: Option<Cid>,
    opts: &VerifyOptions,
) -> CliResult {
    let source = match (ev.prev_data, given) {
        (Some(announced), Some(given)) if announced != given => {
            return Err(CliError::new(format!(
                "the event's prevData {announced} is not --prev-data {given}: \
                 the commit does not continue from the given repo state"
            )));
        }
        (Some(_), _) => "from the event",
        (None, Some(given)) => {
            ev.prev_data = Some(given);
            "from --prev-data"
        }
        (None, None) => {
            eprint(
                "note: the event has no prevData, so inversion is skipped \
                 (pass --prev-data <cid> to supply the previous commit's data)",
            );
            "absent"
        }
    };
    let verified = verify_commit(&ev, key, opts).map_err(|e| {
        CliError::new(format!(
            "#commit {} for {} failed verification: {e}{}",
            ev.commit,
            ev.repo,
            offset_note(frame, ev.blocks, &e)
        ))
    })?;
    let inverted = if verified.inverted {
        format!(
            "yes: undoing the {} op(s) on the diff's MST gives exactly prevData",
            ev.ops.len()
        )
    } else if ev.prev_data.is_none() {
        "no: the event has no prevData, so inversion was skipped".to_owned()
    } else {
        "no: the ops lack prev (a legacy commit, accepted by --lenient), \
         so inversion was skipped"
            .to_owned()
    };
    let prev_data = match ev.prev_data {
        Some(cid) => format!("{cid} ({source})"),
        None => "none".to_owned(),
    };
    report(
        "#commit", ev.seq, ev.repo, &verified, &prev_data, &inverted, key,
    )
}

/// Verifies a `#sync`.
fn check_sync(frame: &FrameBytes, ev: &Sync, key: &PublicKey, opts: &VerifyOptions) -> CliResult {
    let verified = verify_sync(ev, key, opts).map_err(|e| {
        CliError::new(format!(
            "#sync for {} failed verification: {e}{}",
            ev.did,
            offset_note(frame, ev.blocks, &e)
        ))
    })?;
    report(
        "#sync",
        ev.seq,
        ev.did,
        &verified,
        "not applicable",
        "no: a #sync carries only the signed commit, with no ops to invert",
        key,
    )
}

/// Where the byte offsets in a verification error count from: the CAR (for
/// CAR errors) or the commit block (for a commit that does not decode).
fn offset_note(frame: &FrameBytes, blocks: &[u8], err: &VerifyError) -> String {
    let message = err.to_string();
    match err {
        VerifyError::Car(_) => frame.blocks_offset_note(blocks, &message),
        VerifyError::Commit(_) if message.contains("byte ") => {
            " (byte offsets count from the start of the commit block)".to_owned()
        }
        _ => String::new(),
    }
}

/// Prints what was verified.
fn report(
    kind: &str,
    seq: i64,
    did: &str,
    v: &VerifiedCommit,
    prev_data: &str,
    inverted: &str,
    key: &PublicKey,
) -> CliResult {
    print(&format!(
        "verified {kind} seq {seq} for {did}\n  \
         commit:    {}\n  \
         rev:       {}\n  \
         data:      {}\n  \
         prevData:  {prev_data}\n  \
         inverted:  {inverted}\n  \
         signature: valid for {}",
        v.commit,
        v.rev,
        v.data,
        key.to_did_key()
    ))
}

/// A did:key, or a bare Multikey (`z…`) as DID documents write it.
fn parse_key(s: &str) -> CliResult<PublicKey> {
    let parsed = if s.starts_with('z') {
        PublicKey::from_multikey(s)
    } else {
        PublicKey::from_did_key(s)
    };
    parsed.map_err(|e| CliError::new(format!("--key {s}: {e}")))
}

/// `--now` as Unix microseconds.
fn parse_now(s: &str) -> CliResult<u64> {
    let micros = parse_datetime(s)
        .map_err(|e| CliError::new(format!("--now {s}: not an RFC 3339 datetime: {e}")))?;
    u64::try_from(micros).map_err(|_| CliError::new(format!("--now {s}: before 1970")))
}
