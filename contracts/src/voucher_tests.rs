use super::*;
use alloy::primitives::{address, keccak256};

const MARKET: Address = address!("5FbDB2315678afecb367f032d93F642f64180aa3");

fn key(n: u8) -> PrivateKeySigner {
    PrivateKeySigner::from_bytes(&B256::repeat_byte(n)).expect("valid key")
}

fn domain() -> Eip712Domain {
    market_domain(31337, MARKET)
}

/// Recompute the EIP-712 digest by hand (independent of the sol! macro).
fn manual_voucher_digest(order_id: U256, amount: U256) -> B256 {
    let domain_type = keccak256(
        "EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)",
    );
    let mut buf = Vec::new();
    buf.extend_from_slice(domain_type.as_slice());
    buf.extend_from_slice(keccak256("FlowShield").as_slice());
    buf.extend_from_slice(keccak256("1").as_slice());
    buf.extend_from_slice(&U256::from(31337u64).to_be_bytes::<32>());
    buf.extend_from_slice(B256::left_padding_from(MARKET.as_slice()).as_slice());
    let separator = keccak256(&buf);
    let mut s = Vec::new();
    s.extend_from_slice(keccak256("Voucher(uint256 orderId,uint256 cumulativeAmount)").as_slice());
    s.extend_from_slice(&order_id.to_be_bytes::<32>());
    s.extend_from_slice(&amount.to_be_bytes::<32>());
    let struct_hash = keccak256(&s);
    let mut m = vec![0x19, 0x01];
    m.extend_from_slice(separator.as_slice());
    m.extend_from_slice(struct_hash.as_slice());
    keccak256(&m)
}

#[test]
fn digest_matches_hand_computed_eip712() {
    let (id, amt) = (U256::from(7u64), U256::from(123_456_789u64));
    assert_eq!(
        voucher_digest(&domain(), id, amt),
        manual_voucher_digest(id, amt)
    );
}

#[test]
fn digest_depends_on_every_field() {
    let d = voucher_digest(&domain(), U256::from(1u64), U256::from(2u64));
    assert_ne!(
        d,
        voucher_digest(&domain(), U256::from(2u64), U256::from(2u64))
    );
    assert_ne!(
        d,
        voucher_digest(&domain(), U256::from(1u64), U256::from(3u64))
    );
    let other_chain = market_domain(1, MARKET);
    assert_ne!(
        d,
        voucher_digest(&other_chain, U256::from(1u64), U256::from(2u64))
    );
    let other_contract = market_domain(31337, Address::repeat_byte(1));
    assert_ne!(
        d,
        voucher_digest(&other_contract, U256::from(1u64), U256::from(2u64))
    );
}

#[test]
fn sign_and_verify_roundtrip() {
    let client = key(1);
    let v = sign_voucher(&client, &domain(), U256::from(1u64), U256::from(10u64)).expect("sign");
    assert_eq!(v.signature.len(), 65);
    assert!(matches!(v.signature[64], 27 | 28));
    verify_voucher(&domain(), &v, client.address()).expect("valid");
    assert!(verify_voucher(&domain(), &v, key(2).address()).is_err());
    // A voucher signed for another deployment does not verify here.
    let foreign = market_domain(31337, Address::repeat_byte(9));
    assert!(verify_voucher(&foreign, &v, client.address()).is_err());
}

#[test]
fn strict_signature_parsing() {
    let client = key(3);
    let digest = voucher_digest(&domain(), U256::from(1u64), U256::from(1u64));
    let sig = sign_digest(&client, &digest).expect("sign");
    assert_eq!(recover_signer(&digest, &sig).expect("ok"), client.address());

    // Malleable twin (n - s, flipped v) recovers the same key but must be rejected.
    let n = U256::from_be_slice(
        &alloy::primitives::hex::decode(
            "fffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141",
        )
        .expect("hex"),
    );
    let s = U256::from_be_slice(&sig[32..64]);
    let mut twin = sig.to_vec();
    twin[32..64].copy_from_slice(&(n - s).to_be_bytes::<32>());
    twin[64] = if sig[64] == 27 { 28 } else { 27 };
    assert!(recover_signer(&digest, &twin).is_err());

    let mut bad_v = sig.to_vec();
    bad_v[64] -= 27; // 0/1 form is not accepted by the contract either
    assert!(recover_signer(&digest, &bad_v).is_err());
    assert!(recover_signer(&digest, &sig[..64]).is_err());
    assert!(recover_signer(&digest, &[0u8; 65]).is_err());
}

#[test]
fn half_order_constant_is_n_over_two() {
    let n = U256::from_be_slice(
        &alloy::primitives::hex::decode(
            "fffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141",
        )
        .expect("hex"),
    );
    assert_eq!(SECP256K1N_HALF, n >> 1);
}

#[test]
fn report_digest_is_domain_bound() {
    let r = Report {
        provider: Address::repeat_byte(2),
        period: 5,
        passed: false,
        metricsHash: B256::repeat_byte(3),
    };
    let verifier = key(4);
    let sig = sign_report(&verifier, &domain(), &r).expect("sign");
    let digest = report_digest(&domain(), &r);
    assert_eq!(
        recover_signer(&digest, &sig).expect("ok"),
        verifier.address()
    );
    let flipped = Report { passed: true, ..r };
    assert_ne!(digest, report_digest(&domain(), &flipped));
}

#[test]
fn ledger_keeps_best_voucher_and_rejects_replays() {
    let client = key(5);
    let id = U256::from(3u64);
    let mut ledger = VoucherLedger::new(domain(), id, client.address(), U256::from(100u64));
    let v = |amt: u64| sign_voucher(&client, &domain(), id, U256::from(amt)).expect("sign");

    assert_eq!(ledger.to_redeem(), None);
    assert_eq!(ledger.offer(v(10)), Ok(U256::from(10u64)));
    assert_eq!(ledger.offer(v(25)), Ok(U256::from(15u64)));
    assert!(matches!(
        ledger.offer(v(25)),
        Err(VoucherError::NotIncreasing { .. })
    ));
    assert!(matches!(
        ledger.offer(v(20)),
        Err(VoucherError::NotIncreasing { .. })
    ));
    assert!(matches!(
        ledger.offer(v(101)),
        Err(VoucherError::ExceedsEscrow { .. })
    ));
    let other =
        sign_voucher(&client, &domain(), U256::from(4u64), U256::from(50u64)).expect("sign");
    assert!(matches!(
        ledger.offer(other),
        Err(VoucherError::WrongOrder { .. })
    ));
    let forged = sign_voucher(&key(6), &domain(), id, U256::from(50u64)).expect("sign");
    assert!(matches!(
        ledger.offer(forged),
        Err(VoucherError::BadSignature(_))
    ));
    assert_eq!(ledger.owed(), U256::from(25u64));

    assert_eq!(
        ledger.to_redeem().map(|v| v.cumulative_amount),
        Some(U256::from(25u64))
    );
    ledger.mark_redeemed(U256::from(25u64));
    assert_eq!(ledger.to_redeem(), None);
    ledger.set_escrow(U256::from(200u64));
    assert_eq!(ledger.offer(v(150)), Ok(U256::from(125u64)));
}
