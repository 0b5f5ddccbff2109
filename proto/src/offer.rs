//! What a provider sells and the heartbeat that announces it.
//!
//! JSON shapes (field order is the declaration order, which the signed
//! encoding relies on):
//! - `provider_peer_id`: base58 libp2p PeerId;
//! - `chain_address`: `0x` + 40 hex digits;
//! - `wg_public_key`: standard base64 of 32 bytes, as `wg` prints it;
//! - `endpoint`: `IP:PORT`;
//! - prices: wei as a decimal string (a `u128` does not fit a JSON number
//!   that every reader parses exactly).

use crate::error::ProtoError;
use crate::signed::Signable;
use base64::Engine as _;
use libp2p_identity::PeerId;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::net::{Ipv4Addr, SocketAddr};
use std::str::FromStr;

/// Longest region name.
pub const MAX_REGION_LEN: usize = 32;

/// A provider's advertisement: where to connect, what it costs, how much it
/// carries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Offer {
    #[serde(with = "peer_id_text")]
    pub provider_peer_id: PeerId,
    pub chain_address: ChainAddress,
    pub wg_public_key: WgPublicKey,
    pub endpoint: SocketAddr,
    pub region: Region,
    #[serde(with = "u128_text")]
    pub price_per_gib_wei: u128,
    #[serde(with = "u128_text")]
    pub price_per_hour_wei: u128,
    pub capacity_mbps: u32,
    pub max_clients: u32,
    /// The subnet the provider's clients get their tunnel addresses from;
    /// clients refuse an address or route outside it. Absent in offers of
    /// older providers (and then left out of the signed encoding, so their
    /// heartbeats still verify).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tunnel_subnet: Option<TunnelSubnet>,
}

impl Offer {
    /// Checks what the types alone cannot: a usable endpoint and non-zero
    /// capacity.
    pub fn validate(&self) -> Result<(), ProtoError> {
        if self.endpoint.port() == 0 {
            return Err(ProtoError::invalid("endpoint", "port 0"));
        }
        let ip = self.endpoint.ip();
        if ip.is_unspecified() || ip.is_multicast() {
            return Err(ProtoError::invalid(
                "endpoint",
                format!("{ip} is not a unicast address"),
            ));
        }
        if self.capacity_mbps == 0 {
            return Err(ProtoError::invalid("capacity_mbps", "must be above 0"));
        }
        if self.max_clients == 0 {
            return Err(ProtoError::invalid("max_clients", "must be above 0"));
        }
        Ok(())
    }
}

/// The periodic, signed announcement of an offer. `seq` grows by at least one
/// per heartbeat from the same provider; `timestamp_ms` is Unix time in ms.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Heartbeat {
    pub offer: Offer,
    pub seq: u64,
    pub timestamp_ms: u64,
}

impl Signable for Heartbeat {
    const DOMAIN: &'static [u8] = b"flowshield/heartbeat/1";

    fn expected_signer(&self) -> PeerId {
        self.offer.provider_peer_id
    }

    fn validate(&self) -> Result<(), ProtoError> {
        self.offer.validate()
    }
}

/// A region name: 1 to [`MAX_REGION_LEN`] of `a-z`, `0-9` and `-`, not
/// starting or ending with `-` (e.g. `eu-west`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Region(String);

impl Region {
    pub fn new(name: &str) -> Result<Self, ProtoError> {
        let invalid = |reason: &str| ProtoError::invalid("region", reason);
        if name.is_empty() || name.len() > MAX_REGION_LEN {
            return Err(invalid("must be 1 to 32 characters"));
        }
        if !name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        {
            return Err(invalid("only a-z, 0-9 and '-' are allowed"));
        }
        if name.starts_with('-') || name.ends_with('-') {
            return Err(invalid("must not start or end with '-'"));
        }
        Ok(Region(name.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Region {
    type Error = ProtoError;
    fn try_from(name: String) -> Result<Self, ProtoError> {
        Region::new(&name)
    }
}

impl From<Region> for String {
    fn from(region: Region) -> String {
        region.0
    }
}

impl FromStr for Region {
    type Err = ProtoError;
    fn from_str(s: &str) -> Result<Self, ProtoError> {
        Region::new(s)
    }
}

impl fmt::Display for Region {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// keccak256 of a libp2p PeerId's bytes ([`PeerId::to_bytes`]): the value a
/// provider registers on chain (`BandwidthMarket`'s `peerIdHash`) and a
/// fullnode compares with the PeerId that signed a heartbeat, so only the
/// holder of the chain key decides which PeerId speaks for its address.
pub fn peer_id_hash(peer_id: &PeerId) -> alloy_primitives::B256 {
    alloy_primitives::keccak256(peer_id.to_bytes())
}

/// An EVM address (20 bytes), written `0x` + 40 hex digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct ChainAddress(pub [u8; 20]);

impl FromStr for ChainAddress {
    type Err = ProtoError;
    fn from_str(s: &str) -> Result<Self, ProtoError> {
        let digits = s
            .strip_prefix("0x")
            .ok_or_else(|| ProtoError::invalid("chain_address", "must start with 0x"))?;
        let mut bytes = [0u8; 20];
        hex::decode_to_slice(digits, &mut bytes)
            .map_err(|_| ProtoError::invalid("chain_address", "must be 0x and 40 hex digits"))?;
        Ok(ChainAddress(bytes))
    }
}

impl fmt::Display for ChainAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "0x{}", hex::encode(self.0))
    }
}

impl fmt::Debug for ChainAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// A WireGuard (X25519) public key, written in standard base64.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct WgPublicKey(pub [u8; 32]);

impl FromStr for WgPublicKey {
    type Err = ProtoError;
    fn from_str(s: &str) -> Result<Self, ProtoError> {
        let invalid = || ProtoError::invalid("wg_public_key", "must be base64 of 32 bytes");
        if s.len() != 44 {
            return Err(invalid());
        }
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(s)
            .map_err(|_| invalid())?;
        Ok(WgPublicKey(bytes.try_into().map_err(|_| invalid())?))
    }
}

impl fmt::Display for WgPublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&base64::engine::general_purpose::STANDARD.encode(self.0))
    }
}

impl fmt::Debug for WgPublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// The IPv4 subnet a provider hands its clients' tunnel addresses from,
/// written `A.B.C.D/N` (N from 8 to 30, host bits zero), e.g. `10.77.0.0/16`.
/// A client refuses a tunnel address or route outside it.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct TunnelSubnet {
    network: Ipv4Addr,
    prefix: u8,
}

impl TunnelSubnet {
    /// The subnet `network/prefix`; refuses host bits and prefixes outside 8 to 30.
    pub fn new(network: Ipv4Addr, prefix: u8) -> Result<Self, ProtoError> {
        let invalid = |reason: String| ProtoError::invalid("tunnel_subnet", reason);
        if !(8..=30).contains(&prefix) {
            return Err(invalid(format!("prefix /{prefix} is not from /8 to /30")));
        }
        let mask = u32::MAX << (32 - prefix);
        if u32::from(network) & !mask != 0 {
            return Err(invalid(format!("{network}/{prefix} has host bits set")));
        }
        Ok(Self { network, prefix })
    }

    pub fn network(&self) -> Ipv4Addr {
        self.network
    }

    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    /// Whether `addr` lies inside the subnet.
    pub fn contains(&self, addr: Ipv4Addr) -> bool {
        let mask = u32::MAX << (32 - self.prefix);
        u32::from(addr) & mask == u32::from(self.network)
    }
}

impl FromStr for TunnelSubnet {
    type Err = ProtoError;
    fn from_str(s: &str) -> Result<Self, ProtoError> {
        let invalid = || {
            ProtoError::invalid(
                "tunnel_subnet",
                format!(
                    "'{}' is not an IPv4 subnet like 10.77.0.0/16",
                    s.chars().take(48).collect::<String>()
                ),
            )
        };
        let (addr, prefix) = s.split_once('/').ok_or_else(invalid)?;
        let network: Ipv4Addr = addr.parse().map_err(|_| invalid())?;
        let prefix: u8 = prefix.parse().map_err(|_| invalid())?;
        Self::new(network, prefix)
    }
}

impl fmt::Display for TunnelSubnet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

impl fmt::Debug for TunnelSubnet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

macro_rules! serde_via_text {
    ($ty:ty) => {
        impl Serialize for $ty {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }
        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let text = String::deserialize(d)?;
                text.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}
serde_via_text!(ChainAddress);
serde_via_text!(WgPublicKey);
serde_via_text!(TunnelSubnet);

/// `u128` as a decimal string (at most 39 digits, no sign, no spaces).
pub mod u128_text {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(value: &u128, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(value)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<u128, D::Error> {
        let text = String::deserialize(d)?;
        parse(&text).map_err(serde::de::Error::custom)
    }

    /// Parses a wei amount written as decimal digits.
    pub fn parse(text: &str) -> Result<u128, String> {
        if text.is_empty() || text.len() > 39 || !text.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!(
                "'{}' is not a decimal amount of wei",
                text.chars().take(48).collect::<String>()
            ));
        }
        text.parse()
            .map_err(|_| format!("'{text}' does not fit in 128 bits"))
    }
}

pub(crate) mod peer_id_text {
    use libp2p_identity::PeerId;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(value: &PeerId, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&value.to_base58())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<PeerId, D::Error> {
        let text = String::deserialize(d)?;
        text.parse()
            .map_err(|e| serde::de::Error::custom(format!("provider_peer_id: {e}")))
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use libp2p_identity::Keypair;

    pub fn sample_offer(keypair: &Keypair) -> Offer {
        Offer {
            provider_peer_id: keypair.public().to_peer_id(),
            chain_address: "0x00112233445566778899aabbccddeeff00112233"
                .parse()
                .unwrap(),
            wg_public_key: WgPublicKey([7; 32]),
            endpoint: "192.0.2.10:51820".parse().unwrap(),
            region: Region::new("eu-west").unwrap(),
            price_per_gib_wei: 340_282_366_920_938_463_463_374_607_431_768_211_455,
            price_per_hour_wei: 1_000,
            capacity_mbps: 500,
            max_clients: 10,
            tunnel_subnet: None,
        }
    }

    #[test]
    fn tunnel_subnet_is_optional_and_checked() {
        let offer = sample_offer(&Keypair::generate_ed25519());
        // An old provider's offer has no subnet: same JSON as before.
        let json = serde_json::to_string(&offer).unwrap();
        assert!(!json.contains("tunnel_subnet"), "{json}");
        assert_eq!(serde_json::from_str::<Offer>(&json).unwrap(), offer);
        let with = Offer {
            tunnel_subnet: Some("10.77.0.0/16".parse().unwrap()),
            ..offer
        };
        let json = serde_json::to_string(&with).unwrap();
        assert!(
            json.ends_with(r#","tunnel_subnet":"10.77.0.0/16"}"#),
            "{json}"
        );
        assert_eq!(serde_json::from_str::<Offer>(&json).unwrap(), with);
        let subnet = with.tunnel_subnet.unwrap();
        assert!(subnet.contains("10.77.200.1".parse().unwrap()));
        assert!(!subnet.contains("10.78.0.1".parse().unwrap()));
        for bad in [
            "0.0.0.0/0",
            "10.77.0.1/16",
            "10.77.0.0/31",
            "10.77.0.0",
            "x/8",
        ] {
            let err = bad.parse::<TunnelSubnet>().unwrap_err().to_string();
            assert!(err.contains("tunnel_subnet"), "{bad}: {err}");
        }
        let bad = json.replace("10.77.0.0/16", "0.0.0.0/0");
        assert!(serde_json::from_str::<Offer>(&bad).is_err());
    }

    #[test]
    fn offer_json_round_trips_with_text_amounts() {
        let offer = sample_offer(&Keypair::generate_ed25519());
        let json = serde_json::to_string(&offer).unwrap();
        assert!(json.contains(r#""price_per_gib_wei":"340282366920938463463374607431768211455""#));
        assert!(json.contains(r#""chain_address":"0x00112233445566778899aabbccddeeff00112233""#));
        assert!(json.starts_with(r#"{"provider_peer_id":"#));
        let back: Offer = serde_json::from_str(&json).unwrap();
        assert_eq!(back, offer);
    }

    #[test]
    fn peer_id_hash_is_keccak_of_the_peer_id_bytes() {
        let a = Keypair::generate_ed25519().public().to_peer_id();
        let b = Keypair::generate_ed25519().public().to_peer_id();
        assert_eq!(peer_id_hash(&a), alloy_primitives::keccak256(a.to_bytes()));
        assert_eq!(peer_id_hash(&a), peer_id_hash(&a));
        assert_ne!(peer_id_hash(&a), peer_id_hash(&b));
    }

    #[test]
    fn region_charset_and_length() {
        assert!(Region::new("us-east-1").is_ok());
        for bad in ["", "EU", "eu west", "-eu", "eu-", "é", &"a".repeat(33)] {
            let err = Region::new(bad).unwrap_err();
            assert!(
                matches!(
                    err,
                    ProtoError::Invalid {
                        field: "region",
                        ..
                    }
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn rejects_malformed_fields() {
        assert!("0x0011".parse::<ChainAddress>().is_err());
        assert!("00112233445566778899aabbccddeeff00112233"
            .parse::<ChainAddress>()
            .is_err());
        assert!("AAAA".parse::<WgPublicKey>().is_err());
        assert!(u128_text::parse("-1").is_err());
        assert!(u128_text::parse("1e9").is_err());
        assert!(u128_text::parse("340282366920938463463374607431768211456").is_err());
        assert_eq!(u128_text::parse("0").unwrap(), 0);
    }

    #[test]
    fn validate_names_the_field() {
        let keypair = Keypair::generate_ed25519();
        let mut offer = sample_offer(&keypair);
        offer.capacity_mbps = 0;
        assert!(matches!(
            offer.validate(),
            Err(ProtoError::Invalid {
                field: "capacity_mbps",
                ..
            })
        ));
        let mut offer = sample_offer(&keypair);
        offer.endpoint = "0.0.0.0:51820".parse().unwrap();
        assert!(matches!(
            offer.validate(),
            Err(ProtoError::Invalid {
                field: "endpoint",
                ..
            })
        ));
    }
}
