//! The fullnode's Prometheus metrics.

use prometheus::{
    Encoder, Histogram, HistogramOpts, IntCounterVec, IntGauge, Opts, Registry, TextEncoder,
};

/// Every metric the fullnode exports, in one registry of its own (so two
/// fullnodes in one process, as in tests, do not share counters).
#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    /// Heartbeats by `result`: `accepted` or a refusal reason
    /// (`forged`, `replayed`, `stale`, ...).
    pub heartbeats: IntCounterVec,
    pub providers_indexed: IntGauge,
    pub match_latency: Histogram,
}

impl Metrics {
    pub fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new();
        let heartbeats = IntCounterVec::new(
            Opts::new(
                "flowshield_heartbeats_total",
                "Gossiped heartbeats by result: accepted or the reason they were refused",
            ),
            &["result"],
        )?;
        let providers_indexed =
            IntGauge::new("flowshield_providers_indexed", "Providers in the index")?;
        let match_latency = Histogram::with_opts(
            HistogramOpts::new(
                "flowshield_match_latency_seconds",
                "Time to answer POST /v1/match",
            )
            .buckets(vec![
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0,
            ]),
        )?;
        registry.register(Box::new(heartbeats.clone()))?;
        registry.register(Box::new(providers_indexed.clone()))?;
        registry.register(Box::new(match_latency.clone()))?;
        // Pre-create every series so dashboards see zeros, not gaps.
        heartbeats.with_label_values(&["accepted"]);
        for reason in flowshield_proto::ProtoError::REASONS {
            heartbeats.with_label_values(&[reason]);
        }
        Ok(Self {
            registry,
            heartbeats,
            providers_indexed,
            match_latency,
        })
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        // Encoding to a Vec cannot fail for the text format.
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
        String::from_utf8_lossy(&out).into_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_every_reason() {
        let metrics = Metrics::new().unwrap();
        metrics.heartbeats.with_label_values(&["forged"]).inc();
        let text = metrics.render();
        assert!(text.contains("flowshield_heartbeats_total{result=\"forged\"} 1"));
        assert!(text.contains("flowshield_heartbeats_total{result=\"replayed\"} 0"));
        assert!(text.contains("flowshield_providers_indexed 0"));
        assert!(text.contains("flowshield_match_latency_seconds_bucket"));
    }
}
