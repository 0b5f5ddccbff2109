//! DecaRegistry against a real local node: operators, monotonic roots, revocations,
//! and every revert.

mod common;

use flowshield_chain::alloy::primitives::{Address, B256};
use flowshield_chain::{DecaRegistryClient, LocalChain};

fn h(byte: u8) -> B256 {
    B256::repeat_byte(byte)
}

#[tokio::test]
async fn deca_registry_full_behaviour() {
    let chain = LocalChain::start().await.expect("local chain");
    let dbg = format!("{chain:?}");
    for key in chain.dev_private_keys() {
        assert!(
            !dbg.contains(&key.to_string()[2..]),
            "Debug must not print private keys"
        );
    }
    let owner = chain.dev_signer(0).expect("dev 0");
    let op = chain.dev_signer(1).expect("dev 1");
    let stranger = chain.dev_signer(2).expect("dev 2");
    let op_addr = op.address();

    let gov = DecaRegistryClient::deploy(chain.provider_for(owner.clone()).expect("provider"))
        .await
        .expect("deploy");
    assert_eq!(gov.owner().await.expect("owner"), owner.address());
    let as_op = gov.with_provider(chain.provider_for(op).expect("provider"));
    let as_stranger = gov.with_provider(chain.provider_for(stranger.clone()).expect("provider"));

    // Not yet an operator: views are empty, writes revert.
    assert!(!gov.is_operator(op_addr).await.expect("view"));
    let e = assert_deca_revert!(as_op.anchor_root(1, h(1)).await, NotOperator);
    assert_eq!(e.account, op_addr);
    assert_deca_revert!(as_op.record_revocation(h(9)).await, NotOperator);

    // Only the owner registers; zero address rejected; double registration rejected.
    assert_deca_revert!(
        as_stranger
            .register_operator(op_addr, h(0xca), "https://ca.example")
            .await,
        OwnableUnauthorizedAccount
    );
    assert_deca_revert!(
        gov.register_operator(Address::ZERO, h(0xca), "x").await,
        ZeroAddress
    );
    let receipt = gov
        .register_operator(op_addr, h(0xca), "https://ca.example")
        .await
        .expect("register");
    assert_eq!(receipt.inner.logs().len(), 1, "OperatorRegistered emitted");
    assert!(gov.is_operator(op_addr).await.expect("view"));
    assert_eq!(
        gov.operator_ca_cert_hash(op_addr).await.expect("view"),
        h(0xca)
    );
    assert_eq!(
        gov.operator_url(op_addr).await.expect("view"),
        "https://ca.example"
    );
    assert_deca_revert!(
        gov.register_operator(op_addr, h(0xcb), "again").await,
        AlreadyOperator
    );

    // Roots: strictly growing tree size, zero root rejected, history readable.
    let empty = gov.latest_root(op_addr).await.expect("view");
    assert_eq!((empty.tree_size, empty.root), (0, B256::ZERO));
    assert_deca_revert!(as_op.anchor_root(0, h(1)).await, TreeSizeNotIncreasing);
    as_op.anchor_root(5, h(5)).await.expect("anchor 5");
    let latest = gov.latest_root(op_addr).await.expect("view");
    assert_eq!((latest.tree_size, latest.root), (5, h(5)));
    assert_eq!(
        latest.timestamp,
        chain.latest_timestamp().await.expect("ts")
    );
    let e = assert_deca_revert!(as_op.anchor_root(5, h(6)).await, TreeSizeNotIncreasing);
    assert_eq!((e.latest, e.given), (5, 5));
    assert_deca_revert!(as_op.anchor_root(4, h(4)).await, TreeSizeNotIncreasing);
    assert_deca_revert!(as_op.anchor_root(6, B256::ZERO).await, ZeroRoot);
    as_op.anchor_root(9, h(9)).await.expect("anchor 9");
    assert_eq!(gov.root_at(op_addr, 5).await.expect("view"), h(5));
    assert_eq!(gov.root_at(op_addr, 9).await.expect("view"), h(9));
    assert_eq!(gov.root_at(op_addr, 7).await.expect("view"), B256::ZERO);
    assert_eq!(gov.latest_root(op_addr).await.expect("view").tree_size, 9);

    // Revocations: recorded once per operator, idempotent re-record reverts.
    assert!(!gov.is_revoked(op_addr, h(0x51)).await.expect("view"));
    as_op.record_revocation(h(0x51)).await.expect("revoke");
    assert!(gov.is_revoked(op_addr, h(0x51)).await.expect("view"));
    assert!(!gov
        .is_revoked(stranger.address(), h(0x51))
        .await
        .expect("view"));
    assert_deca_revert!(as_op.record_revocation(h(0x51)).await, AlreadyRevoked);

    // Removal: owner only; removed operator can no longer write; history stays.
    assert_deca_revert!(
        as_stranger.remove_operator(op_addr).await,
        OwnableUnauthorizedAccount
    );
    gov.remove_operator(op_addr).await.expect("remove");
    assert!(!gov.is_operator(op_addr).await.expect("view"));
    assert_eq!(
        gov.operator_ca_cert_hash(op_addr).await.expect("view"),
        B256::ZERO
    );
    assert_deca_revert!(gov.remove_operator(op_addr).await, NotOperator);
    assert_deca_revert!(as_op.anchor_root(10, h(10)).await, NotOperator);
    assert_eq!(gov.root_at(op_addr, 9).await.expect("view"), h(9));
    assert!(gov.is_revoked(op_addr, h(0x51)).await.expect("view"));

    // Re-admitted operator keeps its log: tree size must still grow past 9.
    gov.register_operator(op_addr, h(0xcc), "https://ca2.example")
        .await
        .expect("re-register");
    assert_deca_revert!(as_op.anchor_root(9, h(1)).await, TreeSizeNotIncreasing);
    as_op.anchor_root(10, h(10)).await.expect("anchor 10");
}
