//! Judging a provider, sans IO: what a probe is measured against, and when a verifier
//! may report a period as failed.
//!
//! - **Against the provider's own promise.** A provider registers a `QualityPromise`
//!   on chain; that is the only yardstick a failure may be reported against. The
//!   thresholds of the verifier's config are a fallback for the local verdict (shown,
//!   stored) when the provider registered no promise, and then a failure is never
//!   reported: a verifier must not slash by its own standards.
//! - **K consecutive failing probes.** One bad probe can be the verifier's own network
//!   or a blip; a failure is reported for a period only once the last K probes of that
//!   period all failed (K is the market's `failStreak`). A passing probe resets the run.
//!   A probe below the streak is stored but not signed, so nobody can relay it on chain
//!   as this verifier's vote for the period.
//! - **A pass vote when the period is over.** Passing reports count in the contract's
//!   quorum, so an honest verifier votes pass for every period in which it probed the
//!   provider, saw it pass and never saw K consecutive failures ([`vote_pass_after`]):
//!   without those votes, a few colluders' failures would be the whole tally. The vote
//!   waits for the period's end because the contract takes one vote per verifier and
//!   period, and a failure could still come.

use serde::{Deserialize, Serialize};

use crate::stats::AdvertisedQuality;
use flowshield_chain::QualityPromise;

/// K when neither the config nor a market says otherwise.
pub const DEFAULT_FAIL_STREAK: u32 = 3;

/// What a probe was judged against.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum Basis {
    /// The quality the provider promised on chain: failures may be reported.
    Promise(AdvertisedQuality),
    /// The config's thresholds (no promise on chain, or no chain): failures are never
    /// reported.
    Config(AdvertisedQuality),
    /// Neither: only reachability counts (handshake, an RTT sample, some throughput);
    /// failures are never reported.
    Reachability,
}

impl Basis {
    /// The promise if the provider registered one, else the config's thresholds, else
    /// reachability only.
    pub fn choose(promise: Option<AdvertisedQuality>, config: Option<AdvertisedQuality>) -> Self {
        match (promise, config) {
            (Some(p), _) => Basis::Promise(p),
            (None, Some(c)) => Basis::Config(c),
            (None, None) => Basis::Reachability,
        }
    }

    /// The thresholds to judge metrics against.
    pub fn quality(&self) -> AdvertisedQuality {
        match self {
            Basis::Promise(q) | Basis::Config(q) => *q,
            Basis::Reachability => AdvertisedQuality {
                min_throughput_mbps: 0.0,
                max_loss_pct: 100.0,
                max_rtt_ms: f64::INFINITY,
            },
        }
    }

    /// Whether a failure judged on this basis may be reported.
    pub fn may_report_failure(&self) -> bool {
        matches!(self, Basis::Promise(_))
    }
}

/// The on-chain promise in the verifier's units; `None` when the provider registered
/// none (the contract refuses `maxRttMs == 0`, so an all-zero record means "no
/// promise": an unregistered provider, or a contract read before promises existed).
pub fn promise_quality(p: &QualityPromise) -> Option<AdvertisedQuality> {
    if p.maxRttMs == 0 {
        return None;
    }
    Some(AdvertisedQuality {
        min_throughput_mbps: f64::from(p.minThroughputKbps) / 1000.0,
        max_loss_pct: f64::from(p.maxLossBps) / 100.0,
        max_rtt_ms: f64::from(p.maxRttMs),
    })
}

/// K in force: the configured value, raised to the market's `failStreak` when that is
/// larger (a verifier may be more patient than the market asks, never less), at least 1.
pub fn fail_streak(configured: Option<u32>, market: Option<u32>) -> u32 {
    let own = configured.unwrap_or_else(|| market.unwrap_or(DEFAULT_FAIL_STREAK));
    own.max(market.unwrap_or(0)).max(1)
}

/// What to do after a probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Decision {
    /// The probe passed: sign and publish a passing report.
    Pass,
    /// The probe failed, but the period's run of failures is shorter than K: store it,
    /// report nothing yet.
    Failing {
        /// Consecutive failing probes so far in this period (this one included).
        run: u32,
        /// K.
        needed: u32,
    },
    /// The last K (or more) probes of the period failed: report failure.
    ReportFailure {
        /// Consecutive failing probes in this period (this one included).
        run: u32,
    },
    /// The probe failed, but the provider registered no promise: never reported.
    NoPromise,
}

/// Decide after a probe. `period_results` are the verdicts (`true` = passed) of this
/// period's probes of the provider, oldest first, the new probe last; all judged on
/// `basis`'s kind of yardstick.
pub fn decide(basis: &Basis, fail_streak: u32, period_results: &[bool]) -> Decision {
    let passed = period_results.last().copied().unwrap_or(true);
    if passed {
        return Decision::Pass;
    }
    if !basis.may_report_failure() {
        return Decision::NoPromise;
    }
    let run = period_results.iter().rev().take_while(|p| !**p).count();
    let run = u32::try_from(run).unwrap_or(u32::MAX);
    let needed = fail_streak.max(1);
    if run >= needed {
        Decision::ReportFailure { run }
    } else {
        Decision::Failing { run, needed }
    }
}

/// After `period_results` (the verdicts of one ended period's probes, oldest first):
/// whether to vote pass on chain. Yes when at least one probe passed and no run of K
/// (`fail_streak`) consecutive failures happened (that run was voted fail, or, with no
/// promise on chain, could not be); no vote when the verifier saw the provider only
/// failing, or never probed it.
pub fn vote_pass_after(fail_streak: u32, period_results: &[bool]) -> bool {
    let needed = usize::try_from(fail_streak.max(1)).unwrap_or(usize::MAX);
    let mut run = 0usize;
    let mut any_pass = false;
    for passed in period_results {
        if *passed {
            any_pass = true;
            run = 0;
        } else {
            run += 1;
            if run >= needed {
                return false;
            }
        }
    }
    any_pass
}

#[cfg(test)]
mod tests {
    use super::*;

    fn promise() -> Basis {
        Basis::Promise(AdvertisedQuality {
            min_throughput_mbps: 1.0,
            max_loss_pct: 5.0,
            max_rtt_ms: 1000.0,
        })
    }

    /// Feed probe results one by one, returning the decision after each.
    fn run(basis: &Basis, k: u32, results: &[bool]) -> Vec<Decision> {
        (1..=results.len())
            .map(|n| decide(basis, k, &results[..n]))
            .collect()
    }

    #[test]
    fn failure_is_reported_only_at_the_kth_consecutive_failing_probe() {
        let got = run(&promise(), 3, &[false, false, false, false]);
        assert_eq!(
            got,
            vec![
                Decision::Failing { run: 1, needed: 3 },
                Decision::Failing { run: 2, needed: 3 },
                Decision::ReportFailure { run: 3 },
                Decision::ReportFailure { run: 4 },
            ]
        );
    }

    #[test]
    fn a_passing_probe_resets_the_run() {
        let got = run(&promise(), 3, &[false, false, true, false, false, false]);
        assert_eq!(got[2], Decision::Pass);
        assert_eq!(got[3], Decision::Failing { run: 1, needed: 3 });
        assert_eq!(got[4], Decision::Failing { run: 2, needed: 3 });
        assert_eq!(got[5], Decision::ReportFailure { run: 3 });
        // Alternating failures never reach a streak of two.
        let flaky = run(&promise(), 2, &[false, true, false, true, false]);
        assert!(
            flaky
                .iter()
                .all(|d| !matches!(d, Decision::ReportFailure { .. })),
            "{flaky:?}"
        );
    }

    #[test]
    fn without_a_promise_a_failure_is_never_reported() {
        let config = Basis::choose(None, Some(promise().quality()));
        assert!(matches!(config, Basis::Config(_)));
        for basis in [config, Basis::Reachability] {
            let got = run(&basis, 1, &[false, false, false, false, true]);
            assert_eq!(&got[..4], &[Decision::NoPromise; 4]);
            assert_eq!(got[4], Decision::Pass);
        }
    }

    #[test]
    fn the_promise_wins_over_the_config() {
        let config = AdvertisedQuality {
            min_throughput_mbps: 50.0,
            max_loss_pct: 0.0,
            max_rtt_ms: 10.0,
        };
        let chosen = Basis::choose(Some(promise().quality()), Some(config));
        assert_eq!(chosen, promise());
        assert_eq!(chosen.quality().min_throughput_mbps, 1.0);
    }

    #[test]
    fn promise_units_and_the_empty_record() {
        let q = promise_quality(&QualityPromise {
            minThroughputKbps: 2_500,
            maxRttMs: 150,
            maxLossBps: 250,
        })
        .expect("a promise");
        assert_eq!(q.min_throughput_mbps, 2.5);
        assert_eq!(q.max_rtt_ms, 150.0);
        assert_eq!(q.max_loss_pct, 2.5);
        let empty = QualityPromise {
            minThroughputKbps: 0,
            maxRttMs: 0,
            maxLossBps: 0,
        };
        assert_eq!(promise_quality(&empty), None);
    }

    #[test]
    fn an_ended_period_without_a_failing_streak_gets_a_pass_vote() {
        assert!(vote_pass_after(3, &[true]));
        assert!(vote_pass_after(
            3,
            &[true, false, false, true, false, false]
        ));
        // A K-run anywhere in the period was a failure, even if it recovered.
        assert!(!vote_pass_after(3, &[true, false, false, false, true]));
        assert!(!vote_pass_after(1, &[true, false]));
        // Only failures (short of K), or no probe at all: no vote either way.
        assert!(!vote_pass_after(3, &[false, false]));
        assert!(!vote_pass_after(3, &[]));
    }

    #[test]
    fn k_is_never_below_the_markets() {
        assert_eq!(fail_streak(None, None), DEFAULT_FAIL_STREAK);
        assert_eq!(fail_streak(None, Some(5)), 5);
        assert_eq!(fail_streak(Some(2), Some(3)), 3);
        assert_eq!(fail_streak(Some(6), Some(3)), 6);
        assert_eq!(fail_streak(Some(0), None), 1);
        // K = 1: the first failing probe reports.
        assert_eq!(
            decide(&promise(), 1, &[true, false]),
            Decision::ReportFailure { run: 1 }
        );
    }

    #[test]
    fn reachability_only_fails_an_unreachable_provider() {
        let m = crate::stats::Metrics::unreachable("handshake timed out");
        let v = crate::stats::verdict(&m, &Basis::Reachability.quality());
        assert!(!v.passed);
        assert!(
            v.reasons[0].contains("handshake timed out"),
            "{:?}",
            v.reasons
        );
    }
}
