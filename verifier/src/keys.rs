//! Key files: the verifier's WireGuard private key (base64, as `wg genkey` writes it)
//! and its chain key (hex secp256k1, optional `0x`). Both must be mode 0600 or
//! stricter (like ssh, a group- or world-readable key is refused), and neither key
//! ever appears in an error or a log.

use std::path::Path;

use alloy::primitives::B256;
use alloy::signers::local::PrivateKeySigner;
use flowshield_tunnel::key::SecretKey;

use crate::error::KeyError;

fn read_private(path: &Path) -> Result<String, KeyError> {
    flowshield_keyfile::read_private_string(path).map_err(|e| KeyError {
        path: path.to_path_buf(),
        reason: e.reason(),
    })
}

/// Load the WireGuard private key.
pub fn load_wg_key(path: &Path) -> Result<SecretKey, KeyError> {
    let text = read_private(path)?;
    SecretKey::from_base64(text.trim()).map_err(|e| KeyError {
        path: path.to_path_buf(),
        reason: format!("not a WireGuard private key: {e}"),
    })
}

/// Load the chain signing key.
pub fn load_chain_key(path: &Path) -> Result<PrivateKeySigner, KeyError> {
    let text = read_private(path)?;
    let bad = |reason: &str| KeyError {
        path: path.to_path_buf(),
        reason: reason.to_string(),
    };
    let key: B256 = text
        .trim()
        .parse()
        .map_err(|_| bad("not 32 bytes of hex"))?;
    PrivateKeySigner::from_bytes(&key).map_err(|_| bad("not a valid secp256k1 key"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::OpenOptionsExt;

    fn write(dir: &Path, name: &str, text: &str, mode: u32) -> std::path::PathBuf {
        use std::io::Write;
        let path = dir.join(name);
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .truncate(true)
            .write(true)
            .mode(mode)
            .open(&path)
            .expect("create");
        f.write_all(text.as_bytes()).expect("write");
        path
    }

    #[test]
    fn keys_load_and_permissions_are_enforced() {
        let dir = tempfile::tempdir().expect("tempdir");
        let wg = SecretKey::generate_private().to_base64();
        let ok = write(dir.path(), "wg.key", &wg, 0o600);
        assert!(load_wg_key(&ok).is_ok());
        let open = write(dir.path(), "open.key", &wg, 0o644);
        let e = load_wg_key(&open).expect_err("world readable");
        assert!(e.to_string().contains("0644"), "{e}");
        assert!(!e.to_string().contains(&wg), "key leaked into the error");

        let hex = "0x4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318";
        let chain = write(dir.path(), "chain.key", hex, 0o600);
        assert!(load_chain_key(&chain).is_ok());
        let junk = write(dir.path(), "junk.key", "not hex", 0o600);
        assert!(load_chain_key(&junk).is_err());
        let zero = write(dir.path(), "zero.key", &format!("{}", B256::ZERO), 0o600);
        let e = load_chain_key(&zero).expect_err("zero key");
        assert!(!e.to_string().contains("0000"), "{e}");
    }
}
