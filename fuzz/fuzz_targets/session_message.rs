//! Order-session messages as a provider and a client receive them over
//! libp2p request-response: the JSON codec's `MarketRequest` /
//! `MarketResponse`, then the raw session message the receiver decodes
//! itself, then the provider's voucher ledger. Input: NUL-separated
//! chunks, each `[kind][json]` (`q` session request, `r` session response,
//! `m` market request, else market response).
//!
//! Invariants: no panic; a decoded message re-encodes to one that decodes
//! equal; the ledger's amount owed never falls, never passes the escrow,
//! and grows by exactly what `offer` reports.
#![no_main]

use flowshield_chain::alloy::primitives::U256;
use flowshield_chain::voucher::VoucherLedger;
use flowshield_fuzz::keys;
use flowshield_market::wire::raw::{RawJson, RawSessionRequest, RawSessionResponse};
use flowshield_market::wire::request::{MarketRequest, MarketResponse};
use flowshield_market::wire::session::SessionRequest;
use libfuzzer_sys::fuzz_target;

fn session_request(json: &str, ledger: &mut VoucherLedger) {
    let Ok(raw) = RawSessionRequest::from_json(json) else {
        return;
    };
    let Ok(request) = raw.decode() else {
        return;
    };
    let again = RawJson::encode(&request)
        .and_then(|raw| raw.decode())
        .unwrap_or_else(|e| panic!("re-encoded request does not decode: {e}"));
    assert_eq!(again, request);
    match request {
        SessionRequest::Connect(connect) => {
            let _ = connect.recover(&keys::provider_keypair().public().to_peer_id());
        }
        SessionRequest::Voucher(voucher) => {
            let before = ledger.owed();
            let outcome = ledger.offer(voucher.to_signed());
            let after = ledger.owed();
            assert!(after >= before, "owed fell from {before} to {after}");
            assert!(
                after <= U256::from(keys::ESCROW_WEI),
                "owed {after} passed the escrow"
            );
            match outcome {
                Ok(increase) => assert_eq!(after - before, increase),
                Err(_) => assert_eq!(after, before, "a refused voucher changed the ledger"),
            }
        }
        SessionRequest::Disconnect { .. } => {}
    }
}

fn session_response(json: &str) {
    let Ok(raw) = RawSessionResponse::from_json(json) else {
        return;
    };
    let Ok(response) = raw.decode() else {
        return;
    };
    let again = RawJson::encode(&response)
        .and_then(|raw| raw.decode())
        .unwrap_or_else(|e| panic!("re-encoded response does not decode: {e}"));
    assert_eq!(again, response);
}

fuzz_target!(|data: &[u8]| {
    let mut ledger = VoucherLedger::new(
        keys::domain(),
        keys::order_id(),
        keys::client_signer().address(),
        U256::from(keys::ESCROW_WEI),
    );
    for chunk in data.split(|b| *b == 0) {
        let Some((kind, body)) = chunk.split_first() else {
            continue;
        };
        let Ok(json) = std::str::from_utf8(body) else {
            continue;
        };
        match kind {
            b'q' => session_request(json, &mut ledger),
            b'r' => session_response(json),
            b'm' => {
                if let Ok(MarketRequest::Session(raw)) = serde_json::from_str(json) {
                    session_request(raw.json(), &mut ledger);
                }
            }
            _ => {
                if let Ok(MarketResponse::Session(raw)) = serde_json::from_str(json) {
                    session_response(raw.json());
                }
            }
        }
    }
});
