//! The `flowshield set` / `wg set` argument grammar. Arguments are the
//! input split at NUL bytes; a key file's contents are its "path" itself, so
//! the fuzzer controls both. Invariants: no panic; a parsed request
//! re-encodes to UAPI text that the daemon parses back to the same request.
//! Host-name endpoints are not resolved here: that would be DNS traffic.
#![no_main]

use flowshield_fuzz::wg::as_applied;
use flowshield_tunnel::setargs::parse_set_args;
use flowshield_tunnel::uapi::Request;
use libfuzzer_sys::fuzz_target;
use std::net::SocketAddr;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let args: Vec<String> = text.split('\0').map(str::to_string).collect();
    let resolves = args
        .windows(2)
        .filter(|w| w[0] == "endpoint")
        .any(|w| w[1].parse::<SocketAddr>().is_err());
    if resolves {
        return;
    }
    let Ok(req) = parse_set_args(&args, |path| Ok(path.trim().to_string())) else {
        return;
    };
    let encoded = req.to_uapi();
    let again = Request::parse(encoded.trim_end_matches('\n'))
        .unwrap_or_else(|e| panic!("set arguments encode to bad UAPI: {e}\n{encoded}"));
    assert_eq!(
        again,
        Request::Set(as_applied(&req)),
        "round trip\n{encoded}"
    );
});
