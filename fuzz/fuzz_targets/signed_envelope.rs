//! proto's signed envelope as gossip and request-response deliver it: a
//! heartbeat (first byte even) or a certificate announcement (odd), then
//! the envelope bytes. Invariants: no panic; a decoded envelope re-encodes
//! to one that decodes to the same parts; a verified heartbeat is accepted
//! once by a fresh replay guard and refused the second time.
#![no_main]

use flowshield_proto::{CertAnnouncement, Heartbeat, ReplayGuard, Signable, SignedMessage};
use libfuzzer_sys::fuzz_target;

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
