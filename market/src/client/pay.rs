//! How much the client pays and what it does with the provider's answer
//! to a voucher (sans-IO).
//!
//! **Amount.** The client prices only what its own data plane counted
//! (UAPI `rx_bytes + tx_bytes` of the provider peer: packets the data
//! plane dropped, e.g. from a source outside the peer's AllowedIPs, are not
//! counted) and the time since `Connected`, at the offer's prices:
//! `due = Prices::due(bytes, elapsed)`. Each voucher carries
//! `max(due, last + 1 wei)` so an idle tunnel still shows the client alive,
//! but never more than `due + 1 wei per elapsed second + 1 wei` (that
//! liveness allowance) nor more than the escrow. Nothing the provider says
//! raises it: an `underpaid` refusal gets the same amount again.
//!
//! **Answers.** `voucher_accepted` moves the client on; a refusal that means
//! the provider holds no session for the order (`no_session`,
//! `unknown_order`, …) ends the session and the client fails over; a
//! refusal about the amount is logged and the next voucher goes out as
//! usual.

use crate::session::pricing::Prices;
use crate::wire::session::{RejectKind, SessionResponse};
use flowshield_chain::alloy::primitives::U256;

/// The next cumulative voucher after `last`, or `None` when the cap or the
/// escrow leaves nothing more to sign.
pub fn next_voucher(
    prices: &Prices,
    bytes: u64,
    elapsed_ms: u64,
    last: U256,
    escrow: U256,
) -> Option<U256> {
    let due = prices.due(bytes, elapsed_ms, escrow);
    let amount = due
        .max(last.saturating_add(U256::from(1)))
        .min(cap(prices, bytes, elapsed_ms, escrow));
    (amount > last).then_some(amount)
}

/// The most the client ever signs for `bytes` over `elapsed_ms`.
pub fn cap(prices: &Prices, bytes: u64, elapsed_ms: u64, escrow: U256) -> U256 {
    let liveness = U256::from(elapsed_ms / 1000 + 1);
    prices
        .due(bytes, elapsed_ms, escrow)
        .saturating_add(liveness)
        .min(escrow)
}

/// What the client does after a voucher's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VoucherVerdict {
    /// The provider took it: it is the new `last`.
    Accepted,
    /// Refused but the session lives (amount disputes, a busy provider):
    /// log it and keep paying by the client's own counters.
    Refused(String),
    /// The provider holds no session for the order any more: fail over.
    SessionGone(String),
    /// Not an answer to a voucher: counts as a failed delivery.
    Unexpected(String),
}

/// Reads the provider's answer to a voucher of `amount`.
pub fn verdict(answer: &SessionResponse) -> VoucherVerdict {
    match answer {
        SessionResponse::VoucherAccepted { .. } => VoucherVerdict::Accepted,
        SessionResponse::Rejected { kind, error } => {
            let text = format!("{kind}: {error}");
            match kind {
                RejectKind::Underpaid
                | RejectKind::VoucherNotIncreasing
                | RejectKind::Unavailable => VoucherVerdict::Refused(text),
                // A newer provider's reason: a failed delivery, not an end.
                RejectKind::Other => VoucherVerdict::Unexpected(text),
                _ => VoucherVerdict::SessionGone(text),
            }
        }
        other => VoucherVerdict::Unexpected(format!("unexpected answer {other:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GIB: u64 = 1 << 30;

    fn prices() -> Prices {
        Prices {
            per_gib: U256::from(GIB),
            per_hour: U256::from(3_600_000u64),
        }
    }

    #[test]
    fn pays_what_its_own_counters_and_clock_price() {
        let escrow = U256::from(u64::MAX);
        // 1 GiB at 1 wei/byte + 10 s at 1 wei/ms.
        let due = U256::from(GIB + 10_000);
        assert_eq!(
            next_voucher(&prices(), GIB, 10_000, U256::ZERO, escrow),
            Some(due)
        );
        // Idle: one more wei than last time, as a sign of life.
        let idle = Prices {
            per_gib: U256::ZERO,
            per_hour: U256::ZERO,
        };
        assert_eq!(
            next_voucher(&idle, 0, 5_000, U256::from(3), escrow),
            Some(U256::from(4))
        );
        // The liveness allowance is bounded: after elapsed s + 1 wei, nothing more.
        assert_eq!(next_voucher(&idle, 0, 5_000, U256::from(6), escrow), None);
        // Never past the escrow.
        assert_eq!(
            next_voucher(&prices(), GIB, 0, U256::ZERO, U256::from(5)),
            Some(U256::from(5))
        );
        assert_eq!(
            next_voucher(&prices(), GIB, 0, U256::from(5), U256::from(5)),
            None
        );
    }

    #[test]
    fn a_provider_asking_for_more_gets_no_more() {
        // The attacker: refuses every voucher as under-paid, claiming ten
        // times what the client measured.
        let escrow = U256::from(u64::MAX);
        let greedy = SessionResponse::Rejected {
            kind: RejectKind::Underpaid,
            error: "voucher under-pays: the provider measured at least 99999999 wei due".into(),
        };
        let last = U256::ZERO;
        for second in 1..=30u64 {
            let bytes = second * 1000;
            let Some(amount) = next_voucher(&prices(), bytes, second * 1000, last, escrow) else {
                continue;
            };
            assert!(amount <= cap(&prices(), bytes, second * 1000, escrow));
            assert!(matches!(verdict(&greedy), VoucherVerdict::Refused(_)));
            // Refused: `last` stays, and the next amount is the client's own again.
            let again = next_voucher(&prices(), bytes, second * 1000, last, escrow);
            assert_eq!(again, Some(amount));
        }
        // Whatever it claims, the cap is the offer's price of what the
        // client measured plus the liveness allowance.
        assert_eq!(
            cap(&prices(), 1000, 30_000, escrow),
            U256::from(1000u64 * GIB / GIB + 30_000 + 31)
        );
    }

    #[test]
    fn a_session_the_provider_no_longer_holds_ends() {
        for kind in [
            RejectKind::NoSession,
            RejectKind::UnknownOrder,
            RejectKind::NotOurOrder,
            RejectKind::VoucherWrongOrder,
            RejectKind::WrongClient,
            RejectKind::NotSelling,
        ] {
            let answer = SessionResponse::Rejected {
                kind,
                error: "gone".into(),
            };
            assert!(
                matches!(verdict(&answer), VoucherVerdict::SessionGone(ref t) if t.starts_with(kind.as_str())),
                "{kind}"
            );
        }
        let accepted = SessionResponse::VoucherAccepted {
            order_id: U256::from(1),
            cumulative_wei: U256::from(2),
        };
        assert_eq!(verdict(&accepted), VoucherVerdict::Accepted);
        let newer = SessionResponse::Rejected {
            kind: RejectKind::Other,
            error: "?".into(),
        };
        assert!(matches!(verdict(&newer), VoucherVerdict::Unexpected(_)));
    }
}
