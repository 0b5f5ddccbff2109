//! Serde adapters that keep the wire's JSON text while the Rust side is
//! typed: 256-bit numbers as decimal strings, chain addresses as `0x`
//! strings, peer ids in base58, byte strings in hex. Each parse error
//! names what the text should have been.

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
