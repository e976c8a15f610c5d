//! `atrelay keygen`: a new atproto signing key.
//!
//! Prints the public key both ways atproto writes it — as a did:key (what a
//! DID document's `verificationMethod` and `verify --key` take) and as a bare
//! Multikey (`publicKeyMultibase`) — and the private key as hex, the 32-byte
//! big-endian scalar that `PrivateKey::from_bytes` imports.

use std::fmt::Write as _;

use atrelay::crypto::{Curve, PrivateKey};
use serde::Serialize;

use super::error::CliResult;
use super::output::{eprint, print, print_json};

/// Arguments of `atrelay keygen`.
#[derive(Debug, clap::Args)]
pub struct KeygenArgs {
    /// The curve: k256 (secp256k1, what PDSes use by default) or p256 (NIST P-256).
    #[arg(long, value_enum, default_value_t = CurveArg::K256)]
    pub curve: CurveArg,
    /// Print one JSON object {curve, didKey, multikey, privateKeyHex}.
    #[arg(long)]
    pub json: bool,
}

/// The curves, as named on the command line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum CurveArg {
    K256,
    P256,
}

impl CurveArg {
    fn curve(self) -> Curve {
        match self {
            CurveArg::K256 => Curve::K256,
            CurveArg::P256 => Curve::P256,
        }
    }

    fn name(self) -> &'static str {
        match self {
            CurveArg::K256 => "k256",
            CurveArg::P256 => "p256",
        }
    }
}

/// The `--json` output.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct KeyJson {
    curve: &'static str,
    did_key: String,
    multikey: String,
    private_key_hex: String,
}

/// Runs `atrelay keygen`.
pub fn run(args: &KeygenArgs) -> CliResult {
    let key = PrivateKey::generate(args.curve.curve());
    let public = key.public_key();
    let out = KeyJson {
        curve: args.curve.name(),
        did_key: public.to_did_key(),
        multikey: public.to_multikey(),
        private_key_hex: hex(&key.to_bytes()),
    };
    // On stderr, so it reaches a person even when stdout goes to a file.
    eprint(
        "warning: the private key is secret: anyone who has it can sign as this key. \
         Store it somewhere safe and never share or log it.",
    );
    if args.json {
        print_json(&out)
    } else {
        print(&format!(
            "curve:        {}\ndid:key:      {}\nmultikey:     {}\nprivate key:  {}",
            out.curve, out.did_key, out.multikey, out.private_key_hex
        ))
    }
}

/// Lowercase hex.
fn hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        // Writing to a String cannot fail.
        let _ = write!(s, "{b:02x}");
    }
    s
}
