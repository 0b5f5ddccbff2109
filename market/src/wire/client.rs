//! What a running client tells its owner: one JSON line on stdout per
//! [`ClientEvent`], tagged by `"event"`, and the same `disconnected` (or
//! `error`) line as the answer on its control socket. Scripts and tests
//! read these lines, so the field names and value shapes are fixed:
//! order ids and wei amounts are decimal strings, durations and byte
//! counts numbers.

use super::text;
use flowshield_chain::alloy::primitives::U256;
use flowshield_proto::PeerId;
use serde::{Deserialize, Serialize};

/// One line of the client's output.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum ClientEvent {
    /// The tunnel carries traffic: the order is open and the first
    /// handshake is done.
    Connected {
        #[serde(with = "text::u256_dec")]
        order_id: U256,
        #[serde(with = "text::peer_id")]
        provider: PeerId,
        provider_chain_address: String,
        /// The fullnode's URL, or `dht`.
        found_via: String,
        tunnel_address: String,
        endpoint: String,
        #[serde(with = "text::u256_dec")]
        escrow_wei: U256,
        purchase_to_first_packet_ms: u64,
    },
    /// The provider was lost; the client looks for another.
    Failover {
        #[serde(with = "text::peer_id")]
        from_provider: PeerId,
        #[serde(with = "text::u256_dec")]
        order_id: U256,
        reason: String,
    },
    /// Connected again after a failover.
    FailoverDone {
        #[serde(with = "text::peer_id")]
        from_provider: PeerId,
        #[serde(with = "text::peer_id")]
        to_provider: PeerId,
        /// The new order.
        #[serde(with = "text::u256_dec")]
        order_id: U256,
        failover_ms: u64,
    },
    /// The order of a lost provider is settled and its refund withdrawn.
    AbandonedOrderClosed {
        #[serde(with = "text::u256_dec")]
        order_id: U256,
        #[serde(with = "text::u256_dec")]
        client_refunded_wei: U256,
    },
    Disconnected(Disconnected),
    Error {
        error: String,
    },
}

/// The summary of a settled session: the last line of `client connect`
/// and the control socket's answer to `disconnect`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Disconnected {
    #[serde(with = "text::u256_dec")]
    pub order_id: U256,
    #[serde(with = "text::peer_id")]
    pub provider: PeerId,
    pub settled_by: SettledBy,
    /// rx + tx of the tunnel, by the client's own counters.
    pub bytes: u64,
    /// The last voucher the provider accepted.
    #[serde(with = "text::u256_dec")]
    pub voucher_wei: U256,
    #[serde(with = "text::u256_dec")]
    pub escrow_wei: U256,
    #[serde(with = "text::u256_dec")]
    pub provider_paid_wei: U256,
    #[serde(with = "text::u256_dec")]
    pub client_refunded_wei: U256,
    /// The order's status on chain (`Settled`, `Cancelled`, ...).
    pub status: String,
}

/// Who settled the order on chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SettledBy {
    /// The provider answered `Disconnect` and settled.
    Provider,
    /// The provider did not; the client requested close and settled.
    Client,
}

impl From<Disconnected> for ClientEvent {
    fn from(summary: Disconnected) -> Self {
        Self::Disconnected(summary)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_json_lines_tagged_by_event() {
        let provider = flowshield_proto::Keypair::generate_ed25519()
            .public()
            .to_peer_id();
        let event = ClientEvent::Disconnected(Disconnected {
            order_id: U256::from(3),
            provider,
            settled_by: SettledBy::Provider,
            bytes: 10,
            voucher_wei: U256::from(7),
            escrow_wei: U256::from(100),
            provider_paid_wei: U256::from(7),
            client_refunded_wei: U256::from(93),
            status: "Settled".into(),
        });
        let value = serde_json::to_value(&event).unwrap();
        assert_eq!(value["event"], "disconnected");
        assert_eq!(value["order_id"], "3");
        assert_eq!(value["provider"], provider.to_base58());
        assert_eq!(value["settled_by"], "provider");
        assert_eq!(value["bytes"], 10);
        assert_eq!(value["client_refunded_wei"], "93");
        assert_eq!(serde_json::from_value::<ClientEvent>(value).unwrap(), event);
        let error = ClientEvent::Error { error: "x".into() };
        assert_eq!(
            serde_json::to_string(&error).unwrap(),
            r#"{"event":"error","error":"x"}"#
        );
    }
}
