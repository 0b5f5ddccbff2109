//! The chain half of a session's life, outside the session lock: accept
//! an order and add its peer (recorded first), and end it — record the
//! end, remove the peer, then (on a task of its own) redeem the best
//! voucher the chain has not paid, settle, withdraw.

use super::{chain_error, SessionHost};
use crate::session::record::{AddedPeer, RecordState, SessionRecord};
use crate::session::table::{Session, SessionError};
use crate::unix_ms;
use flowshield_chain::alloy::primitives::U256;
use flowshield_chain::OrderStatus;
use tracing::Instrument;

impl SessionHost {
    /// Records the session, accepts its order on chain and adds its peer
    /// (recorded first), outside the session lock. On failure nothing is
    /// left behind: an accepted order is settled so the client is refunded.
    pub(super) async fn accept_and_add(&self, record: &SessionRecord) -> Result<(), SessionError> {
        let store = &self.config.store;
        let id = record.order_id;
        store.put_session(record).await.map_err(Self::store_error)?;
        let accepted = {
            let _tx = self.tx_lock.lock().await;
            self.config.market.accept_order(id).await
        };
        if let Err(e) = accepted {
            let _ = store.remove_session(id).await;
            return Err(chain_error("acceptOrder", e));
        }
        let peer = AddedPeer {
            wg_key: record.wg_key,
            order_id: id,
            address: record.address,
            added_ms: unix_ms(),
        };
        let added = match store.record_peer(&peer).await {
            Ok(()) => self
                .config
                .dataplane
                .add_peer(&record.wg_key, record.address)
                .await
                .map_err(|e| SessionError::Unavailable(format!("data plane: {e}"))),
            Err(e) => Err(Self::store_error(e)),
        };
        // An unshaped client could take more than the offer promises:
        // failing to shape fails the session like a failed peer add.
        let added = match (added, &self.config.shaper) {
            (Ok(()), Some(shaper)) => shaper
                .add(record.address)
                .await
                .map_err(|e| SessionError::Unavailable(e.to_string())),
            (added, _) => added,
        };
        if let Err(e) = added {
            // Accepted but unusable: settle at once so the client is refunded.
            let _ = self.config.dataplane.remove_peer(&record.wg_key).await;
            if let Some(shaper) = &self.config.shaper {
                let _ = shaper.remove(record.address).await;
            }
            let _ = store.forget_peer(&record.wg_key).await;
            let settled = {
                let _tx = self.tx_lock.lock().await;
                self.config.market.settle(id).await
            };
            if settled.is_ok() {
                let _ = store.remove_session(id).await;
            }
            return Err(e);
        }
        Ok(())
    }

    /// Ends a session: records that it is ending (durably: a restart
    /// settles it), removes its peer and lifts its rate limit, then settles
    /// on chain on a task of its own — redeem the best voucher the chain has
    /// not paid, settle, withdraw — so the caller never waits for a block.
    /// Returns what the order will have paid: its best voucher.
    ///
    /// The session lock is held only to mark the order as ending and,
    /// once settled, to drop it. A failed settlement leaves the session
    /// (and its record, `Ending`) for the next attempt: the idle timeout
    /// ends it again, a restart settles it.
    pub async fn end(&self, id: U256, why: &'static str) -> Result<U256, SessionError> {
        let session = {
            let mut state = self.state.lock().await;
            let session = state
                .table
                .get(&id)
                .cloned()
                .ok_or(SessionError::NoSession(id))?;
            if !state.ending.insert(id) {
                return Err(SessionError::Unavailable(format!(
                    "order {id} is already being settled"
                )));
            }
            session
        };
        // Durable before it is acknowledged.
        if let Err(e) = self
            .config
            .store
            .set_state(id, RecordState::Ending, unix_ms())
            .await
        {
            self.state.lock().await.ending.remove(&id);
            return Err(Self::store_error(e));
        }
        self.remove_from_dataplane(&session).await;
        let will_pay = session.ledger.owed();
        let host = self.clone();
        tokio::spawn(
            async move { host.finish_end(session, why).await }
                .instrument(tracing::info_span!("settle", order = %id)),
        );
        Ok(will_pay)
    }

    /// The chain half of [`SessionHost::end`], on its own task.
    async fn finish_end(&self, session: Session, why: &'static str) {
        let id = session.order_id;
        let result = self.settle(&session).await;
        let mut state = self.state.lock().await;
        state.ending.remove(&id);
        let redeemed = match result {
            Ok(redeemed) => redeemed,
            Err(e) => {
                tracing::warn!(error = %e, why, "settling failed; retried when the session ends again or at the next start");
                return;
            }
        };
        state.table.remove(&id);
        state.settled.sessions += 1;
        state.settled.paid = state.settled.paid.saturating_add(redeemed);
        let _ = state.pool.release(session.address);
        drop(state);
        if let Err(e) = self.config.store.remove_session(id).await {
            tracing::warn!(error = %e, "forgetting the settled session failed");
        }
        tracing::info!(%redeemed, why, "session ended, order settled");
    }

    /// At a clean stop: takes every peer this provider added off the data
    /// plane and its rate limits away, keeping the records. With no sidecar
    /// running nothing would check credit, and the egress filter goes with
    /// the sidecar: a client must not be forwarded meanwhile. The next
    /// start resumes each session whose order is still active (re-adding
    /// its peer, [`crate::provider::recover`]) or settles it. Peers it did
    /// not add (the operator's, a verifier's) stay.
    pub async fn park(&self) {
        // No forwarding decision is half carried out while peers go.
        let _forwarding = self.forwarding.lock().await;
        let store = &self.config.store;
        let keys: Vec<_> = match store.added_peers().await {
            Ok(peers) => peers.into_iter().map(|p| p.wg_key).collect(),
            Err(e) => {
                tracing::error!(error = %e, "cannot read the peers this provider added; taking its sessions' peers off");
                let state = self.state.lock().await;
                let orders = state.table.order_ids();
                orders
                    .iter()
                    .filter_map(|id| state.table.get(id).map(|s| s.wg_key))
                    .collect()
            }
        };
        let mut parked = 0usize;
        for key in &keys {
            match self.config.dataplane.remove_peer(key).await {
                Ok(()) => parked += 1,
                Err(e) => {
                    tracing::warn!(error = %e, peer = %key, "cannot take the peer off the data plane")
                }
            }
        }
        if let Some(shaper) = &self.config.shaper {
            shaper.uninstall().await;
        }
        tracing::info!(
            parked,
            "stopping: clients' peers off the data plane until the next start"
        );
    }

    /// Stops the session's traffic: removes its peer (and forgets it once
    /// removed) and lifts its rate limit. Data plane only, no chain.
    async fn remove_from_dataplane(&self, session: &Session) {
        let store = &self.config.store;
        match self.config.dataplane.remove_peer(&session.wg_key).await {
            Ok(()) => {
                if let Err(e) = store.forget_peer(&session.wg_key).await {
                    tracing::warn!(error = %e, "forgetting the removed peer failed");
                }
            }
            Err(e) => tracing::warn!(error = %e, "removing the peer failed"),
        }
        if let Some(shaper) = &self.config.shaper {
            if let Err(e) = shaper.remove(session.address).await {
                tracing::warn!(error = %e, "lifting the client's rate limit failed");
            }
        }
    }

    /// Redeems the best voucher the chain has not paid, settles and
    /// withdraws; returns what the order paid.
    async fn settle(&self, session: &Session) -> Result<U256, SessionError> {
        let id = session.order_id;
        let market = &self.config.market;
        // Read under the transaction lock: a redemption task may have just
        // paid the best voucher, and redeeming it again would revert.
        let _tx = self.tx_lock.lock().await;
        let order = market
            .order(id)
            .await
            .map_err(|e| chain_error("reading the order", e))?;
        let status = OrderStatus::from_u8(order.status).unwrap_or(OrderStatus::None);
        if matches!(status, OrderStatus::Active | OrderStatus::Closing) {
            let best = session
                .ledger
                .to_redeem()
                .filter(|v| v.cumulative_amount > order.redeemed);
            let settled = match best {
                Some(best) => market.redeem_and_settle(best).await,
                None => market.settle(id).await,
            };
            settled.map_err(|e| chain_error("settling", e))?;
            if let Err(e) = market.withdraw().await {
                tracing::warn!(error = %e, "withdrawing the payment failed");
            }
        }
        market
            .order(id)
            .await
            .map(|o| o.redeemed)
            .map_err(|e| chain_error("reading the order", e))
    }
}
