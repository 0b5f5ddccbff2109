//! The provider's start: read its session store, the chain's orders
//! (`activeOrders(provider)` and every recorded order) and the data plane's
//! peers (UAPI `get`), let [`crate::session::reconcile::plan`] decide, and
//! carry the plan out — restore the peers of sessions to resume, redeem
//! and settle what cannot be resumed, reject orders never accepted, remove
//! the peers it added and no longer needs. Peers it did not add are never
//! touched.
//!
//! A step that fails is logged and left for the next start (its record
//! stays); only reading the three sources is fatal.

use super::store::{SessionStore, StoreError};
use crate::dataplane::{DataPlane, DataPlaneError};
use crate::session::reconcile::{self, ChainOrder, PlanePeer, Settle};
use crate::session::record::{AddedPeer, RecordState, SessionRecord};
use crate::unix_ms;
use flowshield_chain::alloy::primitives::{Address, U256};
use flowshield_chain::{MarketClient, OrderStatus};
use std::collections::HashMap;

/// Why reconciling could not even start.
#[derive(Debug, thiserror::Error)]
pub enum RecoverError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("reading {what} on chain: {reason}")]
    Chain { what: String, reason: String },
    #[error("the session store holds order {order} of provider {provider}, not of this provider {me}: is the store shared with another provider? give each its own session.store")]
    ForeignRecord {
        order: U256,
        provider: Address,
        me: Address,
    },
    #[error("reading the data plane's peers: {0}")]
    DataPlane(#[from] DataPlaneError),
}

/// What the start did (for the log and tests).
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Recovered {
    /// Sessions to take up again, with their peers on the data plane.
    pub resumed: Vec<SessionRecord>,
    /// Orders settled (the voucher amount redeemed first, if any).
    pub settled: Vec<(U256, Option<U256>)>,
    pub rejected: Vec<U256>,
    pub forgotten: Vec<U256>,
    pub peers_removed: usize,
    pub peers_left_alone: usize,
}

/// Reconciles `store` with the chain and the data plane for provider `me`.
pub async fn reconcile(
    store: &SessionStore,
    market: &MarketClient,
    dataplane: &DataPlane,
    me: Address,
) -> Result<Recovered, RecoverError> {
    let records = store.sessions().await?;
    let added = store.added_peers().await?;
    let chain_err = |what: String| {
        move |e: flowshield_chain::ChainError| RecoverError::Chain {
            what,
            reason: e.to_string(),
        }
    };
    let mut ids = market
        .active_orders(me)
        .await
        .map_err(chain_err(format!("activeOrders({me})")))?;
    ids.extend(records.iter().map(|r| r.order_id));
    ids.sort();
    ids.dedup();
    let mut chain = HashMap::new();
    for id in ids {
        let order = market
            .order(id)
            .await
            .map_err(chain_err(format!("order {id}")))?;
        // Only an order with us is recorded (Connect checks it), so a
        // record of another provider's order means a shared store: acting
        // on it would forget that provider's sessions.
        if order.provider != me && order.provider != Address::ZERO {
            return Err(RecoverError::ForeignRecord {
                order: id,
                provider: order.provider,
                me,
            });
        }
        chain.insert(
            id,
            ChainOrder {
                status: OrderStatus::from_u8(order.status).unwrap_or(OrderStatus::None),
                escrow: order.escrow,
                redeemed: order.redeemed,
            },
        );
    }
    let peers: Vec<PlanePeer> = dataplane
        .peers()
        .await?
        .into_iter()
        .map(|(wg_key, allowed_ips)| PlanePeer {
            wg_key,
            allowed_ips,
        })
        .collect();
    let plan = reconcile::plan(&records, &added, &chain, &peers);
    tracing::info!(
        resume = plan.resume.len(),
        settle = plan.settle.len(),
        reject = plan.reject.len(),
        forget = plan.forget.len(),
        remove_peers = plan.remove_peers.len(),
        leave_alone = plan.leave_alone.len(),
        "reconciling sessions with the chain and the data plane"
    );
    let mut out = Recovered {
        peers_left_alone: plan.leave_alone.len(),
        ..Recovered::default()
    };

    // Peers first: a session that is not resumed must stop forwarding
    // before its order is settled.
    for key in &plan.remove_peers {
        match dataplane.remove_peer(key).await {
            Ok(()) => {
                store.forget_peer(key).await?;
                out.peers_removed += 1;
            }
            Err(e) => tracing::warn!(peer = %key, error = %e, "removing a stale peer failed"),
        }
    }
    for resume in plan.resume {
        let mut record = resume.record;
        if resume.restore_peer {
            store
                .record_peer(&AddedPeer {
                    wg_key: record.wg_key,
                    order_id: record.order_id,
                    address: record.address,
                    added_ms: unix_ms(),
                })
                .await?;
            if let Err(e) = dataplane.add_peer(&record.wg_key, record.address).await {
                tracing::warn!(order = %record.order_id, error = %e, "restoring the peer failed; ending the session");
                settle(
                    store,
                    market,
                    &mut out,
                    &settle_of(&record, "its peer could not be restored"),
                )
                .await?;
                continue;
            }
        }
        // Give the client a full idle timeout from now: it could not reach
        // the provider while it was down.
        record.last_voucher_ms = unix_ms();
        record.updated_ms = record.last_voucher_ms;
        store.put_session(&record).await?;
        tracing::info!(order = %record.order_id, best = %record.best_amount(), "session resumed");
        out.resumed.push(record);
    }
    for order in &plan.settle {
        settle(store, market, &mut out, order).await?;
    }
    for id in plan.reject {
        match market.reject_order(id).await {
            Ok(_) => {
                store.remove_session(id).await?;
                out.rejected.push(id);
            }
            Err(e) => {
                tracing::warn!(order = %id, error = %e, "rejecting a never-accepted order failed")
            }
        }
    }
    for id in plan.forget {
        store.remove_session(id).await?;
        out.forgotten.push(id);
    }
    if !out.settled.is_empty() {
        if let Err(e) = market.withdraw().await {
            tracing::warn!(error = %e, "withdrawing the payments failed");
        }
    }
    for key in &plan.leave_alone {
        tracing::info!(peer = %key, "leaving a peer this provider did not add");
    }
    Ok(out)
}

/// Ending `record`'s order: its best voucher if the chain has not paid it.
fn settle_of(record: &SessionRecord, reason: &'static str) -> Settle {
    Settle {
        order_id: record.order_id,
        voucher: record.unredeemed_voucher(record.redeemed).cloned(),
        reason,
    }
}

/// Redeems (if there is a better voucher) and settles one order; on
/// success forgets its record.
async fn settle(
    store: &SessionStore,
    market: &MarketClient,
    out: &mut Recovered,
    order: &Settle,
) -> Result<(), StoreError> {
    let id = order.order_id;
    store.set_state(id, RecordState::Ending, unix_ms()).await?;
    let done = match &order.voucher {
        Some(voucher) => market.redeem_and_settle(voucher).await,
        None => market.settle(id).await,
    };
    match done {
        Ok(_) => {
            tracing::info!(order = %id, reason = order.reason, redeemed = ?order.voucher.as_ref().map(|v| v.cumulative_amount), "order settled at start");
            store.remove_session(id).await?;
            out.settled
                .push((id, order.voucher.as_ref().map(|v| v.cumulative_amount)));
        }
        Err(e) => {
            tracing::warn!(order = %id, error = %e, "settling at start failed; retried next start")
        }
    }
    Ok(())
}
