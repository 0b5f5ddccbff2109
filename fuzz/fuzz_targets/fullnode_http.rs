//! The fullnode's HTTP request data, through the same functions its axum
//! handlers call: `POST /v1/match` bodies, `GET /v1/providers` query
//! strings, `POST /v1/reports` bodies (a verifier's signed report, then
//! counted into a reputation book) and the `{address}` of
//! `GET /v1/providers/{address}/reputation`. The first byte picks which.
//!
//! Invariants: no panic; every refusal is a 4xx naming a field; what is
//! accepted is within the documented ranges (limit 1 to 1000, reputations
//! 0 to 1).
#![no_main]

use flowshield_fuzz::keys;
use flowshield_market::fullnode::api::{
    parse_match_body, parse_provider_query, reputation_of, ApiError, MAX_LIST_LIMIT,
};
use flowshield_market::fullnode::reputation::ReputationBook;
use flowshield_proto::{verify_report, ChainAddress};
use libfuzzer_sys::fuzz_target;
use std::collections::HashMap;

fn refused(e: &ApiError) {
    assert!(e.status.is_client_error(), "{} for client input", e.status);
    assert!(e.field.is_some(), "refusal names no field: {}", e.error);
}

fn reputation(book: &ReputationBook, address: &str) {
    match reputation_of(book, address) {
        Ok(view) => assert!(
            (0.0..=1.0).contains(&view.reputation),
            "reputation {} for {address}",
            view.reputation
        ),
        Err(e) => refused(&e),
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((kind, body)) = data.split_first() else {
        return;
    };
    match kind % 4 {
        0 => match parse_match_body(body) {
            Ok(m) => assert!((0.0..=1.0).contains(&m.min_reputation)),
            Err(e) => refused(&e),
        },
        1 => {
            let Ok(params) = serde_urlencoded::from_bytes::<HashMap<String, String>>(body) else {
                return;
            };
            match parse_provider_query(&params) {
                Ok(q) => assert!((1..=MAX_LIST_LIMIT).contains(&q.limit)),
                Err(e) => refused(&e),
            }
        }
        2 => {
            let Ok(checked) = verify_report(body, &keys::domain()) else {
                return;
            };
            let provider = ChainAddress(checked.report.provider.into_array());
            let mut book = ReputationBook::with_cap(4, None);
            book.record(provider, checked.report.period, checked.report.passed);
            book.record(
                provider,
                checked.report.period.wrapping_add(1),
                !checked.report.passed,
            );
            reputation(&book, &format!("{:#x}", checked.report.provider));
        }
        _ => {
            let Ok(address) = std::str::from_utf8(body) else {
                return;
            };
            let mut book = ReputationBook::with_cap(4, None);
            if let Ok(provider) = address.parse::<ChainAddress>() {
                book.record(provider, u64::MAX, true);
                book.record(provider, 0, false);
            }
            reputation(&book, address);
        }
    }
});
