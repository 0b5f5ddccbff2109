//! The WireGuard cross-platform userspace API (UAPI): the text protocol that
//! `wg` from wireguard-tools speaks over `/var/run/wireguard/IFACE.sock`.
//!
//! A request is a command line (`get=1`, `set=1`, or FlowShield's `stats=1`
//! extension), `key=value` lines, and an empty line. The reply to `get=1` is a
//! device snapshot; every reply ends with `errno=N` and an empty line.
//! Parsing and formatting live here and are tested without sockets; the
//! socket server is in [`server`] and a blocking client in [`client`].

pub mod access;
pub mod client;
pub mod restricted;
pub mod server;
pub mod set;
mod snapshot;

pub use access::SocketAccess;
pub use set::{PeerUpdate, SetRequest};
pub use snapshot::{Counters, DeviceSnapshot, PeerSnapshot};

use std::fmt;

/// Directory holding the UAPI sockets, as wireguard-tools expects.
pub const SOCKET_DIR: &str = "/var/run/wireguard";

/// The socket path for an interface.
pub fn socket_path(iface: &str) -> std::path::PathBuf {
    std::path::Path::new(SOCKET_DIR).join(format!("{iface}.sock"))
}

/// Largest request accepted, so a client cannot make the daemon buffer
/// without bound (a `setconf` of 10k peers is about 2 MiB).
pub const MAX_REQUEST_BYTES: usize = 16 << 20;

/// A UAPI request after framing.
#[derive(Debug, Clone, PartialEq)]
pub enum Request {
    Get,
    Set(SetRequest),
    /// FlowShield extension: interface counters (`malformed_packets=` …).
    Stats,
}

/// A rejected request: which line, which key, why, and the errno the reply
/// carries.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct UapiError {
    pub line: usize,
    pub key: String,
    pub message: String,
    pub errno: i32,
}

impl UapiError {
    pub fn invalid(line: usize, key: &str, message: impl Into<String>) -> Self {
        Self {
            line,
            key: key.chars().take(64).collect(),
            message: message.into(),
            errno: libc::EINVAL,
        }
    }
    pub fn protocol(message: impl Into<String>) -> Self {
        Self {
            line: 1,
            key: String::new(),
            message: message.into(),
            errno: libc::EPROTO,
        }
    }
}

impl fmt::Display for UapiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.key.is_empty() {
            write!(f, "UAPI line {}: {}", self.line, self.message)
        } else {
            write!(
                f,
                "UAPI line {} ({}): {}",
                self.line, self.key, self.message
            )
        }
    }
}

impl Request {
    /// Parses one complete request: `text` holds every line up to, but not
    /// including, the terminating empty line.
    pub fn parse(text: &str) -> Result<Self, UapiError> {
        let mut lines = text.split('\n');
        let command = lines.next().unwrap_or_default();
        let body: Vec<&str> = lines.collect();
        match command {
            "get=1" | "stats=1" if body.iter().any(|l| !l.is_empty()) => Err(UapiError::invalid(
                2,
                body[0],
                "get and stats take no arguments",
            )),
            "get=1" => Ok(Request::Get),
            "stats=1" => Ok(Request::Stats),
            "set=1" => SetRequest::parse(body, 2).map(Request::Set),
            other => Err(UapiError::protocol(format!(
                "unknown command '{}' (expected get=1 or set=1)",
                other.chars().take(64).collect::<String>()
            ))),
        }
    }
}

/// The reply trailer: `errno=N` and the empty line.
pub fn errno_line(errno: i32) -> String {
    format!("errno={errno}\n\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_commands() {
        assert_eq!(Request::parse("get=1").unwrap(), Request::Get);
        assert_eq!(Request::parse("stats=1").unwrap(), Request::Stats);
        assert!(matches!(Request::parse("set=1").unwrap(), Request::Set(_)));
        let err = Request::parse("delete=1").unwrap_err();
        assert_eq!(err.errno, libc::EPROTO);
        let err = Request::parse("get=1\nlisten_port=1").unwrap_err();
        assert_eq!(err.errno, libc::EINVAL);
    }

    #[test]
    fn errors_display_line_and_key() {
        let err = UapiError::invalid(4, "listen_port", "'x' is not a valid port");
        assert_eq!(
            err.to_string(),
            "UAPI line 4 (listen_port): 'x' is not a valid port"
        );
    }
}
