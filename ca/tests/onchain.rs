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
use flowshield_ca::{unix_now, verify_node_cert, BindingField, VerifyError};
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
            let hash = B256::from(ca.svc.authority().ca_cert_hash());
            self.owner
                .register_operator(signer.address(), hash, &ca.base)
                .await
                .unwrap();
        }
        (ca, signer)
    }
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
        let facts = verify_node_cert(
            &c.verifier,
            &cert.chain().unwrap(),
            &keys.binding(),
            Some(&proof.evidence()),
            true,
            unix_now(),
        )
        .await
        .unwrap();
        assert_eq!(hex::encode(&facts.serial), cert.serial);
    }

    // A fourth certificate is not provable until its tree size is anchored.
    task.abort();
    let late_keys = NodeKeys::generate();
    let late = ca.client.request_certificate(&late_keys).await.unwrap();
    let proof = ca.client.inclusion(&late.cert_hash, Some(4)).await.unwrap();
    let verdict = verify_node_cert(
        &c.verifier,
        &late.chain().unwrap(),
        &late_keys.binding(),
        Some(&proof.evidence()),
        true,
        unix_now(),
    )
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
    verify_node_cert(
        &c.verifier,
        &late.chain().unwrap(),
        &late_keys.binding(),
        Some(&proof.evidence()),
        true,
        unix_now(),
    )
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
    let keys = NodeKeys::generate();
    let cert = ca.client.request_certificate(&keys).await.unwrap();
    let chain_der = cert.chain().unwrap();

    // Valid, and a heartbeat claiming other keys is rejected field by field.
    verify_node_cert(
        &c.verifier,
        &chain_der,
        &keys.binding(),
        None,
        false,
        unix_now(),
    )
    .await
    .unwrap();
    let mut heartbeat = keys.binding();
    heartbeat.chain_address = Address::repeat_byte(0x42);
    assert_eq!(
        verify_node_cert(&c.verifier, &chain_der, &heartbeat, None, false, unix_now()).await,
        Err(VerifyError::BindingMismatch {
            field: BindingField::ChainAddress
        })
    );

    let serial_bytes = hex::decode(&cert.serial).unwrap();
    assert!(!c
        .verifier
        .is_revoked(signer.address(), serial_hash(&serial_bytes))
        .await
        .unwrap());
    let revoked = ca.client.revoke(&cert.serial, Some(&keys)).await.unwrap();
    assert!(revoked.on_chain);
    assert!(c
        .verifier
        .is_revoked(signer.address(), serial_hash(&serial_bytes))
        .await
        .unwrap());
    assert!(
        ca.client
            .status(&cert.serial)
            .await
            .unwrap()
            .revoked_on_chain
    );
    assert_eq!(
        verify_node_cert(
            &c.verifier,
            &chain_der,
            &keys.binding(),
            None,
            false,
            unix_now()
        )
        .await,
        Err(VerifyError::Revoked)
    );
}

#[tokio::test]
async fn only_registered_operators_are_trusted() {
    let c = chain().await;

    // An operator never registered: its certificates are rejected and it cannot anchor.
    let (rogue, rogue_signer) = c.operator(false).await;
    let keys = NodeKeys::generate();
    let cert = rogue.client.request_certificate(&keys).await.unwrap();
    assert_eq!(
        verify_node_cert(
            &c.verifier,
            &cert.chain().unwrap(),
            &keys.binding(),
            None,
            false,
            unix_now()
        )
        .await,
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
    let serial = serial_hash(&hex::decode(&cert.serial).unwrap());
    assert!(!c
        .verifier
        .is_revoked(rogue_signer.address(), serial)
        .await
        .unwrap());
    // Once governance admits it, the next anchoring round records the pending revocation
    // and anchors its log (issued + revoked = 2 leaves).
    let hash = B256::from(rogue.svc.authority().ca_cert_hash());
    c.owner
        .register_operator(rogue_signer.address(), hash, &rogue.base)
        .await
        .unwrap();
    assert_eq!(rogue.svc.anchor_once().await.unwrap(), Some(2));
    assert!(c
        .verifier
        .is_revoked(rogue_signer.address(), serial)
        .await
        .unwrap());
    assert!(
        rogue
            .client
            .status(&cert.serial)
            .await
            .unwrap()
            .revoked_on_chain
    );
    assert_eq!(
        verify_node_cert(
            &c.verifier,
            &cert.chain().unwrap(),
            &keys.binding(),
            None,
            false,
            unix_now()
        )
        .await,
        Err(VerifyError::Revoked)
    );

    // A registered operator presenting a root other than the registered one is rejected.
    let (honest, signer) = c.operator(true).await;
    let rekeyed = Authority::create(signer.address(), unix_now()).unwrap();
    let other = start_ca_with(rekeyed, None).await;
    let cert = other.client.request_certificate(&keys).await.unwrap();
    assert_eq!(
        verify_node_cert(
            &c.verifier,
            &cert.chain().unwrap(),
            &keys.binding(),
            None,
            false,
            unix_now()
        )
        .await,
        Err(VerifyError::UnknownOperator(signer.address()))
    );

    // The registered root is accepted until governance removes the operator.
    let good = honest.client.request_certificate(&keys).await.unwrap();
    verify_node_cert(
        &c.verifier,
        &good.chain().unwrap(),
        &keys.binding(),
        None,
        false,
        unix_now(),
    )
    .await
    .unwrap();
    c.owner.remove_operator(signer.address()).await.unwrap();
    assert_eq!(
        verify_node_cert(
            &c.verifier,
            &good.chain().unwrap(),
            &keys.binding(),
            None,
            false,
            unix_now()
        )
        .await,
        Err(VerifyError::UnknownOperator(signer.address()))
    );
}
