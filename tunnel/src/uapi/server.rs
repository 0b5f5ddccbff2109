//! The UAPI socket server: frames requests from each connection and answers
//! them through a [`Handler`]. A bad request gets `errno=N` and the
//! connection (and daemon) carry on.

use super::{
    errno_line, Counters, DeviceSnapshot, Request, SetRequest, SocketAccess, UapiError,
    MAX_REQUEST_BYTES,
};
use std::future::Future;
use std::io;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};

/// What the server needs from the device.
pub trait Handler: Send + Sync + 'static {
    fn get(&self) -> DeviceSnapshot;
    fn stats(&self) -> Counters;
    fn set(&self, req: SetRequest) -> impl Future<Output = Result<(), UapiError>> + Send;
}

/// A bound UAPI socket; the file is removed on drop.
pub struct Listener {
    listener: UnixListener,
    path: PathBuf,
}

/// Why the socket could not be bound.
#[derive(Debug, thiserror::Error)]
pub enum BindError {
    #[error("interface is already managed by a running daemon ({0} answers)")]
    InUse(PathBuf),
    #[error("cannot create UAPI socket {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
}

impl Listener {
    /// Binds `path` with mode 0600 (`get` reveals the private key). A stale
    /// socket left by a dead daemon is replaced; a live one is an error.
    pub fn bind(path: &Path) -> Result<Self, BindError> {
        Self::bind_with_access(path, SocketAccess::OwnerOnly)
    }

    /// Binds `path` as [`Listener::bind`] does, then opens it to a group if
    /// `access` says so (0660, group-owned; see [`super::access`]).
    pub fn bind_with_access(path: &Path, access: SocketAccess) -> Result<Self, BindError> {
        let io_err = |source| BindError::Io {
            path: path.to_path_buf(),
            source,
        };
        if let Some(dir) = path.parent() {
            // Searchable by all, as wireguard-go makes it: the sockets
            // themselves carry the access control.
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o755)
                .create(dir)
                .map_err(io_err)?;
        }
        if path.exists() {
            if std::os::unix::net::UnixStream::connect(path).is_ok() {
                return Err(BindError::InUse(path.to_path_buf()));
            }
            std::fs::remove_file(path).map_err(io_err)?;
        }
        // Create it private from the start: no window with a wider mode.
        let old_umask = unsafe { libc::umask(0o077) };
        let bound = UnixListener::bind(path);
        unsafe { libc::umask(old_umask) };
        let listener = bound.map_err(io_err)?;
        // From here on the file is ours: remove it if anything fails.
        let listener = Self {
            listener,
            path: path.to_path_buf(),
        };
        if let SocketAccess::Group(gid) = access {
            // Group first, then the group bits: never readable by the
            // previous (root) group.
            std::os::unix::fs::chown(path, None, Some(gid)).map_err(io_err)?;
        }
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(access.mode()))
            .map_err(io_err)?;
        Ok(listener)
    }

    /// Accepts connections forever.
    pub async fn serve<H: Handler>(&self, handler: Arc<H>) {
        loop {
            match self.listener.accept().await {
                Ok((stream, _)) => {
                    tokio::spawn(handle_connection(stream, handler.clone()));
                }
                Err(err) => tracing::warn!(%err, "UAPI accept failed"),
            }
        }
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Reads one request (up to the empty line). `Ok(None)` at a clean EOF.
async fn read_request<R: tokio::io::AsyncBufRead + Unpin>(
    reader: &mut R,
) -> Result<Option<String>, UapiError> {
    let mut text = Vec::new();
    loop {
        let budget = (MAX_REQUEST_BYTES - text.len()) as u64;
        if budget == 0 {
            return Err(UapiError {
                errno: libc::EMSGSIZE,
                ..UapiError::protocol("request larger than 16 MiB")
            });
        }
        let start = text.len();
        let n = (&mut *reader)
            .take(budget)
            .read_until(b'\n', &mut text)
            .await
            .map_err(|e| UapiError::protocol(e.to_string()))?;
        if n == 0 {
            return if text.is_empty() {
                Ok(None)
            } else {
                Err(UapiError::protocol("connection closed inside a request"))
            };
        }
        if &text[start..] == b"\n" {
            text.truncate(start.saturating_sub(1));
            return String::from_utf8(text)
                .map(Some)
                .map_err(|_| UapiError::protocol("request is not UTF-8"));
        }
    }
}

async fn handle_connection<H: Handler>(stream: UnixStream, handler: Arc<H>) {
    let (read, mut write) = stream.into_split();
    let mut reader = BufReader::new(read);
    loop {
        let reply = match read_request(&mut reader).await {
            Ok(None) => return,
            Ok(Some(text)) => match Request::parse(&text) {
                Ok(Request::Get) => {
                    tracing::debug!("UAPI get");
                    handler.get().to_uapi() + &errno_line(0)
                }
                Ok(Request::Stats) => {
                    tracing::debug!("UAPI stats");
                    handler.stats().to_uapi() + &errno_line(0)
                }
                Ok(Request::Set(req)) => {
                    // Never the key itself: only whether one was given.
                    tracing::debug!(
                        peers = req.peers.len(),
                        private_key = req.private_key.is_some(),
                        listen_port = ?req.listen_port,
                        replace_peers = req.replace_peers,
                        "UAPI set"
                    );
                    match handler.set(req).await {
                        Ok(()) => errno_line(0),
                        Err(err) => {
                            tracing::warn!(error = %err, "UAPI set failed");
                            errno_line(err.errno)
                        }
                    }
                }
                Err(err) => {
                    tracing::warn!(error = %err, "rejected UAPI request");
                    errno_line(err.errno)
                }
            },
            Err(err) => {
                // Framing is lost: answer and close.
                tracing::warn!(error = %err, "rejected UAPI request");
                let _ = write.write_all(errno_line(err.errno).as_bytes()).await;
                return;
            }
        };
        if write.write_all(reply.as_bytes()).await.is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    #[tokio::test]
    async fn socket_is_private_unless_a_group_is_given() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("run/wireguard/t0.sock");
        let private = Listener::bind(&path).unwrap();
        let meta = std::fs::metadata(&path).unwrap();
        assert_eq!(meta.mode() & 0o777, 0o600);
        drop(private);
        assert!(!path.exists(), "socket left behind on drop");

        // Our own group: chown to it needs no privilege, so this runs as any user.
        let gid = unsafe { libc::getegid() };
        let shared = Listener::bind_with_access(&path, SocketAccess::Group(gid)).unwrap();
        let meta = std::fs::metadata(&path).unwrap();
        assert_eq!(meta.mode() & 0o777, 0o660);
        assert_eq!(meta.gid(), gid);
        assert!(std::os::unix::net::UnixStream::connect(&path).is_ok());
        drop(shared);
    }

    #[tokio::test]
    async fn frames_requests_and_limits() {
        let mut input: &[u8] = b"get=1\n\nset=1\nlisten_port=5\n\n";
        let mut reader = BufReader::new(&mut input);
        assert_eq!(read_request(&mut reader).await.unwrap().unwrap(), "get=1");
        assert_eq!(
            read_request(&mut reader).await.unwrap().unwrap(),
            "set=1\nlisten_port=5"
        );
        assert_eq!(read_request(&mut reader).await.unwrap(), None);

        let mut partial: &[u8] = b"set=1\nlisten_port=5\n";
        let mut reader = BufReader::new(&mut partial);
        assert!(read_request(&mut reader).await.is_err());

        let mut binary: &[u8] = b"set=1\n\xff\xfe\n\n";
        let mut reader = BufReader::new(&mut binary);
        assert_eq!(
            read_request(&mut reader).await.unwrap_err().errno,
            libc::EPROTO
        );
    }
}
