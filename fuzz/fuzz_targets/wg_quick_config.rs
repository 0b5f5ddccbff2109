//! wg-quick configuration files (`flowshield up FILE`, `strip`, `setconf`).
//! Invariants: no panic; a parsed file whose endpoints are literal
//! addresses converts to a UAPI transaction the device applies, and the file
//! `down` saves back (`SaveConfig = true`) parses again.
//! Host-name endpoints are not resolved here: that would be DNS traffic.
#![no_main]

use flowshield_tunnel::config::{save_config_text, WgQuickConfig};
use flowshield_tunnel::device::Device;
use libfuzzer_sys::fuzz_target;
use std::net::SocketAddr;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let file = Path::new("fuzz.conf");
    let Ok(cfg) = WgQuickConfig::parse(file, text) else {
        return;
    };
    let literal = cfg.peers.iter().all(|p| {
        p.endpoint
            .as_ref()
            .is_none_or(|e| e.text.parse::<SocketAddr>().is_ok())
    });
    if !literal {
        return;
    }
    let req = cfg
        .to_set_request()
        .unwrap_or_else(|e| panic!("literal endpoints failed to convert: {e}"));
    let device = Device::new();
    device.apply(&req);
    let saved = save_config_text(&cfg, &device.snapshot());
    if let Err(e) = WgQuickConfig::parse(file, &saved) {
        panic!("saved config does not parse: {e}\n{saved}");
    }
});
