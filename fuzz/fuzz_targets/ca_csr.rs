//! What a DeCA operator and the market parse from DER: the CSR of
//! `POST /v1/issue` (checked against a fixed node binding, then issued),
//! a certificate chain `[leaf, root]` as a provider announces it, and the
//! binding extension. The first byte picks which; for a chain, the next
//! two bytes say where the leaf ends.
//!
//! Invariants: no panic; a CSR the CA accepts carries the node's libp2p
//! key, and the certificate issued from it passes the market's chain
//! inspection with exactly the binding the CA vouched for.
#![no_main]

use flowshield_ca::authority::Authority;
use flowshield_ca::binding::NodeBinding;
use flowshield_ca::verify::inspect_chain;
use flowshield_fuzz::keys;
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

fn authority() -> &'static (Authority, NodeBinding) {
    static CA: OnceLock<(Authority, NodeBinding)> = OnceLock::new();
    CA.get_or_init(|| {
        let ca = Authority::create(keys::market(), keys::CA_NOW - 60).expect("CA key");
        (ca, keys::node_keys().binding())
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((kind, rest)) = data.split_first() else {
        return;
    };
    match kind % 3 {
        0 => {
            let (ca, binding) = authority();
            let Ok(csr) = Authority::check_csr(rest, binding) else {
                return;
            };
            let issued = ca
                .issue(csr, binding, keys::CA_NOW, 3600)
                .unwrap_or_else(|e| panic!("an accepted CSR failed to issue: {e}"));
            let chain = [issued.der, ca.cert_der().to_vec()];
            let facts = inspect_chain(&chain, keys::CA_NOW)
                .unwrap_or_else(|e| panic!("the CA's own certificate fails inspection: {e}"));
            assert_eq!(&facts.binding, binding, "issued binding differs");
        }
        1 => {
            let [a, b, der @ ..] = rest else { return };
            let split = usize::from(u16::from_le_bytes([*a, *b])).min(der.len());
            let (leaf, root) = der.split_at(split);
            let _ = inspect_chain(&[leaf.to_vec(), root.to_vec()], keys::CA_NOW);
        }
        _ => {
            if let Ok(binding) = NodeBinding::from_der(rest) {
                let again = NodeBinding::from_der(&binding.to_der())
                    .unwrap_or_else(|e| panic!("re-encoded binding does not decode: {e}"));
                assert_eq!(again, binding);
            }
        }
    }
});
