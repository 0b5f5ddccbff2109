//! Why a provider could not start.

use super::recover::RecoverError;
use crate::chain::ChainSetupError;
use crate::net::NetError;
use crate::session::table::SessionError;
use flowshield_proto::ProtoError;
use std::path::PathBuf;

/// Why the provider could not start.
#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    #[error("{path}: {reason}")]
    Config { path: PathBuf, reason: String },
    #[error("{path}: {field}: {reason}")]
    ConfigField {
        path: PathBuf,
        field: &'static str,
        reason: String,
    },
    #[error(transparent)]
    Net(#[from] NetError),
    #[error(transparent)]
    Proto(#[from] ProtoError),
    #[error(transparent)]
    Chain(#[from] ChainSetupError),
    #[error("registering on chain: {0}")]
    Register(String),
    #[error("reconciling sessions at start: {0}")]
    Recover(#[from] RecoverError),
    #[error(transparent)]
    Egress(#[from] super::egress::EgressError),
    #[error("sessions: {0}")]
    Session(#[from] SessionError),
}
