//! The proof-of-possession inputs of a DeCA operator: the JSON bodies of
//! `POST /v1/challenge` (the claimed keys) and `POST /v1/issue` /
//! `/v1/renew` (the proofs), checked against a fixed challenge. The first
//! byte picks which body.
//!
//! Invariants: no panic; a claim the CA accepts re-encodes to the same
//! binding; proofs verify only if each one is the node's (the fuzzer has
//! no key, so a mutated proof that verifies is a forgery).
#![no_main]

use flowshield_ca::binding::b64_decode;
use flowshield_ca::pop::{verify_all, verify_libp2p};
use flowshield_ca::service::{ChallengeRequest, IssueRequest, RenewRequest};
use flowshield_fuzz::keys;
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

fn honest() -> &'static flowshield_ca::pop::Proofs {
    static PROOFS: OnceLock<flowshield_ca::pop::Proofs> = OnceLock::new();
    PROOFS.get_or_init(|| {
        keys::node_keys()
            .prove(&keys::challenge().0)
            .expect("proofs")
    })
}

fn same_signature(a: &str, b: &str) -> bool {
    b64_decode(a).is_some() && b64_decode(a) == b64_decode(b)
}

fuzz_target!(|data: &[u8]| {
    let Some((kind, body)) = data.split_first() else {
        return;
    };
    let (challenge, secret) = keys::challenge();
    match kind % 3 {
        0 => {
            let Ok(req) = serde_json::from_slice::<ChallengeRequest>(body) else {
                return;
            };
            let _ = req.purpose();
            if let Ok(binding) = req.binding() {
                let again = ChallengeRequest {
                    wg_pubkey: flowshield_ca::binding::b64(&binding.wg_pubkey),
                    peer_id: binding.peer_id.to_base58(),
                    chain_address: format!("{:#x}", binding.chain_address),
                    purpose: None,
                };
                assert_eq!(again.binding().ok(), Some(binding));
            }
        }
        1 => {
            let Ok(req) = serde_json::from_slice::<IssueRequest>(body) else {
                return;
            };
            let _ = b64_decode(&req.csr);
            if verify_all(&challenge, &secret, &req.proofs, keys::CA_NOW).is_ok() {
                assert!(
                    same_signature(&req.proofs.libp2p_sig, &honest().libp2p_sig),
                    "a libp2p signature that is not the node's verified"
                );
            }
        }
        _ => {
            let Ok(req) = serde_json::from_slice::<RenewRequest>(body) else {
                return;
            };
            if verify_libp2p(&challenge, &req.proofs, keys::CA_NOW).is_ok() {
                assert!(
                    same_signature(&req.proofs.libp2p_sig, &honest().libp2p_sig),
                    "a libp2p signature that is not the node's verified"
                );
            }
        }
    }
});
