//! Helpers the market's integration tests share. Each test file compiles
//! its own copy (`mod common;`), so an item one file does not use is not
//! dead code.
//!
//! - [`world`]: a whole market in network namespaces, for the session tests.

#![allow(dead_code)]

pub mod world;

pub use world::*;
