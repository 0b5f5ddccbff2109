//! The fullnode client against stand-in fullnodes: raw TCP servers that
//! answer the way a real HTTP server may (chunked bodies split anywhere).

use super::*;
use crate::wire::api::MatchView;
use flowshield_proto::{Keypair, WgPublicKey};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

fn wanted() -> Wanted {
    Wanted {
        region: None,
        max_price_per_gib_wei: u128::MAX,
        exclude: HashSet::new(),
    }
}

fn fullnode_reason(error: DiscoveryError) -> String {
    match error {
        DiscoveryError::Fullnode { reason, .. } => reason,
        other => panic!("expected a fullnode error, got {other}"),
    }
}

#[tokio::test]
async fn unreachable_fullnodes_are_reported() {
    let err = fullnode_reason(
        from_fullnode("http://127.0.0.1:1", &wanted())
            .await
            .unwrap_err(),
    );
    assert!(err.starts_with("connect"), "{err}");
    let err = fullnode_reason(from_fullnode("https://x", &wanted()).await.unwrap_err());
    assert!(err.contains("http://"), "{err}");
}

fn signed_offer() -> (Offer, String) {
    let key = Keypair::generate_ed25519();
    let heartbeat = Heartbeat {
        offer: Offer {
            provider_peer_id: key.public().to_peer_id(),
            chain_address: "0x0000000000000000000000000000000000000001"
                .parse()
                .unwrap(),
            wg_public_key: WgPublicKey([3; 32]),
            endpoint: "192.0.2.1:51820".parse().unwrap(),
            region: Region::new("eu-west").unwrap(),
            price_per_gib_wei: 1_000,
            price_per_hour_wei: 1,
            capacity_mbps: 100,
            max_clients: 4,
            tunnel_subnet: None,
        },
        seq: 1,
        timestamp_ms: crate::unix_ms(),
    };
    let signed = SignedMessage::sign(&heartbeat, &key).unwrap();
    let text = String::from_utf8(signed.to_bytes()).unwrap();
    (heartbeat.offer, text)
}

/// Splits `body` into chunks of 1, 2 and 3 bytes in turn, so that chunk
/// boundaries fall inside every multi-byte character.
fn chunked(body: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut rest = body;
    for size in [1usize, 2, 3].into_iter().cycle() {
        if rest.is_empty() {
            break;
        }
        let (chunk, tail) = rest.split_at(size.min(rest.len()));
        let mut frame = format!("{:x}\r\n", chunk.len()).into_bytes();
        frame.extend_from_slice(chunk);
        frame.extend_from_slice(b"\r\n");
        out.push(frame);
        rest = tail;
    }
    out.push(b"0\r\n\r\n".to_vec());
    out
}

#[tokio::test]
async fn chunked_answers_split_inside_characters_are_read_whole() {
    let (offer, signed_heartbeat) = signed_offer();
    let mut view = serde_json::to_value(MatchView {
        offer: offer.clone(),
        score: 0.5,
        reputation: 0.5,
        signed_heartbeat,
    })
    .unwrap();
    // Fields a client does not know are ignored, whatever their characters.
    view["note"] = "é € 😀 Zürich 東京".into();
    let body = serde_json::to_vec(&view).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        let (stream, _) = listener.accept().await.unwrap();
        let (read, mut write) = stream.into_split();
        let mut reader = BufReader::new(read);
        let mut request_line = String::new();
        reader.read_line(&mut request_line).await.unwrap();
        let mut length = 0usize;
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).await.unwrap();
            if line == "\r\n" {
                break;
            }
            if let Some((name, value)) = line.split_once(':') {
                if name.eq_ignore_ascii_case("content-length") {
                    length = value.trim().parse().unwrap();
                }
            }
        }
        let mut sent = vec![0; length];
        reader.read_exact(&mut sent).await.unwrap();
        write
            .write_all(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        for frame in chunked(&body) {
            write.write_all(&frame).await.unwrap();
            write.flush().await.unwrap();
        }
        let sent: MatchBody = serde_json::from_slice(&sent).unwrap();
        (request_line, sent)
    });
    let found = from_fullnode(&format!("http://{addr}"), &wanted())
        .await
        .unwrap();
    assert_eq!(found, offer);
    let (request_line, sent) = server.await.unwrap();
    assert!(
        request_line.starts_with("POST /v1/match "),
        "{request_line}"
    );
    assert_eq!(sent.max_price_per_gib_wei, u128::MAX.to_string());
    assert_eq!(sent.region, None);
}
