//! The running client's control socket: a unix socket (0600, in the
//! client's state directory) taking one line, `disconnect`, and answering
//! with one JSON line (a [`ClientEvent`], `disconnected` or `error`) once
//! the order is settled on chain.

use super::ClientError;
use crate::wire::client::ClientEvent;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{mpsc, oneshot};
use tokio::task::{JoinHandle, JoinSet};

/// Longest command line read.
const MAX_LINE: usize = 256;

fn control_error(path: &Path, reason: impl ToString) -> ClientError {
    ClientError::Control {
        path: path.display().to_string(),
        reason: reason.to_string(),
    }
}

/// Where the client loop sends its answer to one `disconnect`.
pub type DisconnectReply = oneshot::Sender<ClientEvent>;

/// Listens on `path`; each `disconnect` is handed to the client loop with a
/// channel for its answer.
pub fn serve(
    path: &Path,
    commands: mpsc::Sender<Option<DisconnectReply>>,
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
    // Aborting the listener drops `handlers`, which aborts them too.
    Ok(tokio::spawn(async move {
        let mut handlers = JoinSet::new();
        loop {
            tokio::select! {
                accepted = listener.accept() => {
                    let Ok((stream, _)) = accepted else { break };
                    handlers.spawn(handle(stream, commands.clone()));
                }
                Some(_) = handlers.join_next(), if !handlers.is_empty() => {}
            }
        }
    }))
}

fn error(error: String) -> ClientEvent {
    ClientEvent::Error { error }
}

async fn handle(stream: UnixStream, commands: mpsc::Sender<Option<DisconnectReply>>) {
    let (read, mut write) = stream.into_split();
    let mut line = String::new();
    let mut reader = BufReader::new(read).take(MAX_LINE as u64);
    use tokio::io::AsyncReadExt as _;
    let _ = reader.read_line(&mut line).await;
    let answer = match line.trim() {
        "disconnect" => {
            let (tx, rx) = oneshot::channel();
            if commands.send(Some(tx)).await.is_err() {
                error("the client is already stopping".into())
            } else {
                rx.await
                    .unwrap_or_else(|_| error("the client stopped before answering".into()))
            }
        }
        other => error(format!(
            "unknown command '{}' (expected: disconnect)",
            other.chars().take(32).collect::<String>()
        )),
    };
    let Ok(mut line) = serde_json::to_string(&answer) else {
        return;
    };
    line.push('\n');
    let _ = write.write_all(line.as_bytes()).await;
}

/// `client disconnect`: asks the running client to disconnect and waits
/// for its answer.
pub async fn request_disconnect(
    path: &Path,
    timeout: Duration,
) -> Result<ClientEvent, ClientError> {
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
    use crate::wire::client::{Disconnected, SettledBy};
    use flowshield_chain::alloy::primitives::U256;

    fn summary() -> ClientEvent {
        ClientEvent::Disconnected(Disconnected {
            order_id: U256::from(1),
            provider: flowshield_proto::Keypair::generate_ed25519()
                .public()
                .to_peer_id(),
            settled_by: SettledBy::Provider,
            bytes: 0,
            voucher_wei: U256::ZERO,
            escrow_wei: U256::ZERO,
            provider_paid_wei: U256::ZERO,
            client_refunded_wei: U256::ZERO,
            status: "Settled".into(),
        })
    }

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
                let _ = reply.send(summary());
            }
        });
        let answer = request_disconnect(&path, Duration::from_secs(5))
            .await
            .unwrap();
        assert!(matches!(answer, ClientEvent::Disconnected(_)), "{answer:?}");
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
