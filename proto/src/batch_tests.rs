//! Batch verification gives each message the answer it gets alone,
//! including for signatures an attacker shapes to split the two.

use super::*;
use crate::offer::tests::sample_offer;
use crate::signed::tests::forge;
use crate::Heartbeat;
use curve25519_dalek::constants::ED25519_BASEPOINT_POINT as B;
use curve25519_dalek::edwards::CompressedEdwardsY;
use curve25519_dalek::scalar::Scalar;
use curve25519_dalek::traits::IsIdentity;
use libp2p_identity::Keypair;
use sha2::{Digest, Sha512};

fn heartbeat(keypair: &Keypair, seq: u64) -> Heartbeat {
    Heartbeat {
        offer: sample_offer(keypair),
        seq,
        timestamp_ms: 1_700_000_000_000,
    }
}

fn signed(keypair: &Keypair, seq: u64) -> SignedMessage<Heartbeat> {
    SignedMessage::sign(&heartbeat(keypair, seq), keypair).unwrap()
}

/// Each message's answer alone, with a fresh cache.
fn alone(messages: &[&SignedMessage<Heartbeat>]) -> Vec<Result<Heartbeat, ProtoError>> {
    messages.iter().map(|m| m.verify()).collect()
}

#[test]
fn a_batch_of_genuine_heartbeats_verifies_and_keeps_their_keys() {
    let keypairs: Vec<Keypair> = (0..40).map(|_| Keypair::generate_ed25519()).collect();
    let messages: Vec<_> = keypairs.iter().map(|k| signed(k, 1)).collect();
    let refs: Vec<_> = messages.iter().collect();
    let mut keys = SignerKeys::new(100);
    let results = verify_batch(&refs, &mut keys);
    assert_eq!(results, alone(&refs));
    assert!(results.iter().all(Result::is_ok));
    assert_eq!(keys.len(), 40);
    // Again from the cache: same answers, nothing added.
    assert_eq!(verify_batch(&refs, &mut keys), results);
    assert_eq!(keys.len(), 40);
    assert!(verify_batch::<Heartbeat>(&[], &mut keys).is_empty());
}

#[test]
fn each_bad_message_is_refused_for_its_own_reason_and_spoils_no_other() {
    let provider = Keypair::generate_ed25519();
    let attacker = Keypair::generate_ed25519();
    let honest: Vec<_> = (0..6)
        .map(|_| signed(&Keypair::generate_ed25519(), 7))
        .collect();
    let genuine = signed(&provider, 2);
    // The provider's key, the attacker's signature.
    let forged = forge(genuine.payload().to_vec(), &provider, &attacker);
    // The attacker's key and signature over the provider's heartbeat.
    let impostor = forge(genuine.payload().to_vec(), &attacker, &attacker);
    let short = SignedMessage::<Heartbeat>::from_parts(
        genuine.payload().to_vec(),
        genuine.signer().to_vec(),
        genuine.signature()[..63].to_vec(),
    );
    let bad_key = SignedMessage::<Heartbeat>::from_parts(
        genuine.payload().to_vec(),
        vec![8, 1, 18, 32, 1, 2, 3],
        genuine.signature().to_vec(),
    );
    let mut bad_s = genuine.signature().to_vec();
    bad_s[63] |= 0xf0; // s >= the group order: not canonical
    let non_canonical = SignedMessage::<Heartbeat>::from_parts(
        genuine.payload().to_vec(),
        genuine.signer().to_vec(),
        bad_s,
    );
    let mut refs: Vec<&SignedMessage<Heartbeat>> = honest.iter().collect();
    refs.insert(1, &forged);
    refs.insert(3, &impostor);
    refs.insert(4, &short);
    refs.push(&bad_key);
    refs.push(&non_canonical);
    refs.push(&genuine);

    let mut keys = SignerKeys::new(100);
    let results = verify_batch(&refs, &mut keys);
    assert_eq!(results, alone(&refs));
    assert_eq!(results[1], Err(ProtoError::Forged));
    assert!(matches!(results[3], Err(ProtoError::WrongSigner { .. })));
    assert_eq!(results[4], Err(ProtoError::Forged));
    assert!(matches!(
        results[refs.len() - 3],
        Err(ProtoError::Invalid {
            field: "signer",
            ..
        })
    ));
    assert_eq!(results[refs.len() - 2], Err(ProtoError::Forged));
    let ok = results.iter().filter(|r| r.is_ok()).count();
    assert_eq!(ok, honest.len() + 1);
    // Only keys whose messages verified are kept: the honest six and the
    // provider (through its genuine heartbeat), not the impostor's.
    assert_eq!(keys.len(), honest.len() + 1);
}

/// A signature whose `R` carries a point of order 2: made by the key's
/// owner (it needs the secret scalar), valid under the cofactored
/// equation, invalid under the cofactorless one.
fn torsioned_signature(seed: [u8; 32], message: &[u8]) -> ([u8; 64], Keypair) {
    let keypair = Keypair::ed25519_from_bytes(seed).unwrap();
    let hashed = Sha512::digest(seed);
    let mut a_bytes = [0u8; 32];
    a_bytes.copy_from_slice(&hashed[..32]);
    a_bytes[0] &= 248;
    a_bytes[31] &= 127;
    a_bytes[31] |= 64;
    let a = Scalar::from_bytes_mod_order(a_bytes);
    let public = (a * B).compress();
    let libp2p_public = keypair.public().try_into_ed25519().unwrap().to_bytes();
    assert_eq!(
        public.to_bytes(),
        libp2p_public,
        "the secret scalar is right"
    );
    // (0, -1): the point of order 2.
    let mut minus_one = [0xffu8; 32];
    minus_one[0] = 0xec;
    minus_one[31] = 0x7f;
    let torsion = CompressedEdwardsY(minus_one).decompress().unwrap();
    assert!(torsion.is_small_order() && !torsion.is_identity());
    let r = Scalar::from_hash(Sha512::new().chain_update(b"nonce").chain_update(message));
    let big_r = (r * B + torsion).compress();
    let k = Scalar::from_hash(
        Sha512::new()
            .chain_update(big_r.as_bytes())
            .chain_update(public.as_bytes())
            .chain_update(message),
    );
    let s = r + k * a;
    let mut signature = [0u8; 64];
    signature[..32].copy_from_slice(big_r.as_bytes());
    signature[32..].copy_from_slice(s.as_bytes());
    (signature, keypair)
}

/// A heartbeat of the key from `seed`, signed with a torsioned `R`.
fn torsioned_heartbeat(seed: [u8; 32], seq: u64) -> (SignedMessage<Heartbeat>, Keypair) {
    let keypair = Keypair::ed25519_from_bytes(seed).unwrap();
    let payload = SignedMessage::<Heartbeat>::encode_payload(&heartbeat(&keypair, seq)).unwrap();
    let input = SignedMessage::<Heartbeat>::signing_input(&payload);
    let (signature, keypair) = torsioned_signature(seed, &input);
    let message = SignedMessage::<Heartbeat>::from_parts(
        payload,
        keypair.public().encode_protobuf(),
        signature.to_vec(),
    );
    (message, keypair)
}

#[test]
fn a_torsioned_signature_gets_the_same_answer_alone_and_in_any_batch() {
    let (message, keypair) = torsioned_heartbeat([7u8; 32], 3);
    let input = SignedMessage::<Heartbeat>::signing_input(message.payload());
    // The cofactorless check (libp2p's) refuses it; that is the check a
    // batch cannot reproduce, which is why both follow ZIP 215.
    assert!(!keypair.public().verify(&input, message.signature()));
    let alone = message.verify();
    assert!(alone.is_ok(), "{alone:?}");
    // In many batches (each draws new random weights), alone and mixed.
    let others: Vec<_> = (0..8)
        .map(|_| signed(&Keypair::generate_ed25519(), 1))
        .collect();
    for round in 0..32 {
        let mut refs: Vec<_> = others.iter().collect();
        refs.insert(round % (others.len() + 1), &message);
        let mut keys = SignerKeys::new(16);
        let results = verify_batch(&refs, &mut keys);
        assert!(
            results.iter().all(Result::is_ok),
            "round {round}: {results:?}"
        );
        assert_eq!(verify_batch(&[&message], &mut keys), vec![alone.clone()]);
    }
}

/// The batch's terms for `messages` (each Ed25519, with a batchable
/// signature).
fn batch_of(messages: &[&SignedMessage<Heartbeat>]) -> Vec<Terms> {
    messages
        .iter()
        .map(|m| {
            let signer = Signer::decode(m.signer()).unwrap();
            let input = SignedMessage::<Heartbeat>::signing_input(m.payload());
            let signature: [u8; 64] = m.signature().try_into().unwrap();
            terms(signer.ed25519.as_ref().unwrap(), &signature, &input).unwrap()
        })
        .collect()
}

/// The batch equation itself (not the one-by-one fallback, which would
/// give right answers on its own): it holds for genuine and torsioned
/// signatures in every draw of weights, and fails with one forgery in.
#[test]
fn the_batch_equation_holds_exactly_for_valid_signatures() {
    let (torsioned, _) = torsioned_heartbeat([9u8; 32], 5);
    let keypairs: Vec<_> = (0..16).map(|_| Keypair::generate_ed25519()).collect();
    let genuine: Vec<_> = keypairs.iter().map(|k| signed(k, 1)).collect();
    // The first provider's heartbeat and key, the attacker's signature.
    let attacker = Keypair::generate_ed25519();
    let forged = forge(genuine[0].payload().to_vec(), &keypairs[0], &attacker);
    for _ in 0..32 {
        let mut refs: Vec<_> = genuine.iter().collect();
        refs.push(&torsioned);
        assert!(batch_holds(&batch_of(&refs)));
        refs.push(&forged);
        assert!(!batch_holds(&batch_of(&refs)));
    }
    assert!(batch_holds(&batch_of(&[&torsioned])));
    assert!(!batch_holds(&batch_of(&[&forged])));
}
