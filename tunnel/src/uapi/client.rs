//! A blocking UAPI client, used by the CLI (`show`, `set`, `up`).

use super::{socket_path, Counters, DeviceSnapshot, UapiError};
use std::io::{self, BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

/// Why a UAPI call failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot reach interface {iface} (is it up? {source})")]
    Connect { iface: String, source: io::Error },
    #[error("UAPI connection to {iface} failed: {source}")]
    Io { iface: String, source: io::Error },
    #[error("interface {iface} rejected the request: {}", errno_text(*.errno))]
    Errno { iface: String, errno: i32 },
    #[error("interface {iface} sent a malformed reply: {source}")]
    Reply { iface: String, source: UapiError },
}

fn errno_text(errno: i32) -> String {
    format!("{} (errno {errno})", io::Error::from_raw_os_error(errno))
}

/// Sends one request (without the final empty line) and returns the reply
/// body without its `errno=` trailer.
pub fn call(iface: &str, request: &str) -> Result<String, ClientError> {
    call_at(&socket_path(iface), iface, request)
}

/// [`call`] through the socket at `path` (such as the restricted one,
/// [`super::restricted::socket_path`]); `iface` names it in errors.
pub fn call_at(path: &Path, iface: &str, request: &str) -> Result<String, ClientError> {
    let connect = |source| ClientError::Connect {
        iface: iface.to_string(),
        source,
    };
    let io_err = |source| ClientError::Io {
        iface: iface.to_string(),
        source,
    };
    let mut stream = UnixStream::connect(path).map_err(connect)?;
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .map_err(io_err)?;
    let mut text = request.trim_end_matches('\n').to_string();
    text.push_str("\n\n");
    stream.write_all(text.as_bytes()).map_err(io_err)?;
    let mut reader = BufReader::new(stream);
    let mut body = String::new();
    let mut line = String::new();
    loop {
        line.clear();
        if reader.read_line(&mut line).map_err(io_err)? == 0 {
            return Err(io_err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "daemon closed the connection without errno",
            )));
        }
        if let Some(value) = line.strip_prefix("errno=") {
            let errno: i32 = value.trim().parse().map_err(|_| ClientError::Reply {
                iface: iface.to_string(),
                source: UapiError::protocol(format!("bad errno line '{}'", line.trim())),
            })?;
            return if errno == 0 {
                Ok(body)
            } else {
                Err(ClientError::Errno {
                    iface: iface.to_string(),
                    errno,
                })
            };
        }
        body.push_str(&line);
    }
}

/// `get=1`, parsed.
pub fn get(iface: &str) -> Result<DeviceSnapshot, ClientError> {
    get_at(&socket_path(iface), iface)
}

/// [`get`] through the socket at `path`.
pub fn get_at(path: &Path, iface: &str) -> Result<DeviceSnapshot, ClientError> {
    let body = call_at(path, iface, "get=1")?;
    DeviceSnapshot::from_uapi(&body).map_err(|source| ClientError::Reply {
        iface: iface.to_string(),
        source,
    })
}

/// The `stats=1` extension, parsed.
pub fn stats(iface: &str) -> Result<Counters, ClientError> {
    let body = call(iface, "stats=1")?;
    Counters::from_uapi(&body).map_err(|source| ClientError::Reply {
        iface: iface.to_string(),
        source,
    })
}

/// Names of interfaces with a UAPI socket, sorted.
pub fn list_interfaces() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(super::SOCKET_DIR)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            e.file_name()
                .to_str()
                .and_then(|n| n.strip_suffix(".sock"))
                .map(str::to_string)
        })
        .collect();
    names.sort();
    names
}
