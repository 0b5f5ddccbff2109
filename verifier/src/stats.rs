//! Measurement math, sans IO: `ping` output parsing, percentiles, loss, throughput, and
//! the verdict of a probe against a provider's advertised quality.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Duration;

/// What a provider promises (from its offer; from the config until the market publishes
/// offers). A probe fails when any measured value is worse.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct AdvertisedQuality {
    /// Minimum throughput through the tunnel, in Mbit/s.
    pub min_throughput_mbps: f64,
    /// Maximum packet loss, in percent (0-100).
    pub max_loss_pct: f64,
    /// Maximum median round-trip time through the tunnel, in milliseconds.
    pub max_rtt_ms: f64,
}

/// Round-trip samples of one ping run: which sequence numbers were sent and the RTT of
/// each one answered.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PingSamples {
    /// Echo requests sent.
    pub sent: u32,
    /// RTT in milliseconds per answered sequence number (duplicates ignored).
    pub replies: BTreeMap<u32, f64>,
}

/// Parse the output of iputils `ping -n` (one line per reply:
/// `64 bytes from 10.0.0.1: icmp_seq=3 ttl=64 time=0.342 ms`). Only replies whose
/// sequence number is in `1..=sent` count, so a stray or duplicate line cannot make the
/// loss negative.
pub fn parse_ping_output(output: &str, sent: u32) -> PingSamples {
    let mut replies = BTreeMap::new();
    for line in output.lines() {
        if !line.contains(" from ") {
            continue;
        }
        let field = |name: &str| {
            line.split_whitespace()
                .find_map(|w| w.strip_prefix(name))
                .map(str::to_string)
        };
        let (Some(seq), Some(time)) = (field("icmp_seq="), field("time=")) else {
            continue;
        };
        let (Ok(seq), Ok(time)) = (seq.parse::<u32>(), time.parse::<f64>()) else {
            continue;
        };
        if (1..=sent).contains(&seq) && time.is_finite() && time >= 0.0 {
            replies.entry(seq).or_insert(time);
        }
    }
    PingSamples { sent, replies }
}

/// The `p`-th percentile (0-100) of `values` by linear interpolation between closest
/// ranks; `None` for no values.
pub fn percentile(values: &[f64], p: f64) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let mut sorted: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
    if sorted.is_empty() {
        return None;
    }
    sorted.sort_by(f64::total_cmp);
    let rank = (p.clamp(0.0, 100.0) / 100.0) * (sorted.len() - 1) as f64;
    let (lo, hi) = (rank.floor() as usize, rank.ceil() as usize);
    let frac = rank - lo as f64;
    Some(sorted[lo] + (sorted[hi] - sorted[lo]) * frac)
}

/// Loss in percent: unanswered / sent. 100 % when nothing was sent (no evidence of a
/// working path is a failure, never a pass).
pub fn loss_pct(sent: u32, received: u32) -> f64 {
    if sent == 0 {
        return 100.0;
    }
    let lost = sent.saturating_sub(received.min(sent));
    f64::from(lost) * 100.0 / f64::from(sent)
}

/// Throughput in Mbit/s of `bytes` moved in `elapsed`.
pub fn throughput_mbps(bytes: u64, elapsed: Duration) -> f64 {
    let secs = elapsed.as_secs_f64();
    if secs <= 0.0 {
        return 0.0;
    }
    bytes as f64 * 8.0 / secs / 1e6
}

/// Everything one probe measured. `None` fields were not measured because an earlier
/// stage failed (no handshake means no RTT and no throughput).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Metrics {
    /// Time from the first packet to a completed handshake, ms.
    pub handshake_ms: Option<f64>,
    /// Echo requests sent.
    pub ping_sent: u32,
    /// Echo replies received.
    pub ping_received: u32,
    /// Loss in percent.
    pub loss_pct: f64,
    /// Median RTT, ms.
    pub rtt_p50_ms: Option<f64>,
    /// 90th percentile RTT, ms.
    pub rtt_p90_ms: Option<f64>,
    /// Largest RTT, ms.
    pub rtt_max_ms: Option<f64>,
    /// Bytes received in the throughput transfer.
    pub transfer_bytes: u64,
    /// Duration of the transfer, ms.
    pub transfer_ms: f64,
    /// Whether the transfer stopped at its time cap before all bytes arrived.
    pub transfer_capped: bool,
    /// Throughput, Mbit/s.
    pub throughput_mbps: Option<f64>,
    /// Why a stage could not run (handshake timeout, connection refused...), if any.
    pub error: Option<String>,
}

impl Metrics {
    /// Metrics of a probe that never got a tunnel up: everything missing, 100 % loss.
    pub fn unreachable(error: impl Into<String>) -> Self {
        Metrics {
            handshake_ms: None,
            ping_sent: 0,
            ping_received: 0,
            loss_pct: 100.0,
            rtt_p50_ms: None,
            rtt_p90_ms: None,
            rtt_max_ms: None,
            transfer_bytes: 0,
            transfer_ms: 0.0,
            transfer_capped: false,
            throughput_mbps: None,
            error: Some(error.into()),
        }
    }

    /// Every float rounded to 1/1000 (µs, 0.001 %, 1 kbit/s). Signed metrics are
    /// quantized so that their JSON survives a parse/serialize round trip bit for bit
    /// (`mantissa / 1000` is what a JSON parser computes), keeping the metrics hash
    /// checkable by whoever receives them.
    pub fn quantized(mut self) -> Self {
        let q = |v: f64| (v * 1000.0).round() / 1000.0;
        let qo = |v: Option<f64>| v.map(q);
        self.handshake_ms = qo(self.handshake_ms);
        self.loss_pct = q(self.loss_pct);
        self.rtt_p50_ms = qo(self.rtt_p50_ms);
        self.rtt_p90_ms = qo(self.rtt_p90_ms);
        self.rtt_max_ms = qo(self.rtt_max_ms);
        self.transfer_ms = q(self.transfer_ms);
        self.throughput_mbps = qo(self.throughput_mbps);
        self
    }

    /// Fill the RTT and loss fields from ping samples.
    pub fn set_ping(&mut self, samples: &PingSamples) {
        let rtts: Vec<f64> = samples.replies.values().copied().collect();
        let received = u32::try_from(rtts.len()).unwrap_or(u32::MAX);
        self.ping_sent = samples.sent;
        self.ping_received = received;
        self.loss_pct = loss_pct(samples.sent, received);
        self.rtt_p50_ms = percentile(&rtts, 50.0);
        self.rtt_p90_ms = percentile(&rtts, 90.0);
        self.rtt_max_ms = percentile(&rtts, 100.0);
    }
}

/// Pass or fail, with the reasons for a failure.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Verdict {
    /// Whether every measured value met the advertised quality.
    pub passed: bool,
    /// One line per unmet promise (empty when passed).
    pub reasons: Vec<String>,
}

/// Judge `m` against `q`. A value that could not be measured fails its check: a
/// provider cannot pass by being unreachable.
pub fn verdict(m: &Metrics, q: &AdvertisedQuality) -> Verdict {
    let mut reasons = Vec::new();
    if m.handshake_ms.is_none() {
        reasons.push(format!(
            "no handshake: {}",
            m.error.as_deref().unwrap_or("timed out")
        ));
    }
    if m.loss_pct > q.max_loss_pct {
        reasons.push(format!(
            "loss {:.1} % > {:.1} %",
            m.loss_pct, q.max_loss_pct
        ));
    }
    match m.rtt_p50_ms {
        Some(rtt) if rtt > q.max_rtt_ms => {
            reasons.push(format!("median RTT {rtt:.1} ms > {:.1} ms", q.max_rtt_ms))
        }
        Some(_) => {}
        None => reasons.push("no RTT sample".into()),
    }
    match m.throughput_mbps {
        Some(t) if t < q.min_throughput_mbps => reasons.push(format!(
            "throughput {t:.2} Mbit/s < {:.2} Mbit/s",
            q.min_throughput_mbps
        )),
        Some(_) => {}
        None => reasons.push("no throughput measured".into()),
    }
    Verdict {
        passed: reasons.is_empty(),
        reasons,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PING: &str = "PING 10.0.0.1 (10.0.0.1) 56(84) bytes of data.
64 bytes from 10.0.0.1: icmp_seq=1 ttl=64 time=0.500 ms
64 bytes from 10.0.0.1: icmp_seq=2 ttl=64 time=1.50 ms
64 bytes from 10.0.0.1: icmp_seq=2 ttl=64 time=9.0 ms (DUP!)
64 bytes from 10.0.0.1: icmp_seq=4 ttl=64 time=2.5 ms
64 bytes from 10.0.0.1: icmp_seq=99 ttl=64 time=2.5 ms
From 10.0.0.2 icmp_seq=3 Destination Host Unreachable

--- 10.0.0.1 ping statistics ---
5 packets transmitted, 3 received, 40% packet loss, time 4005ms
rtt min/avg/max/mdev = 0.500/1.500/2.500/0.816 ms";

    fn quality() -> AdvertisedQuality {
        AdvertisedQuality {
            min_throughput_mbps: 10.0,
            max_loss_pct: 5.0,
            max_rtt_ms: 50.0,
        }
    }

    fn good_metrics() -> Metrics {
        let mut m = Metrics::unreachable("x");
        m.error = None;
        m.handshake_ms = Some(3.0);
        m.set_ping(&PingSamples {
            sent: 3,
            replies: BTreeMap::from([(1, 0.5), (2, 1.5), (3, 2.5)]),
        });
        m.throughput_mbps = Some(100.0);
        m
    }

    #[test]
    fn ping_parsing_ignores_duplicates_errors_and_out_of_range() {
        let s = parse_ping_output(PING, 5);
        assert_eq!(s.sent, 5);
        assert_eq!(s.replies.len(), 3);
        assert_eq!(s.replies.get(&2), Some(&1.5));
        assert!(!s.replies.contains_key(&3));
        assert!(!s.replies.contains_key(&99));
        assert!(parse_ping_output("garbage\nfrom x time=abc", 3)
            .replies
            .is_empty());
    }

    #[test]
    fn percentiles_interpolate_and_handle_edges() {
        assert_eq!(percentile(&[], 50.0), None);
        assert_eq!(percentile(&[7.0], 90.0), Some(7.0));
        assert_eq!(percentile(&[4.0, 1.0, 3.0, 2.0], 50.0), Some(2.5));
        assert_eq!(percentile(&[1.0, 2.0, 3.0, 4.0, 5.0], 90.0), Some(4.6));
        assert_eq!(percentile(&[1.0, 2.0, 3.0], 100.0), Some(3.0));
        assert_eq!(percentile(&[1.0, 2.0, 3.0], 0.0), Some(1.0));
        assert_eq!(percentile(&[f64::NAN], 50.0), None);
    }

    #[test]
    fn loss_and_throughput() {
        assert_eq!(loss_pct(10, 10), 0.0);
        assert_eq!(loss_pct(10, 5), 50.0);
        assert_eq!(loss_pct(10, 12), 0.0);
        assert_eq!(loss_pct(0, 0), 100.0);
        assert_eq!(throughput_mbps(1_000_000, Duration::from_secs(8)), 1.0);
        assert_eq!(throughput_mbps(5, Duration::ZERO), 0.0);
    }

    #[test]
    fn metrics_from_ping() {
        let mut m = Metrics::unreachable("x");
        m.set_ping(&parse_ping_output(PING, 5));
        assert_eq!((m.ping_sent, m.ping_received), (5, 3));
        assert_eq!(m.loss_pct, 40.0);
        assert_eq!(m.rtt_p50_ms, Some(1.5));
        assert_eq!(m.rtt_max_ms, Some(2.5));
    }

    #[test]
    fn good_provider_passes() {
        let v = verdict(&good_metrics(), &quality());
        assert!(v.passed, "{:?}", v.reasons);
        assert!(v.reasons.is_empty());
    }

    #[test]
    fn each_broken_promise_fails_with_its_reason() {
        let q = quality();
        let mut slow = good_metrics();
        slow.throughput_mbps = Some(1.0);
        let v = verdict(&slow, &q);
        assert!(!v.passed);
        assert!(
            v.reasons[0].starts_with("throughput 1.00"),
            "{:?}",
            v.reasons
        );

        let mut lossy = good_metrics();
        lossy.loss_pct = 50.0;
        assert!(verdict(&lossy, &q).reasons[0].starts_with("loss 50.0"));

        let mut far = good_metrics();
        far.rtt_p50_ms = Some(80.0);
        assert!(verdict(&far, &q).reasons[0].starts_with("median RTT 80.0"));
    }

    #[test]
    fn unreachable_provider_fails_every_check() {
        let v = verdict(&Metrics::unreachable("handshake timed out"), &quality());
        assert!(!v.passed);
        assert_eq!(v.reasons.len(), 4, "{:?}", v.reasons);
        assert!(v.reasons[0].contains("handshake timed out"));
    }
}
