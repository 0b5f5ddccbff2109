//! WireGuard keys: 32-byte Curve25519 keys and preshared keys, in the two
//! encodings users meet — base64 (config files, `wg` output) and lowercase hex
//! (the UAPI protocol).

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use boringtun::x25519;
use rand_core::{OsRng, RngCore};
use std::fmt;
use zeroize::{Zeroize, ZeroizeOnDrop};

/// Length of every WireGuard key in bytes.
pub const KEY_LEN: usize = 32;

/// Why a key string was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("key is not valid base64 (expected 44 characters ending in '=')")]
    Base64,
    #[error("key is not valid hex (expected 64 hex digits)")]
    Hex,
    #[error("key has {0} bytes, expected 32")]
    Length(usize),
}

/// A public key. Copyable and printable: it is not secret.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PublicKey(pub [u8; KEY_LEN]);

/// A private key or preshared key. Zeroed on drop; `Debug` never prints it.
#[derive(Clone, PartialEq, Eq, Zeroize, ZeroizeOnDrop)]
pub struct SecretKey(pub [u8; KEY_LEN]);

fn to_array(bytes: Vec<u8>) -> Result<[u8; KEY_LEN], KeyError> {
    let len = bytes.len();
    bytes.try_into().map_err(|_| KeyError::Length(len))
}

fn decode_base64(text: &str) -> Result<[u8; KEY_LEN], KeyError> {
    let mut bytes = BASE64.decode(text.trim()).map_err(|_| KeyError::Base64)?;
    let out = to_array(std::mem::take(&mut bytes));
    bytes.zeroize();
    out
}

fn decode_hex(text: &str) -> Result<[u8; KEY_LEN], KeyError> {
    if text.len() != KEY_LEN * 2 {
        return Err(KeyError::Hex);
    }
    let mut out = [0u8; KEY_LEN];
    hex::decode_to_slice(text, &mut out).map_err(|_| KeyError::Hex)?;
    Ok(out)
}

/// The base64 and hex encodings both key types share.
macro_rules! key_encodings {
    ($ty:ident) => {
        impl $ty {
            pub fn from_base64(text: &str) -> Result<Self, KeyError> {
                decode_base64(text).map(Self)
            }
            pub fn from_hex(text: &str) -> Result<Self, KeyError> {
                decode_hex(text).map(Self)
            }
            pub fn to_base64(&self) -> String {
                BASE64.encode(self.0)
            }
            pub fn to_hex(&self) -> String {
                hex::encode(self.0)
            }
        }
    };
}

key_encodings!(PublicKey);
key_encodings!(SecretKey);

impl PublicKey {
    pub fn to_x25519(&self) -> x25519::PublicKey {
        x25519::PublicKey::from(self.0)
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({})", self.to_base64())
    }
}

impl fmt::Display for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_base64())
    }
}

impl SecretKey {
    /// A fresh random private key, clamped as Curve25519 requires.
    pub fn generate_private() -> Self {
        let mut bytes = [0u8; KEY_LEN];
        OsRng.fill_bytes(&mut bytes);
        bytes[0] &= 248;
        bytes[31] &= 127;
        bytes[31] |= 64;
        Self(bytes)
    }
    /// A fresh random preshared key (no clamping).
    pub fn generate_preshared() -> Self {
        let mut bytes = [0u8; KEY_LEN];
        OsRng.fill_bytes(&mut bytes);
        Self(bytes)
    }
    /// All-zero keys mean "no key" in the UAPI protocol.
    pub fn is_zero(&self) -> bool {
        self.0.iter().all(|b| *b == 0)
    }
    pub fn to_x25519(&self) -> x25519::StaticSecret {
        x25519::StaticSecret::from(self.0)
    }
    /// The public key of this private key.
    pub fn public_key(&self) -> PublicKey {
        PublicKey(x25519::PublicKey::from(&self.to_x25519()).to_bytes())
    }
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretKey(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_and_hex_round_trip() {
        let secret = SecretKey::generate_private();
        assert_eq!(SecretKey::from_base64(&secret.to_base64()).unwrap(), secret);
        assert_eq!(SecretKey::from_hex(&secret.to_hex()).unwrap(), secret);
        let public = secret.public_key();
        assert_eq!(PublicKey::from_base64(&public.to_base64()).unwrap(), public);
        assert_eq!(PublicKey::from_hex(&public.to_hex()).unwrap(), public);
    }

    #[test]
    fn known_public_key_matches_wg() {
        // `echo yAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmk= | wg pubkey`
        let secret =
            SecretKey::from_base64("yAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmk=").unwrap();
        assert_eq!(
            secret.public_key().to_base64(),
            "HIgo9xNzJMWLKASShiTqIybxZ0U3wGLiUeJ1PKf8ykw="
        );
    }

    #[test]
    fn rejects_bad_encodings() {
        assert_eq!(PublicKey::from_base64("AAAA"), Err(KeyError::Length(3)));
        assert_eq!(PublicKey::from_base64("abc"), Err(KeyError::Base64));
        assert_eq!(PublicKey::from_base64("!!!!"), Err(KeyError::Base64));
        assert_eq!(PublicKey::from_hex("zz"), Err(KeyError::Hex));
        assert_eq!(PublicKey::from_hex(&"g".repeat(64)), Err(KeyError::Hex));
    }

    #[test]
    fn debug_never_prints_secret() {
        let secret = SecretKey::generate_private();
        let shown = format!("{secret:?}");
        assert!(!shown.contains(&secret.to_base64()));
        assert!(shown.contains("redacted"));
    }

    #[test]
    fn generated_private_key_is_clamped() {
        let secret = SecretKey::generate_private();
        assert_eq!(secret.0[0] & 7, 0);
        assert_eq!(secret.0[31] & 128, 0);
        assert_eq!(secret.0[31] & 64, 64);
    }
}
