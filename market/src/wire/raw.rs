//! Session messages as they cross the request-response wire: the JSON text
//! itself, decoded by its receiver rather than by the libp2p codec.
//!
//! A typed codec that cannot read a message drops the stream, and the
//! sender learns nothing. Carried raw, a message with a bad field still
//! reaches the provider, which refuses it as `malformed` naming the field
//! (`order_id: '…' is not a 256-bit number`); the client reads the
//! provider's answers the same way. The bytes are exactly those of the
//! typed message's JSON.
//!
//! Decoding reads the `type` tag first and then that message's fields:
//! serde's tagged enums buffer their content, which loses the field path
//! of an error.

use super::session::{ConnectedInfo, RejectKind, SessionRequest, SessionResponse, WireError};
use super::text::u256_dec;
use flowshield_chain::alloy::primitives::U256;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use std::marker::PhantomData;

/// A message of type `T` as JSON text on the wire.
#[derive(Serialize, Deserialize)]
#[serde(transparent, bound = "")]
pub struct RawJson<T> {
    json: Box<RawValue>,
    #[serde(skip)]
    message: PhantomData<fn() -> T>,
}

/// A client's [`SessionRequest`] on the wire.
pub type RawSessionRequest = RawJson<SessionRequest>;
/// A provider's [`SessionResponse`] on the wire.
pub type RawSessionResponse = RawJson<SessionResponse>;

impl<T> RawJson<T> {
    /// Any JSON text, as a peer may send it (tests send what an honest
    /// peer never would).
    pub fn from_json(text: &str) -> Result<Self, WireError> {
        RawValue::from_string(text.to_owned())
            .map(|json| Self {
                json,
                message: PhantomData,
            })
            .map_err(|e| WireError::Decode {
                path: "message".into(),
                reason: e.to_string(),
            })
    }

    /// The JSON text.
    pub fn json(&self) -> &str {
        self.json.get()
    }
}

impl<T: Serialize> RawJson<T> {
    /// The typed message's JSON.
    pub fn encode(message: &T) -> Result<Self, WireError> {
        serde_json::value::to_raw_value(message)
            .map(|json| Self {
                json,
                message: PhantomData,
            })
            .map_err(|e| WireError::Encode(e.to_string()))
    }
}

impl<T> Clone for RawJson<T> {
    fn clone(&self) -> Self {
        Self {
            json: self.json.clone(),
            message: PhantomData,
        }
    }
}

impl<T> PartialEq for RawJson<T> {
    fn eq(&self, other: &Self) -> bool {
        self.json() == other.json()
    }
}

impl<T> std::fmt::Debug for RawJson<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("RawJson").field(&self.json()).finish()
    }
}

impl RawSessionRequest {
    /// The typed request; a malformed one is refused naming its field.
    pub fn decode(&self) -> Result<SessionRequest, WireError> {
        let json = self.json();
        match tag(json)?.as_str() {
            "connect" => Ok(SessionRequest::Connect(fields(json)?)),
            "voucher" => Ok(SessionRequest::Voucher(fields(json)?)),
            "disconnect" => {
                let OrderOnly { order_id } = fields(json)?;
                Ok(SessionRequest::Disconnect { order_id })
            }
            other => Err(unknown_type(other)),
        }
    }
}

impl RawSessionResponse {
    /// The typed response; a malformed one is refused naming its field.
    pub fn decode(&self) -> Result<SessionResponse, WireError> {
        let json = self.json();
        match tag(json)?.as_str() {
            "connected" => Ok(SessionResponse::Connected(fields::<ConnectedInfo>(json)?)),
            "voucher_accepted" => {
                let Accepted {
                    order_id,
                    cumulative_wei,
                } = fields(json)?;
                Ok(SessionResponse::VoucherAccepted {
                    order_id,
                    cumulative_wei,
                })
            }
            "disconnected" => {
                let Settled {
                    order_id,
                    redeemed_wei,
                } = fields(json)?;
                Ok(SessionResponse::Disconnected {
                    order_id,
                    redeemed_wei,
                })
            }
            "rejected" => {
                let Refusal { kind, error } = fields(json)?;
                Ok(SessionResponse::Rejected { kind, error })
            }
            other => Err(unknown_type(other)),
        }
    }
}

// The fields of the enums' struct variants, read on their own (see the
// module doc); the round-trip tests keep them in step with the enums.

#[derive(Deserialize)]
struct OrderOnly {
    #[serde(with = "u256_dec")]
    order_id: U256,
}

#[derive(Deserialize)]
struct Accepted {
    #[serde(with = "u256_dec")]
    order_id: U256,
    #[serde(with = "u256_dec")]
    cumulative_wei: U256,
}

#[derive(Deserialize)]
struct Settled {
    #[serde(with = "u256_dec")]
    order_id: U256,
    #[serde(with = "u256_dec")]
    redeemed_wei: U256,
}

#[derive(Deserialize)]
struct Refusal {
    kind: RejectKind,
    error: String,
}

/// The message's `type`.
fn tag(json: &str) -> Result<String, WireError> {
    #[derive(Deserialize)]
    #[serde(expecting = "a session message, a JSON object with a type")]
    struct Tagged {
        #[serde(rename = "type")]
        kind: String,
    }
    fields::<Tagged>(json).map(|t| t.kind)
}

/// The message's fields as `T`; an error names the field's path.
fn fields<T: DeserializeOwned>(json: &str) -> Result<T, WireError> {
    let mut reader = serde_json::Deserializer::from_str(json);
    serde_path_to_error::deserialize(&mut reader).map_err(|e| {
        let path = e.path().to_string();
        WireError::Decode {
            path: if path == "." { "message".into() } else { path },
            reason: e.into_inner().to_string(),
        }
    })
}

fn unknown_type(kind: &str) -> WireError {
    WireError::Field {
        field: "type",
        reason: format!(
            "unknown session message {:?}",
            kind.chars().take(32).collect::<String>()
        ),
    }
}

#[cfg(test)]
#[path = "raw_tests.rs"]
mod tests;
