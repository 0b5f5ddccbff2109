//! The signed envelope every market message travels in.
//!
//! Encoding (chosen so nothing is ever re-serialized before verifying):
//! - the **payload** is `serde_json` of the message struct; field order is the
//!   struct's declaration order, so the bytes are deterministic for a given
//!   value. The bytes are carried verbatim and verified as received, so a
//!   reader never depends on re-producing them.
//! - the **signature** is Ed25519 (made with the libp2p key) over
//!   `T::DOMAIN || 0x00 || payload`, so a signature for one message type can
//!   never be replayed as another. It is checked with ZIP 215's rules
//!   (`ed25519-zebra`): canonical `s`, cofactored equation. Every signature
//!   an honest signer makes passes; the rules are the ones under which one
//!   signature verified alone and in a batch ([`crate::batch`]) always get
//!   the same answer, so nodes that batch and nodes that do not agree.
//! - the **signer** is the libp2p protobuf encoding of the public key.
//! - on the wire the envelope is JSON:
//!   `{"payload":"<base64>","signer":"<base64>","signature":"<base64>"}`
//!   (standard base64), at most [`MAX_ENVELOPE_BYTES`] long.
//!
//! [`SignedMessage::verify`] accepts a message only if the signature is valid
//! *and* the signer's PeerId is the author the payload names.

use crate::error::ProtoError;
use crate::signers::Signer;
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use libp2p_identity::{Keypair, PeerId, PublicKey};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::marker::PhantomData;

/// Largest encoded envelope [`SignedMessage::from_bytes`] reads for a
/// payload type with the default limit (see [`max_envelope_for`]).
pub const MAX_ENVELOPE_BYTES: usize = 4096;
/// Largest payload inside an envelope, unless the type sets its own
/// [`Signable::MAX_PAYLOAD`].
pub const MAX_PAYLOAD_BYTES: usize = 2048;
/// Largest encoded public key (an Ed25519 key is 36 bytes in protobuf).
const MAX_SIGNER_BYTES: usize = 128;
/// Largest signature (Ed25519 signatures are 64 bytes).
const MAX_SIGNATURE_BYTES: usize = 128;

/// A message type that can be signed.
pub trait Signable: Serialize + DeserializeOwned {
    /// Domain separation tag, distinct per message type and version.
    const DOMAIN: &'static [u8];
    /// The PeerId that must have signed this message.
    fn expected_signer(&self) -> PeerId;
    /// Semantic checks beyond what decoding enforces.
    fn validate(&self) -> Result<(), ProtoError>;
    /// Largest payload of this type; the envelope limit follows from it
    /// (base64 grows by 4/3, plus room for the key and signature).
    const MAX_PAYLOAD: usize = MAX_PAYLOAD_BYTES;
}

/// Largest envelope carrying a payload of at most `max_payload` bytes.
pub const fn max_envelope_for(max_payload: usize) -> usize {
    let grown = max_payload.div_ceil(3) * 4;
    if grown + 1024 > MAX_ENVELOPE_BYTES {
        grown + 1024
    } else {
        MAX_ENVELOPE_BYTES
    }
}

/// A payload of type `T`, its author's public key and signature.
pub struct SignedMessage<T> {
    payload: Vec<u8>,
    signer: Vec<u8>,
    signature: Vec<u8>,
    _type: PhantomData<fn() -> T>,
}

impl<T> Clone for SignedMessage<T> {
    fn clone(&self) -> Self {
        Self {
            payload: self.payload.clone(),
            signer: self.signer.clone(),
            signature: self.signature.clone(),
            _type: PhantomData,
        }
    }
}

impl<T> std::fmt::Debug for SignedMessage<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SignedMessage")
            .field("payload", &String::from_utf8_lossy(&self.payload))
            .field("signer", &B64.encode(&self.signer))
            .finish_non_exhaustive()
    }
}

impl<T> PartialEq for SignedMessage<T> {
    fn eq(&self, other: &Self) -> bool {
        self.payload == other.payload
            && self.signer == other.signer
            && self.signature == other.signature
    }
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Envelope {
    payload: String,
    signer: String,
    signature: String,
}

impl<T: Signable> SignedMessage<T> {
    /// Signs `value` with `keypair`, which must be the key `value` names as
    /// its author.
    pub fn sign(value: &T, keypair: &Keypair) -> Result<Self, ProtoError> {
        value.validate()?;
        let signer = keypair.public().to_peer_id();
        let expected = value.expected_signer();
        if signer != expected {
            return Err(ProtoError::WrongSigner {
                expected: expected.to_base58(),
                got: signer.to_base58(),
            });
        }
        let payload = Self::encode_payload(value)?;
        let signature = keypair
            .sign(&Self::signing_input(&payload))
            .map_err(|e| ProtoError::invalid("signature", e.to_string()))?;
        Ok(Self::from_parts(
            payload,
            keypair.public().encode_protobuf(),
            signature,
        ))
    }

    /// The canonical payload bytes of `value`.
    pub fn encode_payload(value: &T) -> Result<Vec<u8>, ProtoError> {
        let payload =
            serde_json::to_vec(value).map_err(|e| ProtoError::invalid("payload", e.to_string()))?;
        if payload.len() > T::MAX_PAYLOAD {
            return Err(ProtoError::TooLarge {
                what: "payload",
                len: payload.len(),
                max: T::MAX_PAYLOAD,
            });
        }
        Ok(payload)
    }

    /// The bytes a signature covers: `DOMAIN || 0x00 || payload`.
    pub fn signing_input(payload: &[u8]) -> Vec<u8> {
        let mut input = Vec::with_capacity(T::DOMAIN.len() + 1 + payload.len());
        input.extend_from_slice(T::DOMAIN);
        input.push(0);
        input.extend_from_slice(payload);
        input
    }

    /// Assembles an envelope from raw parts without checking anything;
    /// [`SignedMessage::verify`] does the checking.
    pub fn from_parts(payload: Vec<u8>, signer: Vec<u8>, signature: Vec<u8>) -> Self {
        Self {
            payload,
            signer,
            signature,
            _type: PhantomData,
        }
    }

    /// The length of [`Self::to_bytes`], without encoding. An envelope
    /// of exactly this length that decodes to these parts is the encoding
    /// up to the order of its three fields: whitespace, escapes and other
    /// padding only lengthen it, and unknown or repeated fields are
    /// refused by [`Self::from_bytes`].
    pub fn encoded_len(&self) -> usize {
        let base64 = |len: usize| len.div_ceil(3) * 4;
        r#"{"payload":"","signer":"","signature":""}"#.len()
            + base64(self.payload.len())
            + base64(self.signer.len())
            + base64(self.signature.len())
    }

    /// The envelope as text for storing and serving: `received` (the
    /// bytes this message was decoded from) when it is the encoding up to
    /// field order (see [`Self::encoded_len`]), which saves encoding it
    /// again; otherwise the encoding.
    pub fn envelope_text(&self, received: Vec<u8>) -> String {
        if received.len() == self.encoded_len() {
            if let Ok(text) = String::from_utf8(received) {
                return text;
            }
        }
        String::from_utf8_lossy(&self.to_bytes()).into_owned()
    }

    /// The wire encoding.
    pub fn to_bytes(&self) -> Vec<u8> {
        let envelope = Envelope {
            payload: B64.encode(&self.payload),
            signer: B64.encode(&self.signer),
            signature: B64.encode(&self.signature),
        };
        // Serializing a struct of strings cannot fail.
        serde_json::to_vec(&envelope).unwrap_or_default()
    }

    /// Decodes the wire encoding, refusing oversized input before parsing.
    /// Does not verify: call [`SignedMessage::verify`].
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, ProtoError> {
        let max_envelope = max_envelope_for(T::MAX_PAYLOAD);
        if bytes.len() > max_envelope {
            return Err(ProtoError::TooLarge {
                what: "envelope",
                len: bytes.len(),
                max: max_envelope,
            });
        }
        let envelope: Envelope = serde_json::from_slice(bytes)
            .map_err(|e| ProtoError::invalid("envelope", e.to_string()))?;
        let decode = |field: &'static str, text: &str, max: usize| {
            let bytes = B64
                .decode(text)
                .map_err(|e| ProtoError::invalid(field, e.to_string()))?;
            if bytes.len() > max {
                return Err(ProtoError::TooLarge {
                    what: field,
                    len: bytes.len(),
                    max,
                });
            }
            Ok(bytes)
        };
        Ok(Self::from_parts(
            decode("payload", &envelope.payload, T::MAX_PAYLOAD)?,
            decode("signer", &envelope.signer, MAX_SIGNER_BYTES)?,
            decode("signature", &envelope.signature, MAX_SIGNATURE_BYTES)?,
        ))
    }

    /// The PeerId of the carried public key (not yet proven to have signed).
    pub fn claimed_signer(&self) -> Result<PeerId, ProtoError> {
        Ok(self.public_key()?.to_peer_id())
    }

    fn public_key(&self) -> Result<PublicKey, ProtoError> {
        PublicKey::try_decode_protobuf(&self.signer)
            .map_err(|e| ProtoError::invalid("signer", e.to_string()))
    }

    /// Checks the signature, that the signer is the author the payload
    /// names, and the payload's own validity; returns the payload.
    pub fn verify(&self) -> Result<T, ProtoError> {
        self.verify_with(&Signer::decode(&self.signer)?)
    }

    fn verify_with(&self, signer: &Signer) -> Result<T, ProtoError> {
        if !signer.verifies(&Self::signing_input(&self.payload), &self.signature) {
            return Err(ProtoError::Forged);
        }
        self.accept(signer.peer)
    }

    /// The checks after the signature's: the payload decodes, `signer`
    /// is the author it names, and it is valid.
    pub(crate) fn accept(&self, signer: PeerId) -> Result<T, ProtoError> {
        let value: T = serde_json::from_slice(&self.payload)
            .map_err(|e| ProtoError::invalid("payload", e.to_string()))?;
        let expected = value.expected_signer();
        if signer != expected {
            return Err(ProtoError::WrongSigner {
                expected: expected.to_base58(),
                got: signer.to_base58(),
            });
        }
        value.validate()?;
        Ok(value)
    }

    /// The payload bytes exactly as signed.
    pub fn payload(&self) -> &[u8] {
        &self.payload
    }

    /// The signer's public key, protobuf-encoded, as carried.
    pub fn signer(&self) -> &[u8] {
        &self.signer
    }

    /// The signature bytes as carried.
    pub fn signature(&self) -> &[u8] {
        &self.signature
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::offer::tests::sample_offer;
    use crate::Heartbeat;

    fn heartbeat(keypair: &Keypair) -> Heartbeat {
        Heartbeat {
            offer: sample_offer(keypair),
            seq: 1,
            timestamp_ms: 1_700_000_000_000,
        }
    }

    /// A heartbeat envelope carrying `payload` and `claimed`'s public key,
    /// signed (with the right domain) by `by`: the forger's tool.
    pub(crate) fn forge(
        payload: Vec<u8>,
        claimed: &Keypair,
        by: &Keypair,
    ) -> SignedMessage<Heartbeat> {
        let signature = by
            .sign(&SignedMessage::<Heartbeat>::signing_input(&payload))
            .unwrap();
        SignedMessage::from_parts(payload, claimed.public().encode_protobuf(), signature)
    }

    #[test]
    fn the_received_envelope_is_kept_only_when_it_is_the_encoding() {
        let keypair = Keypair::generate_ed25519();
        let message = SignedMessage::sign(&heartbeat(&keypair), &keypair).unwrap();
        let encoded = message.to_bytes();
        assert_eq!(message.encoded_len(), encoded.len());
        let canonical = String::from_utf8(encoded.clone()).unwrap();
        assert_eq!(message.envelope_text(encoded.clone()), canonical);
        // The same parts, padded with whitespace or escapes: decodes, but
        // what is kept is the encoding.
        let text = canonical.clone();
        let padded = format!(" {}", text.replacen(',', " ,", 1));
        let escaped = text.replacen("\"payload\"", "\"p\\u0061yload\"", 1);
        for variant in [padded, escaped] {
            let decoded = SignedMessage::<Heartbeat>::from_bytes(variant.as_bytes()).unwrap();
            assert_eq!(decoded, message);
            assert_eq!(decoded.envelope_text(variant.into_bytes()), canonical);
        }
        // Fields in another order: the same length, kept as received.
        let value: serde_json::Value = serde_json::from_str(&canonical).unwrap();
        let reordered = format!(
            r#"{{"signature":{},"signer":{},"payload":{}}}"#,
            value["signature"], value["signer"], value["payload"]
        );
        let decoded = SignedMessage::<Heartbeat>::from_bytes(reordered.as_bytes()).unwrap();
        assert_eq!(
            decoded.envelope_text(reordered.clone().into_bytes()),
            reordered
        );
        // Bytes of the right length that are not this message's encoding
        // are not the caller's to pass, but stay text at worst.
        assert_eq!(message.envelope_text(vec![0xff; encoded.len()]), canonical);
    }

    #[test]
    fn signs_encodes_decodes_verifies() {
        let keypair = Keypair::generate_ed25519();
        let hb = heartbeat(&keypair);
        let signed = SignedMessage::sign(&hb, &keypair).unwrap();
        let bytes = signed.to_bytes();
        assert!(bytes.len() <= MAX_ENVELOPE_BYTES);
        let decoded = SignedMessage::<Heartbeat>::from_bytes(&bytes).unwrap();
        assert_eq!(decoded, signed);
        assert_eq!(decoded.verify().unwrap(), hb);
        assert_eq!(
            decoded.claimed_signer().unwrap(),
            keypair.public().to_peer_id()
        );
    }

    #[test]
    fn payload_encoding_is_deterministic() {
        let keypair = Keypair::generate_ed25519();
        let hb = heartbeat(&keypair);
        let a = SignedMessage::encode_payload(&hb).unwrap();
        let b = SignedMessage::encode_payload(&hb.clone()).unwrap();
        assert_eq!(a, b);
        assert!(a.starts_with(br#"{"offer":{"provider_peer_id":""#));
    }

    #[test]
    fn tampered_payload_is_forged() {
        let keypair = Keypair::generate_ed25519();
        let signed = SignedMessage::sign(&heartbeat(&keypair), &keypair).unwrap();
        let tampered = String::from_utf8(signed.payload().to_vec())
            .unwrap()
            .replace(r#""capacity_mbps":500"#, r#""capacity_mbps":900"#);
        let forged = SignedMessage::<Heartbeat>::from_parts(
            tampered.into_bytes(),
            signed.signer.clone(),
            signed.signature.clone(),
        );
        assert_eq!(forged.verify().unwrap_err(), ProtoError::Forged);
    }

    #[test]
    fn signature_by_another_key_is_wrong_signer() {
        let provider = Keypair::generate_ed25519();
        let attacker = Keypair::generate_ed25519();
        let hb = heartbeat(&provider);
        // `sign` refuses outright ...
        assert!(matches!(
            SignedMessage::sign(&hb, &attacker),
            Err(ProtoError::WrongSigner { .. })
        ));
        // ... and a hand-built envelope is refused by `verify`.
        let forged = forge(
            SignedMessage::encode_payload(&hb).unwrap(),
            &attacker,
            &attacker,
        );
        assert!(matches!(
            forged.verify(),
            Err(ProtoError::WrongSigner { .. })
        ));
    }

    #[test]
    fn provider_key_with_attacker_signature_is_forged() {
        let provider = Keypair::generate_ed25519();
        let attacker = Keypair::generate_ed25519();
        let payload = SignedMessage::encode_payload(&heartbeat(&provider)).unwrap();
        let forged = forge(payload, &provider, &attacker);
        assert_eq!(forged.verify().unwrap_err(), ProtoError::Forged);
    }

    #[test]
    fn signature_without_domain_is_forged() {
        let keypair = Keypair::generate_ed25519();
        let payload = SignedMessage::encode_payload(&heartbeat(&keypair)).unwrap();
        let signature = keypair.sign(&payload).unwrap();
        let message = SignedMessage::<Heartbeat>::from_parts(
            payload,
            keypair.public().encode_protobuf(),
            signature,
        );
        assert_eq!(message.verify().unwrap_err(), ProtoError::Forged);
    }

    #[test]
    fn decode_limits_and_garbage() {
        let huge = vec![b' '; MAX_ENVELOPE_BYTES + 1];
        assert!(matches!(
            SignedMessage::<Heartbeat>::from_bytes(&huge),
            Err(ProtoError::TooLarge {
                what: "envelope",
                ..
            })
        ));
        for garbage in [
            &b"not json"[..],
            b"{}",
            br#"{"payload":"!!","signer":"","signature":""}"#,
        ] {
            assert!(matches!(
                SignedMessage::<Heartbeat>::from_bytes(garbage),
                Err(ProtoError::Invalid { .. })
            ));
        }
        let big_sig = format!(
            r#"{{"payload":"","signer":"","signature":"{}"}}"#,
            B64.encode([0u8; 200])
        );
        assert!(matches!(
            SignedMessage::<Heartbeat>::from_bytes(big_sig.as_bytes()),
            Err(ProtoError::TooLarge {
                what: "signature",
                ..
            })
        ));
        let bad_key = SignedMessage::<Heartbeat>::from_parts(vec![], vec![1, 2, 3], vec![]);
        assert!(matches!(
            bad_key.verify(),
            Err(ProtoError::Invalid {
                field: "signer",
                ..
            })
        ));
    }

    #[test]
    fn invalid_offer_is_refused_after_signature() {
        let keypair = Keypair::generate_ed25519();
        let mut hb = heartbeat(&keypair);
        hb.offer.max_clients = 0;
        assert!(matches!(
            SignedMessage::sign(&hb, &keypair),
            Err(ProtoError::Invalid {
                field: "max_clients",
                ..
            })
        ));
        let payload = SignedMessage::encode_payload(&hb).unwrap();
        let signature = keypair
            .sign(&SignedMessage::<Heartbeat>::signing_input(&payload))
            .unwrap();
        let message = SignedMessage::<Heartbeat>::from_parts(
            payload,
            keypair.public().encode_protobuf(),
            signature,
        );
        assert!(matches!(
            message.verify(),
            Err(ProtoError::Invalid {
                field: "max_clients",
                ..
            })
        ));
    }
}
