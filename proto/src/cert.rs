//! A provider's DeCA certificate chain, announced apart from its heartbeats.
//!
//! A chain (leaf + operator root, DER) is about 1.1 KB, 1.5 KB in base64:
//! too big to ride in every heartbeat (whose payload stays under 2 KB and is
//! sent every few seconds by every provider). So a provider signs a
//! [`CertAnnouncement`] with the same libp2p key as its heartbeats and
//! gossips it on its own topic when it starts and then every few
//! heartbeats; fullnodes cache the verdict per (provider, certificate hash)
//! and check each heartbeat's keys against the cached binding.
//!
//! JSON: `{"provider_peer_id": "<base58>", "chain": ["<base64 DER>", ...],
//! "timestamp_ms": N}`, leaf first.

use crate::error::ProtoError;
use crate::signed::Signable;
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use libp2p_identity::PeerId;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Largest DER certificate accepted in a chain.
pub const MAX_CERT_DER_BYTES: usize = 2048;
/// Certificates in a chain: the node leaf and the operator root.
pub const CHAIN_LEN: usize = 2;

/// A signed announcement of the provider's certificate chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CertAnnouncement {
    #[serde(with = "crate::offer::peer_id_text")]
    pub provider_peer_id: PeerId,
    /// `[leaf DER, operator root DER]`.
    #[serde(with = "der_list")]
    pub chain: Vec<Vec<u8>>,
    pub timestamp_ms: u64,
}

impl Signable for CertAnnouncement {
    const DOMAIN: &'static [u8] = b"flowshield/cert-announcement/1";
    // Two certificates in base64 plus the PeerId and framing.
    const MAX_PAYLOAD: usize = CHAIN_LEN * MAX_CERT_DER_BYTES.div_ceil(3) * 4 + 512;

    fn expected_signer(&self) -> PeerId {
        self.provider_peer_id
    }

    fn validate(&self) -> Result<(), ProtoError> {
        if self.chain.len() != CHAIN_LEN {
            return Err(ProtoError::Invalid {
                field: "chain",
                reason: format!("must hold {CHAIN_LEN} certificates (leaf, operator root)"),
            });
        }
        if let Some(cert) = self
            .chain
            .iter()
            .find(|c| c.is_empty() || c.len() > MAX_CERT_DER_BYTES)
        {
            return Err(ProtoError::Invalid {
                field: "chain",
                reason: format!(
                    "a certificate of {} bytes (1 to {MAX_CERT_DER_BYTES} allowed)",
                    cert.len()
                ),
            });
        }
        Ok(())
    }
}

mod der_list {
    use super::*;

    pub fn serialize<S: Serializer>(value: &[Vec<u8>], s: S) -> Result<S::Ok, S::Error> {
        let texts: Vec<String> = value.iter().map(|d| B64.encode(d)).collect();
        texts.serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Vec<u8>>, D::Error> {
        let texts = Vec::<String>::deserialize(d)?;
        if texts.len() > CHAIN_LEN {
            return Err(serde::de::Error::custom("chain: too many certificates"));
        }
        texts
            .iter()
            .map(|t| {
                B64.decode(t)
                    .map_err(|e| serde::de::Error::custom(format!("chain: {e}")))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SignedMessage;
    use libp2p_identity::Keypair;

    fn announcement(key: &Keypair, sizes: &[usize]) -> CertAnnouncement {
        CertAnnouncement {
            provider_peer_id: key.public().to_peer_id(),
            chain: sizes.iter().map(|n| vec![0x30; *n]).collect(),
            timestamp_ms: 1_700_000_000_000,
        }
    }

    #[test]
    fn largest_chain_round_trips_within_limits() {
        let key = Keypair::generate_ed25519();
        let ann = announcement(&key, &[MAX_CERT_DER_BYTES, MAX_CERT_DER_BYTES]);
        let signed = SignedMessage::sign(&ann, &key).unwrap();
        let bytes = signed.to_bytes();
        let back = SignedMessage::<CertAnnouncement>::from_bytes(&bytes).unwrap();
        assert_eq!(back.verify().unwrap(), ann);
    }

    #[test]
    fn wrong_chain_shapes_are_invalid() {
        let key = Keypair::generate_ed25519();
        for sizes in [
            &[10][..],
            &[10, 10, 10],
            &[10, 0],
            &[MAX_CERT_DER_BYTES + 1, 10],
        ] {
            assert!(
                matches!(
                    SignedMessage::sign(&announcement(&key, sizes), &key),
                    Err(ProtoError::Invalid { field: "chain", .. })
                        | Err(ProtoError::TooLarge { .. })
                ),
                "{sizes:?}"
            );
        }
    }
}
