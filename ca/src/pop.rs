//! Proof of possession of the three node keys, sans-IO.
//!
//! The CA hands out a [`Challenge`] bound to the claimed keys, a random nonce, an expiry and an
//! ephemeral CA X25519 public key. The node answers with [`Proofs`]:
//! * libp2p (Ed25519): a plain signature over [`Challenge::message`];
//! * chain (secp256k1): an EIP-191 `personal_sign` over the same bytes, from which the CA
//!   recovers the address;
//! * WireGuard (X25519, cannot sign): a keyed BLAKE2b-256 MAC over the same bytes, keyed by
//!   `DH(node_static, ca_ephemeral)`, which the CA recomputes with its ephemeral secret.
//!
//! Single use is enforced by the store that keeps the challenges; this module only checks the
//! expiry and the cryptography.

use alloy::primitives::Signature;
use blake2::digest::{consts::U32, Mac};
use rand_core::{CryptoRng, RngCore};
use serde::{Deserialize, Serialize};

use crate::binding::NodeBinding;

/// Domain separation for challenge messages.
const CHALLENGE_DOMAIN: &[u8] = b"flowshield-deca-challenge-v1";
/// Domain separation for the WireGuard-key MAC.
const WG_MAC_DOMAIN: &[u8] = b"flowshield-deca-wg-pop-v1";

type Blake2bMac256 = blake2::Blake2bMac<U32>;

/// What a challenge may be used for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Purpose {
    /// First issuance: all three keys must be proven.
    Issue,
    /// Renewal of an existing certificate: the libp2p key proves continuity.
    Renew,
}

/// A challenge issued by the CA for one claimed binding.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Challenge {
    /// Random identifier, 16 bytes, hex.
    pub id: String,
    /// Random nonce, 32 bytes, hex.
    pub nonce: String,
    /// Unix seconds after which the challenge is refused.
    pub expires_at: u64,
    /// What the challenge is for.
    pub purpose: Purpose,
    /// The keys the node claims.
    pub binding: NodeBinding,
    /// The CA's ephemeral X25519 public key (base64) for the WireGuard-key MAC.
    pub ca_ephemeral: String,
}

/// The CA's secret half of a challenge. Kept by the CA only.
#[derive(Clone)]
pub struct ChallengeSecret(pub [u8; 32]);

impl std::fmt::Debug for ChallengeSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ChallengeSecret(..)")
    }
}

/// The node's answer to a challenge.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Proofs {
    /// Ed25519 signature by the libp2p key, base64.
    pub libp2p_sig: String,
    /// EIP-191 signature by the chain key, 65 bytes hex (`0x` optional).
    #[serde(default)]
    pub eth_sig: String,
    /// BLAKE2b MAC keyed by DH(wg_static, ca_ephemeral), base64.
    #[serde(default)]
    pub wg_mac: String,
}

/// Why a proof of possession was refused; each variant names the key or field at fault.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PopError {
    /// The challenge is past its expiry.
    #[error("challenge expired")]
    Expired,
    /// The challenge was already answered once.
    #[error("challenge already used")]
    Reused,
    /// No challenge with that id exists.
    #[error("unknown challenge")]
    UnknownChallenge,
    /// The challenge was issued for another purpose.
    #[error("challenge purpose mismatch")]
    WrongPurpose,
    /// The PeerId does not embed an Ed25519 public key.
    #[error("peer_id does not embed an Ed25519 key")]
    PeerIdNotEd25519,
    /// The libp2p signature is malformed or does not verify.
    #[error("libp2p_sig does not verify")]
    Libp2pSignature,
    /// The chain signature is malformed or recovers another address.
    #[error("eth_sig does not recover chain_address")]
    EthSignature,
    /// The WireGuard MAC is malformed or wrong.
    #[error("wg_mac does not verify")]
    WgMac,
    /// A challenge field is malformed.
    #[error("challenge field {0} malformed")]
    Malformed(&'static str),
}

impl PopError {
    /// The request field this error is about, for 4xx JSON bodies.
    pub fn field(&self) -> &'static str {
        match self {
            PopError::Expired | PopError::Reused | PopError::UnknownChallenge => "challenge_id",
            PopError::WrongPurpose => "challenge_id",
            PopError::PeerIdNotEd25519 => "peer_id",
            PopError::Libp2pSignature => "proofs.libp2p_sig",
            PopError::EthSignature => "proofs.eth_sig",
            PopError::WgMac => "proofs.wg_mac",
            PopError::Malformed(f) => f,
        }
    }
}

impl Challenge {
    /// Creates a challenge for `binding`, valid for `ttl_secs` from `now`.
    pub fn new(
        binding: NodeBinding,
        purpose: Purpose,
        now: u64,
        ttl_secs: u64,
        rng: &mut (impl RngCore + CryptoRng),
    ) -> (Challenge, ChallengeSecret) {
        let mut id = [0u8; 16];
        let mut nonce = [0u8; 32];
        let mut secret = [0u8; 32];
        rng.fill_bytes(&mut id);
        rng.fill_bytes(&mut nonce);
        rng.fill_bytes(&mut secret);
        let eph = x25519_dalek::StaticSecret::from(secret);
        let eph_pub = x25519_dalek::PublicKey::from(&eph);
        let challenge = Challenge {
            id: hex::encode(id),
            nonce: hex::encode(nonce),
            expires_at: now.saturating_add(ttl_secs),
            purpose,
            binding,
            ca_ephemeral: crate::binding::b64(eph_pub.as_bytes()),
        };
        (challenge, ChallengeSecret(secret))
    }

    /// The canonical bytes every proof is computed over.
    pub fn message(&self) -> Vec<u8> {
        let peer = self.binding.peer_id.to_bytes();
        let mut m = Vec::with_capacity(256);
        m.extend_from_slice(CHALLENGE_DOMAIN);
        m.push(0);
        m.push(match self.purpose {
            Purpose::Issue => 1,
            Purpose::Renew => 2,
        });
        for field in [&self.id, &self.nonce, &self.ca_ephemeral] {
            m.push(field.len() as u8);
            m.extend_from_slice(field.as_bytes());
        }
        m.extend_from_slice(&self.expires_at.to_be_bytes());
        m.extend_from_slice(&self.binding.wg_pubkey);
        m.push(peer.len() as u8);
        m.extend_from_slice(&peer);
        m.extend_from_slice(self.binding.chain_address.as_slice());
        m
    }

    fn check_fresh(&self, now: u64) -> Result<(), PopError> {
        if now > self.expires_at {
            return Err(PopError::Expired);
        }
        Ok(())
    }
}

/// Extracts the Ed25519 public key that a PeerId embeds (identity multihash).
pub fn ed25519_of_peer_id(
    peer_id: &libp2p_identity::PeerId,
) -> Result<libp2p_identity::ed25519::PublicKey, PopError> {
    let bytes = peer_id.to_bytes();
    // identity multihash: code 0x00, one-byte length, protobuf-encoded public key
    match bytes.as_slice() {
        [0x00, len, proto @ ..] if *len as usize == proto.len() => {
            libp2p_identity::PublicKey::try_decode_protobuf(proto)
                .ok()
                .and_then(|k| k.try_into_ed25519().ok())
                .ok_or(PopError::PeerIdNotEd25519)
        }
        _ => Err(PopError::PeerIdNotEd25519),
    }
}

/// Checks the libp2p-key signature only (used for renewal and by [`verify_all`]).
pub fn verify_libp2p(challenge: &Challenge, proofs: &Proofs, now: u64) -> Result<(), PopError> {
    challenge.check_fresh(now)?;
    let key = ed25519_of_peer_id(&challenge.binding.peer_id)?;
    let sig = decode_b64(&proofs.libp2p_sig).ok_or(PopError::Libp2pSignature)?;
    if !key.verify(&challenge.message(), &sig) {
        return Err(PopError::Libp2pSignature);
    }
    Ok(())
}

/// Checks all three proofs of possession for an issuance challenge.
pub fn verify_all(
    challenge: &Challenge,
    secret: &ChallengeSecret,
    proofs: &Proofs,
    now: u64,
) -> Result<(), PopError> {
    verify_libp2p(challenge, proofs, now)?;
    let message = challenge.message();

    let eth_hex = proofs.eth_sig.trim_start_matches("0x");
    let eth_raw = hex::decode(eth_hex).map_err(|_| PopError::EthSignature)?;
    let sig = Signature::try_from(eth_raw.as_slice()).map_err(|_| PopError::EthSignature)?;
    let recovered = sig
        .recover_address_from_msg(&message)
        .map_err(|_| PopError::EthSignature)?;
    if recovered != challenge.binding.chain_address {
        return Err(PopError::EthSignature);
    }

    let mac = decode_b64(&proofs.wg_mac).ok_or(PopError::WgMac)?;
    let eph = x25519_dalek::StaticSecret::from(secret.0);
    let shared = eph.diffie_hellman(&x25519_dalek::PublicKey::from(challenge.binding.wg_pubkey));
    wg_mac(shared.as_bytes(), &message)
        .verify_slice(&mac)
        .map_err(|_| PopError::WgMac)
}

/// The MAC a node computes with its WireGuard static key.
pub(crate) fn wg_mac(shared: &[u8; 32], message: &[u8]) -> Blake2bMac256 {
    // BLAKE2b accepts keys up to 64 bytes, so a 32-byte key never fails.
    let mut mac = <Blake2bMac256 as Mac>::new_from_slice(shared).expect("32-byte key is valid");
    mac.update(WG_MAC_DOMAIN);
    mac.update(message);
    mac
}

fn decode_b64(s: &str) -> Option<Vec<u8>> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.decode(s).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::node::NodeKeys;

    fn setup() -> (NodeKeys, Challenge, ChallengeSecret) {
        let keys = NodeKeys::generate();
        let (ch, secret) = Challenge::new(
            keys.binding(),
            Purpose::Issue,
            1_000,
            60,
            &mut rand::rngs::OsRng,
        );
        (keys, ch, secret)
    }

    #[test]
    fn honest_node_passes() {
        let (keys, ch, secret) = setup();
        let proofs = keys.prove(&ch).unwrap();
        assert_eq!(verify_all(&ch, &secret, &proofs, 1_010), Ok(()));
    }

    #[test]
    fn expired_challenge_refused() {
        let (keys, ch, secret) = setup();
        let proofs = keys.prove(&ch).unwrap();
        assert_eq!(
            verify_all(&ch, &secret, &proofs, 1_061),
            Err(PopError::Expired)
        );
    }

    #[test]
    fn each_wrong_key_is_named() {
        let (keys, ch, secret) = setup();
        let other = NodeKeys::generate();
        let good = keys.prove(&ch).unwrap();
        let forged = other.prove(&ch).unwrap();

        let mut p = good.clone();
        p.libp2p_sig = forged.libp2p_sig.clone();
        assert_eq!(
            verify_all(&ch, &secret, &p, 1_000),
            Err(PopError::Libp2pSignature)
        );

        let mut p = good.clone();
        p.eth_sig = forged.eth_sig.clone();
        assert_eq!(
            verify_all(&ch, &secret, &p, 1_000),
            Err(PopError::EthSignature)
        );

        let mut p = good.clone();
        p.wg_mac = forged.wg_mac.clone();
        assert_eq!(verify_all(&ch, &secret, &p, 1_000), Err(PopError::WgMac));

        let mut p = good;
        p.eth_sig = "zz".into();
        assert_eq!(
            verify_all(&ch, &secret, &p, 1_000),
            Err(PopError::EthSignature)
        );
    }

    #[test]
    fn proof_for_one_challenge_fails_another() {
        let (keys, ch, secret) = setup();
        let proofs = keys.prove(&ch).unwrap();
        let (ch2, secret2) = Challenge::new(
            keys.binding(),
            Purpose::Issue,
            1_000,
            60,
            &mut rand::rngs::OsRng,
        );
        assert!(verify_all(&ch2, &secret2, &proofs, 1_000).is_err());
        assert!(verify_all(&ch, &secret, &proofs, 1_000).is_ok());
    }

    #[test]
    fn peer_id_of_non_ed25519_refused() {
        let mut b = NodeKeys::generate().binding();
        b.peer_id = libp2p_identity::PeerId::random();
        assert_eq!(
            ed25519_of_peer_id(&b.peer_id),
            Err(PopError::PeerIdNotEd25519)
        );
    }
}
