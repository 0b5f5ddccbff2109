//! Helpers the market's integration tests share. Each test file compiles
//! its own copy (`mod common;`), so an item one file does not use is
//! allowed to be dead code.
//!
//! - [`process`]: a process with its stdout lines on a channel;
//! - [`world`]: a whole market in network namespaces, for the session tests;
//! - [`net`]: market nodes in this process on 127.0.0.1;
//! - [`http`]: requests to a node's HTTP API;
//! - [`chain`]: providers registered on a local chain (stake gate);
//! - [`devnet`]: the demo market deployment of `flowshield-market
//!   dev-chain` (the binary's own file, compiled in here too).

#![allow(dead_code)]

pub mod chain;
#[path = "../../src/cli/devnet.rs"]
pub mod devnet;
pub mod http;
pub mod net;
pub mod process;
pub mod world;

pub use world::*;

/// Runs `future` to completion on a runtime of its own, for synchronous
/// tests and for threads that joined a namespace.
pub fn block_on<F: std::future::Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
        .block_on(future)
}
