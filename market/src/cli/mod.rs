//! The subcommands of `flowshield-market`, one file each.

pub mod devnet;
