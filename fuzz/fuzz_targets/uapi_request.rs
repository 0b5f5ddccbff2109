//! UAPI requests as a client writes them to the daemon's socket
//! (`get=1` / `set=1` / `stats=1` + key=value lines), and the `get=1`
//! reply parser `flowshield show` uses. Invariants: no panic; a parsed
//! `set` re-encodes to text that parses back to the same request (as
//! applied: a removed peer's other keys are ignored); applying
//! it to a device never panics and the device's own `get` reply parses back
//! to the same snapshot.
#![no_main]

use flowshield_fuzz::wg::as_applied;
use flowshield_tunnel::device::Device;
use flowshield_tunnel::uapi::{Counters, DeviceSnapshot, Request};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // The reply parsers see what a daemon (possibly not ours) answers.
    let _ = DeviceSnapshot::from_uapi(text);
    let _ = Counters::from_uapi(text);

    let Ok(Request::Set(req)) = Request::parse(text) else {
        return;
    };
    let encoded = req.to_uapi();
    let again = Request::parse(encoded.trim_end_matches('\n'))
        .unwrap_or_else(|e| panic!("re-encoded set does not parse: {e}\n{encoded}"));
    assert_eq!(
        again,
        Request::Set(as_applied(&req)),
        "set round trip\n{encoded}"
    );

    let device = Device::new();
    device.apply(&req);
    let snapshot = device.snapshot();
    let reply = snapshot.to_uapi();
    let parsed = DeviceSnapshot::from_uapi(&reply)
        .unwrap_or_else(|e| panic!("device get reply does not parse: {e}\n{reply}"));
    assert_eq!(parsed, snapshot, "get round trip\n{reply}");
});
