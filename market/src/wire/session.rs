//! The order session between a client and a provider, carried as JSON over
//! the market's request-response protocol ([`crate::net::MarketRequest::Session`]).
//!
//! ```text
//! client                                   provider
//!   openOrder(provider) on chain (escrow)
//!   Connect{order, wg key, addr, sig} ───►  order on chain: Pending, ours, escrow ≥ min,
//!                                           sig by the order's client → acceptOrder,
//!                                           allocate /32, add peer over UAPI
//!   ◄─── Connected{address, wg key, endpoint, allowed IPs, keepalive}
//!   Voucher{cumulative, sig} every few s ─► VoucherLedger (monotonic, ≤ escrow, signer),
//!                                           under-payment check (see [`crate::session::pricing`]),
//!                                           redeem on chain past a threshold
//!   ◄─── VoucherAccepted{cumulative}
//!   Disconnect{order} ──────────────────►  remove peer, redeemAndSettle, free address
//!   ◄─── Disconnected{redeemed}
//! ```
//!
//! Every message after `Connect` is bound to the libp2p peer that sent the
//! `Connect` (the transport authenticates PeerIds): the provider refuses a
//! voucher or `Disconnect` for the order from any other peer
//! (`not_session_client`).
//!
//! This module holds the message types and the `Connect` signature
//! ([`connect_digest_text`]). Numbers, addresses and networks are typed;
//! the [`super::text`] adapters keep their JSON text (decimal strings, `0x`
//! addresses, hex signatures, `A.B.C.D/N`). On the wire the messages travel
//! as raw JSON, decoded by the receiver ([`super::raw`]), so that a
//! malformed field is refused by name. The sans-IO session logic is in
//! [`crate::session`]; the IO drivers are [`crate::provider::host`] and
//! [`crate::client`].

use super::text::{address, hex_bytes, ip_net, ip_nets, u256_dec};
use flowshield_chain::alloy::primitives::{Address, Bytes, Signature, U256};
use flowshield_chain::alloy::signers::local::PrivateKeySigner;
use flowshield_chain::alloy::signers::SignerSync;
use flowshield_chain::voucher::SignedVoucher;
use flowshield_proto::{PeerId, WgPublicKey};
use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use std::net::{Ipv4Addr, SocketAddr};

/// How old (or how far in the future) a `Connect` may be.
pub const CONNECT_MAX_SKEW_MS: u64 = 60_000;

/// A client's message to a provider.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "type")]
pub enum SessionRequest {
    Connect(ConnectRequest),
    Voucher(VoucherMessage),
    Disconnect {
        #[serde(with = "u256_dec")]
        order_id: U256,
    },
}

/// The provider's answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "type")]
pub enum SessionResponse {
    Connected(ConnectedInfo),
    VoucherAccepted {
        #[serde(with = "u256_dec")]
        order_id: U256,
        #[serde(with = "u256_dec")]
        cumulative_wei: U256,
    },
    Disconnected {
        #[serde(with = "u256_dec")]
        order_id: U256,
        /// What the provider will have been paid for the order, in wei: its
        /// best voucher. Answered once the end is recorded and the peer
        /// removed; the settlement on chain follows (ask the chain).
        #[serde(with = "u256_dec")]
        redeemed_wei: U256,
    },
    /// Refused; `error` says why in words, `kind` is stable for programs.
    Rejected {
        kind: RejectKind,
        error: String,
    },
}

/// Why a session message was refused, stable for programs (`Rejected.kind`,
/// a snake_case string on the wire). The provider's reasons are
/// [`crate::session::table::SessionError::kind`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RejectKind {
    Malformed,
    UnknownOrder,
    NotOurOrder,
    NotPending,
    EscrowTooSmall,
    WrongClient,
    StaleConnect,
    AlreadyConnected,
    KeyInUse,
    NoSession,
    VoucherNotIncreasing,
    VoucherExceedsEscrow,
    VoucherBadSignature,
    VoucherWrongOrder,
    Underpaid,
    Unavailable,
    /// A voucher or `Disconnect` from a peer other than the one that
    /// connected the order.
    NotSessionClient,
    /// The provider serves its offer's `max_clients` already.
    ProviderFull,
    /// The client's chain address holds the most orders allowed at once.
    TooManyOrders,
    /// The provider has no `[chain]` table: it sells nothing.
    NotSelling,
    /// A kind this build does not know (a newer provider's).
    #[serde(other)]
    Other,
}

impl RejectKind {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Malformed => "malformed",
            Self::UnknownOrder => "unknown_order",
            Self::NotOurOrder => "not_our_order",
            Self::NotPending => "not_pending",
            Self::EscrowTooSmall => "escrow_too_small",
            Self::WrongClient => "wrong_client",
            Self::StaleConnect => "stale_connect",
            Self::AlreadyConnected => "already_connected",
            Self::KeyInUse => "key_in_use",
            Self::NoSession => "no_session",
            Self::VoucherNotIncreasing => "voucher_not_increasing",
            Self::VoucherExceedsEscrow => "voucher_exceeds_escrow",
            Self::VoucherBadSignature => "voucher_bad_signature",
            Self::VoucherWrongOrder => "voucher_wrong_order",
            Self::Underpaid => "underpaid",
            Self::Unavailable => "unavailable",
            Self::NotSessionClient => "not_session_client",
            Self::ProviderFull => "provider_full",
            Self::TooManyOrders => "too_many_orders",
            Self::NotSelling => "not_selling",
            Self::Other => "other",
        }
    }
}

impl std::fmt::Display for RejectKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl PartialEq<&str> for RejectKind {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

/// `Connect`: "I opened `order_id` with you; add my WireGuard key."
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConnectRequest {
    /// Decimal order id.
    #[serde(with = "u256_dec")]
    pub order_id: U256,
    pub client_wg_public_key: WgPublicKey,
    /// `0x…` chain address that opened the order.
    #[serde(with = "address")]
    pub client_chain_address: Address,
    pub timestamp_ms: u64,
    /// EIP-191 signature (hex) by the client's chain key over
    /// [`connect_digest_text`].
    #[serde(with = "hex_bytes")]
    pub signature: Bytes,
}

/// `Connected`: how the client reaches the provider through the tunnel.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConnectedInfo {
    #[serde(with = "u256_dec")]
    pub order_id: U256,
    /// The client's tunnel address, `A.B.C.D/N` (N = the provider's subnet).
    #[serde(with = "ip_net")]
    pub tunnel_address: IpNet,
    pub provider_wg_public_key: WgPublicKey,
    /// The provider's WireGuard UDP endpoint, `IP:port`.
    pub endpoint: SocketAddr,
    /// What the client routes to the provider (its subnet and what is behind it).
    #[serde(with = "ip_nets")]
    pub allowed_ips: Vec<IpNet>,
    pub persistent_keepalive: u16,
    /// The provider's own tunnel address (first packet target).
    pub provider_tunnel_ip: Ipv4Addr,
}

/// A cumulative voucher on the wire.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VoucherMessage {
    #[serde(with = "u256_dec")]
    pub order_id: U256,
    #[serde(with = "u256_dec")]
    pub cumulative_wei: U256,
    /// 65-byte signature, hex.
    #[serde(with = "hex_bytes")]
    pub signature: Bytes,
}

/// Why a session message is malformed (before any state is consulted).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    #[error("{field}: {reason}")]
    Field { field: &'static str, reason: String },
    /// The JSON did not decode; `path` names the field (`order_id`,
    /// `allowed_ips`), or is `message` when the whole message is wrong.
    #[error("{path}: {reason}")]
    Decode { path: String, reason: String },
    #[error("encoding a session message: {0}")]
    Encode(String),
}

fn field(field: &'static str, reason: impl Into<String>) -> WireError {
    WireError::Field {
        field,
        reason: reason.into(),
    }
}

/// Parses a decimal (or `0x` hex) U256 from a configuration file or the
/// command line (the wire's numbers are typed, see [`u256_dec`]).
pub fn parse_u256(name: &'static str, text: &str) -> Result<U256, WireError> {
    u256_dec::parse(text)
        .ok_or_else(|| field(name, format!("'{}' is not a 256-bit number", text.trim())))
}

impl VoucherMessage {
    pub fn from_signed(v: &SignedVoucher) -> Self {
        Self {
            order_id: v.order_id,
            cumulative_wei: v.cumulative_amount,
            signature: v.signature.clone(),
        }
    }

    pub fn to_signed(&self) -> SignedVoucher {
        SignedVoucher {
            order_id: self.order_id,
            cumulative_amount: self.cumulative_wei,
            signature: self.signature.clone(),
        }
    }
}

/// The text a client signs (EIP-191 personal message) to claim an order:
/// it binds the order, the WireGuard key, the provider and the time, so a
/// `Connect` cannot be replayed to another provider or with another key.
pub fn connect_digest_text(
    order_id: U256,
    wg: &WgPublicKey,
    provider: &PeerId,
    timestamp_ms: u64,
) -> String {
    format!("flowshield-connect:v1:order={order_id}:wg={wg}:provider={provider}:ts={timestamp_ms}")
}

impl ConnectRequest {
    /// A signed `Connect` for `order_id` with `provider`.
    pub fn sign(
        signer: &PrivateKeySigner,
        order_id: U256,
        wg: WgPublicKey,
        provider: &PeerId,
        timestamp_ms: u64,
    ) -> Result<Self, WireError> {
        let text = connect_digest_text(order_id, &wg, provider, timestamp_ms);
        let sig = signer
            .sign_message_sync(text.as_bytes())
            .map_err(|e| field("signature", e.to_string()))?;
        Ok(Self {
            order_id,
            client_wg_public_key: wg,
            client_chain_address: signer.address(),
            timestamp_ms,
            signature: Bytes::copy_from_slice(&sig.as_bytes()),
        })
    }

    /// The order id and the address that signed this request for `provider`
    /// (checked against the order's client by the caller).
    pub fn recover(&self, provider: &PeerId) -> Result<(U256, Address), WireError> {
        let sig = Signature::try_from(self.signature.as_ref())
            .map_err(|e| field("signature", e.to_string()))?;
        let text = connect_digest_text(
            self.order_id,
            &self.client_wg_public_key,
            provider,
            self.timestamp_ms,
        );
        let signer = sig
            .recover_address_from_msg(text.as_bytes())
            .map_err(|e| field("signature", e.to_string()))?;
        let claimed = self.client_chain_address;
        if signer != claimed {
            return Err(field(
                "signature",
                format!("signed by {signer}, not by the claimed client {claimed}"),
            ));
        }
        Ok((self.order_id, signer))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer() -> PeerId {
        flowshield_proto::Keypair::generate_ed25519()
            .public()
            .to_peer_id()
    }

    #[test]
    fn connect_signature_round_trips_and_binds_its_fields() {
        let signer = PrivateKeySigner::random();
        let provider = peer();
        let req = ConnectRequest::sign(&signer, U256::from(7), WgPublicKey([1; 32]), &provider, 42)
            .unwrap();
        let (order, who) = req.recover(&provider).unwrap();
        assert_eq!((order, who), (U256::from(7), signer.address()));
        // Another provider, another key, another order: all refused.
        assert!(req.recover(&peer()).is_err());
        let mut other_key = req.clone();
        other_key.client_wg_public_key = WgPublicKey([2; 32]);
        assert!(other_key.recover(&provider).is_err());
        let mut other_order = req.clone();
        other_order.order_id = U256::from(8);
        assert!(other_order.recover(&provider).is_err());
        let mut garbage = req;
        garbage.signature = Bytes::from_static(b"zz");
        let err = garbage.recover(&provider).unwrap_err();
        assert!(err.to_string().starts_with("signature:"), "{err}");
    }

    #[test]
    fn messages_are_tagged_json() {
        let msg = SessionRequest::Disconnect {
            order_id: U256::from(3),
        };
        let text = serde_json::to_string(&msg).unwrap();
        assert_eq!(text, r#"{"type":"disconnect","order_id":"3"}"#);
        assert_eq!(serde_json::from_str::<SessionRequest>(&text).unwrap(), msg);
        assert!(parse_u256("order_id", "-1").is_err());
        let rejected = SessionResponse::Rejected {
            kind: RejectKind::NotSelling,
            error: "no".into(),
        };
        let text = serde_json::to_string(&rejected).unwrap();
        assert_eq!(
            text,
            r#"{"type":"rejected","kind":"not_selling","error":"no"}"#
        );
        assert_eq!(
            serde_json::from_str::<SessionResponse>(&text).unwrap(),
            rejected
        );
        let newer = r#"{"type":"rejected","kind":"too_new","error":"?"}"#;
        assert!(matches!(
            serde_json::from_str::<SessionResponse>(newer).unwrap(),
            SessionResponse::Rejected {
                kind: RejectKind::Other,
                ..
            }
        ));
        assert_eq!(parse_u256("x", "0x10").unwrap(), U256::from(16));
    }
}
