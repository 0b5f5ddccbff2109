//! Verifying many signed messages at once.
//!
//! A fullnode checks a signature for every heartbeat it hears (thousands a
//! second). Checked one by one, each costs a double-base scalar
//! multiplication; a batch is checked with one multiscalar multiplication,
//! for well under the sum.
//!
//! The answer is the one each message gets from [`SignedMessage::verify`]
//! (`ed25519-zebra`, ZIP 215). The batch equation is ZIP 215's, as
//! `ed25519-zebra`'s batch verifier states it: with a random 128-bit `z_i`
//! per signature and `k_i = H(R_i || A_i || M_i)`,
//!
//! `[8]([-Σ z_i s_i]B + Σ [z_i]R_i + Σ [z_i k_i]A_i) = 0`.
//!
//! It is the cofactored form of the single check, so the two agree on every
//! input (a torsion component in `R` or in the key cannot make one accept
//! what the other refuses). It is evaluated here rather than by
//! `ed25519-zebra` because that verifier takes each key as bytes and
//! decompresses it again in every batch; here `A_i` is the point the
//! signer cache ([`SignerKeys`]) decoded once, which saves a point
//! decompression, about a quarter of a batch's cost, per signature.
//!
//! A signature whose `R` is no curve point or whose `s` is not canonical is
//! left out of the batch and answered by the single check (which refuses
//! it). A batch that fails is checked again one signature at a time, so a
//! forgery costs its sender its own rejection and the others in its batch
//! nothing but the time of an unbatched check.

use crate::error::ProtoError;
use crate::signed::{Signable, SignedMessage};
use crate::signers::{Ed25519Key, Signer, SignerKeys};
use curve25519_dalek::constants::ED25519_BASEPOINT_POINT;
use curve25519_dalek::edwards::{CompressedEdwardsY, EdwardsPoint};
use curve25519_dalek::scalar::Scalar;
use curve25519_dalek::traits::{IsIdentity, VartimeMultiscalarMul};
use rand_core::{OsRng, RngCore};
use sha2::{Digest, Sha512};

/// Where one message stands while its batch is checked.
enum Stage {
    /// Refused before its signature was looked at, or by it.
    Refused(ProtoError),
    /// Its signature is settled (valid); the payload checks remain.
    Signed(Signer, bool),
    /// In the batch; `input` is what was signed (for the check alone
    /// should the batch fail).
    Queued(Signer, bool, Vec<u8>),
}

/// One signature's terms in the batch equation.
struct Terms {
    r: EdwardsPoint,
    s: Scalar,
    k: Scalar,
    a: EdwardsPoint,
}

/// The signature's terms, or `None` when it cannot be in a batch (its `R`
/// is no curve point or its `s` is not below the group order).
fn terms(key: &Ed25519Key, signature: &[u8; 64], input: &[u8]) -> Option<Terms> {
    let (r_bytes, s_bytes) = signature.split_at(32);
    let r_bytes: [u8; 32] = r_bytes.try_into().ok()?;
    let s_bytes: [u8; 32] = s_bytes.try_into().ok()?;
    let s = Option::<Scalar>::from(Scalar::from_canonical_bytes(s_bytes))?;
    let r = CompressedEdwardsY(r_bytes).decompress()?;
    let hash: [u8; 64] = Sha512::new()
        .chain_update(r_bytes)
        .chain_update(key.bytes)
        .chain_update(input)
        .finalize()
        .into();
    let k = Scalar::from_bytes_mod_order_wide(&hash);
    Some(Terms {
        r,
        s,
        k,
        a: key.point,
    })
}

/// Whether every signature in `batch` is valid (ZIP 215), but for a chance
/// of 2^-128 per batch of a false yes.
fn batch_holds(batch: &[Terms]) -> bool {
    let mut random = vec![0u8; 16 * batch.len()];
    OsRng.fill_bytes(&mut random);
    let zs = random.chunks_exact(16).map(|chunk| {
        let mut z = [0u8; 16];
        z.copy_from_slice(chunk);
        Scalar::from(u128::from_le_bytes(z))
    });
    let mut b_coefficient = Scalar::ZERO;
    let mut coefficients = Vec::with_capacity(2 * batch.len() + 1);
    let mut points = Vec::with_capacity(2 * batch.len() + 1);
    for (terms, z) in batch.iter().zip(zs) {
        b_coefficient -= z * terms.s;
        coefficients.push(z);
        points.push(terms.r);
        coefficients.push(z * terms.k);
        points.push(terms.a);
    }
    coefficients.push(b_coefficient);
    points.push(ED25519_BASEPOINT_POINT);
    EdwardsPoint::vartime_multiscalar_mul(&coefficients, &points)
        .mul_by_cofactor()
        .is_identity()
}

/// Verifies every message in `messages`; entry `i` of the result is what
/// [`SignedMessage::verify`] returns for message `i`. Signers' keys are
/// taken from `keys` when they are there, and kept there once a message
/// of theirs verified.
pub fn verify_batch<T: Signable>(
    messages: &[&SignedMessage<T>],
    keys: &mut SignerKeys,
) -> Vec<Result<T, ProtoError>> {
    let mut batch: Vec<Terms> = Vec::with_capacity(messages.len());
    let mut stages: Vec<Stage> = messages
        .iter()
        .map(|message| {
            let (signer, cached) = match keys.decode(message.signer()) {
                Ok(decoded) => decoded,
                Err(error) => return Stage::Refused(error),
            };
            let input = SignedMessage::<T>::signing_input(message.payload());
            let alone =
                |signer: Signer, cached: bool| match signer.verifies(&input, message.signature()) {
                    true => Stage::Signed(signer, cached),
                    false => Stage::Refused(ProtoError::Forged),
                };
            let Some(key) = &signer.ed25519 else {
                // Not Ed25519: no batch for it.
                return alone(signer, cached);
            };
            let Ok(signature) = <[u8; 64]>::try_from(message.signature()) else {
                return Stage::Refused(ProtoError::Forged);
            };
            match terms(key, &signature, &input) {
                Some(terms) => {
                    batch.push(terms);
                    Stage::Queued(signer, cached, input)
                }
                // The check alone has the last word (it refuses these).
                None => alone(signer, cached),
            }
        })
        .collect();

    if !batch.is_empty() {
        let all_valid = batch_holds(&batch);
        for (stage, message) in stages.iter_mut().zip(messages) {
            if let Stage::Queued(signer, cached, input) = stage {
                let valid = all_valid || signer.verifies(input, message.signature());
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
