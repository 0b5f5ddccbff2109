//! Every message the market's roles exchange, typed: the order [`session`]
//! between client and provider.

pub mod api;
pub mod cert;
pub mod session;
