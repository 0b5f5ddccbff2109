//! Helpers the market's integration tests share. Each test file compiles
//! its own copy (`mod common;`), so an item one file does not use is
//! allowed to be dead code.
//!
//! - [`process`]: a market process with its stdout lines on a channel;
//! - [`world`]: a whole market in network namespaces, for the session tests.

#![allow(dead_code)]

pub mod process;
pub mod world;

pub use process::Proc;
pub use world::*;
