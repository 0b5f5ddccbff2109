//! # flowshield-tunnel
//!
//! FlowShield's data plane: a userspace WireGuard implementation built on
//! boringtun's `noise::Tunn` (one per peer), a TUN device from tun-rs and one
//! UDP socket per address family, configured exclusively through the standard
//! WireGuard UAPI socket (`/var/run/wireguard/IFACE.sock`) so the real `wg`
//! tool — and FlowShield's market sidecar — can drive it.
//!
//! Layout mirrors the protocol, as wireguard-go does:
//! - [`key`]: key encodings and generation.
//! - [`uapi`]: the UAPI text protocol (sans-IO parser/formatter) plus the
//!   socket server and a blocking client.
//! - [`device`]: peer table, AllowedIPs routing, packet processing (sans-IO)
//!   and the tokio driver that does the IO.
//! - [`config`]: wg-quick configuration files.
//! - [`netcfg`]: addresses, MTU and routes for `flowshield up`.
//! - [`service`]: one interface as a running daemon process (UAPI socket,
//!   TUN, signals), shared by `flowshield daemon` and `flowshieldd`.
//!
//! Not here: anything about markets, payments or certificates. The data plane
//! knows only WireGuard.

pub mod config;
pub mod device;
pub mod key;
pub mod netcfg;
pub mod service;
pub mod setargs;
pub mod uapi;
