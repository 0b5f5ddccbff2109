//! A bounded cache of decoded signer keys, so a receiver that hears the
//! same signers over and over (a fullnode hears every provider every few
//! seconds) decodes each key once instead of once per message.
//!
//! Decoding an ed25519 public key decompresses a curve point, a good part
//! of what verifying a signature costs. Only keys whose signature verified
//! are kept, the least recently used evicted first: a flood of fresh keys
//! costs the flooder a signature each and evicts nothing it could not also
//! evict by sending heartbeats.

use crate::error::ProtoError;
use curve25519_dalek::edwards::{CompressedEdwardsY, EdwardsPoint};
use ed25519_zebra::{Signature, VerificationKey, VerificationKeyBytes};
use libp2p_identity::{PeerId, PublicKey};
use lru::LruCache;
use std::num::NonZeroUsize;

/// A decoded signer: its key, its PeerId and, for an Ed25519 key, the
/// curve point ready to verify with.
#[derive(Clone, Debug)]
pub(crate) struct Signer {
    pub(crate) key: PublicKey,
    pub(crate) peer: PeerId,
    pub(crate) ed25519: Option<Ed25519Key>,
}

/// An Ed25519 key decoded once for every check it takes part in.
#[derive(Clone, Debug)]
pub(crate) struct Ed25519Key {
    /// For checks one at a time (ZIP 215).
    pub(crate) key: VerificationKey,
    /// Its encoding, as signed over (`k = H(R || A || M)`).
    pub(crate) bytes: [u8; 32],
    /// The point `A`, for batches ([`crate::batch`]).
    pub(crate) point: EdwardsPoint,
}

impl Signer {
    /// Decodes the protobuf encoding of a public key.
    pub(crate) fn decode(bytes: &[u8]) -> Result<Self, ProtoError> {
        let key = PublicKey::try_decode_protobuf(bytes)
            .map_err(|e| ProtoError::invalid("signer", e.to_string()))?;
        let peer = key.to_peer_id();
        let ed25519 = match key.clone().try_into_ed25519() {
            Ok(ed) => {
                let bytes = ed.to_bytes();
                let invalid = || ProtoError::invalid("signer", "not a curve point");
                let key = VerificationKey::try_from(VerificationKeyBytes::from(bytes))
                    .map_err(|_| invalid())?;
                let point = CompressedEdwardsY(bytes).decompress().ok_or_else(invalid)?;
                Some(Ed25519Key { key, bytes, point })
            }
            Err(_) => None,
        };
        Ok(Self { key, peer, ed25519 })
    }

    /// Whether `signature` is this signer's over `input`. Ed25519 follows
    /// ZIP 215 (cofactored, as [`crate::batch`] verifies, so a signature
    /// passes alone exactly when it passes in a batch); other key types
    /// verify as libp2p does.
    pub(crate) fn verifies(&self, input: &[u8], signature: &[u8]) -> bool {
        match &self.ed25519 {
            Some(ed) => ed25519_signature(signature)
                .is_some_and(|signature| ed.key.verify(&signature, input).is_ok()),
            None => self.key.verify(input, signature),
        }
    }
}

/// An Ed25519 signature from its 64 bytes (`None` for any other length).
pub(crate) fn ed25519_signature(bytes: &[u8]) -> Option<Signature> {
    let bytes: [u8; 64] = bytes.try_into().ok()?;
    Some(Signature::from_bytes(&bytes))
}

/// Decoded signer keys and their PeerIds, by the signer bytes of the
/// envelope (the protobuf encoding of the public key).
#[derive(Debug)]
pub struct SignerKeys {
    keys: LruCache<Vec<u8>, Signer>,
}

impl SignerKeys {
    /// A cache of at most `capacity` keys (at least one).
    pub fn new(capacity: usize) -> Self {
        let cap = NonZeroUsize::new(capacity).unwrap_or(NonZeroUsize::MIN);
        Self {
            keys: LruCache::new(cap),
        }
    }

    /// Keys kept.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether no key is kept.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The signer `bytes` encodes, from the cache or decoded; the second
    /// value says whether it came from the cache.
    pub(crate) fn decode(&mut self, bytes: &[u8]) -> Result<(Signer, bool), ProtoError> {
        if let Some(signer) = self.keys.get(bytes) {
            return Ok((signer.clone(), true));
        }
        Ok((Signer::decode(bytes)?, false))
    }

    /// Keeps a signer whose signature verified.
    pub(crate) fn keep(&mut self, bytes: &[u8], signer: Signer) {
        self.keys.put(bytes.to_vec(), signer);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::offer::tests::sample_offer;
    use crate::signed::tests::forge;
    use crate::{Heartbeat, SignedMessage};
    use libp2p_identity::Keypair;

    fn signed(keypair: &Keypair, seq: u64) -> SignedMessage<Heartbeat> {
        let heartbeat = Heartbeat {
            offer: sample_offer(keypair),
            seq,
            timestamp_ms: 1_700_000_000_000,
        };
        SignedMessage::sign(&heartbeat, keypair).unwrap()
    }

    /// One message through the cache, as the net driver checks them.
    fn checked(
        message: &SignedMessage<Heartbeat>,
        keys: &mut SignerKeys,
    ) -> Result<Heartbeat, ProtoError> {
        let mut verdicts = crate::verify_batch(&[message], keys);
        assert_eq!(verdicts.len(), 1);
        verdicts.remove(0)
    }

    #[test]
    fn cached_verification_agrees_with_plain_and_keeps_the_key() {
        let keypair = Keypair::generate_ed25519();
        let mut keys = SignerKeys::new(16);
        for seq in 1..=3 {
            let message = signed(&keypair, seq);
            assert_eq!(
                checked(&message, &mut keys).unwrap(),
                message.verify().unwrap()
            );
            assert_eq!(keys.len(), 1);
        }
    }

    #[test]
    fn a_cached_key_does_not_vouch_for_a_forgery() {
        let provider = Keypair::generate_ed25519();
        let attacker = Keypair::generate_ed25519();
        let mut keys = SignerKeys::new(16);
        checked(&signed(&provider, 1), &mut keys).unwrap();
        // The provider's key bytes with the attacker's signature.
        let genuine = signed(&provider, 2);
        let forged = forge(genuine.payload().to_vec(), &provider, &attacker);
        assert_eq!(checked(&forged, &mut keys), Err(ProtoError::Forged));
        // The attacker's own (cached) key signing the provider's heartbeat.
        checked(&signed(&attacker, 1), &mut keys).unwrap();
        let impostor = forge(genuine.payload().to_vec(), &attacker, &attacker);
        assert!(matches!(
            checked(&impostor, &mut keys),
            Err(ProtoError::WrongSigner { .. })
        ));
    }

    #[test]
    fn only_verified_keys_are_kept_and_the_cache_is_bounded() {
        let mut keys = SignerKeys::new(2);
        let stranger = Keypair::generate_ed25519();
        let genuine = signed(&stranger, 1);
        let mut signature = genuine.signature().to_vec();
        signature[0] ^= 1;
        let forged = SignedMessage::<Heartbeat>::from_parts(
            genuine.payload().to_vec(),
            genuine.signer().to_vec(),
            signature,
        );
        assert_eq!(checked(&forged, &mut keys), Err(ProtoError::Forged));
        assert!(keys.is_empty());
        for _ in 0..3 {
            checked(&signed(&Keypair::generate_ed25519(), 1), &mut keys).unwrap();
        }
        assert_eq!(keys.len(), 2);
    }
}
