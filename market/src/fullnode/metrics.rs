//! The fullnode's Prometheus metrics.

use crate::net::MapGauges;
use prometheus::{
    Encoder, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

/// The bounded per-peer maps a fullnode keeps, as `map` labels.
pub const BOUNDED_MAPS: [&str; 11] = [
    "replay_guard",
    "cert_announcements",
    "cert_verdicts",
    "cert_checks_running",
    "stake_records",
    "stake_lookups_running",
    "stake_lookups_queued",
    "api_clients",
    "live_offers",
    "verifier_cache",
    "reputation",
];

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
    /// Certificate checks by `result`: `valid` or a refusal reason.
    pub cert_checks: IntCounterVec,
    /// Verifier reports by `source` (`http`, `gossip`) and `result`.
    pub reports: IntCounterVec,
    /// Time to write one batch of heartbeats to SQL.
    pub index_flush: Histogram,
    /// Provider rows written to SQL.
    pub index_rows: IntCounter,
    /// Entries in each bounded per-peer map, by `map`.
    pub tracked_peers: IntGaugeVec,
    /// Entries evicted from each bounded map to make room, by `map`.
    pub evictions: IntCounterVec,
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
        let cert_checks = IntCounterVec::new(
            Opts::new(
                "flowshield_cert_checks_total",
                "Provider certificate checks by result: valid or the reason for refusal",
            ),
            &["result"],
        )?;
        let reports = IntCounterVec::new(
            Opts::new(
                "flowshield_reports_total",
                "Verifier reports by source (http, gossip) and result",
            ),
            &["source", "result"],
        )?;
        let index_flush = Histogram::with_opts(
            HistogramOpts::new(
                "flowshield_index_flush_seconds",
                "Time to write one batch of heartbeats to the provider index",
            )
            .buckets(vec![
                0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0,
            ]),
        )?;
        let index_rows = IntCounter::new(
            "flowshield_index_rows_written_total",
            "Provider rows written to the index",
        )?;
        let tracked_peers = IntGaugeVec::new(
            Opts::new(
                "flowshield_tracked_peers",
                "Entries in each bounded per-peer map (replay guard, certificate state, API clients, live offers, verifier cache, reputation)",
            ),
            &["map"],
        )?;
        let evictions = IntCounterVec::new(
            Opts::new(
                "flowshield_evictions_total",
                "Entries evicted from each bounded per-peer map to make room for new peers",
            ),
            &["map"],
        )?;
        registry.register(Box::new(tracked_peers.clone()))?;
        registry.register(Box::new(evictions.clone()))?;
        for map in BOUNDED_MAPS {
            tracked_peers.with_label_values(&[map]);
            evictions.with_label_values(&[map]);
        }
        registry.register(Box::new(cert_checks.clone()))?;
        registry.register(Box::new(reports.clone()))?;
        registry.register(Box::new(index_flush.clone()))?;
        registry.register(Box::new(index_rows.clone()))?;
        cert_checks.with_label_values(&["valid"]);
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
            cert_checks,
            reports,
            index_flush,
            index_rows,
            tracked_peers,
            evictions,
        })
    }

    /// The gauge and eviction counter of one bounded map (`map` is one of
    /// [`BOUNDED_MAPS`]).
    pub fn map_gauges(&self, map: &str) -> MapGauges {
        MapGauges {
            tracked: self.tracked_peers.with_label_values(&[map]),
            evictions: self.evictions.with_label_values(&[map]),
        }
    }

    /// Pre-creates the series of every certificate refusal reason (also a
    /// heartbeat result) and every report result, so dashboards see zeros,
    /// not gaps. The lists belong to the modules that give those labels.
    pub fn precreate(&self, cert_refusals: &[&str], report_results: &[&str]) {
        for reason in cert_refusals {
            self.cert_checks.with_label_values(&[reason]);
            self.heartbeats.with_label_values(&[reason]);
        }
        for source in ["http", "gossip"] {
            for result in report_results {
                self.reports.with_label_values(&[source, result]);
            }
        }
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
        assert!(text.contains("flowshield_tracked_peers{map=\"replay_guard\"} 0"));
        assert!(text.contains("flowshield_evictions_total{map=\"api_clients\"} 0"));
    }

    #[test]
    fn map_gauges_follow_size_and_count_evictions_once() {
        let metrics = Metrics::new().unwrap();
        let gauges = metrics.map_gauges("replay_guard");
        gauges.observe(7, 3);
        gauges.observe(5, 3);
        gauges.observe(6, 4);
        let text = metrics.render();
        assert!(text.contains("flowshield_tracked_peers{map=\"replay_guard\"} 6"));
        assert!(text.contains("flowshield_evictions_total{map=\"replay_guard\"} 4"));
    }
}
