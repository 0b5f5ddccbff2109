//! Who may use a UAPI socket besides its owner.
//!
//! `get=1` reveals the private key and `set=1` reconfigures the interface, so
//! the socket is created mode 0600 like wireguard-go's. A service that drives
//! the data plane without running as root (the market provider under its
//! `flowshield` system user) is let in through a group instead: the socket
//! becomes 0660 and group-owned by it. Root keeps access either way, so the
//! real `wg` tool works unchanged.

use std::ffi::CString;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// The socket's access mode.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum SocketAccess {
    /// Mode 0600: the owner only.
    #[default]
    OwnerOnly,
    /// Mode 0660, group-owned by this gid: the group's members may drive the
    /// interface.
    Group(u32),
}

impl SocketAccess {
    /// The permission bits of the socket file.
    pub fn mode(self) -> u32 {
        match self {
            SocketAccess::OwnerOnly => 0o600,
            SocketAccess::Group(_) => 0o660,
        }
    }

    /// `None` or an empty string: owner only; otherwise a group name or a
    /// numeric gid (as `FLOWSHIELD_UAPI_GROUP` / `--uapi-group` give it).
    pub fn from_group_spec(spec: Option<&str>) -> Result<Self, GroupError> {
        match spec.map(str::trim) {
            None | Some("") => Ok(SocketAccess::OwnerOnly),
            Some(spec) => resolve_group(spec).map(SocketAccess::Group),
        }
    }
}

/// Whether members of group `gid` (not root, not the directory's owner) may
/// pass through a directory with permission bits `mode` owned by group
/// `dir_gid`: they need search (x) permission from the group bits if the
/// directory is theirs, from the "other" bits if not.
pub fn dir_admits_group(mode: u32, dir_gid: u32, gid: u32) -> bool {
    let bit = if dir_gid == gid { 0o010 } else { 0o001 };
    mode & bit != 0
}

/// Why the socket directory keeps a group out, if it does: `None` when
/// `dir` does not exist yet (it is then created searchable by all) or
/// admits the group.
pub fn group_blocked_by_dir(dir: &Path, gid: u32) -> Option<String> {
    let meta = std::fs::metadata(dir).ok()?;
    let mode = meta.mode() & 0o7777;
    (!dir_admits_group(mode, meta.gid(), gid)).then(|| {
        format!(
            "{} has mode {mode:04o} (owner {}:{}): members of group {gid} cannot reach the UAPI socket inside it; \
             make it searchable for them (e.g. chmod o+x, or chgrp {gid} and chmod g+x)",
            dir.display(),
            meta.uid(),
            meta.gid()
        )
    })
}

/// Why a group could not be resolved.
#[derive(Debug, thiserror::Error)]
pub enum GroupError {
    #[error("UAPI socket group '{0}': no such group")]
    Unknown(String),
    #[error("UAPI socket group '{0}': not a valid group name")]
    Invalid(String),
    #[error("UAPI socket group '{name}': lookup failed: {source}")]
    Lookup { name: String, source: io::Error },
}

/// A numeric gid as given, or the gid of the group named `spec` (through
/// NSS, so /etc/group and any configured directory service).
pub fn resolve_group(spec: &str) -> Result<u32, GroupError> {
    if let Ok(gid) = spec.parse::<u32>() {
        return Ok(gid);
    }
    let name = CString::new(spec).map_err(|_| GroupError::Invalid(spec.to_string()))?;
    let mut buf = vec![0u8; 1024];
    loop {
        // SAFETY: getgrnam_r writes only into `group` and `buf` (whose length
        // we pass); `result` points to `group` or is null afterwards.
        let mut group: libc::group = unsafe { std::mem::zeroed() };
        let mut result: *mut libc::group = std::ptr::null_mut();
        let rc = unsafe {
            libc::getgrnam_r(
                name.as_ptr(),
                &mut group,
                buf.as_mut_ptr().cast(),
                buf.len(),
                &mut result,
            )
        };
        if rc == libc::ERANGE && buf.len() < 1 << 20 {
            buf.resize(buf.len() * 2, 0);
            continue;
        }
        if rc != 0 {
            return Err(GroupError::Lookup {
                name: spec.to_string(),
                source: io::Error::from_raw_os_error(rc),
            });
        }
        if result.is_null() {
            return Err(GroupError::Unknown(spec.to_string()));
        }
        return Ok(group.gr_gid);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn resolves_names_and_numbers() {
        assert_eq!(resolve_group("root").unwrap(), 0);
        assert_eq!(resolve_group("4242").unwrap(), 4242);
        assert!(matches!(
            resolve_group("no-such-group-flowshield"),
            Err(GroupError::Unknown(_))
        ));
        assert!(matches!(
            resolve_group("bad\0name"),
            Err(GroupError::Invalid(_))
        ));
    }

    #[test]
    fn socket_dir_mode_decides_whether_the_group_gets_in() {
        // Searchable by others: any group passes.
        assert!(dir_admits_group(0o755, 0, 42));
        assert!(dir_admits_group(0o711, 0, 42));
        // Closed to others: only the directory's own group, with g+x.
        assert!(!dir_admits_group(0o700, 0, 42));
        assert!(!dir_admits_group(0o750, 0, 42));
        assert!(dir_admits_group(0o750, 42, 42));
        assert!(
            !dir_admits_group(0o705, 42, 42),
            "group bits decide for the owning group"
        );

        let dir = tempfile::tempdir().unwrap();
        let gid = unsafe { libc::getegid() };
        let other = gid.wrapping_add(1);
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
        let why = group_blocked_by_dir(dir.path(), other).expect("0700 keeps the group out");
        assert!(
            why.contains("0700") && why.contains(&other.to_string()),
            "{why}"
        );
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        assert_eq!(group_blocked_by_dir(dir.path(), other), None);
        assert_eq!(
            group_blocked_by_dir(&dir.path().join("absent"), other),
            None
        );
    }

    #[test]
    fn empty_spec_means_owner_only() {
        assert_eq!(
            SocketAccess::from_group_spec(None).unwrap(),
            SocketAccess::OwnerOnly
        );
        assert_eq!(
            SocketAccess::from_group_spec(Some(" ")).unwrap(),
            SocketAccess::OwnerOnly
        );
        assert_eq!(
            SocketAccess::from_group_spec(Some("0")).unwrap(),
            SocketAccess::Group(0)
        );
        assert_eq!(SocketAccess::OwnerOnly.mode(), 0o600);
        assert_eq!(SocketAccess::Group(7).mode(), 0o660);
    }
}
