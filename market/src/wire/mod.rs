//! Every message the market's roles exchange, typed: the order [`session`]
//! between client and provider, the fullnode's HTTP [`api`] bodies, the
//! client's output lines ([`client`]), and the [`text`] adapters that keep
//! their JSON text while the Rust side is typed.

pub mod api;
pub mod cert;
pub mod client;
pub mod session;
pub mod text;
