//! The operator service: issuance, renewal, revocation, log and anchoring, over a [`Store`]
//! and an optional on-chain [`Registry`]. [`api`] exposes it over HTTP.

pub mod api;
mod types;

use std::sync::Arc;
use std::time::Duration;

use alloy::primitives::B256;
use tokio::sync::{watch, Mutex};
use tracing::{info, warn};

pub use types::*;

use crate::authority::{serial_hash, Authority, AuthorityError, CsrError};
use crate::binding::NodeBinding;
use crate::log::{LeafKind, LogEntry, LogError, TransparencyLog};
use crate::node::revoke_message;
use crate::pop::{self, Challenge, PopError, Proofs, Purpose};
use crate::registry::{Registry, RegistryError};
use crate::store::{CertRecord, RevocationRecord, Store, StoreError};
use crate::unix_now;

/// Tunables of the service.
#[derive(Clone, Debug)]
pub struct ServiceConfig {
    /// Lifetime of issued leaf certificates.
    pub leaf_validity_secs: u64,
    /// Lifetime of challenges.
    pub challenge_ttl_secs: u64,
    /// How long after expiry a certificate may still be renewed.
    pub renew_grace_secs: u64,
    /// Bearer token for operator actions (revoke any cert, anchor now); `None` disables them.
    pub admin_token: Option<String>,
}

impl Default for ServiceConfig {
    fn default() -> Self {
        ServiceConfig {
            leaf_validity_secs: 24 * 3600,
            challenge_ttl_secs: 300,
            renew_grace_secs: 7 * 24 * 3600,
            admin_token: None,
        }
    }
}

/// Everything that can go wrong serving a request; [`api`] maps each to a status code.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// Proof of possession refused.
    #[error("proof of possession: {0}")]
    Pop(#[from] PopError),
    /// CSR refused.
    #[error("csr: {0}")]
    Csr(#[from] CsrError),
    /// A request field is missing or malformed.
    #[error("field {field}: {reason}")]
    BadRequest {
        /// The field at fault.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// The named object does not exist.
    #[error("{0} not found")]
    NotFound(&'static str),
    /// The request conflicts with current state (e.g. already revoked).
    #[error("conflict: {0}")]
    Conflict(&'static str),
    /// Missing or wrong credentials.
    #[error("unauthorized: {0}")]
    Unauthorized(&'static str),
    /// Log proof request out of range.
    #[error("log: {0}")]
    Log(#[from] LogError),
    /// The chain is not configured or failed.
    #[error("chain: {0}")]
    Registry(String),
    /// Storage failure.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Certificate generation failure.
    #[error(transparent)]
    Authority(#[from] AuthorityError),
}

impl From<RegistryError> for ServiceError {
    fn from(e: RegistryError) -> Self {
        ServiceError::Registry(e.to_string())
    }
}

pub(crate) fn bad(field: &'static str, reason: impl Into<String>) -> ServiceError {
    ServiceError::BadRequest {
        field,
        reason: reason.into(),
    }
}

/// One running DeCA operator.
pub struct CaService {
    authority: Authority,
    store: Store,
    log: Mutex<TransparencyLog>,
    registry: Option<Arc<dyn Registry>>,
    config: ServiceConfig,
    anchored: watch::Sender<u64>,
    /// Serializes anchoring (background task and admin endpoint).
    anchoring: Mutex<()>,
}

impl CaService {
    /// Builds the service, rebuilding the in-memory log from the store.
    pub async fn new(
        authority: Authority,
        store: Store,
        registry: Option<Arc<dyn Registry>>,
        config: ServiceConfig,
    ) -> Result<Arc<Self>, ServiceError> {
        let log = TransparencyLog::from_leaves(store.log_leaves().await?);
        let last = store.last_anchor().await?.map(|(s, _)| s).unwrap_or(0);
        Ok(Arc::new(CaService {
            authority,
            store,
            log: Mutex::new(log),
            registry,
            config,
            anchored: watch::channel(last).0,
            anchoring: Mutex::new(()),
        }))
    }

    /// The operator's authority.
    pub fn authority(&self) -> &Authority {
        &self.authority
    }

    /// Tree sizes anchored on chain, as they happen (readiness signal for tests and callers).
    pub fn subscribe_anchors(&self) -> watch::Receiver<u64> {
        self.anchored.subscribe()
    }

    /// Issues a challenge for `binding`.
    pub async fn challenge(
        &self,
        binding: NodeBinding,
        purpose: Purpose,
    ) -> Result<Challenge, ServiceError> {
        pop::ed25519_of_peer_id(&binding.peer_id)?;
        let (ch, secret) = Challenge::new(
            binding,
            purpose,
            unix_now(),
            self.config.challenge_ttl_secs,
            &mut rand::rngs::OsRng,
        );
        self.store.put_challenge(&ch, &secret).await?;
        Ok(ch)
    }

    /// First issuance: all three proofs and a CSR signed by the libp2p key.
    pub async fn issue(
        &self,
        challenge_id: &str,
        csr_der: &[u8],
        proofs: &Proofs,
    ) -> Result<IssueResponse, ServiceError> {
        let (ch, secret) = self.store.take_challenge(challenge_id).await??;
        if ch.purpose != Purpose::Issue {
            return Err(PopError::WrongPurpose.into());
        }
        pop::verify_all(&ch, &secret, proofs, unix_now())?;
        let csr = Authority::check_csr(csr_der, &ch.binding)?;
        self.sign_and_log(csr, &ch.binding).await
    }

    /// Renewal of `old_serial`: a fresh libp2p-key proof and CSR; the binding is carried over.
    pub async fn renew(
        &self,
        challenge_id: &str,
        old_serial: &str,
        csr_der: &[u8],
        proofs: &Proofs,
    ) -> Result<IssueResponse, ServiceError> {
        let (ch, _) = self.store.take_challenge(challenge_id).await??;
        if ch.purpose != Purpose::Renew {
            return Err(PopError::WrongPurpose.into());
        }
        let now = unix_now();
        pop::verify_libp2p(&ch, proofs, now)?;
        let old = self
            .store
            .cert_by_serial(old_serial)
            .await?
            .ok_or(ServiceError::NotFound("serial"))?;
        if old.binding != ch.binding {
            return Err(bad(
                "serial",
                "certificate binds other keys than the challenge",
            ));
        }
        if self.store.revocation(&old.serial).await?.is_some() {
            return Err(ServiceError::Conflict("certificate is revoked"));
        }
        if now > old.not_after.saturating_add(self.config.renew_grace_secs) {
            return Err(bad(
                "serial",
                "certificate expired beyond the renewal grace",
            ));
        }
        let csr = Authority::check_csr(csr_der, &ch.binding)?;
        self.sign_and_log(csr, &ch.binding).await
    }

    async fn sign_and_log(
        &self,
        csr: rcgen::CertificateSigningRequestParams,
        binding: &NodeBinding,
    ) -> Result<IssueResponse, ServiceError> {
        let now = unix_now();
        let cert = self
            .authority
            .issue(csr, binding, now, self.config.leaf_validity_secs)?;
        let entry = LogEntry {
            kind: LeafKind::Issued,
            cert_hash: cert.cert_hash,
            serial: cert.serial.clone(),
            timestamp: now,
        };
        let mut log = self.log.lock().await;
        let rec = CertRecord {
            serial: hex::encode(&cert.serial),
            cert_hash: cert.cert_hash,
            der: cert.der.clone(),
            binding: binding.clone(),
            not_before: cert.not_before,
            not_after: cert.not_after,
            log_index: log.len(),
            logged_at: now,
        };
        self.store.insert_cert(&rec, &entry).await?;
        log.append(&entry);
        drop(log);
        info!(serial = %rec.serial, peer = %binding.peer_id, "issued certificate");
        Ok(IssueResponse::new(&rec, self.authority.cert_der()))
    }

    /// Revokes `serial`, by its holder (libp2p signature over the revoke message) or by the
    /// operator (`admin`). Logs the revocation and records it on chain if a registry is set.
    pub async fn revoke(
        &self,
        serial: &str,
        holder_signature: Option<&str>,
        admin: bool,
    ) -> Result<RevokeResponse, ServiceError> {
        let serial = serial.to_ascii_lowercase();
        let cert = self
            .store
            .cert_by_serial(&serial)
            .await?
            .ok_or(ServiceError::NotFound("serial"))?;
        let by_holder = !admin;
        if !admin {
            let sig = holder_signature.ok_or(ServiceError::Unauthorized(
                "signature or admin token required",
            ))?;
            let sig =
                crate::binding::b64_decode(sig).ok_or_else(|| bad("signature", "not base64"))?;
            let key = pop::ed25519_of_peer_id(&cert.binding.peer_id)?;
            if !key.verify(&revoke_message(&serial), &sig) {
                return Err(ServiceError::Unauthorized("signature does not verify"));
            }
        }
        let serial_bytes = hex::decode(&serial).map_err(|_| bad("serial", "not hex"))?;
        let now = unix_now();
        let entry = LogEntry {
            kind: LeafKind::Revoked,
            cert_hash: cert.cert_hash,
            serial: serial_bytes.clone(),
            timestamp: now,
        };
        let mut log = self.log.lock().await;
        if self.store.revocation(&serial).await?.is_some() {
            return Err(ServiceError::Conflict("already revoked"));
        }
        let rec = RevocationRecord {
            serial: serial.clone(),
            revoked_at: now,
            log_index: log.len(),
            on_chain: false,
        };
        self.store
            .insert_revocation(&rec, by_holder, &entry)
            .await?;
        log.append(&entry);
        drop(log);
        info!(%serial, by_holder, "revoked certificate");
        let on_chain = self.record_on_chain(&serial, &serial_bytes).await;
        Ok(RevokeResponse {
            serial,
            revoked_at: now,
            log_index: rec.log_index,
            on_chain,
        })
    }

    async fn record_on_chain(&self, serial: &str, serial_bytes: &[u8]) -> bool {
        let Some(registry) = &self.registry else {
            return false;
        };
        match registry.record_revocation(serial_hash(serial_bytes)).await {
            Ok(()) => self.store.mark_revocation_on_chain(serial).await.is_ok(),
            Err(e) => {
                // Kept pending; the anchor task retries.
                warn!(%serial, error = %e, "revocation not yet recorded on chain");
                false
            }
        }
    }

    /// The current signed CRL (DER).
    pub async fn crl(&self) -> Result<Vec<u8>, ServiceError> {
        let revoked = self
            .store
            .revocations()
            .await?
            .into_iter()
            .filter_map(|r| Some((hex::decode(&r.serial).ok()?, r.revoked_at)))
            .collect::<Vec<_>>();
        let number = self.store.next_counter("crl_number").await?;
        Ok(self.authority.crl(&revoked, number, unix_now(), 3600)?)
    }

    /// OCSP-like status of `serial`.
    pub async fn status(&self, serial: &str) -> Result<StatusResponse, ServiceError> {
        let serial = serial.to_ascii_lowercase();
        let cert = self.store.cert_by_serial(&serial).await?;
        let revocation = self.store.revocation(&serial).await?;
        Ok(StatusResponse::new(
            serial,
            cert.as_ref(),
            revocation.as_ref(),
            unix_now(),
        ))
    }

    /// Current root and the last anchored one.
    pub async fn log_root(&self) -> Result<RootResponse, ServiceError> {
        let (size, root) = {
            let log = self.log.lock().await;
            (log.len(), log.root())
        };
        let anchored = self.store.last_anchor().await?;
        Ok(RootResponse {
            tree_size: size,
            root: hex::encode(root),
            anchored_tree_size: anchored.as_ref().map(|a| a.0),
            anchored_root: anchored.map(|a| a.1),
        })
    }

    /// Inclusion proof for a leaf index, or for the `issued` leaf of a certificate hash,
    /// against `tree_size` (default: the current size).
    pub async fn inclusion(
        &self,
        leaf: LeafRef,
        tree_size: Option<u64>,
    ) -> Result<InclusionResponse, ServiceError> {
        let log = self.log.lock().await;
        let index = match leaf {
            LeafRef::Index(i) => i,
            LeafRef::CertHash(h) => log
                .find(&h, LeafKind::Issued)
                .ok_or(ServiceError::NotFound("cert_hash"))?,
        };
        let tree_size = tree_size.unwrap_or(log.len());
        let proof = log.inclusion_proof(index, tree_size)?;
        let leaf = log
            .leaf(index)
            .ok_or(ServiceError::NotFound("leaf_index"))?;
        let entry = LogEntry::decode(leaf).ok_or(ServiceError::NotFound("leaf_index"))?;
        Ok(InclusionResponse {
            leaf_index: index,
            tree_size,
            root: hex::encode(log.root_at(tree_size)?),
            leaf: hex::encode(leaf),
            kind: entry.kind,
            timestamp: entry.timestamp,
            proof: proof.iter().map(hex::encode).collect(),
        })
    }

    /// Consistency proof between two tree sizes.
    pub async fn consistency(
        &self,
        from: u64,
        to: u64,
    ) -> Result<ConsistencyResponse, ServiceError> {
        let log = self.log.lock().await;
        Ok(ConsistencyResponse {
            from,
            to,
            old_root: hex::encode(log.root_at(from)?),
            new_root: hex::encode(log.root_at(to)?),
            proof: log
                .consistency_proof(from, to)?
                .iter()
                .map(hex::encode)
                .collect(),
        })
    }

    /// Anchors the current root on chain if the log grew since the last anchor, and retries
    /// revocations not yet on chain. Returns the anchored size, if one was anchored.
    pub async fn anchor_once(&self) -> Result<Option<u64>, ServiceError> {
        let registry = self
            .registry
            .as_ref()
            .ok_or_else(|| ServiceError::Registry("no chain configured".into()))?;
        for rec in self.store.pending_onchain_revocations().await? {
            if let Ok(bytes) = hex::decode(&rec.serial) {
                self.record_on_chain(&rec.serial, &bytes).await;
            }
        }
        let _one_at_a_time = self.anchoring.lock().await;
        let (size, root) = {
            let log = self.log.lock().await;
            (log.len(), log.root())
        };
        // The chain, not the local record, says what was anchored: a crash between the
        // transaction and the local write must not make us re-send a size the contract refuses.
        let last = registry
            .latest_root(self.authority.operator())
            .await?
            .tree_size;
        if size == 0 || size <= last {
            return Ok(None);
        }
        registry.anchor_root(size, B256::from(root)).await?;
        self.store.record_anchor(size, &root, unix_now()).await?;
        self.anchored.send_replace(size);
        info!(tree_size = size, root = %hex::encode(root), "anchored log root");
        Ok(Some(size))
    }

    /// Runs [`CaService::anchor_once`] every `interval` until the task is aborted.
    pub fn spawn_anchor_task(self: &Arc<Self>, interval: Duration) -> tokio::task::JoinHandle<()> {
        let svc = Arc::clone(self);
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval(interval);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticker.tick().await;
                if let Err(e) = svc.anchor_once().await {
                    warn!(error = %e, "anchoring failed; will retry");
                }
            }
        })
    }

    /// Whether `token` is the configured admin token (constant-time compare).
    pub fn is_admin(&self, token: Option<&str>) -> bool {
        match (&self.config.admin_token, token) {
            (Some(expected), Some(given)) => {
                use subtle::ConstantTimeEq;
                expected.len() == given.len()
                    && bool::from(expected.as_bytes().ct_eq(given.as_bytes()))
            }
            _ => false,
        }
    }
}
