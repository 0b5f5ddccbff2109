use super::*;
use crate::wire::session::{ConnectRequest, VoucherMessage};
use flowshield_chain::alloy::primitives::Bytes;
use flowshield_chain::alloy::signers::local::PrivateKeySigner;
use flowshield_proto::WgPublicKey;

fn requests() -> Vec<SessionRequest> {
    let signer = PrivateKeySigner::random();
    let provider = flowshield_proto::Keypair::generate_ed25519()
        .public()
        .to_peer_id();
    let connect =
        ConnectRequest::sign(&signer, U256::from(7), WgPublicKey([1; 32]), &provider, 42).unwrap();
    vec![
        SessionRequest::Connect(connect),
        SessionRequest::Voucher(VoucherMessage {
            order_id: U256::from(7),
            cumulative_wei: U256::from(1_000_000_000_000u64),
            signature: Bytes::from(vec![0xab; 65]),
        }),
        SessionRequest::Disconnect {
            order_id: U256::from(7),
        },
    ]
}

fn connected() -> ConnectedInfo {
    ConnectedInfo {
        order_id: U256::from(7),
        tunnel_address: "10.77.0.2/24".parse().unwrap(),
        provider_wg_public_key: WgPublicKey([9; 32]),
        endpoint: "10.250.0.11:51820".parse().unwrap(),
        allowed_ips: vec![
            "10.77.0.0/24".parse().unwrap(),
            "198.18.99.1/32".parse().unwrap(),
        ],
        persistent_keepalive: 25,
        provider_tunnel_ip: "10.77.0.1".parse().unwrap(),
    }
}

fn responses() -> Vec<SessionResponse> {
    vec![
        SessionResponse::Connected(connected()),
        SessionResponse::VoucherAccepted {
            order_id: U256::from(7),
            cumulative_wei: U256::from(100),
        },
        SessionResponse::Disconnected {
            order_id: U256::from(7),
            redeemed_wei: U256::from(100),
        },
        SessionResponse::Rejected {
            kind: RejectKind::Underpaid,
            error: "pay up".into(),
        },
    ]
}

/// `MarketRequest`/`MarketResponse`'s shape (externally tagged), raw and typed.
#[derive(Serialize, Deserialize)]
enum RawEnvelope<T> {
    Session(RawJson<T>),
}

#[derive(Serialize)]
enum TypedEnvelope<'a, T> {
    Session(&'a T),
}

#[test]
fn every_message_keeps_its_bytes_and_decodes_back() {
    for request in requests() {
        let raw = RawSessionRequest::encode(&request).unwrap();
        assert_eq!(raw.json(), serde_json::to_string(&request).unwrap());
        let wire = serde_json::to_vec(&RawEnvelope::Session(raw)).unwrap();
        assert_eq!(
            wire,
            serde_json::to_vec(&TypedEnvelope::Session(&request)).unwrap()
        );
        let RawEnvelope::Session(read) =
            serde_json::from_slice::<RawEnvelope<SessionRequest>>(&wire).unwrap();
        assert_eq!(read.decode().unwrap(), request);
    }
    for response in responses() {
        let raw = RawSessionResponse::encode(&response).unwrap();
        let wire = serde_json::to_vec(&RawEnvelope::Session(raw)).unwrap();
        assert_eq!(
            wire,
            serde_json::to_vec(&TypedEnvelope::Session(&response)).unwrap()
        );
        let RawEnvelope::Session(read) =
            serde_json::from_slice::<RawEnvelope<SessionResponse>>(&wire).unwrap();
        assert_eq!(read.decode().unwrap(), response);
        // The enum's own derive reads the same text.
        let typed: SessionResponse = serde_json::from_str(read.json()).unwrap();
        assert_eq!(typed, response);
    }
}

#[test]
fn typed_fields_keep_their_json_text() {
    let text = RawSessionResponse::encode(&SessionResponse::Connected(connected())).unwrap();
    let key = WgPublicKey([9; 32]).to_string();
    assert_eq!(
        text.json(),
        format!(
            r#"{{"type":"connected","order_id":"7","tunnel_address":"10.77.0.2/24","provider_wg_public_key":"{key}","endpoint":"10.250.0.11:51820","allowed_ips":["10.77.0.0/24","198.18.99.1/32"],"persistent_keepalive":25,"provider_tunnel_ip":"10.77.0.1"}}"#
        )
    );
    let accepted = SessionResponse::VoucherAccepted {
        order_id: U256::from(3),
        cumulative_wei: U256::from(10).pow(U256::from(20)),
    };
    assert_eq!(
        RawSessionResponse::encode(&accepted).unwrap().json(),
        r#"{"type":"voucher_accepted","order_id":"3","cumulative_wei":"100000000000000000000"}"#
    );
    let SessionRequest::Connect(connect) = &requests()[0] else {
        unreachable!("the first request is a Connect")
    };
    let value = serde_json::to_value(connect).unwrap();
    assert_eq!(value["order_id"], "7");
    assert_eq!(
        value["client_chain_address"],
        connect.client_chain_address.to_checksum(None)
    );
    let signature = value["signature"].as_str().unwrap();
    assert_eq!(signature.len(), 130, "65 bytes, hex, no 0x: {signature}");
    // A bare host in allowed_ips (an older provider's config) still reads.
    let bare = text.json().replace("198.18.99.1/32", "198.18.99.1");
    let read = RawSessionResponse::from_json(&bare)
        .unwrap()
        .decode()
        .unwrap();
    assert_eq!(read, SessionResponse::Connected(connected()));
}

fn request_error(json: &str) -> String {
    RawSessionRequest::from_json(json)
        .unwrap()
        .decode()
        .unwrap_err()
        .to_string()
}

#[test]
fn malformed_requests_are_refused_naming_the_field() {
    let err = request_error(r#"{"type":"disconnect","order_id":"twelve"}"#);
    assert!(
        err.starts_with("order_id: 'twelve' is not a 256-bit number"),
        "{err}"
    );
    let err = request_error(r#"{"type":"disconnect","order_id":12}"#);
    assert!(err.starts_with("order_id: invalid type"), "{err}");
    let err = request_error(r#"{"type":"disconnect"}"#);
    assert!(err.contains("missing field `order_id`"), "{err}");
    let err = request_error(
        r#"{"type":"voucher","order_id":"1","cumulative_wei":"lots","signature":"00"}"#,
    );
    assert!(err.starts_with("cumulative_wei: "), "{err}");
    let err =
        request_error(r#"{"type":"voucher","order_id":"1","cumulative_wei":"5","signature":"zz"}"#);
    assert!(err.starts_with("signature: not hex"), "{err}");
    let mut connect = serde_json::to_value(&requests()[0]).unwrap();
    connect["client_chain_address"] = "0xnope".into();
    let err = request_error(&connect.to_string());
    assert!(err.starts_with("client_chain_address: "), "{err}");
    let err = request_error(r#"{"type":"pay_me","order_id":"1"}"#);
    assert!(
        err.starts_with("type: unknown session message \"pay_me\""),
        "{err}"
    );
    let err = request_error(r#"{"order_id":"1"}"#);
    assert!(err.contains("missing field `type`"), "{err}");
    let err = request_error("5");
    assert!(err.starts_with("message: "), "{err}");
    assert!(err.contains("a session message"), "{err}");
    assert!(RawSessionRequest::from_json("{not json").is_err());
}

#[test]
fn malformed_connected_answers_are_refused_naming_the_field() {
    let good = serde_json::to_value(SessionResponse::Connected(connected())).unwrap();
    let error = |field: &str, value: serde_json::Value| {
        let mut evil = good.clone();
        evil[field] = value;
        RawSessionResponse::from_json(&evil.to_string())
            .unwrap()
            .decode()
            .unwrap_err()
            .to_string()
    };
    let err = error(
        "allowed_ips",
        serde_json::json!(["0.0.0.0/0\nPostUp = rm -rf /"]),
    );
    assert!(err.starts_with("allowed_ips: "), "{err}");
    assert!(!err.contains('\n'), "the peer's text is quoted: {err}");
    assert!(error("tunnel_address", "10.77.0.2/33".into()).starts_with("tunnel_address: "));
    assert!(error("endpoint", "x".into()).starts_with("endpoint: "));
    assert!(error("provider_tunnel_ip", "::1".into()).starts_with("provider_tunnel_ip: "));
}
