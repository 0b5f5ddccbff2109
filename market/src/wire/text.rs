//! Serde adapters that keep the wire's JSON text while the Rust side is
//! typed: 256-bit numbers as decimal strings, chain addresses as `0x`
//! strings, peer ids in base58, byte strings in hex, IP networks as
//! `A.B.C.D/N`. Each parse error names what the text should have been.

/// `U256` as a decimal string (`0x` hex is read too).
pub mod u256_dec {
    use flowshield_chain::alloy::primitives::U256;
    use serde::{de::Error, Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(value: &U256, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(value)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<U256, D::Error> {
        let text = String::deserialize(d)?;
        parse(&text).ok_or_else(|| D::Error::custom(format!("'{text}' is not a 256-bit number")))
    }

    /// A decimal (or `0x` hex) U256.
    pub fn parse(text: &str) -> Option<U256> {
        let text = text.trim();
        match text.strip_prefix("0x") {
            Some(hex) => U256::from_str_radix(hex, 16).ok(),
            None => U256::from_str_radix(text, 10).ok(),
        }
    }
}

/// A chain `Address` as `0x` + 40 hex (checksummed when written).
pub mod address {
    use flowshield_chain::alloy::primitives::Address;
    use serde::{de::Error, Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(value: &Address, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(value)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Address, D::Error> {
        let text = String::deserialize(d)?;
        text.trim()
            .parse()
            .map_err(|_| D::Error::custom(format!("'{text}' is not a 0x chain address")))
    }
}

/// A libp2p `PeerId` in base58.
pub mod peer_id {
    use flowshield_proto::PeerId;
    use serde::{de::Error, Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(value: &PeerId, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&value.to_base58())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<PeerId, D::Error> {
        let text = String::deserialize(d)?;
        text.parse()
            .map_err(|_| D::Error::custom(format!("'{text}' is not a peer id")))
    }
}

/// Bytes as hex (a `0x` prefix is accepted when read, never written).
pub mod hex_bytes {
    use flowshield_chain::alloy::primitives::Bytes;
    use serde::{de::Error, Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(value: &Bytes, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&hex::encode(value))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Bytes, D::Error> {
        let text = String::deserialize(d)?;
        hex::decode(text.trim().trim_start_matches("0x"))
            .map(Bytes::from)
            .map_err(|_| D::Error::custom("not hex"))
    }
}

/// An IP network as `A.B.C.D/N` (or IPv6). The address keeps its host
/// bits (`10.77.0.2/24` is an interface address in its subnet); a bare
/// address is read as a single host (`/32`, `/128`) and written with its
/// prefix.
pub mod ip_net {
    use ipnet::IpNet;
    use serde::{de::Error, Deserialize, Deserializer, Serializer};
    use std::net::IpAddr;

    pub fn serialize<S: Serializer>(value: &IpNet, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(value)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<IpNet, D::Error> {
        let text = String::deserialize(d)?;
        parse(&text).ok_or_else(|| D::Error::custom(not_a_network(&text)))
    }

    /// `A.B.C.D/N`, `X:…:Y/N` or a bare address.
    pub fn parse(text: &str) -> Option<IpNet> {
        let text = text.trim();
        text.parse::<IpNet>()
            .ok()
            .or_else(|| text.parse::<IpAddr>().ok().map(IpNet::from))
    }

    /// The refusal, with the text cut short (it may be anything a peer sent).
    pub(super) fn not_a_network(text: &str) -> String {
        let shown: String = text.chars().take(64).collect();
        format!("{shown:?} is not an IP network like 10.77.0.0/24")
    }
}

/// A list of IP networks, each as [`ip_net`] writes it.
pub mod ip_nets {
    use super::ip_net;
    use ipnet::IpNet;
    use serde::{de::Error, ser::SerializeSeq, Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(value: &[IpNet], s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(value.len()))?;
        for net in value {
            seq.serialize_element(&net.to_string())?;
        }
        seq.end()
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<IpNet>, D::Error> {
        Vec::<String>::deserialize(d)?
            .iter()
            .map(|text| {
                ip_net::parse(text).ok_or_else(|| D::Error::custom(ip_net::not_a_network(text)))
            })
            .collect()
    }
}
