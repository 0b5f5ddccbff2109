//! # flowshield-packaging
//!
//! The Debian package for FlowShield providers, built with
//! [cargo-deb](https://crates.io/crates/cargo-deb) from this crate's
//! `[package.metadata.deb]`. This crate holds no code the binaries use: it
//! is the packaging (metadata, files) and its test.
//!
//! Building: `bash packaging/build-deb.sh` (after `scripts/setup.sh`
//! installed cargo-deb, help2man and lintian) builds the release binaries
//! of the four crates, writes their man pages with help2man from `--help`,
//! and runs `cargo deb -p flowshield-packaging --no-build`; it prints the
//! path of `flowshield_<workspace version>-1_<arch>.deb`.
//!
//! What the package installs:
//! - `/usr/bin/flowshield`, `flowshield-market`, `flowshield-verifier`,
//!   `flowshield-ca` and their man pages;
//! - systemd units (`systemd/`), none enabled on installation:
//!   `flowshield@.service` (the data plane for `/etc/flowshield/IFACE.conf`,
//!   like wg-quick@), `flowshield-provider.service` (the market provider as
//!   the `flowshield` system user, sandboxed), `flowshield-verifier.service`
//!   plus `.timer` (a probe round every five minutes, root with only
//!   CAP_NET_ADMIN and CAP_NET_RAW);
//! - conffiles `/etc/flowshield/provider.toml` and `verifier.toml`
//!   (`config/`), documenting every key, with `<placeholders>` for the
//!   site's values, and a logrotate rule for the data plane's logs.
//!
//! The maintainer scripts (`debian/`) create, only when absent: the
//! `flowshield` system user and group (home `/var/lib/flowshield`), the data
//! plane's wg-quick file with a new private key (root, 0600), the provider's
//! libp2p and chain keys (flowshield, 0600) and the verifier's WireGuard and
//! chain keys (root, 0600). Purge removes all of it, the services' state and
//! logs, and the user. They are idempotent and need no running systemd.
//!
//! Two changes elsewhere make the unprivileged provider work: the data plane
//! opens its UAPI socket to a group (`FLOWSHIELD_UAPI_GROUP`, see
//! `flowshield_tunnel::uapi::access`), and the provider derives the offer's
//! WireGuard key and chain address when its configuration omits them
//! (`flowshield_market::provider::offer_keys`), so the shipped configuration holds no
//! generated value.
//!
//! Tests: `tests/config.rs` checks the shipped files against the code (the
//! configurations parse with the real loaders once placeholders are filled
//! in; the changelog's version is the workspace's). `tests/deb.rs` builds
//! the package, runs lintian, installs it with dpkg into a fresh debootstrap
//! chroot (Debian minbase, cached as a tarball in
//! `/var/tmp/flowshield-debootstrap/`), checks files, owners and modes,
//! runs `flowshield --version`, reconfigures to prove the scripts are
//! idempotent, purges, and compares the chroot with its state before
//! installation. It needs root.
//!
//! Not here: Debian source packaging (`debian/rules`) — the package is
//! built from the Cargo workspace — and packages for clients or fullnodes.
