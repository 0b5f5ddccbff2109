//! The node's libp2p identity: an Ed25519 key kept in a file readable by
//! its owner only (mode 0600), in libp2p's protobuf keypair encoding.
//!
//! A key file that others can read is refused rather than used, as ssh does:
//! the key signs every heartbeat, so a leaked key lets anyone impersonate
//! the provider. The key itself is never logged; only its PeerId is.

use flowshield_keyfile::KeyFileError;
use flowshield_proto::Keypair;
use std::io;
use std::path::{Path, PathBuf};

/// Why the identity could not be loaded or created.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("{path}: mode {mode:o} lets others read the key; run chmod 600 {path}")]
    Permissions { path: PathBuf, mode: u32 },
    #[error("{path}: not a libp2p Ed25519 key file ({reason})")]
    Malformed { path: PathBuf, reason: String },
}

impl From<KeyFileError> for IdentityError {
    fn from(e: KeyFileError) -> Self {
        match e {
            KeyFileError::Readable { path, mode } => IdentityError::Permissions { path, mode },
            KeyFileError::Io { path, source } => IdentityError::Io { path, source },
        }
    }
}

/// Reads the key at `path`, or creates a new one there if absent.
pub fn load_or_create(path: &Path) -> Result<Keypair, IdentityError> {
    let malformed = |reason: String| IdentityError::Malformed {
        path: path.to_path_buf(),
        reason,
    };
    match flowshield_keyfile::read_private(path) {
        Ok(bytes) => {
            let keypair =
                Keypair::from_protobuf_encoding(&bytes).map_err(|e| malformed(e.to_string()))?;
            if keypair.clone().try_into_ed25519().is_err() {
                return Err(malformed("not an Ed25519 key".into()));
            }
            tracing::info!(path = %path.display(), peer_id = %keypair.public().to_peer_id(), "loaded identity");
            Ok(keypair)
        }
        Err(e) if e.is_not_found() => {
            let keypair = Keypair::generate_ed25519();
            let bytes = keypair
                .to_protobuf_encoding()
                .map_err(|e| malformed(e.to_string()))?;
            // create_new: never replaces a key another process just wrote.
            flowshield_keyfile::create_private(path, &bytes)?;
            tracing::info!(path = %path.display(), peer_id = %keypair.public().to_peer_id(), "created identity");
            Ok(keypair)
        }
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn creates_0600_then_loads_the_same_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/node.key");
        let first = load_or_create(&path).unwrap();
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let second = load_or_create(&path).unwrap();
        assert_eq!(first.public(), second.public());
    }

    #[test]
    fn refuses_readable_or_malformed_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("node.key");
        load_or_create(&path).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        assert!(matches!(
            load_or_create(&path),
            Err(IdentityError::Permissions { mode: 0o644, .. })
        ));
        fs::write(&path, b"garbage").unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
        assert!(matches!(
            load_or_create(&path),
            Err(IdentityError::Malformed { .. })
        ));
    }
}
