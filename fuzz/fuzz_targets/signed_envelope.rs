//! proto's signed envelope as gossip and request-response deliver it: a
//! heartbeat (first byte even) or a certificate announcement (odd), then
//! the envelope bytes. Invariants: no panic; a decoded envelope re-encodes
//! to one that decodes to the same parts; a verified heartbeat is accepted
//! once by a fresh replay guard and refused the second time; checked in a
//! batch beside a genuine heartbeat, each gets the answer it gets alone.
#![no_main]

use flowshield_fuzz::keys;
use flowshield_proto::{
    verify_batch, CertAnnouncement, Heartbeat, ReplayGuard, Signable, SignedMessage, SignerKeys,
};
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

/// A genuine heartbeat (the fixtures' provider) to batch every input with.
fn genuine() -> &'static SignedMessage<Heartbeat> {
    static GENUINE: OnceLock<SignedMessage<Heartbeat>> = OnceLock::new();
    GENUINE.get_or_init(|| {
        let heartbeat = Heartbeat {
            offer: keys::offer(),
            seq: 1,
            timestamp_ms: 1_700_000_000_000,
        };
        SignedMessage::sign(&heartbeat, &keys::provider_keypair())
            .expect("the fixtures' heartbeat signs")
    })
}

/// The batch's answers are the ones each envelope gets alone.
fn batch_agrees(message: &SignedMessage<Heartbeat>) {
    let genuine = genuine();
    let alone = [message.verify(), genuine.verify()];
    let batched = verify_batch(&[message, genuine], &mut SignerKeys::new(4));
    assert_eq!(batched, alone, "a batch answered otherwise than alone");
}

fn decode<T: Signable>(bytes: &[u8]) -> Option<T> {
    let message = SignedMessage::<T>::from_bytes(bytes).ok()?;
    let again = SignedMessage::<T>::from_bytes(&message.to_bytes())
        .unwrap_or_else(|e| panic!("re-encoded envelope does not decode: {e}"));
    assert_eq!(again.payload(), message.payload());
    assert_eq!(again.to_bytes(), message.to_bytes());
    let _ = message.claimed_signer();
    message.verify().ok()
}

fuzz_target!(|data: &[u8]| {
    let Some((kind, bytes)) = data.split_first() else {
        return;
    };
    if kind % 2 == 0 {
        if let Ok(message) = SignedMessage::<Heartbeat>::from_bytes(bytes) {
            batch_agrees(&message);
        }
        let Some(heartbeat) = decode::<Heartbeat>(bytes) else {
            return;
        };
        let now = heartbeat.timestamp_ms;
        let mut guard = ReplayGuard::default();
        guard
            .check_and_record(&heartbeat, now)
            .unwrap_or_else(|e| panic!("a fresh guard refused a current heartbeat: {e}"));
        assert!(
            guard.check_and_record(&heartbeat, now).is_err(),
            "a replayed heartbeat was accepted"
        );
    } else if let Some(cert) = decode::<CertAnnouncement>(bytes) {
        assert!(
            cert.validate().is_ok(),
            "verify returned an invalid announcement"
        );
    }
});
