//! Direct requests between market nodes, carried by the libp2p
//! request-response protocol (JSON): a provider's latest heartbeat, and
//! order session messages, which travel raw and are decoded by their
//! receiver (see [`super::raw`]) so a malformed one is answered, not
//! dropped.

use serde::{Deserialize, Serialize};

/// A direct request between market nodes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum MarketRequest {
    /// Ask a provider for its latest signed heartbeat.
    GetHeartbeat,
    /// An order session message from a client to a provider, decoded by
    /// the provider (so a malformed one is answered, not dropped).
    Session(super::raw::RawSessionRequest),
}

/// The answer to a [`MarketRequest`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum MarketResponse {
    /// A signed heartbeat envelope (wire encoding, as text).
    Heartbeat(String),
    /// A provider's answer to a session message, decoded by the client.
    Session(super::raw::RawSessionResponse),
    Error(String),
}
