use super::*;
use crate::eip712::{market_domain, report_digest};
use k256::ecdsa::SigningKey;

const MARKET: Address = Address::repeat_byte(7);

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Metrics {
    handshake_ms: f64,
    loss_pct: f64,
}

fn key(n: u8) -> (SigningKey, Address) {
    let key = SigningKey::from_bytes(&[n; 32].into()).expect("valid key");
    let address = Address::from_public_key(key.verifying_key());
    (key, address)
}

fn sign(key: &SigningKey, domain: &Eip712Domain, report: &Report) -> Vec<u8> {
    sign_digest(key, &published_report_digest(domain, report))
}

fn sign_digest(key: &SigningKey, digest: &B256) -> Vec<u8> {
    let (sig, rid) = key
        .sign_prehash_recoverable(digest.as_slice())
        .expect("sign");
    let mut bytes = sig.to_bytes().to_vec();
    bytes.push(27 + rid.to_byte());
    bytes
}

fn document(n: u8, domain: &Eip712Domain, passed: bool) -> SignedReport<Metrics> {
    let (signer, address) = key(n);
    let metrics = Metrics {
        handshake_ms: 12.5,
        loss_pct: if passed { 0.0 } else { 40.0 },
    };
    let report = Report {
        provider: Address::repeat_byte(1),
        period: 9,
        passed,
        metricsHash: metrics_hash(&metrics),
    };
    let signature = sign(&signer, domain, &report);
    SignedReport::new(domain, address, &report, metrics, vec![], &signature)
}

#[test]
fn a_signed_document_verifies_and_keeps_its_wire_form() {
    let domain = market_domain(31337, MARKET);
    let signed = document(5, &domain, true);
    assert_eq!(signed.verify(&domain).expect("valid"), key(5).1);
    let checked = CheckedReport {
        report: signed.to_report().expect("parses"),
        verifier: key(5).1,
    };
    assert_eq!(signed.signature_bytes().expect("hex").len(), 65);
    let text = serde_json::to_string(&signed).expect("json");
    assert!(
        text.starts_with(&format!(
            r#"{{"verifier":"{:#x}","market":"{MARKET:#x}","chain_id":31337,"report":{{"provider":"{:#x}","period":9,"passed":true,"metrics_hash":"0x"#,
            key(5).1,
            Address::repeat_byte(1)
        )),
        "{text}"
    );
    assert!(
        text.contains(
            r#""metrics":{"handshake_ms":12.5,"loss_pct":0.0},"reasons":[],"signature":"0x"#
        ),
        "{text}"
    );
    let back: SignedReport<Metrics> = serde_json::from_str(&text).expect("parse");
    assert_eq!(back, signed);
    assert_eq!(verify_report(text.as_bytes(), &domain), Ok(checked));
}

fn refused(body: &str, domain: &Eip712Domain) -> InvalidReport {
    verify_report(body.as_bytes(), domain).expect_err(body)
}

#[test]
fn refusals_name_the_field() {
    let domain = market_domain(31337, MARKET);
    let good = serde_json::to_string(&document(5, &domain, true)).expect("json");
    let provider = format!("{:#x}", Address::repeat_byte(1));
    let mut bad_sig: serde_json::Value = serde_json::from_str(&good).expect("json");
    bad_sig["signature"] = serde_json::Value::String(format!("0x{}", "11".repeat(65)));
    let other = serde_json::to_string(&document(5, &market_domain(1, MARKET), true)).expect("json");
    let cases = [
        (bad_sig.to_string(), "signature"),
        (
            good.replace(r#""passed":true"#, r#""passed":false"#),
            "signature",
        ),
        (
            good.replace("\"loss_pct\":0.0", "\"loss_pct\":1.0"),
            "metrics_hash",
        ),
        (other, "chain_id"),
        (good.replace(r#""period":9,"#, ""), "period"),
        ("{not json".into(), "body"),
        (good.replace(&provider, "0x12"), "provider"),
        (
            good.replace(r#""chain_id":31337"#, r#""chain_id":"x""#),
            "chain_id",
        ),
        (
            format!("{:width$}", good, width = MAX_REPORT_BODY + 1),
            "body",
        ),
    ];
    for (body, field) in cases {
        assert_eq!(refused(&body, &domain).field, field, "{body}");
    }
    let wrong_market = market_domain(31337, Address::repeat_byte(8));
    assert_eq!(refused(&good, &wrong_market).field, "market");
}

#[test]
fn malleable_and_foreign_signatures_are_refused() {
    let domain = market_domain(31337, MARKET);
    let signed = document(5, &domain, true);
    let mut sig = signed.signature_bytes().expect("hex");
    // The high-s twin of a valid signature recovers the same key; the
    // contract refuses it, so must a fullnode.
    let n = alloy_primitives::U256::from_be_slice(
        &hex::decode("fffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141")
            .expect("hex"),
    );
    let s = alloy_primitives::U256::from_be_slice(&sig[32..64]);
    sig[32..64].copy_from_slice(&(n - s).to_be_bytes::<32>());
    sig[64] = if sig[64] == 27 { 28 } else { 27 };
    let mut twin = signed.clone();
    twin.signature = format!("0x{}", hex::encode(&sig));
    let err = twin.verify(&domain).expect_err("high s");
    assert_eq!(err.field, "signature");
    assert!(err.reason.contains("high s"), "{err}");

    let mut foreign = signed.clone();
    foreign.verifier = format!("{:#x}", key(6).1);
    let err = foreign.verify(&domain).expect_err("not the verifier");
    assert_eq!(err.field, "signature");
    assert!(err.reason.contains("not by the verifier"), "{err}");
}

/// A signature over the on-chain vote type (`Report`) is not a published report: a
/// verifier signs only `PublishedReport` for fullnodes, so a fullnode that took votes
/// would hint that verifiers hand out relayable votes.
#[test]
fn a_signed_on_chain_vote_is_not_a_published_report() {
    let domain = market_domain(31337, MARKET);
    let mut signed = document(5, &domain, true);
    let report = signed.to_report().expect("parses");
    let vote = sign_digest(&key(5).0, &report_digest(&domain, &report));
    signed.signature = format!("0x{}", hex::encode(&vote));
    let err = signed.verify(&domain).expect_err("a vote signature");
    assert_eq!(err.field, "signature");
    assert!(err.reason.contains("not by the verifier"), "{err}");
}
