//! Error types: configuration, keys, probing, storage, chain and publication.

use std::path::PathBuf;

/// A configuration file that cannot be used. Field errors name the field with its path
/// in the file (`targets[1].endpoint`).
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The config file.
        path: PathBuf,
        /// The IO error.
        source: std::io::Error,
    },
    /// The file is not valid TOML for this schema (unknown key, wrong type...).
    #[error("{path}: {message}")]
    Parse {
        /// The config file.
        path: PathBuf,
        /// The TOML parser's message (it names the key and line).
        message: String,
    },
    /// A field has a value the verifier cannot use.
    #[error("{field}: {message}")]
    Field {
        /// Dotted path of the field.
        field: String,
        /// What is wrong with it.
        message: String,
    },
}

impl ConfigError {
    /// A [`ConfigError::Field`].
    pub fn field(field: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigError::Field {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// A key file that cannot be used. Never carries key material.
#[derive(Debug, thiserror::Error)]
#[error("key file {path}: {reason}")]
pub struct KeyError {
    /// The key file.
    pub path: PathBuf,
    /// What is wrong (permissions, encoding); never the key itself.
    pub reason: String,
}

/// A probe that could not run because of the verifier's own side (no route, cannot
/// spawn the daemon, UAPI failure). Provider-side failures (no handshake, loss, slow
/// transfer) are not errors: they are measured and judged.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    /// The provider's endpoint has no route from the probe namespace: nothing was sent.
    #[error("endpoint {endpoint} is not reachable from {netns}: {reason}")]
    EndpointUnreachable {
        /// The endpoint.
        endpoint: std::net::SocketAddr,
        /// The namespace the probe runs in (`host` for the current one).
        netns: String,
        /// `ip route get`'s message.
        reason: String,
    },
    /// A helper command (`ip`, `ping`, `flowshield daemon`) could not be run or failed.
    #[error("`{command}` failed: {message}")]
    Command {
        /// The command line.
        command: String,
        /// Exit status and stderr, or the spawn error.
        message: String,
    },
    /// The probe daemon's UAPI socket refused or failed a request.
    #[error("UAPI: {0}")]
    Uapi(#[from] flowshield_tunnel::uapi::client::ClientError),
    /// Something did not happen in time.
    #[error("timed out after {after:?} waiting for {what}")]
    Timeout {
        /// What was awaited.
        what: String,
        /// The bound.
        after: std::time::Duration,
    },
    /// Entering the probe namespace or a socket operation failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The IO error.
        source: std::io::Error,
    },
    /// No configured or listed target matches the name or address asked for.
    #[error("no target named or addressed '{0}'")]
    UnknownTarget(String),
    /// The process is stopping (SIGTERM/SIGINT): the probe was abandoned
    /// and its interface removed.
    #[error("probe abandoned: the verifier is stopping")]
    Stopped,
}

/// Everything the verifier library can fail with.
#[derive(Debug, thiserror::Error)]
pub enum VerifierError {
    /// Bad configuration.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// Bad key file.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// A probe could not run.
    #[error(transparent)]
    Probe(#[from] ProbeError),
    /// The result database failed.
    #[error("database: {0}")]
    Store(#[from] sqlx::Error),
    /// Applying the embedded migrations failed.
    #[error("database migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A chain call failed.
    #[error(transparent)]
    Chain(#[from] flowshield_chain::ChainError),
    /// The deployment manifest is unusable or does not match the chain.
    #[error("chain.deployment: {0}")]
    Deployment(#[from] flowshield_chain::DeploymentError),
    /// Building the HTTP client failed.
    #[error("http client: {0}")]
    Http(#[from] reqwest::Error),
    /// A blocking probe task panicked or was cancelled.
    #[error("probe task failed: {0}")]
    Task(String),
}

/// Result with [`VerifierError`].
pub type Result<T, E = VerifierError> = std::result::Result<T, E>;
