//! Verifying many signed messages at once.
//!
//! A fullnode checks a signature for every heartbeat it hears (thousands a
//! second). Checked one by one, each costs a double-base scalar
//! multiplication; `ed25519-zebra`'s batch verifier checks a whole batch
//! with one multiscalar multiplication, for well under the sum.
//!
//! The answer is the one each message gets from [`SignedMessage::verify`]:
//! both follow ZIP 215, whose single and batch equations agree on every
//! input (the cofactored form; a torsion component in `R` or in the key
//! cannot make one accept what the other refuses). A batch that fails is
//! checked again one signature at a time, so a forgery costs its sender
//! its own rejection and the others in its batch nothing but the time of
//! an unbatched check.

use crate::error::ProtoError;
use crate::signed::{Signable, SignedMessage};
use crate::signers::{ed25519_signature, Signer, SignerKeys};
use ed25519_zebra::batch;
use rand_core::OsRng;

/// Where one message stands while its batch is checked.
enum Stage {
    /// Refused before its signature was looked at, or by it.
    Refused(ProtoError),
    /// Its signature is settled (valid); the payload checks remain.
    Signed(Signer, bool),
    /// Queued in the batch, as the item at this index of `queued`.
    Queued(Signer, bool, usize),
}

/// Verifies every message in `messages`; entry `i` of the result is what
/// [`SignedMessage::verify`] returns for message `i`. Signers' keys are
/// taken from `keys` when they are there, and kept there once a message
/// of theirs verified.
pub fn verify_batch<T: Signable>(
    messages: &[&SignedMessage<T>],
    keys: &mut SignerKeys,
) -> Vec<Result<T, ProtoError>> {
    let mut verifier = batch::Verifier::new();
    let mut queued: Vec<batch::Item> = Vec::new();
    let mut stages: Vec<Stage> = messages
        .iter()
        .map(|message| {
            let (signer, cached) = match keys.decode(message.signer()) {
                Ok(decoded) => decoded,
                Err(error) => return Stage::Refused(error),
            };
            let input = SignedMessage::<T>::signing_input(message.payload());
            let Some((_, key_bytes)) = &signer.ed25519 else {
                // Not Ed25519: no batch for it.
                return match signer.verifies(&input, message.signature()) {
                    true => Stage::Signed(signer, cached),
                    false => Stage::Refused(ProtoError::Forged),
                };
            };
            let Some(signature) = ed25519_signature(message.signature()) else {
                return Stage::Refused(ProtoError::Forged);
            };
            let item = batch::Item::from((*key_bytes, signature, &input));
            verifier.queue(item.clone());
            queued.push(item);
            Stage::Queued(signer, cached, queued.len() - 1)
        })
        .collect();

    if !queued.is_empty() {
        let all_valid = verifier.verify(OsRng).is_ok();
        for stage in &mut stages {
            if let Stage::Queued(signer, cached, index) = stage {
                let valid = all_valid || queued[*index].clone().verify_single().is_ok();
                *stage = match valid {
                    true => Stage::Signed(signer.clone(), *cached),
                    false => Stage::Refused(ProtoError::Forged),
                };
            }
        }
    }

    messages
        .iter()
        .zip(stages)
        .map(|(message, stage)| match stage {
            Stage::Refused(error) => Err(error),
            Stage::Queued(..) => Err(ProtoError::Forged),
            Stage::Signed(signer, cached) => {
                let value = message.accept(signer.peer)?;
                if !cached {
                    keys.keep(message.signer(), signer);
                }
                Ok(value)
            }
        })
        .collect()
}

#[cfg(test)]
#[path = "batch_tests.rs"]
mod tests;
