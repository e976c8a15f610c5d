//! The run's picture, as a self-contained SVG (no plotting dependency):
//! top, accepted events/s and p99 latency against the offered rate, with the
//! "keeps up" diagonal; bottom, the relay's CPU and RSS over the run.

use std::fmt::Write;

use super::report::{Report, Sample};

const W: f64 = 900.0;
const PANEL_H: f64 = 300.0;
const LEFT: f64 = 70.0;
const RIGHT: f64 = 70.0;
const TOP: f64 = 40.0;
const GAP: f64 = 80.0;

struct Axis {
    min: f64,
    max: f64,
}

impl Axis {
    fn of(values: impl Iterator<Item = f64>) -> Axis {
        let max = values.fold(0.0f64, f64::max);
        Axis {
            min: 0.0,
            max: nice(if max > 0.0 { max } else { 1.0 }),
        }
    }

    fn at(&self, v: f64, from: f64, to: f64) -> f64 {
        from + (v - self.min) / (self.max - self.min) * (to - from)
    }
}

/// Rounds up to a round multiple of a power of ten (1, 1.2, 1.5, 2, 2.5 …).
fn nice(v: f64) -> f64 {
    let p = 10f64.powf(v.log10().floor());
    for m in [1.0, 1.2, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0] {
        if v <= m * p {
            return m * p;
        }
    }
    10.0 * p
}

fn label(v: f64) -> String {
    if v >= 1_000_000.0 {
        format!("{:.1}M", v / 1e6)
    } else if v >= 1_000.0 {
        format!("{:.0}k", v / 1e3)
    } else if v >= 10.0 || v == 0.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}

#[allow(clippy::too_many_arguments)]
fn panel(
    svg: &mut String,
    top: f64,
    title: &str,
    x: &Axis,
    x_name: &str,
    left: (&Axis, &str, &str, &[(f64, f64)]),
    right: (&Axis, &str, &str, &[(f64, f64)]),
    diagonal: bool,
) {
    let (x0, x1, y0, y1) = (LEFT, W - RIGHT, top + PANEL_H, top);
    let _ = write!(
        svg,
        r#"<text x="{}" y="{}" font-size="15" font-weight="bold">{title}</text>"#,
        LEFT,
        top - 12.0
    );
    let _ = write!(
        svg,
        r##"<rect x="{x0}" y="{y1}" width="{}" height="{PANEL_H}" fill="none" stroke="#999"/>"##,
        x1 - x0
    );
    for i in 0..=5 {
        let f = i as f64 / 5.0;
        let xv = x.min + f * (x.max - x.min);
        let px = x.at(xv, x0, x1);
        let _ = write!(
            svg,
            r##"<line x1="{px}" y1="{y0}" x2="{px}" y2="{y1}" stroke="#eee"/><text x="{px}" y="{}" font-size="11" text-anchor="middle">{}</text>"##,
            y0 + 15.0,
            label(xv)
        );
        for (axis, anchor, lx) in [(left.0, "end", x0 - 5.0), (right.0, "start", x1 + 5.0)] {
            let yv = axis.min + f * (axis.max - axis.min);
            let py = axis.at(yv, y0, y1);
            let _ = write!(
                svg,
                r#"<text x="{lx}" y="{}" font-size="11" text-anchor="{anchor}">{}</text>"#,
                py + 4.0,
                label(yv)
            );
        }
    }
    let _ = write!(
        svg,
        r#"<text x="{}" y="{}" font-size="12" text-anchor="middle">{x_name}</text>"#,
        (x0 + x1) / 2.0,
        y0 + 32.0
    );
    let _ = write!(
        svg,
        r#"<text x="{}" y="{}" font-size="12" fill="{}">{}</text><text x="{}" y="{}" font-size="12" fill="{}" text-anchor="end">{}</text>"#,
        x0,
        y0 + 50.0,
        left.2,
        left.1,
        x1,
        y0 + 50.0,
        right.2,
        right.1
    );
    if diagonal {
        let m = x.max.min(left.0.max);
        let _ = write!(
            svg,
            r##"<line x1="{}" y1="{}" x2="{}" y2="{}" stroke="#bbb" stroke-dasharray="4 4"/>"##,
            x.at(0.0, x0, x1),
            left.0.at(0.0, y0, y1),
            x.at(m, x0, x1),
            left.0.at(m, y0, y1)
        );
    }
    for (axis, _, color, points) in [left, right] {
        if points.is_empty() {
            continue;
        }
        let pts: Vec<String> = points
            .iter()
            .map(|(a, b)| format!("{:.1},{:.1}", x.at(*a, x0, x1), axis.at(*b, y0, y1)))
            .collect();
        let _ = write!(
            svg,
            r#"<polyline points="{}" fill="none" stroke="{color}" stroke-width="2"/>"#,
            pts.join(" ")
        );
        for p in &pts {
            let (cx, cy) = p.split_once(',').unwrap_or(("0", "0"));
            let _ = write!(svg, r#"<circle cx="{cx}" cy="{cy}" r="3" fill="{color}"/>"#);
        }
    }
}

/// The SVG document for `report`.
pub fn svg(report: &Report) -> String {
    let mut svg = String::new();
    let height = TOP + 2.0 * PANEL_H + GAP + 90.0;
    let _ = write!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{height}" font-family="sans-serif"><rect width="100%" height="100%" fill="white"/>"#
    );
    let accepted: Vec<(f64, f64)> = report
        .steps
        .iter()
        .map(|s| (s.offered_rate, s.accepted_rate))
        .collect();
    let p99: Vec<(f64, f64)> = report
        .steps
        .iter()
        .map(|s| (s.offered_rate, s.latency_ms.p99))
        .collect();
    let x = Axis::of(accepted.iter().map(|p| p.0));
    let y_rate = Axis::of(accepted.iter().flat_map(|p| [p.0, p.1]));
    let y_lat = Axis::of(p99.iter().map(|p| p.1));
    panel(
        &mut svg,
        TOP,
        &format!(
            "{}: accepted rate and p99 latency vs offered rate",
            report.scenario
        ),
        &x,
        "offered events/s",
        (&y_rate, "accepted events/s (left)", "#1f77b4", &accepted),
        (&y_lat, "p99 latency, ms (right)", "#d62728", &p99),
        true,
    );
    let t0 = report.samples.first().map_or(0.0, |s| s.t);
    let cpu: Vec<(f64, f64)> = report
        .samples
        .windows(2)
        .map(|w: &[Sample]| {
            let dt = (w[1].t - w[0].t).max(1e-9);
            (w[1].t - t0, 100.0 * (w[1].relay_cpu - w[0].relay_cpu) / dt)
        })
        .collect();
    let rss: Vec<(f64, f64)> = report
        .samples
        .iter()
        .map(|s| (s.t - t0, s.relay_rss as f64 / (1024.0 * 1024.0)))
        .collect();
    let xt = Axis::of(rss.iter().map(|p| p.0));
    let y_cpu = Axis::of(cpu.iter().map(|p| p.1));
    let y_rss = Axis::of(rss.iter().map(|p| p.1));
    panel(
        &mut svg,
        TOP + PANEL_H + GAP,
        "relay CPU and RSS over the run",
        &xt,
        "seconds",
        (&y_cpu, "relay CPU, % of one core (left)", "#2ca02c", &cpu),
        (&y_rss, "relay RSS, MiB (right)", "#9467bd", &rss),
        false,
    );
    svg.push_str("</svg>\n");
    svg
}
