//! Provider reputation from verifier reports (sans-IO).
//!
//! Reports name a provider by chain address and a report period. Per
//! period, the score input is the share of verifiers that passed the
//! provider; the reputation is an exponentially weighted moving average of
//! those shares over the periods in ascending order, starting from
//! [`NEUTRAL_REPUTATION`]:
//! `r ← (1 − α)·r + α·passed_share`, α = [`ALPHA`].
//!
//! It is a function of the set of reports only, not of the order they
//! arrived in, so two fullnodes that hold the same reports (they gossip
//! them) rank providers the same way. Only the last [`MAX_PERIODS`] periods
//! count: old behaviour fades out.
//!
//! Keyed by the provider's chain address: reports name it, and the offers
//! scored in `/v1/match` carry one that the fullnode's stake gate has
//! checked is bound on chain to the provider's PeerId, so no PeerId or
//! self-claimed string can borrow another provider's standing.
//!
//! Bounded: at most [`ReputationBook::cap`] providers are kept, the one
//! reported on least recently evicted first (its stored reports are then
//! deleted too, see `fullnode::reports`), counted in
//! `flowshield_evictions_total{map="reputation"}`.

use crate::fullnode::matching::{Reputation, NEUTRAL_REPUTATION};
use crate::net::MapGauges;
use flowshield_proto::{ChainAddress, Offer};
use lru::LruCache;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, RwLock};

/// Weight of the newest period.
pub const ALPHA: f64 = 0.3;
/// Periods remembered per provider.
pub const MAX_PERIODS: usize = 64;
/// Providers whose reports are kept by default.
pub const DEFAULT_MAX_PROVIDERS: usize = 200_000;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Tally {
    passed: u32,
    total: u32,
}

/// Report tallies and the scores they give.
#[derive(Debug)]
pub struct ReputationBook {
    /// Per provider, least recently reported on first out.
    tallies: LruCache<ChainAddress, BTreeMap<u64, Tally>>,
    /// Same keys as `tallies`.
    scores: HashMap<ChainAddress, f64>,
    cap: usize,
    evictions: u64,
    gauges: Option<MapGauges>,
}

impl Default for ReputationBook {
    fn default() -> Self {
        Self::with_cap(DEFAULT_MAX_PROVIDERS, None)
    }
}

/// One provider's standing, as [`ReputationBook::summary`] gives it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ReputationSummary {
    /// 0 to 1; [`NEUTRAL_REPUTATION`] without reports.
    pub score: f64,
    /// Reports counted (over the last [`MAX_PERIODS`] periods).
    pub reports: u64,
    /// Of those, how many passed the provider.
    pub passed: u64,
    /// Periods with at least one report.
    pub periods: usize,
    pub latest_period: Option<u64>,
}

/// The book shared between the report handler and `/v1/match`.
pub type SharedReputation = Arc<RwLock<ReputationBook>>;

impl ReputationBook {
    /// Keeps the reports on at most `cap` providers (at least one).
    pub fn with_cap(cap: usize, gauges: Option<MapGauges>) -> Self {
        let book = Self {
            tallies: LruCache::unbounded(),
            scores: HashMap::new(),
            cap: cap.max(1),
            evictions: 0,
            gauges,
        };
        book.report();
        book
    }

    /// The most providers kept.
    pub fn cap(&self) -> usize {
        self.cap
    }

    /// Providers evicted to make room so far.
    pub fn evictions(&self) -> u64 {
        self.evictions
    }

    fn report(&self) {
        if let Some(g) = &self.gauges {
            g.observe(self.tallies.len(), self.evictions);
        }
    }

    /// Counts one (new, not duplicate) report. Returns the provider evicted
    /// to make room, if any (its stored reports should go too).
    pub fn record(
        &mut self,
        provider: ChainAddress,
        period: u64,
        passed: bool,
    ) -> Option<ChainAddress> {
        let mut evicted = None;
        if !self.tallies.contains(&provider) && self.tallies.len() >= self.cap {
            if let Some((oldest, _)) = self.tallies.pop_lru() {
                self.scores.remove(&oldest);
                self.evictions += 1;
                evicted = Some(oldest);
            }
        }
        let periods = self.tallies.get_or_insert_mut(provider, BTreeMap::new);
        let tally = periods.entry(period).or_default();
        tally.total = tally.total.saturating_add(1);
        if passed {
            tally.passed = tally.passed.saturating_add(1);
        }
        while periods.len() > MAX_PERIODS {
            periods.pop_first();
        }
        let score = periods.values().fold(NEUTRAL_REPUTATION, |r, t| {
            let share = f64::from(t.passed) / f64::from(t.total.max(1));
            (1.0 - ALPHA) * r + ALPHA * share
        });
        self.scores.insert(provider, score);
        self.report();
        evicted
    }

    /// The provider's reputation, neutral without reports.
    pub fn score_of(&self, provider: &ChainAddress) -> f64 {
        self.scores
            .get(provider)
            .copied()
            .unwrap_or(NEUTRAL_REPUTATION)
    }

    /// What the book holds on one provider: its score and the reports
    /// behind it (only the remembered periods count).
    pub fn summary(&self, provider: &ChainAddress) -> ReputationSummary {
        let periods = self.tallies.peek(provider);
        let (reports, passed) = periods
            .into_iter()
            .flat_map(|p| p.values())
            .fold((0u64, 0u64), |(r, p), t| {
                (r + u64::from(t.total), p + u64::from(t.passed))
            });
        ReputationSummary {
            score: self.score_of(provider),
            reports,
            passed,
            periods: periods.map_or(0, |p| p.len()),
            latest_period: periods.and_then(|p| p.keys().next_back().copied()),
        }
    }

    /// Providers with at least one report.
    pub fn len(&self) -> usize {
        self.scores.len()
    }

    pub fn is_empty(&self) -> bool {
        self.scores.is_empty()
    }
}

impl Reputation for ReputationBook {
    fn score(&self, offer: &Offer) -> f64 {
        self.score_of(&offer.chain_address)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: ChainAddress = ChainAddress([1; 20]);
    const B: ChainAddress = ChainAddress([2; 20]);

    #[test]
    fn passing_raises_failing_lowers_unknown_is_neutral() {
        let mut book = ReputationBook::default();
        book.record(A, 1, true);
        book.record(B, 1, false);
        assert!((book.score_of(&A) - 0.65).abs() < 1e-9);
        assert!((book.score_of(&B) - 0.35).abs() < 1e-9);
        assert_eq!(book.score_of(&ChainAddress([3; 20])), NEUTRAL_REPUTATION);
        for period in 2..40 {
            book.record(A, period, true);
        }
        assert!(book.score_of(&A) > 0.99);
    }

    #[test]
    fn summary_counts_the_reports_behind_the_score() {
        let mut book = ReputationBook::default();
        let none = book.summary(&A);
        assert_eq!(
            (none.reports, none.periods, none.latest_period),
            (0, 0, None)
        );
        assert_eq!(none.score, NEUTRAL_REPUTATION);
        book.record(A, 4, true);
        book.record(A, 4, false);
        book.record(A, 9, true);
        let s = book.summary(&A);
        assert_eq!((s.reports, s.passed, s.periods), (3, 2, 2));
        assert_eq!(s.latest_period, Some(9));
        assert_eq!(s.score, book.score_of(&A));
        assert_eq!(book.summary(&B).reports, 0);
    }

    #[test]
    fn arrival_order_does_not_matter() {
        let reports = [(3, true), (1, false), (2, true), (1, true), (3, false)];
        let mut forward = ReputationBook::default();
        let mut backward = ReputationBook::default();
        for (period, passed) in reports {
            forward.record(A, period, passed);
        }
        for (period, passed) in reports.iter().rev() {
            backward.record(A, *period, *passed);
        }
        assert_eq!(forward.score_of(&A), backward.score_of(&A));
    }

    #[test]
    fn old_periods_fade_out() {
        let mut book = ReputationBook::default();
        for period in 0..10 {
            book.record(A, period, false);
        }
        for period in 10..(10 + MAX_PERIODS as u64) {
            book.record(A, period, true);
        }
        assert_eq!(book.tallies.peek(&A).map(|p| p.len()), Some(MAX_PERIODS));
        assert!(book.score_of(&A) > 0.99);
    }

    #[test]
    fn a_flood_of_providers_evicts_the_least_recently_reported() {
        let metrics = crate::fullnode::metrics::Metrics::new().unwrap();
        let mut book = ReputationBook::with_cap(2, Some(metrics.map_gauges("reputation")));
        assert_eq!(book.record(A, 1, false), None);
        assert_eq!(book.record(B, 1, true), None);
        // A is reported on again: B is now the least recent.
        assert_eq!(book.record(A, 2, false), None);
        for i in 10..20 {
            let evicted = book.record(ChainAddress([i; 20]), 1, true);
            let want = match i {
                10 => B,
                11 => A,
                _ => ChainAddress([i - 2; 20]),
            };
            assert_eq!(evicted, Some(want), "report {i}");
        }
        assert_eq!((book.len(), book.evictions()), (2, 10));
        assert_eq!(
            book.score_of(&A),
            NEUTRAL_REPUTATION,
            "evicted: neutral again"
        );
        assert_eq!(book.summary(&A).reports, 0);
        assert!(book.score_of(&ChainAddress([19; 20])) > NEUTRAL_REPUTATION);
        let text = metrics.render();
        assert!(
            text.contains("flowshield_tracked_peers{map=\"reputation\"} 2"),
            "{text}"
        );
        assert!(
            text.contains("flowshield_evictions_total{map=\"reputation\"} 10"),
            "{text}"
        );
    }
}
