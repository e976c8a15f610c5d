//! The `atrelay` binary, run for real: its help and version, `keygen`,
//! `inspect` on the shared vectors and on frames built here, and `verify`
//! against the right and the wrong key. Every run also checks that the binary
//! did not panic, whatever it was fed: bad input must end in a message and
//! exit status 1.

use std::borrow::Cow;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};

use atrelay::crypto::{Curve, PrivateKey, PublicKey};
use atrelay::repo::builder::{BuiltCommit, RecordWrite, RepoHead};
use atrelay::wire::car::CarWriter;
use atrelay::wire::cbor::Value;
use atrelay::wire::frame::{Event, Sync};
use atrelay::wire::tid::TidClock;
use serde_json::Value as Json;

/// The vectors locator shared with the vector suite.
#[path = "vectors/common.rs"]
mod common;
use common::vectors_dir;

const DID: &str = "did:plc:abcdefghijklmnopqrstuvwx";
const TIME: &str = "2025-02-06T01:43:22.273Z";

/// Runs the binary with `args`; asserts it did not panic.
fn atrelay(args: &[&str]) -> Output {
    let out = Command::new(env!("CARGO_BIN_EXE_atrelay"))
        .args(args)
        .output()
        .expect("running the atrelay binary");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !stderr.contains("panicked"),
        "atrelay {args:?} panicked:\n{stderr}"
    );
    out
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Asserts exit status `code`, showing the output otherwise.
fn assert_exit(out: &Output, code: i32, what: &str) {
    assert_eq!(
        out.status.code(),
        Some(code),
        "{what}: unexpected exit status\nstdout:\n{}\nstderr:\n{}",
        stdout(out),
        stderr(out)
    );
}

/// Parses the binary's stdout as JSON.
fn json_out(out: &Output) -> Json {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not JSON ({e}):\n{}\nstderr:\n{}",
            stdout(out),
            stderr(out)
        )
    })
}

/// A file in the temp directory, removed when dropped.
struct TempFile(PathBuf);

impl TempFile {
    fn new(tag: &str, bytes: &[u8]) -> TempFile {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let path =
            std::env::temp_dir().join(format!("atrelay-cli-test-{}-{n}-{tag}", std::process::id()));
        std::fs::write(&path, bytes).expect("writing a temp file");
        TempFile(path)
    }

    fn path(&self) -> &str {
        self.0.to_str().expect("temp path is UTF-8")
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn indigo_vectors() -> Vec<PathBuf> {
    let dir = vectors_dir().join("indigo-firehose-commits");
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|e| e.expect("directory entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    paths.sort();
    assert_eq!(paths.len(), 4, "expected 4 indigo firehose commit vectors");
    paths
}

fn record(text: &str) -> Vec<u8> {
    Value::Map(vec![
        (
            Cow::Borrowed("$type"),
            Value::Text("app.bsky.feed.post".into()),
        ),
        (Cow::Borrowed("text"), Value::Text(text.to_owned().into())),
        (Cow::Borrowed("createdAt"), Value::Text(TIME.into())),
    ])
    .to_cbor()
}

/// A repo with a few records, then a second commit (create, update, delete)
/// whose diff must carry proof nodes: a realistic `#commit`.
fn second_commit(key: &PrivateKey) -> BuiltCommit {
    let mut store = HashMap::new();
    let clock = TidClock::new();
    let head = RepoHead::empty(DID, &mut store);
    let writes = (0..20)
        .map(|i| RecordWrite::Create {
            path: format!("app.bsky.feed.post/3kabc{i:03}aaaa"),
            record: record(&format!("post {i}")),
        })
        .collect();
    let first = head
        .commit(&store, writes, key, clock.next())
        .expect("first commit");
    first.store_into(&mut store);
    let writes = vec![
        RecordWrite::Create {
            path: "app.bsky.feed.post/3kzzz000aaaa".into(),
            record: record("new"),
        },
        RecordWrite::Update {
            path: "app.bsky.feed.post/3kabc005aaaa".into(),
            record: record("edited"),
        },
        RecordWrite::Delete {
            path: "app.bsky.feed.post/3kabc010aaaa".into(),
        },
    ];
    first
        .head
        .commit(&store, writes, key, clock.next())
        .expect("second commit")
}

/// The `#commit` frame of `built`; without `prevData` when `drop_prev_data`.
fn commit_frame(built: &BuiltCommit, drop_prev_data: bool) -> Vec<u8> {
    let strings = built.frame_strings();
    let mut commit = built.to_frame(&strings, 42, TIME);
    if drop_prev_data {
        commit.prev_data = None;
    }
    let mut buf = Vec::new();
    Event::Commit(commit).encode(&mut buf);
    buf
}

#[test]
fn help_lists_the_commands() {
    let out = atrelay(&["--help"]);
    assert_exit(&out, 0, "--help");
    let help = stdout(&out);
    for command in ["keygen", "inspect", "verify"] {
        assert!(help.contains(command), "--help lacks {command}:\n{help}");
        assert_exit(&atrelay(&[command, "--help"]), 0, command);
    }
    assert!(help.contains("AT Protocol relay"), "{help}");
}

#[test]
fn version() {
    let out = atrelay(&["--version"]);
    assert_exit(&out, 0, "--version");
    assert!(
        stdout(&out).contains(env!("CARGO_PKG_VERSION")),
        "{}",
        stdout(&out)
    );
}

#[test]
fn usage_errors_exit_with_a_message() {
    let out = atrelay(&["keygen", "--curve", "ed25519"]);
    assert_ne!(out.status.code(), Some(0));
    assert!(stderr(&out).contains("ed25519"), "{}", stderr(&out));
    let out = atrelay(&["verify", "whatever.frame"]);
    assert_ne!(out.status.code(), Some(0));
    assert!(stderr(&out).contains("--key"), "{}", stderr(&out));
}

#[test]
fn keygen_keys_round_trip() {
    for (arg, curve) in [("k256", Curve::K256), ("p256", Curve::P256)] {
        let out = atrelay(&["keygen", "--curve", arg, "--json"]);
        assert_exit(&out, 0, arg);
        assert!(stderr(&out).contains("secret"), "{}", stderr(&out));
        let j = json_out(&out);
        assert_eq!(j["curve"], arg);
        let did_key = j["didKey"].as_str().expect("didKey");
        let public = PublicKey::from_did_key(did_key).expect("didKey parses");
        assert_eq!(public.curve(), curve);
        assert_eq!(j["multikey"].as_str(), Some(public.to_multikey().as_str()));
        assert_eq!(Some(did_key), j["didKey"].as_str());

        let hex = j["privateKeyHex"].as_str().expect("privateKeyHex");
        assert_eq!(hex.len(), 64, "{hex}");
        let bytes: Vec<u8> = (0..32)
            .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).expect("hex"))
            .collect();
        let private = PrivateKey::from_bytes(curve, &bytes).expect("private key imports");
        assert_eq!(private.public_key(), public);
    }

    // Plain output names the same three things; default curve k256.
    let out = atrelay(&["keygen"]);
    assert_exit(&out, 0, "keygen");
    let text = stdout(&out);
    let did_key = text
        .lines()
        .find_map(|l| l.strip_prefix("did:key:"))
        .map(str::trim)
        .expect("a did:key line");
    let public = PublicKey::from_did_key(did_key).expect("printed did:key parses");
    assert_eq!(public.curve(), Curve::K256);
    assert!(
        text.contains("multikey:") && text.contains("private key:"),
        "{text}"
    );
    assert!(stderr(&out).contains("secret"));
}

#[test]
fn inspect_indigo_vectors() {
    for path in indigo_vectors() {
        let name = path.display().to_string();
        let vector: Json =
            serde_json::from_slice(&std::fs::read(&path).expect("reading vector")).expect("JSON");
        let repo = vector["repo"].as_str().expect("repo");
        let commit = vector["commit"]["$link"].as_str().expect("commit");

        let out = atrelay(&["inspect", &name]);
        assert_exit(&out, 0, &name);
        let text = stdout(&out);
        assert!(text.contains(repo), "{name}: output lacks the repo DID");
        assert!(text.contains(commit), "{name}: output lacks the commit CID");

        let j = json_out(&out);
        assert_eq!(j["format"], "json", "{name}");
        assert_eq!(j["type"], "#commit", "{name}");
        assert_eq!(j["body"]["repo"], repo, "{name}");
        assert!(
            j.get("header").is_none(),
            "{name}: JSON bodies have no header"
        );
        // `blocks` is summarised, and decoded under `car`.
        assert!(j["body"]["blocks"].is_string(), "{name}");
        assert_eq!(j["car"]["roots"][0]["$link"], commit, "{name}");
        let blocks = j["car"]["blocks"].as_array().expect("blocks");
        assert_eq!(blocks[0]["kind"], "commit", "{name}");
        assert_eq!(blocks[0]["cid"], commit, "{name}");
        assert_eq!(blocks[0]["value"]["did"], repo, "{name}");
        assert_eq!(blocks[0]["value"]["version"], 3, "{name}");
        // The created records are found in the tree under their paths.
        for op in vector["ops"].as_array().expect("ops") {
            let cid = &op["cid"]["$link"];
            let record = blocks
                .iter()
                .find(|b| &b["cid"] == cid)
                .unwrap_or_else(|| panic!("{name}: no block {cid}"));
            assert_eq!(record["kind"], "record", "{name}");
            assert_eq!(record["path"], op["path"], "{name}");
        }
        assert!(
            blocks.iter().any(|b| b["kind"] == "mst-node"
                && b["entries"].as_array().is_some_and(|e| !e.is_empty())),
            "{name}: an MST node with decoded entries"
        );
    }
}

#[test]
fn verify_indigo_vector_fails_on_the_signature() {
    // The vectors carry no keys: any key we have is the wrong one.
    let key = PrivateKey::generate(Curve::K256).public_key().to_did_key();
    let path = indigo_vectors().remove(3);
    let out = atrelay(&[
        "verify",
        path.to_str().expect("UTF-8 path"),
        "--key",
        &key,
        "--now",
        "2025-02-06T02:00:00Z",
    ]);
    assert_exit(&out, 1, "verify vector");
    let err = stderr(&out);
    assert!(err.contains("signature"), "{err}");
    assert!(err.contains("no prevData"), "{err}");
}

#[test]
fn verify_a_signed_commit_frame() {
    let key = PrivateKey::generate(Curve::K256);
    let built = second_commit(&key);
    let frame = TempFile::new("commit.frame", &commit_frame(&built, false));
    let right = key.public_key().to_did_key();

    let out = atrelay(&["verify", frame.path(), "--key", &right]);
    assert_exit(&out, 0, "verify with the right key");
    let text = stdout(&out);
    assert!(text.contains(&built.commit.to_string()), "{text}");
    assert!(text.contains(&built.rev.to_string()), "{text}");
    assert!(text.contains(&built.data.to_string()), "{text}");
    assert!(text.contains("inverted:  yes"), "{text}");

    // The same key as a bare Multikey.
    let multikey = key.public_key().to_multikey();
    let out = atrelay(&["verify", frame.path(), "--key", &multikey]);
    assert_exit(&out, 0, "verify with a Multikey");

    for other in [Curve::K256, Curve::P256] {
        let wrong = PrivateKey::generate(other).public_key().to_did_key();
        let out = atrelay(&["verify", frame.path(), "--key", &wrong]);
        assert_exit(&out, 1, "verify with a wrong key");
        assert!(stderr(&out).contains("signature"), "{}", stderr(&out));
        assert!(stdout(&out).is_empty(), "{}", stdout(&out));
    }

    // A clock from before the commit's rev: the rev is in the future.
    let out = atrelay(&[
        "verify",
        frame.path(),
        "--key",
        &right,
        "--now",
        "2020-01-01T00:00:00Z",
    ]);
    assert_exit(&out, 1, "verify in the past");
    assert!(stderr(&out).contains("future"), "{}", stderr(&out));
}

#[test]
fn verify_prev_data_flag() {
    let key = PrivateKey::generate(Curve::P256);
    let built = second_commit(&key);
    let did_key = key.public_key().to_did_key();
    let prev = built.prev_data.to_string();
    let wrong = built.data.to_string();

    // Without prevData, inversion is skipped; --prev-data supplies it.
    let bare = TempFile::new("bare.frame", &commit_frame(&built, true));
    let out = atrelay(&["verify", bare.path(), "--key", &did_key]);
    assert_exit(&out, 0, "verify without prevData");
    assert!(stdout(&out).contains("inverted:  no"), "{}", stdout(&out));
    assert!(stderr(&out).contains("skipped"), "{}", stderr(&out));

    let out = atrelay(&[
        "verify",
        bare.path(),
        "--key",
        &did_key,
        "--prev-data",
        &prev,
    ]);
    assert_exit(&out, 0, "verify with --prev-data");
    assert!(stdout(&out).contains("inverted:  yes"), "{}", stdout(&out));

    let out = atrelay(&[
        "verify",
        bare.path(),
        "--key",
        &did_key,
        "--prev-data",
        &wrong,
    ]);
    assert_exit(&out, 1, "verify with a wrong --prev-data");
    assert!(stderr(&out).contains("prevData"), "{}", stderr(&out));

    // With prevData in the event, --prev-data must agree with it.
    let full = TempFile::new("full.frame", &commit_frame(&built, false));
    let out = atrelay(&[
        "verify",
        full.path(),
        "--key",
        &did_key,
        "--prev-data",
        &prev,
    ]);
    assert_exit(&out, 0, "matching --prev-data");
    let out = atrelay(&[
        "verify",
        full.path(),
        "--key",
        &did_key,
        "--prev-data",
        &wrong,
    ]);
    assert_exit(&out, 1, "conflicting --prev-data");
    assert!(stderr(&out).contains("--prev-data"), "{}", stderr(&out));
}

#[test]
fn verify_and_inspect_a_sync_frame() {
    let key = PrivateKey::generate(Curve::K256);
    let built = second_commit(&key);
    // A #sync's CAR holds only the signed commit.
    let (commit_cid, commit_block) = &built.new_blocks[0];
    let mut car = CarWriter::new(&[*commit_cid]);
    car.push(commit_cid, commit_block);
    let car = car.finish();
    let rev = built.rev.to_string();
    let mut bytes = Vec::new();
    Event::Sync(Sync {
        seq: 7,
        did: DID,
        blocks: &car,
        rev: &rev,
        time: TIME,
    })
    .encode(&mut bytes);
    let frame = TempFile::new("sync.frame", &bytes);

    let did_key = key.public_key().to_did_key();
    let out = atrelay(&["verify", frame.path(), "--key", &did_key]);
    assert_exit(&out, 0, "verify #sync");
    let text = stdout(&out);
    assert!(text.contains("verified #sync"), "{text}");
    assert!(text.contains(&built.commit.to_string()), "{text}");

    let wrong = PrivateKey::generate(Curve::K256).public_key().to_did_key();
    let out = atrelay(&["verify", frame.path(), "--key", &wrong]);
    assert_exit(&out, 1, "verify #sync with a wrong key");
    assert!(stderr(&out).contains("signature"), "{}", stderr(&out));

    let out = atrelay(&["inspect", frame.path()]);
    assert_exit(&out, 0, "inspect #sync");
    let j = json_out(&out);
    assert_eq!(j["type"], "#sync");
    assert_eq!(j["car"]["blockCount"], 1);
    assert_eq!(j["car"]["blocks"][0]["kind"], "commit");
    assert_eq!(j["car"]["blocks"][0]["value"]["rev"], rev);
}

#[test]
fn inspect_a_commit_frame() {
    let key = PrivateKey::generate(Curve::K256);
    let built = second_commit(&key);
    let frame = TempFile::new("inspect.frame", &commit_frame(&built, false));

    let out = atrelay(&["inspect", frame.path()]);
    assert_exit(&out, 0, "inspect frame");
    let j = json_out(&out);
    assert_eq!(j["format"], "frame");
    assert_eq!(j["header"]["t"], "#commit");
    assert_eq!(j["header"]["op"], 1);
    assert_eq!(j["type"], "#commit");
    assert_eq!(j["body"]["repo"], DID);
    assert_eq!(j["body"]["seq"], 42);
    assert_eq!(j["body"]["ops"].as_array().map(Vec::len), Some(3));
    assert_eq!(j["body"]["prevData"]["$link"], built.prev_data.to_string());
    let blocks = j["car"]["blocks"].as_array().expect("blocks");
    assert_eq!(blocks[0]["kind"], "commit");
    assert_eq!(blocks[0]["cid"], built.commit.to_string());
    assert_eq!(blocks[1]["kind"], "mst-node");
    assert_eq!(blocks[1]["cid"], built.data.to_string());
    let records: Vec<&Json> = blocks.iter().filter(|b| b["kind"] == "record").collect();
    assert_eq!(records.len(), 2, "the created and the updated record");
    assert!(records
        .iter()
        .any(|r| r["path"] == "app.bsky.feed.post/3kzzz000aaaa" && r["value"]["text"] == "new"));

    // --format frame agrees with detection; the CAR alone and one block too.
    let out = atrelay(&["inspect", "--format", "frame", frame.path()]);
    assert_exit(&out, 0, "inspect --format frame");
    assert_eq!(json_out(&out)["type"], "#commit");

    let car = TempFile::new("diff.car", &built.car);
    let out = atrelay(&["inspect", car.path()]);
    assert_exit(&out, 0, "inspect CAR");
    let j = json_out(&out);
    assert_eq!(j["format"], "car");
    assert_eq!(j["roots"][0]["$link"], built.commit.to_string());
    assert_eq!(j["blocks"][0]["kind"], "commit");

    let (_, commit_block) = &built.new_blocks[0];
    let block = TempFile::new("commit.cbor", commit_block);
    let out = atrelay(&["inspect", block.path()]);
    assert_exit(&out, 0, "inspect block");
    let j = json_out(&out);
    assert_eq!(j["format"], "cbor");
    assert_eq!(j["kind"], "commit");
    assert_eq!(j["cid"], built.commit.to_string());
    assert_eq!(j["value"]["did"], DID);
}

#[test]
fn corrupted_frame_fails_cleanly() {
    let key = PrivateKey::generate(Curve::K256);
    let built = second_commit(&key);
    let did_key = key.public_key().to_did_key();
    let mut bytes = commit_frame(&built, false);
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x55;
    let frame = TempFile::new("corrupt.frame", &bytes);

    for args in [
        vec!["inspect", frame.path()],
        vec!["verify", frame.path(), "--key", &did_key],
    ] {
        let out = atrelay(&args);
        assert_exit(&out, 1, &format!("{args:?}"));
        let err = stderr(&out);
        assert!(err.contains("atrelay: error:"), "{args:?}: {err}");
        assert!(
            err.contains(frame.path()),
            "{args:?}: names the file: {err}"
        );
        assert!(err.contains("byte"), "{args:?}: says where: {err}");
    }
}

#[test]
fn flipped_bytes_never_panic() {
    let key = PrivateKey::generate(Curve::K256);
    let built = second_commit(&key);
    let did_key = key.public_key().to_did_key();
    let clean = commit_frame(&built, false);
    // Every 29th byte: header, body fields, CAR sections and blocks all get hit.
    for at in (0..clean.len()).step_by(29) {
        let mut bytes = clean.clone();
        bytes[at] ^= 0xff;
        let frame = TempFile::new("flip.frame", &bytes);
        for args in [
            vec!["inspect", frame.path()],
            vec!["verify", frame.path(), "--key", &did_key],
        ] {
            let out = atrelay(&args);
            let code = out.status.code();
            assert!(
                code == Some(0) || code == Some(1),
                "byte {at}, {args:?}: status {code:?}\n{}",
                stderr(&out)
            );
            if code == Some(1) {
                assert!(
                    stderr(&out).contains("atrelay: error:"),
                    "byte {at}: {}",
                    stderr(&out)
                );
            }
        }
    }
}

#[test]
fn garbage_is_refused_with_a_clear_error() {
    let garbage = TempFile::new("garbage.bin", b"this is not protocol data \x00\x01\x02");
    let out = atrelay(&["inspect", garbage.path()]);
    assert_exit(&out, 1, "inspect garbage");
    assert!(stdout(&out).is_empty());
    let err = stderr(&out);
    assert!(err.contains("unrecognised input"), "{err}");
    assert!(err.contains(garbage.path()), "{err}");

    let out = atrelay(&["inspect", "--format", "car", garbage.path()]);
    assert_exit(&out, 1, "inspect garbage as CAR");
    assert!(stderr(&out).contains("CAR"), "{}", stderr(&out));

    let json = TempFile::new("bad.json", b"{\"repo\": ");
    let out = atrelay(&["inspect", json.path()]);
    assert_exit(&out, 1, "inspect truncated JSON");
    assert!(stderr(&out).contains("JSON"), "{}", stderr(&out));

    let missing = Path::new(env!("CARGO_MANIFEST_DIR")).join("no-such-file.frame");
    let out = atrelay(&["inspect", missing.to_str().expect("UTF-8 path")]);
    assert_exit(&out, 1, "inspect a missing file");
    assert!(
        stderr(&out).contains("no-such-file.frame"),
        "{}",
        stderr(&out)
    );
}

// ---------------------------------------------------------------------------
// config/: every shipped file, through the loaders the binaries use.

/// `section -> keys` of a TOML table of tables.
fn toml_keys(table: &toml::Table) -> std::collections::BTreeMap<String, Vec<String>> {
    table
        .iter()
        .map(|(section, v)| {
            let keys = v
                .as_table()
                .unwrap_or_else(|| panic!("[{section}] is a table"))
                .keys()
                .cloned()
                .collect();
            (section.clone(), keys)
        })
        .collect()
}

/// `section.key` of each `key = value` line (not comments, sections or
/// blank), with the comment line right above it (`None` when there is none).
fn commented_keys(text: &str) -> Vec<(String, Option<String>)> {
    let lines: Vec<&str> = text.lines().collect();
    let mut out = Vec::new();
    let mut section = "";
    for (i, line) in lines.iter().enumerate() {
        let line = line.trim();
        if let Some(name) = line.strip_prefix('[') {
            section = name.trim_end_matches(']');
            continue;
        }
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let key = line.split('=').next().unwrap_or_default().trim().to_owned();
        let above = i
            .checked_sub(1)
            .map(|j| lines[j].trim())
            .filter(|l| l.starts_with('#'))
            .map(str::to_owned);
        out.push((format!("{section}.{key}"), above));
    }
    out
}

fn no_env() -> std::iter::Empty<(String, String)> {
    std::iter::empty()
}

/// Asserts `text` sets exactly the keys of `defaults` (so no knob is left
/// undocumented and none is stale), each under its own comment.
fn assert_documents_every_key(name: &str, text: &str, defaults: toml::Table) {
    let file: toml::Table = text.parse().unwrap_or_else(|e| panic!("{name}: {e}"));
    assert_eq!(
        toml_keys(&file),
        toml_keys(&defaults),
        "config/{name} sets every key the code accepts, and only those"
    );
    for (key, comment) in commented_keys(text) {
        assert!(
            comment.is_some(),
            "config/{name}: {key} has no comment above it"
        );
    }
}

#[test]
fn shipped_config_files_document_the_defaults() {
    use atrelay::config::{BudgetConfig, RelayConfig};
    use atrelay::devnet::DevnetSettings;
    use atrelay::pds::config::PdsConfig;

    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("config");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .expect("config/ exists")
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    let readme = std::fs::read_to_string(dir.join("README.md")).expect("config/README.md");
    for name in &names {
        let path = dir.join(name);
        let text = std::fs::read_to_string(&path).unwrap();
        if name != "README.md" {
            assert!(
                readme.contains(name.as_str()),
                "config/README.md describes {name}"
            );
        }
        match name.as_str() {
            "README.md" => {}
            "relay.toml" => {
                let cfg = RelayConfig::load(Some(&path), no_env()).unwrap();
                assert_eq!(
                    cfg,
                    RelayConfig::default(),
                    "config/relay.toml shows the defaults"
                );
                let defaults = toml::Table::try_from(RelayConfig::default()).unwrap();
                assert_documents_every_key(name, &text, defaults);
            }
            "pds.toml" => {
                let cfg = PdsConfig::load(Some(&path), no_env()).unwrap();
                assert_eq!(
                    cfg,
                    PdsConfig::default(),
                    "config/pds.toml shows the defaults"
                );
                let defaults = toml::Table::try_from(PdsConfig::default()).unwrap();
                assert_documents_every_key(name, &text, defaults);
            }
            "devnet.toml" => {
                let cfg = DevnetSettings::load(Some(&path)).unwrap();
                assert_eq!(
                    cfg,
                    DevnetSettings::default(),
                    "config/devnet.toml shows the defaults"
                );
                let mut defaults = toml::Table::new();
                defaults.insert(
                    "devnet".into(),
                    toml::Value::try_from(DevnetSettings::default()).unwrap(),
                );
                assert_documents_every_key(name, &text, defaults);
            }
            budget if budget.starts_with("budget-") && budget.ends_with(".toml") => {
                let cfg = RelayConfig::load(Some(&path), no_env())
                    .unwrap_or_else(|e| panic!("config/{budget}: {e}"));
                // A profile sets the crawl mode and budgets, nothing else.
                let mut expect = RelayConfig::default();
                expect.crawl.mode = cfg.crawl.mode;
                expect.budget = cfg.budget.clone();
                assert_eq!(
                    cfg, expect,
                    "config/{budget} changes only crawl.mode and [budget]"
                );
                assert_comments_give_defaults(budget, &text);
                if budget == "budget-network.toml" {
                    assert_eq!(
                        cfg.budget,
                        BudgetConfig::default(),
                        "the network's limits are the defaults"
                    );
                }
            }
            memory if memory.starts_with("memory-") && memory.ends_with(".toml") => {
                let cfg = RelayConfig::load(Some(&path), no_env())
                    .unwrap_or_else(|e| panic!("config/{memory}: {e}"));
                cfg.validate()
                    .unwrap_or_else(|e| panic!("config/{memory}: {e}"));
                // A memory profile sets cache, memtable and ring sizes only.
                let mut expect = RelayConfig::default();
                expect.identity.cache_capacity = cfg.identity.cache_capacity;
                expect.verify.account_cache_capacity = cfg.verify.account_cache_capacity;
                expect.log.memtable_mib = cfg.log.memtable_mib;
                expect.log.block_cache_mib = cfg.log.block_cache_mib;
                expect.fanout.ring_capacity = cfg.fanout.ring_capacity;
                assert_eq!(cfg, expect, "config/{memory} changes only memory sizes");
                assert_comments_give_defaults(memory, &text);
            }
            other => panic!("config/{other}: a file this test does not check; add it here"),
        }
    }
    for want in [
        "README.md",
        "budget-early-access.toml",
        "budget-network.toml",
        "devnet.toml",
        "memory-512mb.toml",
        "pds.toml",
        "relay.toml",
    ] {
        assert!(names.iter().any(|n| n == want), "config/{want} is shipped");
    }
}

#[test]
fn devnet_settings_read_seeds_numbers_and_directories() {
    use atrelay::devnet::DevnetSettings;

    let file = TempFile::new(
        "devnet.toml",
        b"[devnet]\nseed = 7\nrate = 10\nduration = 2.5\ndata_dir = \"/tmp/net\"\n",
    );
    let s = DevnetSettings::load(Some(Path::new(file.path()))).unwrap();
    assert_eq!(s.seed, Some(7));
    assert_eq!(s.rate, 10.0, "an integer rate is accepted");
    assert_eq!(s.duration, 2.5);
    assert_eq!(s.data_dir(), Some(Path::new("/tmp/net")));
    assert_eq!(
        s.pds,
        DevnetSettings::default().pds,
        "unset keys keep their defaults"
    );
    let s = DevnetSettings::load(None).unwrap();
    assert_eq!(s.seed, None);
    assert_eq!(s.data_dir(), None, "empty means a temporary directory");
    let cfg = s.config(Path::new("/tmp/x"));
    assert_eq!((cfg.pds_count, cfg.accounts_per_pds), (s.pds, s.accounts));
    assert_eq!(cfg.relay_listen, s.listen);
}

#[test]
fn devnet_config_errors_name_the_key() {
    for (toml, args, want) in [
        ("[devnet]\nrate = -1.0\n", &[][..], "devnet.rate"),
        ("[devnet]\npds = 0\n", &[], "devnet.pds"),
        ("[devnet]\npdss = 2\n", &[], "devnet.pdss"),
        ("[devnett]\npds = 2\n", &[], "devnett"),
        ("[devnet]\nseed = \"sometimes\"\n", &[], "sometimes"),
        ("[devnet]\nseed = -3\n", &[], "-3"),
        ("[devnet]\nlisten = \"nowhere\"\n", &[], "socket address"),
        // A valid file, then a bad flag: the merged value is checked too.
        ("[devnet]\n", &["--duration=-1"], "--duration"),
        ("[devnet]\n", &["--pds", "0"], "--pds"),
    ] {
        let file = TempFile::new("devnet.toml", toml.as_bytes());
        let mut argv = vec!["devnet", "--config", file.path()];
        argv.extend_from_slice(args);
        let out = atrelay(&argv);
        assert_exit(&out, 1, &format!("devnet with {toml:?} {args:?}"));
        let err = stderr(&out);
        assert!(
            err.contains(want),
            "{toml:?} {args:?}: want {want:?} in\n{err}"
        );
        assert!(stdout(&out).is_empty(), "nothing started: {}", stdout(&out));
    }
    let out = atrelay(&["devnet", "--config", "/no/such/devnet.toml"]);
    assert_exit(&out, 1, "devnet with a missing config file");
    assert!(
        stderr(&out).contains("/no/such/devnet.toml"),
        "{}",
        stderr(&out)
    );
}

/// A devnet that fails half-way (its second PDS cannot open its data: the
/// path is a file) stops the PLC directory, relay and PDS it had started and
/// exits 1 with the reason, rather than exiting with their databases still
/// open (which crashes RocksDB in its destructors, as a full disk once did).
#[test]
fn devnet_failing_half_way_exits_cleanly() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("net");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(data.join("pds-1"), "not a directory").unwrap();
    let data_dir = data.to_str().unwrap();
    let devnet = |extra: &[&str]| {
        let mut args = vec!["devnet", "--pds", "2", "--accounts", "1", "--duration", "1"];
        args.extend_from_slice(extra);
        args.extend_from_slice(&["--listen", "127.0.0.1:0", "--data-dir", data_dir]);
        atrelay(&args)
    };
    let out = devnet(&[]);
    assert_exit(&out, 1, "devnet whose second PDS cannot start");
    assert!(stderr(&out).contains("PDS 1"), "{}", stderr(&out));
    // Nothing was left half-written: fixed, the same directory starts.
    std::fs::remove_file(data.join("pds-1")).unwrap();
    let again = devnet(&["--rate", "0"]);
    assert_exit(
        &again,
        0,
        "the same devnet once its data directory is fixed",
    );
}

/// Each key of a relay profile (`config/NAME`, text `text`) sits under a
/// comment that gives its built-in default, truthfully.
fn assert_comments_give_defaults(name: &str, text: &str) {
    let defaults = toml::Table::try_from(atrelay::config::RelayConfig::default()).unwrap();
    let file: toml::Table = text.parse().unwrap();
    let comments: HashMap<String, Option<String>> = commented_keys(text).into_iter().collect();
    for (section, entries) in &file {
        for key in entries.as_table().unwrap().keys() {
            let default = &defaults[section.as_str()][key.as_str()];
            let want = format!("(default {default})");
            let comment = comments[&format!("{section}.{key}")]
                .clone()
                .unwrap_or_default();
            assert!(
                comment.contains(&want),
                "config/{name}: {section}.{key}'s comment {comment:?} says {want}"
            );
        }
    }
}

/// The file's values apply where no flag is given, and flags win: the file
/// asks for one PDS with one account, a kept data directory, a 10-minute run
/// on port 2470; the flags shorten the run and pick a free port.
#[test]
fn devnet_flags_win_over_the_config_file() {
    use std::io::Read;
    use std::process::Stdio;
    use std::time::{Duration, Instant};

    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("net");
    let config = tmp.path().join("devnet.toml");
    std::fs::write(
        &config,
        format!(
            "[devnet]\npds = 1\naccounts = 1\nrate = 20.0\nduration = 600.0\nseed = 3\n\
             listen = \"127.0.0.1:2470\"\ndata_dir = {:?}\n",
            data.to_str().unwrap()
        ),
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_atrelay"))
        .arg("devnet")
        .arg("--config")
        .arg(&config)
        .args(["--duration", "2", "--listen", "127.0.0.1:0"])
        .env("TMPDIR", tmp.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("--duration 2 did not win over the file's 600 s");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let (mut out, mut err) = (String::new(), String::new());
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert!(status.success(), "{status}\nstdout:\n{out}\nstderr:\n{err}");
    let first = out.lines().next().unwrap_or_default();
    let port = first
        .rsplit(':')
        .next()
        .and_then(|p| p.parse::<u16>().ok())
        .unwrap_or_else(|| panic!("first line {first:?}"));
    assert_ne!(port, 2470, "--listen won over the file: {first}");
    let pds_lines = out.lines().filter(|l| l.starts_with("pds ")).count();
    assert_eq!(pds_lines, 1, "the file's pds = 1:\n{out}");
    let accounts = out.lines().filter(|l| l.starts_with("account: ")).count();
    assert_eq!(accounts, 1, "the file's accounts = 1:\n{out}");
    assert!(
        out.contains(&format!("data: {}", data.display())),
        "the file's data_dir:\n{out}"
    );
    assert!(data.join("relay").is_dir(), "the data directory is kept");
}
