//! Which report periods a fullnode accepts (sans-IO).
//!
//! The market contract takes a report only for its current period or the
//! previous one (`submitSignedReport` reverts `PeriodOutOfRange`
//! otherwise); a fullnode applies the same window, so no verifier can pin a
//! provider's score with a report for a far-future period (which would
//! stay the newest, and so weigh most, for as long as it likes) or rewrite
//! history with one for a long-gone period.
//!
//! The current period is `chain time / reportPeriod`. Rather than one RPC
//! per report, [`PeriodClock`] keeps the period length and how far the
//! chain's clock is ahead of the local one, both measured at the last sync
//! (the driver, `super::verifiers`, syncs every [`RESYNC_EVERY_MS`] and,
//! at most every [`MIN_RESYNC_MS`], when a report looks ahead of it).

/// How often the clock is synced with the chain in any case.
pub const RESYNC_EVERY_MS: u64 = 60_000;
/// The soonest a report for a period that looks future triggers a re-sync
/// (the chain's time may have jumped, as on a dev chain).
pub const MIN_RESYNC_MS: u64 = 250;

/// A report period outside the accepted window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum OutOfWindow {
    #[error("period {period} has not begun (current period is {current})")]
    Future { period: u64, current: u64 },
    #[error("period {period} is over (only {current} and the one before are taken)")]
    Stale { period: u64, current: u64 },
}

impl OutOfWindow {
    /// A short stable label for metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Future { .. } => "future_period",
            Self::Stale { .. } => "stale_period",
        }
    }
}

/// Accepts `period` if it is `current` or `current - 1`, as the contract does.
pub fn check_window(period: u64, current: u64) -> Result<(), OutOfWindow> {
    if period > current {
        Err(OutOfWindow::Future { period, current })
    } else if period.saturating_add(1) < current {
        Err(OutOfWindow::Stale { period, current })
    } else {
        Ok(())
    }
}

/// The chain's report period, computed locally from the last sync.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeriodClock {
    period_secs: u64,
    /// Chain time minus local time at the sync, in ms (never below zero:
    /// the latest block of an idle chain is older than the chain's now).
    chain_ahead_ms: u64,
    synced_at_ms: u64,
}

impl PeriodClock {
    /// A clock synced at local time `now_ms`, when the chain's latest block
    /// had timestamp `chain_secs` and `reportPeriod` was `period_secs`.
    pub fn synced(period_secs: u64, chain_secs: u64, now_ms: u64) -> Self {
        Self {
            period_secs: period_secs.max(1),
            chain_ahead_ms: chain_secs.saturating_mul(1000).saturating_sub(now_ms),
            synced_at_ms: now_ms,
        }
    }

    /// The contract's `currentPeriod()` at local time `now_ms`, as far as
    /// this clock knows.
    pub fn current(&self, now_ms: u64) -> u64 {
        now_ms.saturating_add(self.chain_ahead_ms) / 1000 / self.period_secs
    }

    /// [`check_window`] against the current period.
    pub fn check(&self, period: u64, now_ms: u64) -> Result<(), OutOfWindow> {
        check_window(period, self.current(now_ms))
    }

    /// Whether the periodic sync is due.
    pub fn is_due(&self, now_ms: u64) -> bool {
        now_ms.saturating_sub(self.synced_at_ms) >= RESYNC_EVERY_MS
    }

    /// Whether `period` calls for a sync before it is refused: it looks
    /// future and the last sync is not too recent.
    pub fn should_resync_for(&self, period: u64, now_ms: u64) -> bool {
        self.is_due(now_ms)
            || (matches!(self.check(period, now_ms), Err(OutOfWindow::Future { .. }))
                && now_ms.saturating_sub(self.synced_at_ms) >= MIN_RESYNC_MS)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn current_and_previous_are_taken_next_and_older_refused() {
        assert_eq!(check_window(10, 10), Ok(()));
        assert_eq!(check_window(9, 10), Ok(()));
        assert_eq!(
            check_window(11, 10),
            Err(OutOfWindow::Future {
                period: 11,
                current: 10
            })
        );
        assert_eq!(
            check_window(8, 10),
            Err(OutOfWindow::Stale {
                period: 8,
                current: 10
            })
        );
        assert_eq!(check_window(0, 0), Ok(()));
        assert_eq!(check_window(0, 1), Ok(()));
        assert!(check_window(u64::MAX, 3).is_err());
        assert_eq!(check_window(u64::MAX, u64::MAX), Ok(()));
        assert_eq!(check_window(0, 2).unwrap_err().reason(), "stale_period");
        assert_eq!(check_window(3, 2).unwrap_err().reason(), "future_period");
    }

    #[test]
    fn the_clock_follows_the_chain_time_measured_at_sync() {
        // The chain is 7,200 s ahead of the local clock; periods of an hour.
        let now = 1_000_000_000;
        let clock = PeriodClock::synced(3_600, now / 1000 + 7_200, now);
        let current = (now / 1000 + 7_200) / 3_600;
        assert_eq!(clock.current(now), current);
        assert_eq!(clock.check(current, now), Ok(()));
        assert_eq!(clock.check(current - 1, now), Ok(()));
        assert!(clock.check(current + 1, now).is_err());
        assert!(clock.check(current - 2, now).is_err());
        // An hour later (local time), the window has moved one period.
        let later = now + 3_600_000;
        assert_eq!(clock.current(later), current + 1);
        assert_eq!(clock.check(current + 1, later), Ok(()));
        assert!(clock.check(current - 1, later).is_err());
    }

    #[test]
    fn an_idle_chain_behind_the_local_clock_counts_as_now() {
        // The latest block is ten minutes old: the chain's next block will
        // carry at least the local time.
        let now = 1_000_000_000;
        let clock = PeriodClock::synced(60, now / 1000 - 600, now);
        assert_eq!(clock.current(now), now / 1000 / 60);
    }

    #[test]
    fn resyncs_when_due_or_for_a_future_period_not_too_often() {
        let now = 1_000_000_000;
        let clock = PeriodClock::synced(10, now / 1000, now);
        let current = clock.current(now);
        assert!(!clock.should_resync_for(current, now + 1_000));
        assert!(!clock.should_resync_for(current + 1, now + MIN_RESYNC_MS - 1));
        assert!(clock.should_resync_for(current + 1, now + MIN_RESYNC_MS));
        assert!(!clock.is_due(now + RESYNC_EVERY_MS - 1));
        assert!(clock.should_resync_for(current, now + RESYNC_EVERY_MS));
        // A zero period (refused by the contract anyway) does not divide by zero.
        assert_eq!(PeriodClock::synced(0, 5, 0).current(0), 5);
    }
}
