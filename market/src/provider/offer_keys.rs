//! The two keys in a provider's offer that its configuration file may leave
//! out, because the provider can find them itself:
//!
//! - `offer.wg_public_key`: the public half of the data plane's private key,
//!   asked over the interface's UAPI socket (`get=1`, as `wg show` does);
//! - `offer.chain_address`: the address of `chain.key_file`'s key.
//!
//! A packaged provider thus ships a configuration with no generated values:
//! the keys live only in their own 0600 files. A key written in the file is
//! used as written (the session host still checks the chain address against
//! the key file). Neither the private keys nor anything derived from them
//! but the public values is logged.
//!
//! The lookups are plain functions over what they read, so they are tested
//! without a daemon or a chain.

use crate::chain::{read_key_file, ChainFile};
use flowshield_proto::{ChainAddress, WgPublicKey};
use flowshield_tunnel::uapi::client::ClientError;
use flowshield_tunnel::uapi::DeviceSnapshot;

/// `offer.wg_public_key`: `written` if given, else derived from the private
/// key of the data plane `iface`, which `get` asks for (over UAPI in the
/// provider: [`flowshield_tunnel::uapi::client::get`]). The error is the
/// reason, for [`crate::provider::ProviderError::ConfigField`].
pub fn wg_public_key(
    written: Option<&str>,
    iface: &str,
    get: impl FnOnce(&str) -> Result<DeviceSnapshot, ClientError>,
) -> Result<WgPublicKey, String> {
    if let Some(text) = written {
        return text.parse::<WgPublicKey>().map_err(|e| e.to_string());
    }
    let snapshot = get(iface).map_err(|e| {
        format!(
            "omitted, so it is read from the data plane, but {e}; start the interface \
             (systemctl start flowshield@{iface}) or write the key here"
        )
    })?;
    // The full socket shows the private key; the restricted one only the
    // public key.
    let public = match (snapshot.private_key, snapshot.own_public_key) {
        (Some(private), _) if !private.is_zero() => private.public_key(),
        (_, Some(public)) => public,
        _ => {
            return Err(format!(
                "omitted, so it is read from the data plane, but interface {iface} has no private key set"
            ))
        }
    };
    let key = WgPublicKey(public.0);
    tracing::info!(iface, wg_public_key = %key, "offer.wg_public_key from the data plane");
    Ok(key)
}

/// `offer.chain_address`: `written` if given, else the address of the
/// `[chain]` table's key file.
pub fn chain_address(
    written: Option<&str>,
    chain: Option<&ChainFile>,
) -> Result<ChainAddress, String> {
    if let Some(text) = written {
        return text.parse::<ChainAddress>().map_err(|e| e.to_string());
    }
    let chain = chain.ok_or_else(|| {
        "required without a [chain] table (with one it defaults to chain.key_file's address)"
            .to_string()
    })?;
    let signer = read_key_file(&chain.key_file)
        .map_err(|e| format!("omitted, so it is chain.key_file's address, but {e}"))?;
    let address = ChainAddress(signer.address().0 .0);
    tracing::info!(chain_address = %address, "offer.chain_address from chain.key_file");
    Ok(address)
}

#[cfg(test)]
mod tests {
    use super::*;
    use flowshield_chain::alloy::signers::local::PrivateKeySigner;
    use flowshield_tunnel::key::SecretKey;
    use std::io;

    fn snapshot(private_key: Option<SecretKey>) -> DeviceSnapshot {
        DeviceSnapshot {
            private_key,
            own_public_key: None,
            listen_port: 51820,
            fwmark: 0,
            peers: Vec::new(),
        }
    }

    #[test]
    fn wg_key_as_written_is_used_without_asking_the_data_plane() {
        let written = WgPublicKey([7; 32]).to_string();
        let key = wg_public_key(Some(&written), "fs0", |_| -> Result<_, ClientError> {
            panic!("asked the data plane although the key was written")
        })
        .unwrap();
        assert_eq!(key, WgPublicKey([7; 32]));
        let err = wg_public_key(Some("not base64"), "fs0", |_| Ok(snapshot(None))).unwrap_err();
        assert!(!err.is_empty());
    }

    #[test]
    fn omitted_wg_key_is_the_data_planes_public_key() {
        let private = SecretKey::generate_private();
        let expected = WgPublicKey(private.public_key().0);
        let mut asked = None;
        let key = wg_public_key(None, "fs0", |iface| {
            asked = Some(iface.to_string());
            Ok(snapshot(Some(private.clone())))
        })
        .unwrap();
        assert_eq!(key, expected);
        assert_eq!(asked.as_deref(), Some("fs0"));
    }

    #[test]
    fn omitted_wg_key_errors_say_what_to_do() {
        let err = wg_public_key(None, "fs0", |iface| {
            Err(ClientError::Connect {
                iface: iface.into(),
                source: io::Error::from(io::ErrorKind::PermissionDenied),
            })
        })
        .unwrap_err();
        assert!(err.contains("cannot reach interface fs0"), "{err}");
        assert!(err.contains("systemctl start flowshield@fs0"), "{err}");
        let err = wg_public_key(None, "fs0", |_| Ok(snapshot(None))).unwrap_err();
        assert!(err.contains("has no private key set"), "{err}");
    }

    #[test]
    fn omitted_chain_address_is_the_key_files() {
        let dir = tempfile::tempdir().unwrap();
        let key_file = dir.path().join("chain.key");
        let signer = PrivateKeySigner::random();
        crate::chain::write_key_file(&key_file, &signer).unwrap();
        let chain = ChainFile {
            rpc_url: "http://127.0.0.1:8545".into(),
            market_address: Some("0x0000000000000000000000000000000000000001".into()),
            deployment: None,
            key_file: key_file.clone(),
        };
        let address = chain_address(None, Some(&chain)).unwrap();
        assert_eq!(address.0, signer.address().0 .0);

        let written = "0x00000000000000000000000000000000000000bb";
        let address = chain_address(Some(written), Some(&chain)).unwrap();
        assert_eq!(address.0[19], 0xbb);

        let err = chain_address(None, None).unwrap_err();
        assert!(err.contains("without a [chain] table"), "{err}");
        std::fs::remove_file(&key_file).unwrap();
        let err = chain_address(None, Some(&chain)).unwrap_err();
        assert!(err.contains("chain.key_file's address"), "{err}");
        assert!(err.contains(&key_file.display().to_string()), "{err}");
    }
}
