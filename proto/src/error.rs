//! Why a market message was refused.

/// A refused message. Each variant is one reason, so callers can count and
/// log them separately (see [`ProtoError::reason`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtoError {
    /// The signature does not verify under the carried public key.
    #[error("forged message: signature does not verify")]
    Forged,
    /// The signature is valid, but by a key other than the one the payload
    /// names as its author.
    #[error("wrong signer: payload names {expected} but was signed by {got}")]
    WrongSigner { expected: String, got: String },
    /// A sequence number at or below one already accepted from this author.
    #[error("replayed message: sequence {got} is not above the last accepted {last}")]
    Replayed { last: u64, got: u64 },
    /// Older than the staleness window.
    #[error("stale message: {age_ms} ms old")]
    Stale { age_ms: u64 },
    /// Timestamped further in the future than clock skew allows.
    #[error("message from the future: {ahead_ms} ms ahead")]
    FromFuture { ahead_ms: u64 },
    /// Input larger than the decoder accepts.
    #[error("{what} is {len} bytes, more than the {max} allowed")]
    TooLarge {
        what: &'static str,
        len: usize,
        max: usize,
    },
    /// A field that is missing, malformed or out of range.
    #[error("invalid {field}: {reason}")]
    Invalid { field: &'static str, reason: String },
}

impl ProtoError {
    pub(crate) fn invalid(field: &'static str, reason: impl Into<String>) -> Self {
        ProtoError::Invalid {
            field,
            reason: reason.into(),
        }
    }

    /// A short stable label for metrics (`forged`, `replayed`, ...).
    pub fn reason(&self) -> &'static str {
        match self {
            ProtoError::Forged => "forged",
            ProtoError::WrongSigner { .. } => "wrong_signer",
            ProtoError::Replayed { .. } => "replayed",
            ProtoError::Stale { .. } => "stale",
            ProtoError::FromFuture { .. } => "from_future",
            ProtoError::TooLarge { .. } => "too_large",
            ProtoError::Invalid { .. } => "invalid",
        }
    }

    /// Every label [`ProtoError::reason`] can return, for pre-registering
    /// metric series.
    pub const REASONS: [&'static str; 7] = [
        "forged",
        "wrong_signer",
        "replayed",
        "stale",
        "from_future",
        "too_large",
        "invalid",
    ];
}
