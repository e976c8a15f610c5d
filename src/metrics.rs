//! Metric families, each declared once: its name, kind, unit, help text and
//! which of its series exist from the start ([`Family`]).
//!
//! Every module that records metrics owns a `metrics.rs` with a
//! `pub const NAME: &str = "atrelay_…"` per family (the use sites name the
//! constant, never the string) and a `FAMILIES` table describing each of
//! them. [`describe`] walks such a table: it attaches the help text and
//! registers the family's starting series at zero in the same step, so a
//! family cannot be described without being registered, or the reverse.
//! The composition layer (`node::metrics_exporter`) hands every module's
//! table to it when it installs the exporter.
//!
//! Every name is `atrelay_*` and labels come from small fixed sets (event
//! type, drop reason, host status, session end reason, error kind): never a
//! DID, a hostname or a client address, so the series count stays bounded
//! however large the network.
//!
//! This module sits at the ground: it knows the `metrics` facade and
//! nothing of the modules whose families it describes.
//!
//! ```
//! use atrelay::metrics::Family;
//! const FRAMES: &str = "atrelay_example_frames_total";
//! const FAMILIES: &[Family] = &[Family::counter(FRAMES, "Frames read")];
//! atrelay::metrics::describe(FAMILIES); // no recorder installed: a no-op
//! ```

use metrics::{KeyName, Label, SharedString, Unit};

/// What a family is, which decides how it is described and registered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
    Histogram,
}

/// One label of a family, with every value it can take before any
/// traffic (the values are a function so they can come from the enum that
/// owns the label, e.g. a drop reason's `as_str`).
#[derive(Clone, Copy, Debug)]
pub struct KnownLabel {
    pub key: &'static str,
    pub values: fn() -> Vec<&'static str>,
}

/// Which series of a family exist before anything is recorded.
///
/// Why register at zero: the exporter renders a family only once it has a
/// series, and many of ours only get one on a rare event (a forgery, a slow
/// consumer, a retention pass). Until then a dashboard panel would say "no
/// data", which reads as "not scraped" rather than "none happened", and
/// `rate()` or `increase()` over a counter that appears at its first
/// increment misses that increment. Registering is not recording: a
/// counter is incremented by 0 and a gauge moved by 0, so nothing already
/// counted is reset.
#[derive(Clone, Copy, Debug)]
pub enum AtStart {
    /// The unlabelled series, at zero (the default).
    Zero,
    /// One series per combination of these labels' known values, each at
    /// zero. A value missing from the list (say, a new drop reason) only
    /// means that series appears at its first increment.
    ZeroPer(&'static [KnownLabel]),
    /// None: the family's label values come with the traffic (event types
    /// when a crawler connects, host statuses at the first refresh, fetch
    /// outcomes at the first resolution), or the part that records it
    /// registers its handles when it starts.
    WithTraffic,
}

/// One metric family: what `/metrics` says about it (`# HELP`, `# TYPE`)
/// and which of its series exist from the start.
#[derive(Clone, Copy, Debug)]
pub struct Family {
    /// The exported name, `atrelay_*`.
    pub name: &'static str,
    pub kind: Kind,
    pub unit: Option<Unit>,
    /// The `# HELP` text.
    pub help: &'static str,
    pub at_start: AtStart,
}

impl Family {
    const fn new(kind: Kind, name: &'static str, help: &'static str) -> Family {
        Family {
            name,
            kind,
            unit: None,
            help,
            at_start: AtStart::Zero,
        }
    }

    /// A counter, registered at zero unless told otherwise.
    pub const fn counter(name: &'static str, help: &'static str) -> Family {
        Family::new(Kind::Counter, name, help)
    }

    /// A gauge, registered at zero unless told otherwise.
    pub const fn gauge(name: &'static str, help: &'static str) -> Family {
        Family::new(Kind::Gauge, name, help)
    }

    /// A histogram, registered with no observations unless told otherwise.
    pub const fn histogram(name: &'static str, help: &'static str) -> Family {
        Family::new(Kind::Histogram, name, help)
    }

    /// This family with its unit.
    pub const fn unit(self, unit: Unit) -> Family {
        Family {
            unit: Some(unit),
            ..self
        }
    }

    /// This family registered at zero once per combination of `labels`.
    pub const fn zero_per(self, labels: &'static [KnownLabel]) -> Family {
        Family {
            at_start: AtStart::ZeroPer(labels),
            ..self
        }
    }

    /// This family not registered at start ([`AtStart::WithTraffic`]).
    pub const fn with_traffic(self) -> Family {
        Family {
            at_start: AtStart::WithTraffic,
            ..self
        }
    }
}

/// Describes every family of `families` (help text and unit) to the
/// installed recorder and registers its starting series ([`AtStart`]).
/// Without a recorder this does nothing.
pub fn describe(families: &[Family]) {
    for family in families {
        describe_one(family);
        for labels in starting_series(family) {
            register_at_zero(family, labels);
        }
    }
}

fn describe_one(family: &Family) {
    let name = KeyName::from_const_str(family.name);
    let help = SharedString::const_str(family.help);
    metrics::with_recorder(|recorder| match family.kind {
        Kind::Counter => recorder.describe_counter(name, family.unit, help),
        Kind::Gauge => recorder.describe_gauge(name, family.unit, help),
        Kind::Histogram => recorder.describe_histogram(name, family.unit, help),
    });
}

/// The label sets of the series `family` has from the start: one empty
/// set for [`AtStart::Zero`], the product of the known values for
/// [`AtStart::ZeroPer`], none for [`AtStart::WithTraffic`].
fn starting_series(family: &Family) -> Vec<Vec<Label>> {
    match family.at_start {
        AtStart::Zero => vec![Vec::new()],
        AtStart::WithTraffic => Vec::new(),
        AtStart::ZeroPer(labels) => labels.iter().fold(vec![Vec::new()], |sets, label| {
            let values = (label.values)();
            sets.iter()
                .flat_map(|set| {
                    values.iter().map(move |value| {
                        let mut set = set.clone();
                        set.push(Label::from_static_parts(label.key, value));
                        set
                    })
                })
                .collect()
        }),
    }
}

fn register_at_zero(family: &Family, labels: Vec<Label>) {
    match family.kind {
        Kind::Counter => metrics::counter!(family.name, labels).increment(0),
        Kind::Gauge => metrics::gauge!(family.name, labels).increment(0.0),
        // Registering the handle is enough: the exporter renders a
        // registered histogram with zero counts.
        Kind::Histogram => {
            let _ = metrics::histogram!(family.name, labels);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KINDS: &[KnownLabel] = &[KnownLabel {
        key: "kind",
        values: || vec!["a", "b"],
    }];
    const SERVERS: &[KnownLabel] = &[
        KnownLabel {
            key: "server",
            values: || vec!["relay", "metrics"],
        },
        KnownLabel {
            key: "kind",
            values: || vec!["a", "b", "c"],
        },
    ];

    fn series(family: Family) -> Vec<String> {
        starting_series(&family)
            .iter()
            .map(|set| {
                let pairs: Vec<_> = set
                    .iter()
                    .map(|l| format!("{}={}", l.key(), l.value()))
                    .collect();
                pairs.join(",")
            })
            .collect()
    }

    #[test]
    fn starting_series_follow_at_start() {
        let c = Family::counter("atrelay_x_total", "x");
        assert_eq!(series(c), [""]);
        assert!(series(c.with_traffic()).is_empty());
        assert_eq!(series(c.zero_per(KINDS)), ["kind=a", "kind=b"]);
        assert_eq!(
            series(c.zero_per(SERVERS)),
            [
                "server=relay,kind=a",
                "server=relay,kind=b",
                "server=relay,kind=c",
                "server=metrics,kind=a",
                "server=metrics,kind=b",
                "server=metrics,kind=c",
            ]
        );
    }
}
