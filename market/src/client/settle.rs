//! Ending a session: the final voucher and `Disconnect` ([`disconnect`]),
//! settlement and withdrawal on chain ([`settle_and_withdraw`]), and
//! closing the order of a provider that went away ([`close_abandoned`]).

use super::config::ClientFile;
use super::session::{ask, send_voucher, Session};
use super::{chain_err, emit, tunnel, Chain, ClientError, SETTLE_TIMEOUT};
use crate::net::NetHandle;
use crate::wire::client::{ClientEvent, Disconnected, SettledBy};
use crate::wire::session::{SessionRequest, SessionResponse};
use flowshield_chain::alloy::primitives::U256;
use flowshield_chain::OrderStatus;
use std::time::{Duration, Instant};

/// Final voucher, `Disconnect`, settlement on chain, refund withdrawn,
/// tunnel down.
pub(super) async fn disconnect(
    file: &ClientFile,
    chain: &Chain,
    net: &NetHandle,
    session: &mut Session,
    escrow: U256,
) -> Result<Disconnected, ClientError> {
    if let Some(c) = tunnel::counters(&file.interface, &session.provider_key).await {
        session.bytes = c.bytes();
    }
    let timeout = Duration::from_secs(file.voucher_secs.max(2) * 2);
    if let Err(e) = send_voucher(chain, net, session, escrow, timeout).await {
        tracing::warn!(error = %e, "final voucher not delivered");
    }
    let request = SessionRequest::Disconnect {
        order_id: session.order_id,
    };
    let by_provider = match tokio::time::timeout(
        Duration::from_secs(30),
        ask(net, session.offer.provider_peer_id, &request),
    )
    .await
    {
        Ok(Ok(SessionResponse::Disconnected { .. })) => true,
        other => {
            tracing::warn!(answer = ?other.map(|r| r.map(|_| ())), "provider did not settle; closing on chain");
            false
        }
    };
    let _ = tunnel::flowshield(&file.flowshield_bin, "down", &file.wg_quick_path()).await;
    let refunded = settle_and_withdraw(chain, session.order_id, !by_provider).await?;
    let order = chain
        .market
        .order(session.order_id)
        .await
        .map_err(chain_err("reading the order"))?;
    Ok(Disconnected {
        order_id: session.order_id,
        provider: session.offer.provider_peer_id,
        settled_by: if by_provider {
            SettledBy::Provider
        } else {
            SettledBy::Client
        },
        bytes: session.bytes,
        voucher_wei: session.last_voucher,
        escrow_wei: order.escrow,
        provider_paid_wei: order.redeemed,
        client_refunded_wei: refunded,
        status: format!(
            "{:?}",
            OrderStatus::from_u8(order.status).unwrap_or(OrderStatus::None)
        ),
    })
}

/// Waits for `order` to be settled (requesting close and settling itself
/// when `close` is set), then withdraws. Returns the refund.
pub(super) async fn settle_and_withdraw(
    chain: &Chain,
    order: U256,
    close: bool,
) -> Result<U256, ClientError> {
    let market = &chain.market;
    if close {
        let _tx = chain.tx_lock.lock().await;
        if let Err(e) = market.request_close(order).await {
            tracing::debug!(error = %e, "requestClose refused (already closing or settled?)");
        }
    }
    let deadline = Instant::now() + SETTLE_TIMEOUT;
    loop {
        let status = market
            .order_status(order)
            .await
            .map_err(chain_err("reading the order"))?;
        match status {
            OrderStatus::Settled | OrderStatus::Cancelled => break,
            OrderStatus::Pending => {
                let _tx = chain.tx_lock.lock().await;
                let _ = market.cancel_order(order).await;
            }
            OrderStatus::Closing if close => {
                // Reverts with CloseGraceActive until the provider's grace ends.
                let _tx = chain.tx_lock.lock().await;
                let _ = market.settle(order).await;
            }
            _ => {}
        }
        if Instant::now() >= deadline {
            return Err(ClientError::ChainCall(format!(
                "order {order} not settled within {SETTLE_TIMEOUT:?} (status {status:?})"
            )));
        }
        // Poll interval of a bounded wait (deadline above).
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let record = market
        .order(order)
        .await
        .map_err(chain_err("reading the order"))?;
    let refund = record.escrow.saturating_sub(record.redeemed);
    let _tx = chain.tx_lock.lock().await;
    if let Err(e) = market.withdraw().await {
        tracing::debug!(error = %e, "nothing withdrawn");
    }
    Ok(refund)
}

/// Closes the order of a provider that went away: request close, settle
/// after the grace period, withdraw the refund.
pub(super) async fn close_abandoned(chain: Chain, order: U256, _escrow: U256) {
    match settle_and_withdraw(&chain, order, true).await {
        Ok(refund) => emit(&ClientEvent::AbandonedOrderClosed {
            order_id: order,
            client_refunded_wei: refund,
        }),
        Err(e) => tracing::warn!(%order, error = %e, "abandoned order not closed"),
    }
}
