//! JSON bodies of the HTTP API, shared by the server and [`crate::client`].

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{bad, ServiceError};
use crate::authority::pem_encode;
use crate::binding::{b64, key_from_b64, NodeBinding};
use crate::log::{Hash32, LeafKind};
use crate::pop::{Proofs, Purpose};
use crate::store::{CertRecord, RevocationRecord};

/// `POST /v1/challenge`.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct ChallengeRequest {
    /// WireGuard public key, base64.
    pub wg_pubkey: String,
    /// libp2p PeerId.
    pub peer_id: String,
    /// Chain address, 0x hex.
    pub chain_address: String,
    /// `issue` (default) or `renew`.
    #[serde(default)]
    pub purpose: Option<String>,
}

impl ChallengeRequest {
    /// The claimed keys; a malformed one is refused naming its field.
    pub fn binding(&self) -> Result<NodeBinding, ServiceError> {
        Ok(NodeBinding {
            wg_pubkey: key_from_b64(&self.wg_pubkey)
                .ok_or_else(|| bad("wg_pubkey", "expected base64 of 32 bytes"))?,
            peer_id: self
                .peer_id
                .parse()
                .map_err(|_| bad("peer_id", "not a libp2p PeerId"))?,
            chain_address: self
                .chain_address
                .parse()
                .map_err(|_| bad("chain_address", "not a 20-byte hex address"))?,
        })
    }

    /// What the challenge is for (`issue` when absent).
    pub fn purpose(&self) -> Result<Purpose, ServiceError> {
        match self.purpose.as_deref() {
            None | Some("issue") => Ok(Purpose::Issue),
            Some("renew") => Ok(Purpose::Renew),
            Some(_) => Err(bad("purpose", "expected issue or renew")),
        }
    }
}

/// `POST /v1/issue`.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct IssueRequest {
    /// Id from the challenge.
    pub challenge_id: String,
    /// PKCS#10 DER, base64, signed by the libp2p key.
    pub csr: String,
    /// Proofs of possession.
    pub proofs: Proofs,
}

/// `POST /v1/renew`.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct RenewRequest {
    /// Id from a `renew` challenge.
    pub challenge_id: String,
    /// Serial (hex) of the certificate being renewed.
    pub serial: String,
    /// PKCS#10 DER, base64, signed by the libp2p key.
    pub csr: String,
    /// `libp2p_sig` is required; the others are ignored.
    pub proofs: Proofs,
}

/// Answer to issue and renew.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct IssueResponse {
    /// Serial, lowercase hex.
    pub serial: String,
    /// SHA-256 of the leaf DER, hex.
    pub cert_hash: String,
    /// Leaf DER, base64.
    pub cert_der: String,
    /// Operator root DER, base64.
    pub ca_der: String,
    /// Leaf then root, PEM.
    pub chain_pem: String,
    /// Unix seconds.
    pub not_before: u64,
    /// Unix seconds.
    pub not_after: u64,
    /// Index of the `issued` leaf in the log.
    pub log_index: u64,
    /// Timestamp in that leaf.
    pub logged_at: u64,
}

impl IssueResponse {
    pub(crate) fn new(rec: &CertRecord, ca_der: &[u8]) -> Self {
        IssueResponse {
            serial: rec.serial.clone(),
            cert_hash: hex::encode(rec.cert_hash),
            cert_der: b64(&rec.der),
            ca_der: b64(ca_der),
            chain_pem: pem_encode("CERTIFICATE", &rec.der) + &pem_encode("CERTIFICATE", ca_der),
            not_before: rec.not_before,
            not_after: rec.not_after,
            log_index: rec.log_index,
            logged_at: rec.logged_at,
        }
    }

    /// `[leaf, root]` DER, as [`crate::verify::inspect_chain`] takes it.
    pub fn chain(&self) -> Option<Vec<Vec<u8>>> {
        Some(vec![
            crate::binding::b64_decode(&self.cert_der)?,
            crate::binding::b64_decode(&self.ca_der)?,
        ])
    }
}

/// `POST /v1/revoke`. Either `signature` (holder) or an `Authorization: Bearer` admin token.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct RevokeRequest {
    /// Serial, hex.
    pub serial: String,
    /// base64 Ed25519 signature by the certificate's libp2p key over the revoke message.
    #[serde(default)]
    pub signature: Option<String>,
}

/// Answer to revoke.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct RevokeResponse {
    /// Serial, lowercase hex.
    pub serial: String,
    /// Unix seconds.
    pub revoked_at: u64,
    /// Index of the `revoked` leaf.
    pub log_index: u64,
    /// Whether the revocation is already recorded on chain.
    pub on_chain: bool,
}

/// `GET /v1/status/{serial}`: an OCSP-like answer.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq, ToSchema)]
pub struct StatusResponse {
    /// Serial, lowercase hex.
    pub serial: String,
    /// `good`, `revoked`, `expired` or `unknown`.
    pub status: String,
    /// Unix seconds, if revoked.
    pub revoked_at: Option<u64>,
    /// Whether the revocation is recorded on chain.
    pub revoked_on_chain: bool,
    /// Unix seconds, if known.
    pub not_after: Option<u64>,
    /// When this answer was produced.
    pub produced_at: u64,
}

impl StatusResponse {
    pub(crate) fn new(
        serial: String,
        cert: Option<&CertRecord>,
        revocation: Option<&RevocationRecord>,
        now: u64,
    ) -> Self {
        let status = match (cert, revocation) {
            (None, _) => "unknown",
            (Some(_), Some(_)) => "revoked",
            (Some(c), None) if now > c.not_after => "expired",
            (Some(_), None) => "good",
        };
        StatusResponse {
            serial,
            status: status.into(),
            revoked_at: revocation.map(|r| r.revoked_at),
            revoked_on_chain: revocation.is_some_and(|r| r.on_chain),
            not_after: cert.map(|c| c.not_after),
            produced_at: now,
        }
    }
}

/// `GET /v1/log/root`.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct RootResponse {
    /// Current number of leaves.
    pub tree_size: u64,
    /// Current root, hex.
    pub root: String,
    /// Largest tree size anchored on chain.
    pub anchored_tree_size: Option<u64>,
    /// Its root, hex.
    pub anchored_root: Option<String>,
}

/// Which leaf an inclusion proof is for.
#[derive(Clone, Copy, Debug)]
pub enum LeafRef {
    /// By position.
    Index(u64),
    /// The `issued` leaf of the certificate with this SHA-256.
    CertHash(Hash32),
}

/// `GET /v1/log/inclusion/{leaf}`.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct InclusionResponse {
    /// Leaf position.
    pub leaf_index: u64,
    /// Tree size the proof is for.
    pub tree_size: u64,
    /// Root at that size, hex.
    pub root: String,
    /// Encoded leaf, hex.
    pub leaf: String,
    /// Leaf kind.
    pub kind: LeafKind,
    /// Leaf timestamp.
    pub timestamp: u64,
    /// Audit path, hex.
    pub proof: Vec<String>,
}

impl InclusionResponse {
    /// The evidence a verifier passes to [`crate::verify::verify_node_cert`].
    pub fn evidence(&self) -> crate::verify::InclusionEvidence {
        crate::verify::InclusionEvidence {
            leaf_index: self.leaf_index,
            tree_size: self.tree_size,
            timestamp: self.timestamp,
            proof: self.proof.clone(),
        }
    }
}

/// `GET /v1/log/consistency?from=&to=`.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct ConsistencyResponse {
    /// Old size.
    pub from: u64,
    /// New size.
    pub to: u64,
    /// Root at `from`, hex.
    pub old_root: String,
    /// Root at `to`, hex.
    pub new_root: String,
    /// Proof, hex.
    pub proof: Vec<String>,
}

/// Every 4xx/5xx body.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct ErrorBody {
    /// Human-readable reason.
    pub error: String,
    /// The request field at fault, if one is.
    pub field: Option<String>,
}

/// Answer to `POST /v1/admin/anchor`.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct AnchorResponse {
    /// The tree size anchored on chain now, if there was anything new to anchor.
    pub anchored_tree_size: Option<u64>,
}
