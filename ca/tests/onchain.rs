//! DeCA against the real `DecaRegistry` contract on a real local node (`LocalChain`, hardhat):
//! operator registration, periodic root anchoring, revocations on chain, and proofs checked
//! against roots read from the contract. Needs `bash contracts/scripts/setup.sh` once.

mod common;

use std::sync::Arc;
use std::time::Duration;

use alloy::primitives::{Address, B256};
use alloy::signers::local::PrivateKeySigner;
use common::{start_ca, start_ca_with, TestCa};
use flowshield_ca::authority::{serial_hash, Authority};
use flowshield_ca::log::verify_consistency;
use flowshield_ca::node::NodeKeys;
use flowshield_ca::registry::{ChainRegistry, Registry};
use flowshield_ca::service::InclusionResponse;
use flowshield_ca::{
    unix_now, verify_node_cert, BindingField, CertFacts, NodeBinding, VerifyError,
};
use flowshield_chain::{DecaRegistryClient, LocalChain};

/// A node, a deployed registry (owner = dev account 0) and a read-only verifier view.
struct Chain {
    chain: LocalChain,
    owner: DecaRegistryClient,
    verifier: ChainRegistry,
}

async fn chain() -> Chain {
    let chain = LocalChain::start()
        .await
        .expect("local chain (run contracts/scripts/setup.sh)");
    let owner_signer = chain.dev_signer(0).unwrap();
    let owner = DecaRegistryClient::deploy(chain.provider_for(owner_signer).unwrap())
        .await
        .unwrap();
    let verifier =
        ChainRegistry::connect(chain.rpc_url(), owner.address(), PrivateKeySigner::random())
            .unwrap();
    Chain {
        chain,
        owner,
        verifier,
    }
}

impl Chain {
    /// A CA service for a fresh funded operator, registered on chain iff `register`.
    async fn operator(&self, register: bool) -> (TestCa, PrivateKeySigner) {
        let signer = self.chain.funded_signer().await.unwrap();
        let registry =
            ChainRegistry::connect(self.chain.rpc_url(), self.owner.address(), signer.clone())
                .unwrap();
        let ca = start_ca(signer.address(), Some(Arc::new(registry))).await;
        if register {
            self.register(&ca, signer.address()).await;
        }
        (ca, signer)
    }

    /// Governance admits `operator` with the root certificate `ca` serves.
    async fn register(&self, ca: &TestCa, operator: Address) {
        let hash = B256::from(ca.svc.authority().ca_cert_hash());
        self.owner
            .register_operator(operator, hash, &ca.base)
            .await
            .unwrap();
    }

    /// Verifies `cert_chain` for `binding` against the chain, without a log proof.
    async fn verify(
        &self,
        cert_chain: &[Vec<u8>],
        binding: &NodeBinding,
    ) -> Result<CertFacts, VerifyError> {
        verify_node_cert(&self.verifier, cert_chain, binding, None, false, unix_now()).await
    }

    /// Verifies `cert_chain` for `binding` against the chain, requiring `proof` to show
    /// the certificate in a log root anchored on chain.
    async fn verify_in_log(
        &self,
        cert_chain: &[Vec<u8>],
        binding: &NodeBinding,
        proof: &InclusionResponse,
    ) -> Result<CertFacts, VerifyError> {
        let evidence = proof.evidence();
        verify_node_cert(
            &self.verifier,
            cert_chain,
            binding,
            Some(&evidence),
            true,
            unix_now(),
        )
        .await
    }

    /// Whether `operator` has recorded on chain the revocation of the hex `serial`.
    async fn revoked_on_chain(&self, operator: Address, serial: &str) -> bool {
        let hash = serial_hash(&hex::decode(serial).unwrap());
        self.verifier.is_revoked(operator, hash).await.unwrap()
    }
}

/// Whether `ca`'s status endpoint reports `serial` as revoked on chain.
async fn status_says_revoked_on_chain(ca: &TestCa, serial: &str) -> bool {
    ca.client.status(serial).await.unwrap().revoked_on_chain
}

fn hex32(s: &str) -> [u8; 32] {
    hex::decode(s).unwrap().try_into().unwrap()
}

#[tokio::test]
async fn anchored_roots_prove_inclusion_and_consistency() {
    let c = chain().await;
    let (ca, signer) = c.operator(true).await;
    let op = signer.address();
    let nodes: Vec<NodeKeys> = (0..3).map(|_| NodeKeys::generate()).collect();
    let mut issued = Vec::new();
    for keys in &nodes {
        issued.push(ca.client.request_certificate(keys).await.unwrap());
    }

    // The background task anchors periodically; wait for its signal, not for time.
    let mut anchors = ca.svc.subscribe_anchors();
    let task = ca.svc.spawn_anchor_task(Duration::from_millis(100));
    tokio::time::timeout(Duration::from_secs(60), anchors.wait_for(|s| *s >= 3))
        .await
        .expect("anchored within 60 s")
        .unwrap();
    let latest = c.verifier.latest_root(op).await.unwrap();
    assert_eq!(latest.tree_size, 3);
    let log_root = ca.client.log_root().await.unwrap();
    assert_eq!(latest.root, B256::from(hex32(&log_root.root)));

    // Each certificate verifies with an inclusion proof against the root read from chain.
    for (keys, cert) in nodes.iter().zip(&issued) {
        let proof = ca.client.inclusion(&cert.cert_hash, Some(3)).await.unwrap();
        let facts = c
            .verify_in_log(&cert.chain().unwrap(), &keys.binding(), &proof)
            .await
            .unwrap();
        assert_eq!(hex::encode(&facts.serial), cert.serial);
    }

    // A fourth certificate is not provable until its tree size is anchored.
    task.abort();
    let late_keys = NodeKeys::generate();
    let late = ca.client.request_certificate(&late_keys).await.unwrap();
    let proof = ca.client.inclusion(&late.cert_hash, Some(4)).await.unwrap();
    let late_chain = late.chain().unwrap();
    let verdict = c
        .verify_in_log(&late_chain, &late_keys.binding(), &proof)
        .await;
    assert!(
        matches!(verdict, Err(VerifyError::NotInLog(_))),
        "{verdict:?}"
    );
    // ... and a proof for the old size cannot cover it.
    assert!(ca.client.inclusion(&late.cert_hash, Some(3)).await.is_err());

    assert_eq!(
        ca.admin.anchor_now().await.unwrap()["anchored_tree_size"],
        4
    );
    c.verify_in_log(&late_chain, &late_keys.binding(), &proof)
        .await
        .unwrap();
    // Nothing new: nothing anchored (the contract demands a strictly growing size).
    assert_eq!(ca.svc.anchor_once().await.unwrap(), None);

    // The log served 3 -> 4 is consistent with both roots the chain holds.
    let cons = ca.client.consistency(3, 4).await.unwrap();
    let old = c.verifier.root_at(op, 3).await.unwrap();
    let new = c.verifier.root_at(op, 4).await.unwrap();
    let path: Vec<[u8; 32]> = cons.proof.iter().map(|h| hex32(h)).collect();
    assert!(verify_consistency(3, &old.0, 4, &new.0, &path));
    assert!(!verify_consistency(3, &[7; 32], 4, &new.0, &path));
}

#[tokio::test]
async fn revocation_is_recorded_on_chain_and_rejected() {
    let c = chain().await;
    let (ca, signer) = c.operator(true).await;
    let (keys, cert) = ca.issue_new_node().await;
    let chain_der = cert.chain().unwrap();

    // Valid, and a heartbeat claiming other keys is rejected field by field.
    c.verify(&chain_der, &keys.binding()).await.unwrap();
    let mut heartbeat = keys.binding();
    heartbeat.chain_address = Address::repeat_byte(0x42);
    assert_eq!(
        c.verify(&chain_der, &heartbeat).await,
        Err(VerifyError::BindingMismatch {
            field: BindingField::ChainAddress
        })
    );

    assert!(!c.revoked_on_chain(signer.address(), &cert.serial).await);
    let revoked = ca.client.revoke(&cert.serial, Some(&keys)).await.unwrap();
    assert!(revoked.on_chain);
    assert!(c.revoked_on_chain(signer.address(), &cert.serial).await);
    assert!(status_says_revoked_on_chain(&ca, &cert.serial).await);
    assert_eq!(
        c.verify(&chain_der, &keys.binding()).await,
        Err(VerifyError::Revoked)
    );
}

#[tokio::test]
async fn only_registered_operators_are_trusted() {
    let c = chain().await;

    // An operator never registered: its certificates are rejected and it cannot anchor.
    let (rogue, rogue_signer) = c.operator(false).await;
    let (keys, cert) = rogue.issue_new_node().await;
    let rogue_chain = cert.chain().unwrap();
    assert_eq!(
        c.verify(&rogue_chain, &keys.binding()).await,
        Err(VerifyError::UnknownOperator(rogue_signer.address()))
    );
    assert!(rogue.svc.anchor_once().await.is_err());
    // Its revocations stay pending rather than being lost.
    let revoked = rogue
        .client
        .revoke(&cert.serial, Some(&keys))
        .await
        .unwrap();
    assert!(!revoked.on_chain);
    assert!(
        !c.revoked_on_chain(rogue_signer.address(), &cert.serial)
            .await
    );
    // Once governance admits it, the next anchoring round records the pending revocation
    // and anchors its log (issued + revoked = 2 leaves).
    c.register(&rogue, rogue_signer.address()).await;
    assert_eq!(rogue.svc.anchor_once().await.unwrap(), Some(2));
    assert!(
        c.revoked_on_chain(rogue_signer.address(), &cert.serial)
            .await
    );
    assert!(status_says_revoked_on_chain(&rogue, &cert.serial).await);
    assert_eq!(
        c.verify(&rogue_chain, &keys.binding()).await,
        Err(VerifyError::Revoked)
    );

    // A registered operator presenting a root other than the registered one is rejected.
    let (honest, signer) = c.operator(true).await;
    let rekeyed = Authority::create(signer.address(), unix_now()).unwrap();
    let other = start_ca_with(rekeyed, None).await;
    let cert = other.client.request_certificate(&keys).await.unwrap();
    assert_eq!(
        c.verify(&cert.chain().unwrap(), &keys.binding()).await,
        Err(VerifyError::UnknownOperator(signer.address()))
    );

    // The registered root is accepted until governance removes the operator.
    let good = honest.client.request_certificate(&keys).await.unwrap();
    let good_chain = good.chain().unwrap();
    c.verify(&good_chain, &keys.binding()).await.unwrap();
    c.owner.remove_operator(signer.address()).await.unwrap();
    assert_eq!(
        c.verify(&good_chain, &keys.binding()).await,
        Err(VerifyError::UnknownOperator(signer.address()))
    );
}
