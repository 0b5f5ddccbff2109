//! The running client's control socket: a unix socket (0600, in the
//! client's state directory) taking one line, `disconnect`, and answering
//! with one JSON line once the order is settled on chain.

use super::ClientError;
use serde_json::{json, Value};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

/// Longest command line read.
const MAX_LINE: usize = 256;

fn control_error(path: &Path, reason: impl ToString) -> ClientError {
    ClientError::Control {
        path: path.display().to_string(),
        reason: reason.to_string(),
    }
}

/// Listens on `path`; each `disconnect` is handed to the client loop with a
/// channel for its answer.
pub fn serve(
    path: &Path,
    commands: mpsc::Sender<Option<oneshot::Sender<Value>>>,
) -> Result<JoinHandle<()>, ClientError> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| control_error(path, e))?;
    }
    if path.exists() {
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            return Err(control_error(
                path,
                "another client is running on this interface",
            ));
        }
        let _ = std::fs::remove_file(path);
    }
    let listener = UnixListener::bind(path).map_err(|e| control_error(path, e))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .map_err(|e| control_error(path, e))?;
    Ok(tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let commands = commands.clone();
            tokio::spawn(handle(stream, commands));
        }
    }))
}

async fn handle(stream: UnixStream, commands: mpsc::Sender<Option<oneshot::Sender<Value>>>) {
    let (read, mut write) = stream.into_split();
    let mut line = String::new();
    let mut reader = BufReader::new(read).take(MAX_LINE as u64);
    use tokio::io::AsyncReadExt as _;
    let _ = reader.read_line(&mut line).await;
    let answer = match line.trim() {
        "disconnect" => {
            let (tx, rx) = oneshot::channel();
            if commands.send(Some(tx)).await.is_err() {
                json!({"event": "error", "error": "the client is already stopping"})
            } else {
                rx.await.unwrap_or_else(
                    |_| json!({"event": "error", "error": "the client stopped before answering"}),
                )
            }
        }
        other => json!({
            "event": "error",
            "error": format!("unknown command '{}' (expected: disconnect)", other.chars().take(32).collect::<String>()),
        }),
    };
    let _ = write.write_all(format!("{answer}\n").as_bytes()).await;
}

/// `client disconnect`: asks the running client to disconnect and waits
/// for its answer.
pub async fn request_disconnect(path: &Path, timeout: Duration) -> Result<Value, ClientError> {
    let exchange = async {
        let mut stream = UnixStream::connect(path)
            .await
            .map_err(|e| control_error(path, format!("{e} (is the client running?)")))?;
        stream
            .write_all(b"disconnect\n")
            .await
            .map_err(|e| control_error(path, e))?;
        let mut line = String::new();
        BufReader::new(stream)
            .read_line(&mut line)
            .await
            .map_err(|e| control_error(path, e))?;
        serde_json::from_str(line.trim())
            .map_err(|e| control_error(path, format!("bad answer: {e}")))
    };
    tokio::time::timeout(timeout, exchange)
        .await
        .map_err(|_| control_error(path, format!("no answer within {timeout:?}")))?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn disconnect_round_trip_and_unknown_commands() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.ctl");
        let (tx, mut rx) = mpsc::channel(1);
        let server = serve(&path, tx).unwrap();
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        tokio::spawn(async move {
            if let Some(Some(reply)) = rx.recv().await {
                let _ = reply.send(json!({"event": "disconnected"}));
            }
        });
        let answer = request_disconnect(&path, Duration::from_secs(5))
            .await
            .unwrap();
        assert_eq!(answer["event"], "disconnected");
        let mut s = UnixStream::connect(&path).await.unwrap();
        s.write_all(b"reboot\n").await.unwrap();
        let mut line = String::new();
        BufReader::new(s).read_line(&mut line).await.unwrap();
        assert!(line.contains("unknown command 'reboot'"), "{line}");
        server.abort();
        let err = request_disconnect(&dir.path().join("none"), Duration::from_secs(1))
            .await
            .unwrap_err();
        assert!(err.to_string().contains("is the client running"), "{err}");
    }
}
