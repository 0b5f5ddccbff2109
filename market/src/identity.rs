//! The node's libp2p identity: an Ed25519 key kept in a file readable by
//! its owner only (mode 0600), in libp2p's protobuf keypair encoding.
//!
//! A key file that others can read is refused rather than used, as ssh does:
//! the key signs every heartbeat, so a leaked key lets anyone impersonate
//! the provider. The key itself is never logged; only its PeerId is.

use flowshield_proto::Keypair;
use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
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

/// Reads the key at `path`, or creates a new one there if absent.
/// Replaces `path` with `contents` in a file created with mode 0600, so a
/// secret never sits in a file with wider permissions (not even briefly).
pub fn write_private_file(path: &Path, contents: &[u8]) -> io::Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        fs::create_dir_all(dir)?;
    }
    match fs::remove_file(path) {
        Ok(()) => {}
        Err(err) if err.kind() == io::ErrorKind::NotFound => {}
        Err(err) => return Err(err),
    }
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(contents)
}

pub fn load_or_create(path: &Path) -> Result<Keypair, IdentityError> {
    let io_err = |source| IdentityError::Io {
        path: path.to_path_buf(),
        source,
    };
    match fs::metadata(path) {
        Ok(meta) => {
            let mode = meta.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                return Err(IdentityError::Permissions {
                    path: path.to_path_buf(),
                    mode,
                });
            }
            let bytes = fs::read(path).map_err(io_err)?;
            let keypair =
                Keypair::from_protobuf_encoding(&bytes).map_err(|e| IdentityError::Malformed {
                    path: path.to_path_buf(),
                    reason: e.to_string(),
                })?;
            if keypair.clone().try_into_ed25519().is_err() {
                return Err(IdentityError::Malformed {
                    path: path.to_path_buf(),
                    reason: "not an Ed25519 key".into(),
                });
            }
            tracing::info!(path = %path.display(), peer_id = %keypair.public().to_peer_id(), "loaded identity");
            Ok(keypair)
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            let keypair = Keypair::generate_ed25519();
            let bytes = keypair
                .to_protobuf_encoding()
                .map_err(|e| IdentityError::Malformed {
                    path: path.to_path_buf(),
                    reason: e.to_string(),
                })?;
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                fs::create_dir_all(dir).map_err(io_err)?;
            }
            // create_new + mode: the file never exists with wider permissions.
            let mut file = OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(path)
                .map_err(io_err)?;
            file.write_all(&bytes).map_err(io_err)?;
            file.sync_all().map_err(io_err)?;
            tracing::info!(path = %path.display(), peer_id = %keypair.public().to_peer_id(), "created identity");
            Ok(keypair)
        }
        Err(e) => Err(io_err(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_file_replaces_a_wider_file_with_a_0600_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub").join("secret");
        write_private_file(&path, b"first").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"first");
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        write_private_file(&path, b"second").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"second");
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }

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
