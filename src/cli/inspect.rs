//! `atrelay inspect`: decode any protocol data and print it as JSON.
//!
//! The input's format is detected (see [`super::input`]) unless `--format`
//! says. Everything is decoded with the library's strict decoders, so what
//! `inspect` shows is exactly what the relay would accept; values are printed
//! in the data model's JSON form (`{"$link"}` for CIDs, `{"$bytes"}` for
//! bytes), except an event's `blocks`, which is summarised and then shown
//! decoded as a CAR.
//!
//! When the envelope decodes but something inside does not (a block whose
//! bytes do not match its CID, a malformed MST node), the output is still
//! printed with the failure marked in place, and the command then fails: the
//! user sees both what is there and that it is not acceptable.

use atrelay::repo::commit::Commit as RepoCommit;
use atrelay::repo::mst::Node;
use atrelay::wire::car::CarLimits;
use atrelay::wire::cbor::{Decoder, Value};
use atrelay::wire::cid::Cid;
use atrelay::wire::frame::Event;
use atrelay::wire::json::value_to_json;
use serde::Serialize;
use serde_json::Value as Json;

use super::car_view::{self, CarJson, NodeJson};
use super::error::{CliError, CliResult};
use super::event::{FrameBytes, Origin};
use super::input::{self, Format};
use super::output::print_json;

/// Arguments of `atrelay inspect`.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:\n  \
    atrelay inspect event.frame\n  \
    atrelay inspect firehose_commit.json\n  \
    atrelay inspect --format car repo.car\n  \
    cat block.cbor | atrelay inspect -")]
pub struct InspectArgs {
    /// The file to decode, or `-` for standard input.
    #[arg(value_name = "FILE|-")]
    pub input: String,
    /// Read the input as this format instead of detecting it.
    #[arg(long, value_enum, value_name = "FORMAT")]
    pub format: Option<Format>,
}

/// A frame or JSON event body, decoded.
#[derive(Serialize)]
struct EventView {
    format: &'static str,
    /// Bytes of input.
    size: usize,
    /// The frame header; absent for JSON input, which has none.
    #[serde(skip_serializing_if = "Option::is_none")]
    header: Option<Json>,
    /// `#commit`, `#sync`, …, `error`, or `unknown`.
    #[serde(rename = "type")]
    kind: String,
    body: Json,
    /// `blocks` decoded, for `#commit` and `#sync`.
    #[serde(skip_serializing_if = "Option::is_none")]
    car: Option<CarSlot>,
}

/// A decoded CAR, or why it could not be decoded.
#[derive(Serialize)]
#[serde(untagged)]
enum CarSlot {
    Car(CarJson),
    Error { error: String },
}

/// A standalone CAR file.
#[derive(Serialize)]
struct CarFileView {
    format: &'static str,
    #[serde(flatten)]
    car: CarJson,
}

/// A single DAG-CBOR value.
#[derive(Serialize)]
struct CborView {
    format: &'static str,
    size: usize,
    /// The CID these bytes would have as a block.
    cid: String,
    /// `commit`, `mst-node` or `value`.
    kind: &'static str,
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    node: Option<NodeJson>,
    value: Json,
}

/// Runs `atrelay inspect`.
pub fn run(args: &InspectArgs) -> CliResult {
    let input = input::read(&args.input)?;
    let name = input.name.clone();
    inspect(input.bytes, args.format).map_err(|e| e.context(format!("inspect {name}")))
}

fn inspect(bytes: Vec<u8>, format: Option<Format>) -> CliResult {
    let format = match format {
        Some(f) => f,
        None => input::detect(&bytes)?,
    };
    let problems = match format {
        Format::Car => inspect_car(&bytes)?,
        Format::Cbor => inspect_cbor(&bytes)?,
        Format::Frame | Format::Json => inspect_event(bytes, format)?,
    };
    match problems.as_slice() {
        [] => Ok(()),
        [one] => Err(CliError::new(one.clone())),
        many => Err(CliError::new(format!(
            "{} problems: {}",
            many.len(),
            many.join("; ")
        ))),
    }
}

/// Prints a frame or JSON body; returns the problems found inside it.
fn inspect_event(bytes: Vec<u8>, format: Format) -> CliResult<Vec<String>> {
    let size = bytes.len();
    let frame = FrameBytes::load(bytes, format)?;
    let (event, body_at) = frame.decode()?;
    // The typed decode above validated both items; the generic decode here
    // shows them as sent, unknown fields included.
    let header = Value::read(&mut Decoder::new(&frame.bytes))
        .map_err(|e| CliError::new(format!("frame header: {e}")))?;
    let body = Value::decode(&frame.bytes[body_at..])
        .map_err(|e| CliError::new(format!("frame body: {e}")))?;
    let mut body = value_to_json(&body);

    let mut problems = Vec::new();
    let blocks = match &event {
        Event::Commit(c) => Some(c.blocks),
        Event::Sync(s) => Some(s.blocks),
        _ => None,
    };
    let kind = match event.kind().type_name() {
        Some(t) => t.to_owned(),
        None if matches!(event, Event::Error(_)) => "error".to_owned(),
        None => "unknown".to_owned(),
    };
    let car = blocks.map(|blocks| {
        if let Some(field) = body.get_mut("blocks") {
            *field = Json::String(format!(
                "<{} bytes of CAR: decoded under \"car\">",
                blocks.len()
            ));
        }
        match car_view::render(blocks, CarLimits::FIREHOSE, true) {
            Ok(view) => {
                problems.extend(
                    view.problems
                        .into_iter()
                        .map(|p| format!("{kind} blocks: {p}")),
                );
                CarSlot::Car(view.json)
            }
            Err(e) => {
                let at = frame.blocks_offset_note(blocks, &e.to_string());
                problems.push(format!("{kind} blocks: {e}{at}"));
                CarSlot::Error {
                    error: e.to_string(),
                }
            }
        }
    });
    print_json(&EventView {
        format: format.name(),
        size,
        header: (frame.origin == Origin::Frame).then(|| value_to_json(&header)),
        kind,
        body,
        car,
    })?;
    Ok(problems)
}

/// Prints a CAR file; returns the problems found in its blocks.
fn inspect_car(bytes: &[u8]) -> CliResult<Vec<String>> {
    // Repo exports are large; the firehose limits would refuse them.
    let view = car_view::render(bytes, CarLimits::REPO, false)
        .map_err(|e| CliError::new(e.to_string()))?;
    print_json(&CarFileView {
        format: Format::Car.name(),
        car: view.json,
    })?;
    Ok(view.problems)
}

/// Prints one DAG-CBOR value, recognising commit and MST node blocks.
fn inspect_cbor(bytes: &[u8]) -> CliResult<Vec<String>> {
    let value = Value::decode(bytes)
        .map_err(|e| CliError::new(format!("not a valid DAG-CBOR value: {e}")))?;
    let cid = Cid::for_cbor(bytes);
    let mut problems = Vec::new();
    let (kind, node) = if RepoCommit::decode(bytes).is_ok() {
        ("commit", None)
    } else if let Ok(node) = Node::decode(bytes) {
        (
            "mst-node",
            Some(car_view::render_node(&node, &cid, &mut problems)),
        )
    } else {
        ("value", None)
    };
    print_json(&CborView {
        format: Format::Cbor.name(),
        size: bytes.len(),
        cid: cid.to_string(),
        kind,
        node,
        value: value_to_json(&value),
    })?;
    Ok(problems)
}
