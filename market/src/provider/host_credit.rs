//! The credit check, outside the session lock: the data plane's counters
//! are read (UAPI `get`) with no lock held, weighed against each session's
//! vouchers under the lock ([`crate::session::table::SessionTable::check_credit`]),
//! and the decisions — stop or restore forwarding — are carried out over
//! UAPI after the lock is released. The forwarding lock keeps decisions and
//! their UAPI calls in one order, so a late "stop" can never undo a
//! "restore" made after it.

use super::SessionHost;
use crate::session::table::CreditAction;
use crate::unix_ms;
use flowshield_chain::alloy::primitives::U256;
use flowshield_proto::WgPublicKey;
use std::net::Ipv4Addr;

/// One session's forwarding to change: its peer, and its address to
/// forward again (`None`: stop).
type ForwardingChange = (U256, WgPublicKey, Option<Ipv4Addr>);

impl SessionHost {
    /// Weighs what the data plane measured for every session against its
    /// vouchers (one UAPI `get`, no lock held): stops forwarding past the
    /// credit limit, restores it once paid, ends sessions whose escrow is
    /// spent. Run at least once a second.
    pub async fn enforce_credit(&self) {
        if self.state.lock().await.table.is_empty() {
            return;
        }
        let counters = match self.config.dataplane.counters().await {
            Ok(counters) => counters,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read peer counters");
                return;
            }
        };
        let now = unix_ms();
        let turn = self.forwarding.lock().await;
        let (changes, spent) = {
            let mut state = self.state.lock().await;
            let mut changes: Vec<ForwardingChange> = Vec::new();
            let mut spent = Vec::new();
            for id in state.table.order_ids() {
                if state.ending.contains(&id) {
                    continue;
                }
                let Some((key, address)) = state.table.get(&id).map(|s| (s.wg_key, s.address))
                else {
                    continue;
                };
                let bytes = counters
                    .iter()
                    .find(|c| c.public_key == key)
                    .map_or(0, |c| c.bytes());
                match state.table.check_credit(id, bytes, now) {
                    Some(CreditAction::End) => spent.push(id),
                    Some(CreditAction::Block) => changes.push((id, key, None)),
                    Some(CreditAction::Restore) => changes.push((id, key, Some(address))),
                    None => {}
                }
            }
            (changes, spent)
        };
        for (id, key, address) in changes {
            self.set_forwarding(id, key, address).await;
        }
        drop(turn);
        for id in spent {
            if let Err(e) = self.end(id, "the escrow is spent").await {
                tracing::warn!(order = %id, error = %e, "ending the session failed");
            }
        }
    }

    /// After a voucher for `id` (with `bytes` measured): forwards again if
    /// it covers the debt of a blocked session, or stops if it does not
    /// cover what was measured meanwhile. Every decision the table records
    /// is carried out: one it recorded but the data plane never saw would
    /// leave a client it believes blocked forwarding unpaid.
    pub(super) async fn check_credit_after_voucher(&self, id: U256, bytes: u64, now: u64) {
        let _turn = self.forwarding.lock().await;
        let change = {
            let mut state = self.state.lock().await;
            if state.ending.contains(&id) {
                return;
            }
            let action = state.table.check_credit(id, bytes, now);
            let Some((key, address)) = state.table.get(&id).map(|s| (s.wg_key, s.address)) else {
                return;
            };
            match action {
                Some(CreditAction::Block) => Some((key, None)),
                Some(CreditAction::Restore) => Some((key, Some(address))),
                // The periodic check ends it (with the counters it reads).
                Some(CreditAction::End) | None => None,
            }
        };
        if let Some((key, address)) = change {
            self.set_forwarding(id, key, address).await;
        }
    }

    /// Stops (`None`) or restores forwarding for one session's peer.
    async fn set_forwarding(&self, id: U256, key: WgPublicKey, address: Option<Ipv4Addr>) {
        if let Err(e) = self.config.dataplane.set_forwarding(&key, address).await {
            tracing::warn!(order = %id, error = %e, "changing forwarding failed");
        } else if address.is_none() {
            tracing::info!(order = %id, "client past its credit limit: forwarding stopped");
        } else {
            tracing::info!(order = %id, "client paid: forwarding restored");
        }
    }
}
