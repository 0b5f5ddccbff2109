//! Every message the market's roles exchange, typed: the order [`session`]
//! between client and provider, the fullnode's HTTP [`api`] bodies, the
//! client's output lines ([`client`]), and the [`text`] adapters that keep
//! their JSON text while the Rust side is typed. Session messages cross
//! the wire [`raw`] inside a [`request`] between nodes and are decoded by
//! their receiver.

pub mod api;
pub mod cert;
pub mod client;
pub mod raw;
pub mod request;
pub mod session;
pub mod text;
