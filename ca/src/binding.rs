//! The identity a certificate binds: one WireGuard key, one libp2p PeerId, one chain address.
//!
//! # Encoding in the certificate
//! Leaf certificates carry the binding twice:
//! * a non-critical X.509 extension under [`BINDING_OID`] whose value is the DER of
//!   ```text
//!   NodeBinding ::= SEQUENCE {
//!       wgPublicKey   OCTET STRING (SIZE (32)),   -- X25519 public key
//!       peerId        OCTET STRING,               -- libp2p PeerId, multihash bytes
//!       chainAddress  OCTET STRING (SIZE (20))    -- Ethereum address
//!   }
//!   ```
//! * SAN URIs `flowshield:wg:<base64>`, `flowshield:peer:<PeerId>`, `flowshield:eth:<0x..>`
//!   for humans and generic tools. Verification reads the extension, and checks that the SAN
//!   URIs agree with it.
//!
//! The OID arc `1.3.6.1.4.1.99999.1` is a placeholder private-enterprise arc chosen for
//! FlowShield; it must be replaced by an IANA-assigned PEN before any public deployment.

use alloy::primitives::Address;
use base64::Engine;
use libp2p_identity::PeerId;
use serde::{Deserialize, Serialize};

/// OID of the binding extension (placeholder PEN arc, see module docs).
pub const BINDING_OID: &[u64] = &[1, 3, 6, 1, 4, 1, 99999, 1, 1];
/// OID of the operator extension carried by an operator's CA certificate: the DER OCTET STRING
/// of the operator's 20-byte chain address.
pub const OPERATOR_OID: &[u64] = &[1, 3, 6, 1, 4, 1, 99999, 1, 2];

/// The three keys of one node.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct NodeBinding {
    /// X25519 WireGuard public key (base64 of 32 bytes on the wire).
    #[serde(with = "b64_32")]
    #[schema(value_type = String)]
    pub wg_pubkey: [u8; 32],
    /// libp2p PeerId (of an Ed25519 key), base58.
    #[serde(with = "peer_id_str")]
    #[schema(value_type = String)]
    pub peer_id: PeerId,
    /// Ethereum address of the node's chain key, 0x hex.
    #[schema(value_type = String)]
    pub chain_address: Address,
}

/// Which part of a binding was wrong or malformed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BindingField {
    /// The WireGuard public key.
    WgPubkey,
    /// The libp2p PeerId.
    PeerId,
    /// The chain address.
    ChainAddress,
}

impl std::fmt::Display for BindingField {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            BindingField::WgPubkey => "wg_pubkey",
            BindingField::PeerId => "peer_id",
            BindingField::ChainAddress => "chain_address",
        })
    }
}

/// Why a binding extension could not be decoded.
#[derive(Clone, Debug, thiserror::Error, PartialEq, Eq)]
pub enum BindingDecodeError {
    /// The DER structure is not the expected SEQUENCE of three OCTET STRINGs.
    #[error("binding extension is not valid DER: {0}")]
    Der(&'static str),
    /// A field has the wrong length or content.
    #[error("binding field {0} is malformed")]
    Field(BindingField),
}

impl NodeBinding {
    /// DER encoding of the binding extension value.
    pub fn to_der(&self) -> Vec<u8> {
        let peer = self.peer_id.to_bytes();
        let mut body = Vec::with_capacity(64 + peer.len());
        push_octets(&mut body, &self.wg_pubkey);
        push_octets(&mut body, &peer);
        push_octets(&mut body, self.chain_address.as_slice());
        let mut out = Vec::with_capacity(body.len() + 4);
        out.push(0x30);
        push_len(&mut out, body.len());
        out.extend_from_slice(&body);
        out
    }

    /// Strict DER decoding of the binding extension value (no trailing bytes).
    pub fn from_der(der: &[u8]) -> Result<Self, BindingDecodeError> {
        let (tag, body, rest) = read_tlv(der)?;
        if tag != 0x30 || !rest.is_empty() {
            return Err(BindingDecodeError::Der("expected one SEQUENCE"));
        }
        let (wg, body) = read_octets(body)?;
        let (peer, body) = read_octets(body)?;
        let (addr, body) = read_octets(body)?;
        if !body.is_empty() {
            return Err(BindingDecodeError::Der("trailing fields in SEQUENCE"));
        }
        let wg_pubkey: [u8; 32] = wg
            .try_into()
            .map_err(|_| BindingDecodeError::Field(BindingField::WgPubkey))?;
        let peer_id = PeerId::from_bytes(peer)
            .map_err(|_| BindingDecodeError::Field(BindingField::PeerId))?;
        let addr: [u8; 20] = addr
            .try_into()
            .map_err(|_| BindingDecodeError::Field(BindingField::ChainAddress))?;
        Ok(NodeBinding {
            wg_pubkey,
            peer_id,
            chain_address: Address::from(addr),
        })
    }

    /// The SAN URIs that describe this binding.
    pub fn san_uris(&self) -> [String; 3] {
        [
            format!("flowshield:wg:{}", b64(&self.wg_pubkey)),
            format!("flowshield:peer:{}", self.peer_id),
            format!("flowshield:eth:{}", self.chain_address.to_checksum(None)),
        ]
    }

    /// The first field in which `self` and `other` differ, if any.
    pub fn first_mismatch(&self, other: &NodeBinding) -> Option<BindingField> {
        if self.wg_pubkey != other.wg_pubkey {
            Some(BindingField::WgPubkey)
        } else if self.peer_id != other.peer_id {
            Some(BindingField::PeerId)
        } else if self.chain_address != other.chain_address {
            Some(BindingField::ChainAddress)
        } else {
            None
        }
    }
}

/// DER OCTET STRING holding an operator address (value of the [`OPERATOR_OID`] extension).
pub fn operator_ext_der(operator: Address) -> Vec<u8> {
    let mut out = Vec::with_capacity(22);
    push_octets(&mut out, operator.as_slice());
    out
}

/// Decodes the value of the [`OPERATOR_OID`] extension.
pub fn operator_from_ext_der(der: &[u8]) -> Option<Address> {
    let (addr, rest) = read_octets(der).ok()?;
    let addr: [u8; 20] = addr.try_into().ok()?;
    rest.is_empty().then(|| Address::from(addr))
}

/// Standard base64 with padding, as WireGuard prints keys.
pub fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// Decodes standard base64.
pub fn b64_decode(s: &str) -> Option<Vec<u8>> {
    base64::engine::general_purpose::STANDARD.decode(s).ok()
}

/// Decodes a 32-byte key in WireGuard's base64 form.
pub fn key_from_b64(s: &str) -> Option<[u8; 32]> {
    let v = base64::engine::general_purpose::STANDARD.decode(s).ok()?;
    v.try_into().ok()
}

fn push_len(out: &mut Vec<u8>, len: usize) {
    // Every value here is far below 64 KiB; long form covers up to 2 length bytes.
    if len < 0x80 {
        out.push(len as u8);
    } else if len < 0x100 {
        out.extend_from_slice(&[0x81, len as u8]);
    } else {
        out.extend_from_slice(&[0x82, (len >> 8) as u8, len as u8]);
    }
}

fn push_octets(out: &mut Vec<u8>, v: &[u8]) {
    out.push(0x04);
    push_len(out, v.len());
    out.extend_from_slice(v);
}

type Tlv<'a> = (u8, &'a [u8], &'a [u8]);

fn read_tlv(input: &[u8]) -> Result<Tlv<'_>, BindingDecodeError> {
    let short = BindingDecodeError::Der("truncated");
    let (&tag, rest) = input.split_first().ok_or(short.clone())?;
    let (&first, rest) = rest.split_first().ok_or(short.clone())?;
    let (len, rest) = match first {
        l if l < 0x80 => (l as usize, rest),
        0x81 => {
            let (&l, rest) = rest.split_first().ok_or(short.clone())?;
            if l < 0x80 {
                return Err(BindingDecodeError::Der("non-minimal length"));
            }
            (l as usize, rest)
        }
        0x82 => {
            if rest.len() < 2 {
                return Err(short);
            }
            let l = (rest[0] as usize) << 8 | rest[1] as usize;
            if l < 0x100 {
                return Err(BindingDecodeError::Der("non-minimal length"));
            }
            (l, &rest[2..])
        }
        _ => return Err(BindingDecodeError::Der("unsupported length form")),
    };
    if rest.len() < len {
        return Err(short);
    }
    Ok((tag, &rest[..len], &rest[len..]))
}

fn read_octets(input: &[u8]) -> Result<(&[u8], &[u8]), BindingDecodeError> {
    let (tag, value, rest) = read_tlv(input)?;
    if tag != 0x04 {
        return Err(BindingDecodeError::Der("expected OCTET STRING"));
    }
    Ok((value, rest))
}

mod b64_32 {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &[u8; 32], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::b64(v))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<[u8; 32], D::Error> {
        let s = String::deserialize(d)?;
        super::key_from_b64(&s)
            .ok_or_else(|| serde::de::Error::custom("expected base64 of 32 bytes"))
    }
}

mod peer_id_str {
    use libp2p_identity::PeerId;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &PeerId, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&v.to_base58())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<PeerId, D::Error> {
        let s = String::deserialize(d)?;
        s.parse()
            .map_err(|_| serde::de::Error::custom("expected a libp2p PeerId"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> NodeBinding {
        let kp = libp2p_identity::Keypair::generate_ed25519();
        NodeBinding {
            wg_pubkey: [7; 32],
            peer_id: kp.public().to_peer_id(),
            chain_address: Address::repeat_byte(0xab),
        }
    }

    #[test]
    fn der_round_trip() {
        let b = sample();
        assert_eq!(NodeBinding::from_der(&b.to_der()).unwrap(), b);
    }

    #[test]
    fn der_rejects_trailing_and_truncated() {
        let mut der = sample().to_der();
        der.push(0);
        assert!(NodeBinding::from_der(&der).is_err());
        der.truncate(der.len() - 3);
        assert!(NodeBinding::from_der(&der).is_err());
    }

    #[test]
    fn json_round_trip_and_mismatch() {
        let b = sample();
        let json = serde_json::to_string(&b).unwrap();
        let back: NodeBinding = serde_json::from_str(&json).unwrap();
        assert_eq!(back, b);
        let mut other = b.clone();
        other.chain_address = Address::ZERO;
        assert_eq!(b.first_mismatch(&other), Some(BindingField::ChainAddress));
        assert_eq!(b.first_mismatch(&b), None);
    }

    #[test]
    fn operator_ext_round_trip() {
        let a = Address::repeat_byte(3);
        assert_eq!(operator_from_ext_der(&operator_ext_der(a)), Some(a));
        assert_eq!(operator_from_ext_der(&[4, 1, 0]), None);
    }
}
