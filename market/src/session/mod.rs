//! The order session's sans-IO core, both sides: the provider's session
//! [`table`] (admission, vouchers, when to end) and its refusals
//! ([`error`]), [`pricing`] (what a session owes, the under-payment rule
//! both sides apply), the tunnel
//! address [`pool`] a provider hands out, the [`record`]s a provider keeps
//! of its sessions and how it [`reconcile`]s them with the chain and the
//! data plane at start. The messages themselves are in
//! [`crate::wire::session`]; the IO drivers are [`crate::provider::host`]
//! and [`crate::client`].

pub mod error;
pub mod pool;
pub mod pricing;
pub mod reconcile;
pub mod record;
pub mod table;
