//! # flowshield-keyfile
//!
//! Files that hold secrets (private keys, wg-quick files with a
//! `PrivateKey`), handled the way ssh handles its keys:
//! - [`read_private`] refuses a file that its group or others may read,
//!   with a `chmod 600` hint, rather than use a key that may have leaked;
//! - [`write_private`] replaces a file atomically with one that is mode 0600
//!   from the moment it exists (never briefly wider);
//! - [`create_private`] does the same but refuses to replace an existing
//!   file (a key that must never be overwritten by accident).
//!
//! Errors name the path and never carry the file's contents. Not here: what
//! the bytes mean (each caller parses its own key format) and logging.

use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Mode of every file this crate writes: read and write for the owner only.
pub const PRIVATE_MODE: u32 = 0o600;

/// Why a secret file could not be read or written. Never carries the
/// file's contents.
#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    /// The file system refused (absent file, no permission, full disk...).
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What the file system said.
        source: io::Error,
    },
    /// The group or others may read the file, so its secret may have leaked.
    #[error("{path}: {}", readable(.path, *.mode))]
    Readable {
        /// The file.
        path: PathBuf,
        /// Its permission bits (`& 0o777`).
        mode: u32,
    },
}

fn readable(path: &Path, mode: u32) -> String {
    format!(
        "mode {mode:04o} lets others read it; run chmod 600 {}",
        path.display()
    )
}

impl KeyFileError {
    fn io(path: &Path, source: io::Error) -> Self {
        KeyFileError::Io {
            path: path.to_path_buf(),
            source,
        }
    }

    /// The file the error is about.
    pub fn path(&self) -> &Path {
        match self {
            KeyFileError::Io { path, .. } | KeyFileError::Readable { path, .. } => path,
        }
    }

    /// What is wrong, without the path (for callers whose own error names
    /// the file already).
    pub fn reason(&self) -> String {
        match self {
            KeyFileError::Io { source, .. } => source.to_string(),
            KeyFileError::Readable { path, mode } => readable(path, *mode),
        }
    }

    /// Whether the file does not exist.
    pub fn is_not_found(&self) -> bool {
        matches!(self, KeyFileError::Io { source, .. } if source.kind() == io::ErrorKind::NotFound)
    }
}

/// Fails with [`KeyFileError::Readable`] if the group or others may read or
/// write `path` (any of the bits `0o077`).
pub fn check_private(path: &Path) -> Result<(), KeyFileError> {
    let meta = fs::metadata(path).map_err(|e| KeyFileError::io(path, e))?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(KeyFileError::Readable {
            path: path.to_path_buf(),
            mode,
        });
    }
    Ok(())
}

/// The contents of `path`, refused if others may read it.
pub fn read_private(path: &Path) -> Result<Vec<u8>, KeyFileError> {
    check_private(path)?;
    fs::read(path).map_err(|e| KeyFileError::io(path, e))
}

/// [`read_private`] for a text file (keys in hex or base64).
pub fn read_private_string(path: &Path) -> Result<String, KeyFileError> {
    check_private(path)?;
    fs::read_to_string(path).map_err(|e| KeyFileError::io(path, e))
}

fn create_parent(path: &Path) -> Result<&Path, KeyFileError> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    fs::create_dir_all(dir).map_err(|e| KeyFileError::io(dir, e))?;
    Ok(dir)
}

/// Replaces `path` with `contents`: written to a 0600 temporary file beside
/// it, flushed to disk, then renamed over `path`. A reader sees the old file
/// or the new one, never a partial or wider one. Parent folders are created.
pub fn write_private(path: &Path, contents: &[u8]) -> Result<(), KeyFileError> {
    let dir = create_parent(path)?;
    let mut file = tempfile::Builder::new()
        .prefix(".flowshield-")
        .permissions(fs::Permissions::from_mode(PRIVATE_MODE))
        .tempfile_in(dir)
        .map_err(|e| KeyFileError::io(dir, e))?;
    file.write_all(contents)
        .and_then(|()| file.as_file().sync_all())
        .map_err(|e| KeyFileError::io(file.path(), e))?;
    file.persist(path)
        .map_err(|e| KeyFileError::io(path, e.error))?;
    Ok(())
}

/// Creates `path` (mode 0600) holding `contents`; fails if it exists, so a
/// key is never overwritten by accident. Parent folders are created.
pub fn create_private(path: &Path, contents: &[u8]) -> Result<(), KeyFileError> {
    create_parent(path)?;
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(PRIVATE_MODE)
        .open(path)
        .map_err(|e| KeyFileError::io(path, e))?;
    file.write_all(contents)
        .and_then(|()| file.sync_all())
        .map_err(|e| KeyFileError::io(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(path: &Path) -> u32 {
        fs::metadata(path).expect("metadata").permissions().mode() & 0o777
    }

    #[test]
    fn a_file_others_can_read_is_refused_with_a_hint() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("key");
        fs::write(&path, "secret-bytes").expect("write");
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).expect("chmod");
        let err = read_private(&path).expect_err("0644 refused");
        assert!(matches!(err, KeyFileError::Readable { mode: 0o644, .. }));
        let text = err.to_string();
        assert!(
            text.contains("0644") && text.contains("chmod 600"),
            "{text}"
        );
        assert!(!text.contains("secret-bytes"), "contents leaked: {text}");
        fs::set_permissions(&path, fs::Permissions::from_mode(0o640)).expect("chmod");
        assert!(read_private_string(&path).is_err());
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).expect("chmod");
        assert_eq!(read_private_string(&path).expect("read"), "secret-bytes");
        fs::set_permissions(&path, fs::Permissions::from_mode(0o400)).expect("chmod");
        assert_eq!(read_private(&path).expect("read"), b"secret-bytes");
    }

    #[test]
    fn a_missing_file_is_not_found() {
        let dir = tempfile::tempdir().expect("tempdir");
        let err = read_private(&dir.path().join("absent")).expect_err("absent");
        assert!(err.is_not_found(), "{err}");
        assert_eq!(err.path(), dir.path().join("absent"));
    }

    #[test]
    fn write_replaces_a_wider_file_with_a_0600_one() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("sub/dir/secret");
        write_private(&path, b"first").expect("write");
        assert_eq!(mode(&path), 0o600);
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).expect("chmod");
        write_private(&path, b"second").expect("replace");
        assert_eq!(fs::read(&path).expect("read"), b"second");
        assert_eq!(mode(&path), 0o600);
        // No temporary file is left beside it.
        let names: Vec<_> = fs::read_dir(path.parent().expect("parent"))
            .expect("list")
            .collect();
        assert_eq!(names.len(), 1);
    }

    #[test]
    fn create_refuses_an_existing_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("new/key");
        create_private(&path, b"one").expect("create");
        assert_eq!(mode(&path), 0o600);
        let err = create_private(&path, b"two").expect_err("exists");
        assert!(
            matches!(&err, KeyFileError::Io { source, .. } if source.kind() == io::ErrorKind::AlreadyExists),
            "{err}"
        );
        assert_eq!(fs::read(&path).expect("read"), b"one");
    }
}
