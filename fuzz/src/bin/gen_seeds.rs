//! Writes the committed seed corpora (`scripts/fuzz.sh seeds`). Each seed
//! is a small real example of what its target parses — sample configs
//! and UAPI requests, a handshake initiation captured from a device,
//! envelopes, vouchers, reports, CSRs and proofs signed with the fixed
//! keys of [`flowshield_fuzz::keys`]. Deterministic except where the
//! protocol itself is random (handshake ephemerals, certificate serials),
//! so rerunning it only rewrites those.
//!
//! It is built with the targets, instrumented and linked to libFuzzer, so
//! it is written as a target whose initialisation writes the seeds into
//! `$FLOWSHIELD_SEED_DIR`; run it with `-runs=0`.
#![no_main]

use flowshield_ca::authority::Authority;
use flowshield_chain::alloy::primitives::U256;
use flowshield_chain::voucher::{sign_digest, sign_voucher};
use flowshield_fuzz::wg::{addr_a, device_b, ipv4, Collected, KEY_A, KEY_B};
use flowshield_fuzz::{keys, wg};
use flowshield_market::wire::raw::RawJson;
use flowshield_market::wire::request::MarketRequest;
use flowshield_market::wire::session::{
    ConnectRequest, ConnectedInfo, SessionRequest, SessionResponse, VoucherMessage,
};
use flowshield_proto::report::{metrics_hash, SignedReport};
use flowshield_proto::{
    published_report_digest, CertAnnouncement, Heartbeat, Report, SignedMessage, WgPublicKey,
};
use flowshield_tunnel::device::datapath::SCRATCH_LEN;
use flowshield_tunnel::key::SecretKey;
use std::path::Path;

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

struct Corpus(std::path::PathBuf);

impl Corpus {
    fn put(&self, target: &str, name: &str, bytes: impl AsRef<[u8]>) -> Result<()> {
        let dir = self.0.join(target);
        std::fs::create_dir_all(&dir)?;
        std::fs::write(dir.join(name), bytes)?;
        Ok(())
    }
}

fn with_kind(kind: u8, body: impl AsRef<[u8]>) -> Vec<u8> {
    let mut out = vec![kind];
    out.extend_from_slice(body.as_ref());
    out
}

fn op(ops: &mut Vec<u8>, code: u8, payload: &[u8]) {
    ops.push(code);
    ops.extend_from_slice(&(payload.len() as u16).to_le_bytes());
    ops.extend_from_slice(payload);
}

fn text_seeds(c: &Corpus) -> Result<()> {
    let a = SecretKey(KEY_A);
    let b = SecretKey(KEY_B).public_key();
    let psk = SecretKey([0x44; 32]);
    c.put("uapi_request", "get", "get=1")?;
    c.put("uapi_request", "stats", "stats=1")?;
    c.put(
        "uapi_request",
        "set",
        format!(
            "set=1\nprivate_key={}\nlisten_port=51820\nfwmark=0\nreplace_peers=true\n\
             public_key={}\npreshared_key={}\nprotocol_version=1\nendpoint=[fd00::2]:51820\n\
             persistent_keepalive_interval=25\nreplace_allowed_ips=true\n\
             allowed_ip=10.0.0.2/32\nallowed_ip=fd00::/64\n\
             public_key={}\nremove=true",
            a.to_hex(),
            b.to_hex(),
            psk.to_hex(),
            SecretKey([0x33; 32]).public_key().to_hex(),
        ),
    )?;
    c.put(
        "uapi_request",
        "get-reply",
        format!(
            "private_key={}\nlisten_port=51820\npublic_key={}\nprotocol_version=1\n\
             endpoint=198.18.0.2:51820\nlast_handshake_time_sec=1700000000\n\
             last_handshake_time_nsec=5\ntx_bytes=1024\nrx_bytes=2048\n\
             persistent_keepalive_interval=0\nallowed_ip=10.0.0.2/32\n\
             malformed_packets=1\nunknown_peer_packets=2",
            a.to_hex(),
            b.to_hex()
        ),
    )?;
    c.put(
        "wg_quick_config",
        "full",
        format!(
            "# comment\n[Interface]\nPrivateKey = {}\nListenPort = 51820\n\
             Address = 10.77.0.1/24, fd00::1/64\nDNS = 10.77.0.53, example.com\nMTU = 1380\n\
             Table = off\nFwMark = 0x10\nPostUp = echo up %i\nPreDown = echo down\n\
             SaveConfig = true\n\n[Peer]\nPublicKey = {}\nPresharedKey = {}\n\
             AllowedIPs = 10.77.0.2/32, 10.88.0.0/16 # inline\nEndpoint = 198.18.0.2:51820\n\
             PersistentKeepalive = 25\n\n[Peer]\nPublicKey = {}\nAllowedIPs = ::/0\n\
             Endpoint = [fd00::3]:51820\n",
            a.to_base64(),
            b.to_base64(),
            psk.to_base64(),
            SecretKey([0x33; 32]).public_key().to_base64(),
        ),
    )?;
    c.put(
        "wg_quick_config",
        "minimal",
        format!(
            "[Interface]\nPrivateKey = {}\nTable = 1234\n[Peer]\nPublicKey = {}\nAllowedIPs = 0.0.0.0/0\n",
            a.to_base64(),
            b.to_base64()
        ),
    )?;
    let args = [
        "listen-port",
        "51820",
        "fwmark",
        "0x10",
        "private-key",
        &a.to_base64(),
        "peer",
        &b.to_base64(),
        "preshared-key",
        &psk.to_base64(),
        "endpoint",
        "198.18.0.2:51820",
        "persistent-keepalive",
        "25",
        "allowed-ips",
        "10.0.0.2/32,fd00::/64",
        "peer",
        &SecretKey([0x33; 32]).public_key().to_base64(),
        "remove",
    ];
    c.put("set_args", "full", args.join("\0"))?;
    c.put(
        "set_args",
        "off",
        "fwmark\0off\0peer\0".to_string()
            + &b.to_base64()
            + "\0persistent-keepalive\0off\0allowed-ips\0",
    )?;
    Ok(())
}

fn datagram_seeds(c: &Corpus) -> Result<()> {
    // A real handshake initiation from B, as A receives it raw.
    let b = device_b();
    let mut out = Collected::default();
    let mut scratch = vec![0; SCRATCH_LEN];
    let first = ipv4([10, 0, 0, 2], [10, 0, 0, 1], b"hello");
    b.handle_tun_packet(&first, &mut scratch, &mut out);
    let (dst, init) = out.network.first().ok_or("B sent no handshake")?;
    assert_eq!(*dst, addr_a());
    let mut ops = Vec::new();
    op(&mut ops, 0, init);
    op(&mut ops, 0, init);
    c.put("wg_datagram", "handshake-init", ops)?;
    // A whole session through the honest peer: handshake, data, a spoofed
    // inner source, a packet back, a flipped bit, timers.
    let mut ops = Vec::new();
    op(&mut ops, 2, &first);
    op(&mut ops, 3, &[]);
    op(&mut ops, 3, &[]);
    op(&mut ops, 2, &ipv4([10, 0, 0, 2], [10, 0, 0, 1], b"data"));
    op(&mut ops, 2, &ipv4([10, 0, 0, 3], [10, 0, 0, 1], b"spoofed"));
    op(&mut ops, 3, &[]);
    op(&mut ops, 5, &ipv4([10, 0, 0, 1], [10, 0, 0, 2], b"reply"));
    op(&mut ops, 2, &ipv4([10, 0, 0, 2], [10, 0, 0, 1], b"flip"));
    op(
        &mut ops,
        4,
        &[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1],
    );
    op(&mut ops, 6, &[]);
    op(&mut ops, 1, init);
    c.put("wg_datagram", "session", ops)?;
    let mut ops = Vec::new();
    op(
        &mut ops,
        1,
        &[4, 0, 0, 0, 1, 2, 3, 4, 0, 0, 0, 0, 0, 0, 0, 0],
    );
    op(
        &mut ops,
        5,
        &ipv4([10, 0, 0, 1], [10, 0, 0, 3], b"no endpoint"),
    );
    c.put("wg_datagram", "junk", ops)?;
    let _ = wg::addr_b();
    Ok(())
}

fn issued_chain() -> Result<(Vec<u8>, Vec<u8>)> {
    let ca = Authority::create(keys::market(), keys::CA_NOW - 60)?;
    let node = keys::node_keys();
    let binding = node.binding();
    let csr = Authority::check_csr(&node.csr_der()?, &binding)?;
    let leaf = ca.issue(csr, &binding, keys::CA_NOW, 3600)?;
    Ok((leaf.der, ca.cert_der().to_vec()))
}

fn market_seeds(c: &Corpus) -> Result<()> {
    let provider = keys::provider_keypair();
    let heartbeat = Heartbeat {
        offer: keys::offer(),
        seq: 3,
        timestamp_ms: 1_700_000_000_000,
    };
    let envelope = SignedMessage::sign(&heartbeat, &provider)?.to_bytes();
    c.put("signed_envelope", "heartbeat", with_kind(0, &envelope))?;
    let (leaf, root) = issued_chain()?;
    let cert = CertAnnouncement {
        provider_peer_id: provider.public().to_peer_id(),
        chain: vec![leaf.clone(), root.clone()],
        timestamp_ms: 1_700_000_000_000,
    };
    c.put(
        "signed_envelope",
        "cert-announcement",
        with_kind(1, SignedMessage::sign(&cert, &provider)?.to_bytes()),
    )?;

    let client = keys::client_signer();
    let domain = keys::domain();
    let mut stream = Vec::new();
    for (name, amount) in [("voucher-1", 1_000u64), ("voucher-2", 5_000)] {
        let voucher = sign_voucher(&client, &domain, keys::order_id(), U256::from(amount))?;
        let request = SessionRequest::Voucher(VoucherMessage::from_signed(&voucher));
        let json = RawJson::encode(&request)?;
        c.put("session_message", name, with_kind(b'q', json.json()))?;
        stream.extend(with_kind(b'q', json.json()));
        stream.push(0);
    }
    let connect = ConnectRequest::sign(
        &client,
        keys::order_id(),
        WgPublicKey([9; 32]),
        &provider.public().to_peer_id(),
        1_700_000_000_000,
    )?;
    let request = MarketRequest::Session(RawJson::encode(&SessionRequest::Connect(connect))?);
    stream.extend(with_kind(b'm', serde_json::to_vec(&request)?));
    stream.push(0);
    stream.extend(with_kind(
        b'q',
        RawJson::encode(&SessionRequest::Disconnect {
            order_id: keys::order_id(),
        })?
        .json(),
    ));
    c.put("session_message", "session", stream)?;
    let connected = SessionResponse::Connected(ConnectedInfo {
        order_id: keys::order_id(),
        tunnel_address: "10.77.0.2/16".parse()?,
        provider_wg_public_key: WgPublicKey([7; 32]),
        endpoint: "192.0.2.10:51820".parse()?,
        allowed_ips: vec!["10.77.0.0/16".parse()?, "0.0.0.0/0".parse()?],
        persistent_keepalive: 25,
        provider_tunnel_ip: "10.77.0.1".parse()?,
    });
    c.put(
        "session_message",
        "connected",
        with_kind(b'r', RawJson::encode(&connected)?.json()),
    )?;
    c.put(
        "session_message",
        "rejected",
        with_kind(
            b'r',
            r#"{"type":"rejected","order_id":"7","kind":"voucher_not_increasing","reason":"x"}"#,
        ),
    )?;

    let report = Report {
        provider: "0x00112233445566778899aabbccddeeff00112233".parse()?,
        period: 42,
        passed: true,
        metricsHash: metrics_hash(&serde_json::json!({"rtt_ms": 12, "loss": 0.0})),
    };
    let verifier = keys::verifier_signer();
    let signature = sign_digest(&verifier, &published_report_digest(&domain, &report))?;
    let signed = SignedReport::new(
        &domain,
        verifier.address(),
        &report,
        serde_json::json!({"rtt_ms": 12, "loss": 0.0}),
        vec![],
        &signature,
    );
    c.put(
        "fullnode_http",
        "report",
        with_kind(2, serde_json::to_vec(&signed)?),
    )?;
    c.put(
        "fullnode_http",
        "match",
        with_kind(
            0,
            r#"{"region":"eu-west","max_price_per_gib_wei":"1000000000","min_capacity_mbps":100,"min_reputation":0.5}"#,
        ),
    )?;
    c.put(
        "fullnode_http",
        "query",
        with_kind(
            1,
            "region=eu-west&max_price=1000000000&min_capacity=10&limit=5",
        ),
    )?;
    c.put(
        "fullnode_http",
        "address",
        with_kind(3, "0x00112233445566778899aabbccddeeff00112233"),
    )?;
    Ok(())
}

fn ca_seeds(c: &Corpus) -> Result<()> {
    let node = keys::node_keys();
    let binding = node.binding();
    let csr = node.csr_der()?;
    c.put("ca_csr", "csr", with_kind(0, &csr))?;
    let (leaf, root) = issued_chain()?;
    let mut chain = vec![1];
    chain.extend_from_slice(&(leaf.len() as u16).to_le_bytes());
    chain.extend_from_slice(&leaf);
    chain.extend_from_slice(&root);
    c.put("ca_csr", "chain", chain)?;
    c.put("ca_csr", "binding", with_kind(2, binding.to_der()))?;

    let (challenge, _) = keys::challenge();
    let proofs = node.prove(&challenge)?;
    let claim = serde_json::json!({
        "wg_pubkey": flowshield_ca::binding::b64(&binding.wg_pubkey),
        "peer_id": binding.peer_id.to_base58(),
        "chain_address": format!("{:#x}", binding.chain_address),
        "purpose": "issue",
    });
    c.put(
        "ca_pop",
        "challenge",
        with_kind(0, serde_json::to_vec(&claim)?),
    )?;
    let issue = serde_json::json!({
        "challenge_id": challenge.id,
        "csr": flowshield_ca::binding::b64(&csr),
        "proofs": proofs,
    });
    c.put("ca_pop", "issue", with_kind(1, serde_json::to_vec(&issue)?))?;
    let renew = serde_json::json!({
        "challenge_id": challenge.id,
        "serial": "0a1b2c",
        "csr": flowshield_ca::binding::b64(&csr),
        "proofs": node.prove_renewal(&challenge),
    });
    c.put("ca_pop", "renew", with_kind(2, serde_json::to_vec(&renew)?))?;
    Ok(())
}

fn generate(out: &Path) -> Result<()> {
    let corpus = Corpus(out.to_path_buf());
    text_seeds(&corpus)?;
    datagram_seeds(&corpus)?;
    market_seeds(&corpus)?;
    ca_seeds(&corpus)?;
    Ok(())
}

libfuzzer_sys::fuzz_target!(
    init: {
        let Some(out) = std::env::var_os("FLOWSHIELD_SEED_DIR") else {
            eprintln!("gen_seeds: set FLOWSHIELD_SEED_DIR to the corpus directory");
            std::process::exit(2);
        };
        if let Err(e) = generate(Path::new(&out)) {
            eprintln!("gen_seeds: {e}");
            std::process::exit(1);
        }
    },
    |_data: &[u8]| {}
);
