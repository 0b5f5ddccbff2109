//! What a session costs, and the rule a provider uses to refuse
//! under-paying vouchers (sans-IO).
//!
//! **Price.** `due = price_per_gib × bytes / 2³⁰ + price_per_hour × elapsed / 1 h`,
//! capped at the escrow. `bytes` is rx + tx of the WireGuard peer as its
//! data plane counts them (UAPI `rx_bytes + tx_bytes`), `elapsed` runs from
//! the moment the provider accepted the order (client side: from
//! `Connected`).
//!
//! **Under-payment rule.** Both ends count the same encrypted datagrams, but
//! not at the same instant, so the provider never compares a voucher with
//! what it measures *now*. It compares it with what it measured when the
//! *previous* voucher arrived (at least one voucher interval earlier, so an
//! honest client has already counted all of it), minus a
//! [`TOLERANCE_PERCENT`] margin for counter differences (handshakes,
//! keepalives, retransmissions). The margin is a share of that *interval's*
//! increase (what was due at the previous voucher minus what was due at the
//! one before), not of the cumulative total: a client cannot under-pay by
//! 10 % of everything forever, only by 10 % of the last interval, and that
//! shortfall does not accumulate. A voucher below that floor is refused with
//! [`Underpaid`]; the session keeps its previous best voucher and the
//! provider ends the session after [`MAX_UNDERPAID_STRIKES`] refusals in a
//! row.

use flowshield_chain::alloy::primitives::U256;

/// Allowed shortfall against the provider's own (lagged) measurement.
pub const TOLERANCE_PERCENT: u64 = 10;
/// Refused vouchers in a row after which the provider ends the session.
pub const MAX_UNDERPAID_STRIKES: u32 = 3;

/// The default credit limit is the price of this many bytes...
pub const DEFAULT_CREDIT_BYTES: u64 = 4 << 20;
/// ...or of this long connected at the offer's full capacity, whichever is
/// larger. It must exceed a client's voucher interval (2 s by default) with
/// room for delivery: an honest client moving data at line rate pays once
/// per interval and must never be stopped between two of its vouchers.
pub const DEFAULT_CREDIT_MS: u64 = 5_000;

const GIB: u64 = 1 << 30;
const HOUR_MS: u64 = 3_600_000;

/// A provider's prices, in wei.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Prices {
    pub per_gib: U256,
    pub per_hour: U256,
}

impl Prices {
    /// What `bytes` over `elapsed_ms` cost, capped at `escrow`.
    pub fn due(&self, bytes: u64, elapsed_ms: u64, escrow: U256) -> U256 {
        let traffic = self.per_gib.saturating_mul(U256::from(bytes)) / U256::from(GIB);
        let time = self.per_hour.saturating_mul(U256::from(elapsed_ms)) / U256::from(HOUR_MS);
        traffic.saturating_add(time).min(escrow)
    }

    /// The default credit limit: what [`DEFAULT_CREDIT_BYTES`] cost, or
    /// [`DEFAULT_CREDIT_MS`] connected while moving `capacity_mbps` (the
    /// offer's), whichever is more.
    pub fn default_credit_limit(&self, capacity_mbps: u32) -> U256 {
        let bytes = self.due(DEFAULT_CREDIT_BYTES, 0, U256::MAX);
        let at_capacity = u64::from(capacity_mbps) * 1_000_000 / 8 * DEFAULT_CREDIT_MS / 1000;
        let time = self.due(at_capacity, DEFAULT_CREDIT_MS, U256::MAX);
        bytes.max(time)
    }
}

/// A voucher paid less than the provider's floor.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("voucher {given} wei under-pays: the provider measured at least {floor} wei due (tolerance {TOLERANCE_PERCENT} %)")]
pub struct Underpaid {
    pub given: U256,
    pub floor: U256,
}

/// The least a voucher may carry when the provider measured `due_then` at
/// the previous voucher and `due_before` at the one before it: `due_then`
/// less the tolerance on the interval's increase.
pub fn floor(due_then: U256, due_before: U256) -> U256 {
    let delta = due_then.saturating_sub(due_before);
    let margin = delta.saturating_mul(U256::from(TOLERANCE_PERCENT)) / U256::from(100);
    due_then.saturating_sub(margin)
}

/// Checks `given` against the floor derived from `due_then` and `due_before`.
pub fn check_not_underpaid(given: U256, due_then: U256, due_before: U256) -> Result<(), Underpaid> {
    let floor = floor(due_then, due_before);
    if given < floor {
        return Err(Underpaid { given, floor });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const PRICES: Prices = Prices {
        per_gib: U256::from_limbs([1 << 30, 0, 0, 0]),
        per_hour: U256::from_limbs([3_600_000, 0, 0, 0]),
    };

    #[test]
    fn due_is_traffic_plus_time_capped_at_escrow() {
        // 1 wei per byte and 1 wei per ms at these prices.
        assert_eq!(PRICES.due(1000, 0, U256::MAX), U256::from(1000));
        assert_eq!(PRICES.due(0, 250, U256::MAX), U256::from(250));
        assert_eq!(PRICES.due(1000, 250, U256::from(1100)), U256::from(1100));
        let free = Prices {
            per_gib: U256::ZERO,
            per_hour: U256::ZERO,
        };
        assert_eq!(free.due(u64::MAX, u64::MAX, U256::MAX), U256::ZERO);
    }

    #[test]
    fn default_credit_is_4_mib_or_5_s_at_capacity_whichever_costs_more() {
        // 1 Mbit/s for 5 s is 625 000 bytes, plus 5000 ms: less than 4 MiB.
        assert_eq!(PRICES.default_credit_limit(1), U256::from(4u64 << 20));
        // 100 Mbit/s for 5 s: 62.5 MB and 5000 ms.
        assert_eq!(
            PRICES.default_credit_limit(100),
            U256::from(62_500_000u64 + 5_000)
        );
        let by_time = Prices {
            per_gib: U256::ZERO,
            per_hour: PRICES.per_hour,
        };
        assert_eq!(by_time.default_credit_limit(100), U256::from(5_000));
    }

    #[test]
    fn floor_allows_the_tolerance_and_no_more() {
        let zero = U256::ZERO;
        assert!(check_not_underpaid(U256::from(90), U256::from(100), zero).is_ok());
        assert!(check_not_underpaid(U256::from(100), U256::from(100), zero).is_ok());
        let err = check_not_underpaid(U256::from(89), U256::from(100), zero).unwrap_err();
        assert_eq!(err.floor, U256::from(90));
        assert!(err.to_string().contains("under-pays"));
        assert!(check_not_underpaid(U256::ZERO, U256::ZERO, zero).is_ok());
    }

    #[test]
    fn the_tolerance_is_a_share_of_the_interval_not_of_the_total() {
        // 1 000 000 was due a voucher ago, 1 000 100 at the last one: only
        // 10 % of the 100 wei interval may be missing, not 100 000.
        let (before, then) = (U256::from(1_000_000), U256::from(1_000_100));
        assert_eq!(floor(then, before), U256::from(1_000_090));
        assert!(check_not_underpaid(U256::from(1_000_090), then, before).is_ok());
        let err = check_not_underpaid(U256::from(900_090), then, before).unwrap_err();
        assert_eq!(err.floor, U256::from(1_000_090));
        // A measurement that went down (counters reset) leaves no margin.
        assert_eq!(floor(before, then), before);
    }
}
