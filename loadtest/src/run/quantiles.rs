//! Latency quantiles as reports carry them: milliseconds, from the
//! generator's microsecond histograms.

use serde::Serialize;

use crate::histogram::Histogram;

/// Latency quantiles in milliseconds.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Quantiles {
    pub samples: u64,
    pub mean: f64,
    pub p50: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
}

impl From<&Histogram> for Quantiles {
    fn from(h: &Histogram) -> Quantiles {
        let ms = |us: u64| us as f64 / 1_000.0;
        Quantiles {
            samples: h.count(),
            mean: h.mean() / 1_000.0,
            p50: ms(h.quantile(0.5)),
            p99: ms(h.quantile(0.99)),
            p999: ms(h.quantile(0.999)),
            max: ms(h.max()),
        }
    }
}
