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
//! keepalives, retransmissions). A voucher below that floor is refused with
//! [`Underpaid`]; the session keeps its previous best voucher and the
//! provider ends the session after [`MAX_UNDERPAID_STRIKES`] refusals in a
//! row.

use flowshield_chain::alloy::primitives::U256;

/// Allowed shortfall against the provider's own (lagged) measurement.
pub const TOLERANCE_PERCENT: u64 = 10;
/// Refused vouchers in a row after which the provider ends the session.
pub const MAX_UNDERPAID_STRIKES: u32 = 3;

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
}

/// A voucher paid less than the provider's floor.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("voucher {given} wei under-pays: the provider measured at least {floor} wei due (tolerance {TOLERANCE_PERCENT} %)")]
pub struct Underpaid {
    pub given: U256,
    pub floor: U256,
}

/// The least a voucher may carry when the provider measured `due_then` at
/// the previous voucher.
pub fn floor(due_then: U256) -> U256 {
    due_then.saturating_mul(U256::from(100 - TOLERANCE_PERCENT)) / U256::from(100)
}

/// Checks `given` against the floor derived from `due_then`.
pub fn check_not_underpaid(given: U256, due_then: U256) -> Result<(), Underpaid> {
    let floor = floor(due_then);
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
    fn floor_allows_the_tolerance_and_no_more() {
        assert!(check_not_underpaid(U256::from(90), U256::from(100)).is_ok());
        assert!(check_not_underpaid(U256::from(100), U256::from(100)).is_ok());
        let err = check_not_underpaid(U256::from(89), U256::from(100)).unwrap_err();
        assert_eq!(err.floor, U256::from(90));
        assert!(err.to_string().contains("under-pays"));
        assert!(check_not_underpaid(U256::ZERO, U256::ZERO).is_ok());
    }
}
