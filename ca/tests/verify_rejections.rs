//! Each reason a certificate is rejected, checked with the sans-IO verifier on certificates
//! issued through the real HTTP API.

mod common;

use alloy::primitives::{Address, B256};
use common::{registered, start_ca};
use flowshield_ca::authority::Authority;
use flowshield_ca::node::NodeKeys;
use flowshield_ca::unix_now;
use flowshield_ca::verify::{check_facts, inspect_chain, InclusionEvidence, VerifyError};
use flowshield_ca::BindingField;

#[tokio::test]
async fn forged_certificate_rejected() {
    let operator = Address::repeat_byte(0x11);
    let ca = start_ca(operator, None).await;
    let keys = NodeKeys::generate();
    let real = ca.client.request_certificate(&keys).await.unwrap();
    let real_chain = real.chain().unwrap();

    // An impostor CA with the same name and operator signs a leaf and presents it under the
    // real root.
    let impostor = Authority::create(operator, unix_now()).unwrap();
    let csr = Authority::check_csr(&keys.csr_der().unwrap(), &keys.binding()).unwrap();
    let forged = impostor
        .issue(csr, &keys.binding(), unix_now(), 3600)
        .unwrap();
    let chain = vec![forged.der.clone(), real_chain[1].clone()];
    assert!(matches!(
        inspect_chain(&chain, unix_now()),
        Err(VerifyError::BadSignature(_))
    ));

    // A tampered byte in a genuine leaf breaks its signature as well.
    let mut tampered = real_chain.clone();
    let n = tampered[0].len();
    tampered[0][n - 80] ^= 0x01;
    assert!(inspect_chain(&tampered, unix_now()).is_err());

    // The impostor's own root is self-consistent but not the registered one.
    let own = vec![forged.der, impostor.cert_der().to_vec()];
    let facts = inspect_chain(&own, unix_now()).unwrap();
    assert_eq!(
        check_facts(
            &facts,
            &keys.binding(),
            &registered(ca.svc.authority()),
            None,
            false
        ),
        Err(VerifyError::UnknownOperator(operator))
    );
    // Malformed chains are named as such.
    assert!(matches!(
        inspect_chain(&real_chain[..1], unix_now()),
        Err(VerifyError::Malformed(_))
    ));
}

#[tokio::test]
async fn wrong_binding_rejected_per_field() {
    let ca = start_ca(Address::repeat_byte(0x12), None).await;
    let keys = NodeKeys::generate();
    let issued = ca.client.request_certificate(&keys).await.unwrap();
    let facts = inspect_chain(&issued.chain().unwrap(), unix_now()).unwrap();
    assert_eq!(
        facts.subject,
        format!("CN={}", keys.binding().peer_id.to_base58())
    );
    let op = registered(ca.svc.authority());
    let other = NodeKeys::generate().binding();

    let mut wrong = keys.binding();
    wrong.wg_pubkey = other.wg_pubkey;
    let mut wrong_peer = keys.binding();
    wrong_peer.peer_id = other.peer_id;
    let mut wrong_eth = keys.binding();
    wrong_eth.chain_address = other.chain_address;
    for (expected, field) in [
        (wrong, BindingField::WgPubkey),
        (wrong_peer, BindingField::PeerId),
        (wrong_eth, BindingField::ChainAddress),
    ] {
        assert_eq!(
            check_facts(&facts, &expected, &op, None, false),
            Err(VerifyError::BindingMismatch { field })
        );
    }
    assert_eq!(
        check_facts(&facts, &keys.binding(), &op, None, false),
        Ok(())
    );
}

#[tokio::test]
async fn expired_and_not_yet_valid_rejected() {
    let ca = start_ca(Address::repeat_byte(0x13), None).await;
    let issued = ca
        .client
        .request_certificate(&NodeKeys::generate())
        .await
        .unwrap();
    let chain = issued.chain().unwrap();
    assert_eq!(
        inspect_chain(&chain, issued.not_after + 1),
        Err(VerifyError::Expired {
            not_after: issued.not_after,
            now: issued.not_after + 1
        })
    );
    assert!(matches!(
        inspect_chain(&chain, issued.not_before - 1),
        Err(VerifyError::NotYetValid { .. })
    ));
    assert!(inspect_chain(&chain, issued.not_after).is_ok());
}

#[tokio::test]
async fn revoked_and_unknown_operator_rejected() {
    let ca = start_ca(Address::repeat_byte(0x14), None).await;
    let keys = NodeKeys::generate();
    let issued = ca.client.request_certificate(&keys).await.unwrap();
    let facts = inspect_chain(&issued.chain().unwrap(), unix_now()).unwrap();

    let mut op = registered(ca.svc.authority());
    op.revoked = true;
    assert_eq!(
        check_facts(&facts, &keys.binding(), &op, None, false),
        Err(VerifyError::Revoked)
    );
    let mut op = registered(ca.svc.authority());
    op.registered = false;
    assert_eq!(
        check_facts(&facts, &keys.binding(), &op, None, false),
        Err(VerifyError::UnknownOperator(ca.svc.authority().operator()))
    );
    let mut op = registered(ca.svc.authority());
    op.ca_cert_hash = B256::repeat_byte(9);
    assert!(matches!(
        check_facts(&facts, &keys.binding(), &op, None, false),
        Err(VerifyError::UnknownOperator(_))
    ));
}

#[tokio::test]
async fn certificate_not_in_log_rejected() {
    let ca = start_ca(Address::repeat_byte(0x15), None).await;
    let keys = NodeKeys::generate();
    let logged = ca.client.request_certificate(&keys).await.unwrap();

    // Signed by the genuine operator key but never logged (e.g. a rogue or compromised signer).
    let csr = Authority::check_csr(&keys.csr_der().unwrap(), &keys.binding()).unwrap();
    let unlogged = ca
        .svc
        .authority()
        .issue(csr, &keys.binding(), unix_now(), 3600)
        .unwrap();
    let chain = vec![unlogged.der, ca.svc.authority().cert_der().to_vec()];
    let facts = inspect_chain(&chain, unix_now()).unwrap();

    let root = ca.client.log_root().await.unwrap();
    let mut op = registered(ca.svc.authority());
    op.anchored_root = B256::from_slice(&hex::decode(&root.root).unwrap());
    // Borrow the logged certificate's proof: it must not prove the unlogged one.
    let borrowed = ca.client.inclusion("0", None).await.unwrap().evidence();
    assert!(matches!(
        check_facts(&facts, &keys.binding(), &op, Some(&borrowed), true),
        Err(VerifyError::NotInLog(_))
    ));
    assert!(matches!(
        check_facts(&facts, &keys.binding(), &op, None, true),
        Err(VerifyError::NotInLog(_))
    ));
    let garbage = InclusionEvidence {
        proof: vec!["zz".into()],
        ..borrowed.clone()
    };
    assert!(matches!(
        check_facts(&facts, &keys.binding(), &op, Some(&garbage), true),
        Err(VerifyError::NotInLog(_))
    ));

    // The logged one passes with its proof, and fails when no root is anchored.
    let logged_facts = inspect_chain(&logged.chain().unwrap(), unix_now()).unwrap();
    assert_eq!(
        check_facts(&logged_facts, &keys.binding(), &op, Some(&borrowed), true),
        Ok(())
    );
    op.anchored_root = B256::ZERO;
    assert!(matches!(
        check_facts(&logged_facts, &keys.binding(), &op, Some(&borrowed), true),
        Err(VerifyError::NotInLog(_))
    ));
}
