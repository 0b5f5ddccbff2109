//! The order session's sans-IO core, both sides: the provider's session
//! [`table`] (admission, vouchers, when to end), [`pricing`] (what a
//! session owes, the under-payment rule both sides apply) and the tunnel
//! address [`pool`] a provider hands out. The messages themselves are in
//! [`crate::wire::session`]; the IO drivers are [`crate::provider::host`]
//! and [`crate::client`].

pub mod pool;
pub mod pricing;
pub mod table;
