//! The node side: the three keys, answering challenges, building the CSR.
//!
//! The CSR is signed by the node's libp2p Ed25519 key, so the issued leaf certificate's
//! subject key *is* the libp2p key and the CA never sees any private key.

use alloy::signers::{local::PrivateKeySigner, SignerSync};
use libp2p_identity::ed25519;
use rcgen::{CertificateParams, DistinguishedName, DnType, PublicKeyData, SigningKey};
use serde::{Deserialize, Serialize};

use crate::binding::{b64, NodeBinding};
use crate::pop::{Challenge, Proofs};

/// Domain separation for holder revocation requests.
pub const REVOKE_DOMAIN: &[u8] = b"flowshield-deca-revoke-v1";

/// The bytes a holder signs (with its libp2p key) to revoke the certificate `serial_hex`.
pub fn revoke_message(serial_hex: &str) -> Vec<u8> {
    let mut m = REVOKE_DOMAIN.to_vec();
    m.push(0);
    m.extend_from_slice(serial_hex.to_ascii_lowercase().as_bytes());
    m
}

/// Errors of node-side operations.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// rcgen refused to build the CSR.
    #[error("building CSR: {0}")]
    Csr(#[from] rcgen::Error),
    /// The chain signer failed.
    #[error("chain signature: {0}")]
    Eth(#[from] alloy::signers::Error),
    /// The key file is malformed.
    #[error("key file field {0} malformed")]
    KeyFile(&'static str),
}

/// A node's three private keys.
pub struct NodeKeys {
    wg: x25519_dalek::StaticSecret,
    libp2p: ed25519::Keypair,
    eth: PrivateKeySigner,
}

impl std::fmt::Debug for NodeKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeKeys")
            .field("binding", &self.binding())
            .finish_non_exhaustive()
    }
}

/// On-disk form of [`NodeKeys`] (secrets hex; the file must be 0600).
#[derive(Serialize, Deserialize)]
pub struct NodeKeyFile {
    /// X25519 static secret, 32 bytes hex.
    pub wg_secret: String,
    /// Ed25519 secret seed, 32 bytes hex.
    pub libp2p_secret: String,
    /// secp256k1 secret, 32 bytes hex.
    pub eth_secret: String,
}

impl NodeKeys {
    /// Fresh random keys.
    pub fn generate() -> Self {
        NodeKeys {
            wg: x25519_dalek::StaticSecret::random_from_rng(rand::rngs::OsRng),
            libp2p: ed25519::Keypair::generate(),
            eth: PrivateKeySigner::random(),
        }
    }

    /// Serializes the secrets for a key file.
    pub fn to_file(&self) -> NodeKeyFile {
        NodeKeyFile {
            wg_secret: hex::encode(self.wg.to_bytes()),
            libp2p_secret: hex::encode(self.libp2p.secret().as_ref()),
            eth_secret: hex::encode(self.eth.to_bytes()),
        }
    }

    /// Loads keys from their file form.
    pub fn from_file(f: &NodeKeyFile) -> Result<Self, NodeError> {
        let wg: [u8; 32] = hex::decode(&f.wg_secret)
            .ok()
            .and_then(|v| v.try_into().ok())
            .ok_or(NodeError::KeyFile("wg_secret"))?;
        let mut seed =
            hex::decode(&f.libp2p_secret).map_err(|_| NodeError::KeyFile("libp2p_secret"))?;
        let secret = ed25519::SecretKey::try_from_bytes(&mut seed)
            .map_err(|_| NodeError::KeyFile("libp2p_secret"))?;
        let eth_raw = hex::decode(&f.eth_secret).map_err(|_| NodeError::KeyFile("eth_secret"))?;
        let eth =
            PrivateKeySigner::from_slice(&eth_raw).map_err(|_| NodeError::KeyFile("eth_secret"))?;
        Ok(NodeKeys {
            wg: x25519_dalek::StaticSecret::from(wg),
            libp2p: ed25519::Keypair::from(secret),
            eth,
        })
    }

    /// The public binding of these keys.
    pub fn binding(&self) -> NodeBinding {
        NodeBinding {
            wg_pubkey: x25519_dalek::PublicKey::from(&self.wg).to_bytes(),
            peer_id: libp2p_identity::PublicKey::from(self.libp2p.public()).to_peer_id(),
            chain_address: self.eth.address(),
        }
    }

    /// Answers a challenge with all three proofs.
    pub fn prove(&self, challenge: &Challenge) -> Result<Proofs, NodeError> {
        let message = challenge.message();
        let eth_sig = self.eth.sign_message_sync(&message)?;
        let ca_eph = crate::binding::key_from_b64(&challenge.ca_ephemeral)
            .ok_or(NodeError::KeyFile("ca_ephemeral"))?;
        let shared = self
            .wg
            .diffie_hellman(&x25519_dalek::PublicKey::from(ca_eph));
        let mac = blake2::digest::Mac::finalize(crate::pop::wg_mac(shared.as_bytes(), &message));
        Ok(Proofs {
            libp2p_sig: b64(&self.libp2p.sign(&message)),
            eth_sig: format!("0x{}", hex::encode(eth_sig.as_bytes())),
            wg_mac: b64(&mac.into_bytes()),
        })
    }

    /// Answers a renewal challenge (libp2p key only).
    pub fn prove_renewal(&self, challenge: &Challenge) -> Proofs {
        Proofs {
            libp2p_sig: b64(&self.libp2p.sign(&challenge.message())),
            ..Proofs::default()
        }
    }

    /// Signs a holder revocation request for `serial_hex`.
    pub fn sign_revocation(&self, serial_hex: &str) -> String {
        b64(&self.libp2p.sign(&revoke_message(serial_hex)))
    }

    /// A PKCS#10 CSR (DER) signed by the libp2p key.
    pub fn csr_der(&self) -> Result<Vec<u8>, NodeError> {
        let binding = self.binding();
        let mut params = CertificateParams::default();
        params.subject_alt_names = binding
            .san_uris()
            .into_iter()
            .map(|u| u.try_into().map(rcgen::SanType::URI))
            .collect::<Result<_, _>>()?;
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, binding.peer_id.to_base58());
        params.distinguished_name = dn;
        let key = Libp2pCsrKey {
            public: self.libp2p.public().to_bytes(),
            keypair: &self.libp2p,
        };
        Ok(params.serialize_request(&key)?.der().to_vec())
    }
}

/// Adapts the libp2p Ed25519 key to rcgen's signing interface.
struct Libp2pCsrKey<'a> {
    public: [u8; 32],
    keypair: &'a ed25519::Keypair,
}

impl PublicKeyData for Libp2pCsrKey<'_> {
    fn der_bytes(&self) -> &[u8] {
        &self.public
    }

    fn algorithm(&self) -> &'static rcgen::SignatureAlgorithm {
        &rcgen::PKCS_ED25519
    }
}

impl SigningKey for Libp2pCsrKey<'_> {
    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, rcgen::Error> {
        Ok(self.keypair.sign(msg))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_file_round_trip_keeps_binding() {
        let keys = NodeKeys::generate();
        let back = NodeKeys::from_file(&keys.to_file()).unwrap();
        assert_eq!(back.binding(), keys.binding());
    }

    #[test]
    fn csr_is_signed_by_libp2p_key() {
        let keys = NodeKeys::generate();
        let der = keys.csr_der().unwrap();
        let parsed = rcgen::CertificateSigningRequestParams::from_der(&der.as_slice().into())
            .expect("CSR signature verifies");
        assert_eq!(
            parsed.public_key.der_bytes(),
            keys.libp2p.public().to_bytes()
        );
    }
}
