//! Subcommand implementations.

pub mod daemon;
pub mod keys;
pub mod quick;
pub mod show;

/// Interface names as the kernel allows them: 1–15 bytes, no '/', no
/// whitespace, not "." or "..".
pub fn check_iface_name(name: &str) -> anyhow::Result<()> {
    let ok = flowshield_tunnel::service::valid_iface_name(name);
    anyhow::ensure!(
        ok,
        "'{name}' is not a valid interface name (1-15 characters, no '/', ':' or spaces)"
    );
    Ok(())
}
