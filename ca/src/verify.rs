//! Verification of a node certificate, as the market does it for a provider's heartbeat.
//!
//! [`inspect_chain`] and [`check_facts`] are sans-IO; [`verify_node_cert`] gathers the on-chain
//! facts through a [`Registry`] and runs both.

use alloy::primitives::{Address, B256};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use x509_parser::extensions::GeneralName;
use x509_parser::oid_registry::{Oid, OID_SIG_ED25519};
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::authority::serial_hash;
use crate::binding::{operator_from_ext_der, BindingField, NodeBinding, BINDING_OID, OPERATOR_OID};
use crate::log::{verify_inclusion, Hash32, LeafKind, LogEntry};
use crate::pop::ed25519_of_peer_id;
use crate::registry::Registry;

/// Why a certificate was rejected; one variant per reason.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum VerifyError {
    /// The chain is not `[leaf, operator root]` or a certificate does not parse.
    #[error("malformed certificate chain: {0}")]
    Malformed(&'static str),
    /// A signature in the chain does not verify: forged or tampered certificate.
    #[error("certificate signature does not verify ({0})")]
    BadSignature(&'static str),
    /// The issuer certificate is not a CA certificate.
    #[error("issuer certificate is not a CA")]
    IssuerNotCa,
    /// The leaf's validity ended.
    #[error("certificate expired at {not_after} (now {now})")]
    Expired {
        /// Unix seconds.
        not_after: u64,
        /// Unix seconds.
        now: u64,
    },
    /// The leaf's validity has not started.
    #[error("certificate not valid before {not_before} (now {now})")]
    NotYetValid {
        /// Unix seconds.
        not_before: u64,
        /// Unix seconds.
        now: u64,
    },
    /// The root is not the registered root of a registered operator.
    #[error("operator {0} is not registered on chain with this CA certificate")]
    UnknownOperator(Address),
    /// The leaf carries no valid binding extension, or its SANs disagree with it.
    #[error("binding extension missing or malformed")]
    BindingMalformed,
    /// The leaf's subject key is not the key of the bound PeerId.
    #[error("subject key does not match bound peer_id")]
    SubjectKeyMismatch,
    /// The certificate binds other keys than expected.
    #[error("binding mismatch in {field}")]
    BindingMismatch {
        /// The first differing field.
        field: BindingField,
    },
    /// The operator recorded the certificate as revoked.
    #[error("certificate revoked")]
    Revoked,
    /// No valid inclusion proof against an anchored root.
    #[error("certificate not in log: {0}")]
    NotInLog(&'static str),
    /// Reading the chain failed, so nothing can be concluded.
    #[error("registry unavailable: {0}")]
    Registry(String),
}

/// What a well-formed, correctly signed, currently valid chain says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertFacts {
    /// The bound keys.
    pub binding: NodeBinding,
    /// The leaf's subject, RFC 4514 text (`CN=<PeerId>` as DeCA issues it).
    pub subject: String,
    /// Serial number bytes.
    pub serial: Vec<u8>,
    /// SHA-256 of the leaf DER.
    pub cert_hash: Hash32,
    /// Operator address named by the root.
    pub operator: Address,
    /// SHA-256 of the root DER.
    pub ca_cert_hash: Hash32,
    /// Unix seconds.
    pub not_before: u64,
    /// Unix seconds.
    pub not_after: u64,
}

/// Evidence that the leaf was logged: an audit path to an anchored tree size.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InclusionEvidence {
    /// Index of the `issued` leaf.
    pub leaf_index: u64,
    /// Tree size the proof is for (must have been anchored on chain).
    pub tree_size: u64,
    /// Timestamp recorded in the leaf.
    pub timestamp: u64,
    /// Audit path, hex SHA-256 values.
    pub proof: Vec<String>,
}

/// Facts about the operator read from the chain.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OperatorFacts {
    /// Whether the operator is registered.
    pub registered: bool,
    /// Its registered CA certificate hash.
    pub ca_cert_hash: B256,
    /// Whether it recorded this serial as revoked.
    pub revoked: bool,
    /// The root it anchored at the evidence's tree size (zero if none or not asked).
    pub anchored_root: B256,
}

/// Parses `[leaf, root]` DER, checks both signatures, the validity window at `now` and that
/// the binding extension, SANs and subject key agree. Does not consult the chain.
pub fn inspect_chain(chain: &[Vec<u8>], now: u64) -> Result<CertFacts, VerifyError> {
    let [leaf_der, root_der] = chain else {
        return Err(VerifyError::Malformed(
            "chain must be [leaf, operator root]",
        ));
    };
    let leaf = parse(leaf_der, "leaf")?;
    let root = parse(root_der, "root")?;

    if leaf.is_ca() {
        return Err(VerifyError::Malformed("leaf is a CA certificate"));
    }
    if !root.is_ca() {
        return Err(VerifyError::IssuerNotCa);
    }
    root.verify_signature(None)
        .map_err(|_| VerifyError::BadSignature("root self-signature"))?;
    if leaf.issuer().as_raw() != root.subject().as_raw() {
        return Err(VerifyError::BadSignature(
            "leaf issuer is not the root subject",
        ));
    }
    leaf.verify_signature(Some(root.public_key()))
        .map_err(|_| VerifyError::BadSignature("leaf signed by another key"))?;

    let not_before = u64::try_from(leaf.validity().not_before.timestamp()).unwrap_or(0);
    let not_after = u64::try_from(leaf.validity().not_after.timestamp()).unwrap_or(0);
    if now < not_before {
        return Err(VerifyError::NotYetValid { not_before, now });
    }
    if now > not_after {
        return Err(VerifyError::Expired { not_after, now });
    }

    let operator = extension(&root, OPERATOR_OID)
        .and_then(operator_from_ext_der)
        .ok_or(VerifyError::Malformed("root has no operator extension"))?;
    let binding = extension(&leaf, BINDING_OID)
        .and_then(|v| NodeBinding::from_der(v).ok())
        .ok_or(VerifyError::BindingMalformed)?;
    if san_uris(&leaf)? != binding.san_uris().to_vec() {
        return Err(VerifyError::BindingMalformed);
    }
    let spki = leaf.public_key();
    let peer_key =
        ed25519_of_peer_id(&binding.peer_id).map_err(|_| VerifyError::BindingMalformed)?;
    if spki.algorithm.algorithm != OID_SIG_ED25519
        || spki.subject_public_key.data.as_ref() != peer_key.to_bytes()
    {
        return Err(VerifyError::SubjectKeyMismatch);
    }

    Ok(CertFacts {
        binding,
        subject: leaf.subject().to_string(),
        serial: leaf.tbs_certificate.raw_serial().to_vec(),
        cert_hash: Sha256::digest(leaf_der).into(),
        operator,
        ca_cert_hash: Sha256::digest(root_der).into(),
        not_before,
        not_after,
    })
}

/// Checks inspected facts against the expected binding and the on-chain operator facts.
/// With `require_inclusion`, the evidence must prove the `issued` leaf against
/// `op.anchored_root`.
pub fn check_facts(
    facts: &CertFacts,
    expected: &NodeBinding,
    op: &OperatorFacts,
    inclusion: Option<&InclusionEvidence>,
    require_inclusion: bool,
) -> Result<(), VerifyError> {
    if !op.registered || op.ca_cert_hash != B256::from(facts.ca_cert_hash) {
        return Err(VerifyError::UnknownOperator(facts.operator));
    }
    if let Some(field) = facts.binding.first_mismatch(expected) {
        return Err(VerifyError::BindingMismatch { field });
    }
    if op.revoked {
        return Err(VerifyError::Revoked);
    }
    if require_inclusion {
        let ev = inclusion.ok_or(VerifyError::NotInLog("no inclusion proof given"))?;
        if op.anchored_root.is_zero() {
            return Err(VerifyError::NotInLog("no root anchored at that tree size"));
        }
        let proof = ev
            .proof
            .iter()
            .map(|h| {
                hex::decode(h.trim_start_matches("0x"))
                    .ok()
                    .and_then(|v| Hash32::try_from(v).ok())
            })
            .collect::<Option<Vec<_>>>()
            .ok_or(VerifyError::NotInLog("malformed proof"))?;
        let entry = LogEntry {
            kind: LeafKind::Issued,
            cert_hash: facts.cert_hash,
            serial: facts.serial.clone(),
            timestamp: ev.timestamp,
        };
        if !verify_inclusion(
            &entry,
            ev.leaf_index,
            ev.tree_size,
            &proof,
            &op.anchored_root.0,
        ) {
            return Err(VerifyError::NotInLog("proof does not match anchored root"));
        }
    }
    Ok(())
}

/// The call the market makes for a provider: is `chain` a valid certificate, from an operator
/// registered on chain, binding exactly `expected` (from the heartbeat), not revoked on chain,
/// and (if `require_inclusion`) logged under a root anchored on chain?
pub async fn verify_node_cert(
    registry: &dyn Registry,
    chain: &[Vec<u8>],
    expected: &NodeBinding,
    inclusion: Option<&InclusionEvidence>,
    require_inclusion: bool,
    now: u64,
) -> Result<CertFacts, VerifyError> {
    let facts = inspect_chain(chain, now)?;
    let reg = |e: crate::registry::RegistryError| VerifyError::Registry(e.to_string());
    let registered = registry.is_operator(facts.operator).await.map_err(reg)?;
    let mut op = OperatorFacts {
        registered,
        ..OperatorFacts::default()
    };
    if registered {
        op.ca_cert_hash = registry
            .operator_ca_cert_hash(facts.operator)
            .await
            .map_err(reg)?;
        op.revoked = registry
            .is_revoked(facts.operator, serial_hash(&facts.serial))
            .await
            .map_err(reg)?;
        if let (true, Some(ev)) = (require_inclusion, inclusion) {
            op.anchored_root = registry
                .root_at(facts.operator, ev.tree_size)
                .await
                .map_err(reg)?;
        }
    }
    check_facts(&facts, expected, &op, inclusion, require_inclusion)?;
    Ok(facts)
}

fn parse<'a>(der: &'a [u8], which: &'static str) -> Result<X509Certificate<'a>, VerifyError> {
    match X509Certificate::from_der(der) {
        Ok(([], cert)) => Ok(cert),
        _ => Err(VerifyError::Malformed(which)),
    }
}

fn extension<'a>(cert: &'a X509Certificate<'_>, oid: &[u64]) -> Option<&'a [u8]> {
    let oid = Oid::from(oid).ok()?;
    cert.extensions()
        .iter()
        .find(|e| e.oid == oid)
        .map(|e| e.value)
}

fn san_uris(cert: &X509Certificate<'_>) -> Result<Vec<String>, VerifyError> {
    let san = cert
        .subject_alternative_name()
        .map_err(|_| VerifyError::BindingMalformed)?
        .ok_or(VerifyError::BindingMalformed)?;
    Ok(san
        .value
        .general_names
        .iter()
        .filter_map(|n| match n {
            GeneralName::URI(u) => Some(u.to_string()),
            _ => None,
        })
        .collect())
}
