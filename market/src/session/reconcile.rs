//! What a provider does with its sessions when it starts (sans-IO): it
//! compares its records ([`super::record`]) with the chain's orders and the
//! data plane's peers, and [`plan`] says what to resume, what to redeem and
//! settle, what to forget, and which peers to remove.
//!
//! The rules, in order of what money depends on:
//! - an order the chain still holds `Active`, recorded `Accepting` or
//!   `Active`, whose WireGuard key no foreign peer holds, is **resumed**
//!   (its peer re-added if it is missing or its allowed IPs differ);
//! - an order the chain holds `Active` or `Closing` that cannot be resumed
//!   (recorded `Ending`, the client asked to close, a foreign peer took its
//!   key, or no record at all) is **settled**, redeeming first the best
//!   recorded voucher if it pays more than the chain has;
//! - an order still `Pending` on chain that the provider recorded
//!   (`acceptOrder` never mined) is **rejected** so the client is refunded;
//! - a record whose order ended (`Settled`, `Cancelled`, unknown) is
//!   **forgotten**;
//! - a peer the provider added whose session is not resumed is **removed**;
//!   a peer it did not add (the operator's, a verifier's probe) is **left
//!   alone**, always.

use super::record::{AddedPeer, RecordState, SessionRecord};
use flowshield_chain::alloy::primitives::U256;
use flowshield_chain::voucher::SignedVoucher;
use flowshield_chain::OrderStatus;
use flowshield_proto::WgPublicKey;
use ip_network::{IpNetwork, Ipv4Network};
use std::collections::{BTreeMap, HashMap, HashSet};

/// The chain's view of one order, as reconciling needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainOrder {
    pub status: OrderStatus,
    pub escrow: U256,
    pub redeemed: U256,
}

/// One peer on the data plane (`get=1`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanePeer {
    pub wg_key: WgPublicKey,
    pub allowed_ips: Vec<IpNetwork>,
}

/// A session to take up again.
#[derive(Debug, Clone, PartialEq)]
pub struct Resume {
    /// The record, with escrow and redeemed refreshed from the chain.
    pub record: SessionRecord,
    /// The peer is missing or its allowed IPs are not the session's: add it
    /// again (recording it first).
    pub restore_peer: bool,
}

/// An order to end on chain.
#[derive(Debug, Clone, PartialEq)]
pub struct Settle {
    pub order_id: U256,
    /// Redeem this first (`redeemAndSettle`); `None`: settle only.
    pub voucher: Option<SignedVoucher>,
    /// Why the session cannot be resumed (for the log).
    pub reason: &'static str,
}

/// What to do at start.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Plan {
    pub resume: Vec<Resume>,
    pub settle: Vec<Settle>,
    /// Orders still `Pending` on chain to reject (then forget).
    pub reject: Vec<U256>,
    /// Records whose order has ended on chain.
    pub forget: Vec<U256>,
    /// Peers this provider added that no resumed session uses: remove from
    /// the data plane (if present) and forget.
    pub remove_peers: Vec<WgPublicKey>,
    /// Peers on the data plane this provider did not add: never touched.
    pub leave_alone: Vec<WgPublicKey>,
}

/// The plan for `records` and `added` peers (the provider's store) given
/// `chain` (every order in `activeOrders(provider)` and every recorded
/// order; an absent order counts as unknown) and the data plane's `peers`.
pub fn plan(
    records: &[SessionRecord],
    added: &[AddedPeer],
    chain: &HashMap<U256, ChainOrder>,
    peers: &[PlanePeer],
) -> Plan {
    let mut out = Plan::default();
    let ours: HashSet<WgPublicKey> = added.iter().map(|p| p.wg_key).collect();
    let on_plane: HashMap<WgPublicKey, &PlanePeer> = peers.iter().map(|p| (p.wg_key, p)).collect();
    let mut resumed_keys = HashSet::new();
    let recorded: HashSet<U256> = records.iter().map(|r| r.order_id).collect();

    for record in records {
        let order = chain.get(&record.order_id);
        let status = order.map_or(OrderStatus::None, |o| o.status);
        let redeemed = order.map_or(record.redeemed, |o| o.redeemed.max(record.redeemed));
        // A key on the plane we never added belongs to someone else.
        let foreign_key = on_plane.contains_key(&record.wg_key) && !ours.contains(&record.wg_key);
        let settle = |reason| Settle {
            order_id: record.order_id,
            voucher: record.unredeemed_voucher(redeemed).cloned(),
            reason,
        };
        match status {
            OrderStatus::Active if record.state == RecordState::Ending => {
                out.settle.push(settle("the session was ending"));
            }
            OrderStatus::Active if foreign_key => {
                out.settle
                    .push(settle("a peer this provider did not add holds its key"));
            }
            OrderStatus::Active => {
                let mut record = record.clone();
                record.state = RecordState::Active;
                record.redeemed = redeemed;
                if let Some(o) = order {
                    record.escrow = o.escrow.max(record.escrow);
                }
                let restore_peer = on_plane
                    .get(&record.wg_key)
                    .is_none_or(|p| p.allowed_ips != session_ips(&record));
                resumed_keys.insert(record.wg_key);
                out.resume.push(Resume {
                    record,
                    restore_peer,
                });
            }
            OrderStatus::Closing => out.settle.push(settle("the client asked to close")),
            OrderStatus::Pending => out.reject.push(record.order_id),
            OrderStatus::Settled | OrderStatus::Cancelled | OrderStatus::None => {
                out.forget.push(record.order_id)
            }
        }
    }

    // Orders the chain holds for us that we have no record of: nothing to
    // redeem, so hand the client its escrow back. (Sorted for a stable plan.)
    let unrecorded: BTreeMap<_, _> = chain
        .iter()
        .filter(|(id, o)| {
            !recorded.contains(id) && matches!(o.status, OrderStatus::Active | OrderStatus::Closing)
        })
        .collect();
    for (order_id, _) in unrecorded {
        out.settle.push(Settle {
            order_id: *order_id,
            voucher: None,
            reason: "no record of the session",
        });
    }

    for peer in added {
        if !resumed_keys.contains(&peer.wg_key) {
            out.remove_peers.push(peer.wg_key);
        }
    }
    out.leave_alone = peers
        .iter()
        .map(|p| p.wg_key)
        .filter(|k| !ours.contains(k))
        .collect();
    out
}

/// The allowed IPs a forwarding session's peer has: its address, /32.
fn session_ips(record: &SessionRecord) -> Vec<IpNetwork> {
    Ipv4Network::new(record.address, 32)
        .map(|n| vec![IpNetwork::V4(n)])
        .unwrap_or_default()
}

#[cfg(test)]
#[path = "reconcile_tests.rs"]
mod tests;
