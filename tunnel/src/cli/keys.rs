//! `genkey`, `genpsk`, `pubkey` and `set`.

use anyhow::Context;
use flowshield_tunnel::key::SecretKey;
use flowshield_tunnel::setargs::parse_set_args;
use flowshield_tunnel::uapi::client;
use std::io::Read;

pub fn genkey() -> anyhow::Result<()> {
    println!("{}", SecretKey::generate_private().to_base64());
    Ok(())
}

pub fn genpsk() -> anyhow::Result<()> {
    println!("{}", SecretKey::generate_preshared().to_base64());
    Ok(())
}

pub fn pubkey() -> anyhow::Result<()> {
    let mut text = String::new();
    std::io::stdin()
        .take(1024)
        .read_to_string(&mut text)
        .context("cannot read the private key from standard input")?;
    let key = SecretKey::from_base64(text.trim()).context("standard input: not a private key")?;
    println!("{}", key.public_key());
    Ok(())
}

/// Reads a key file as `wg set` does: `-` is standard input, contents trimmed.
fn read_key_file(path: &str) -> Result<String, String> {
    let mut text = String::new();
    let result = if path == "-" {
        std::io::stdin().take(1024).read_to_string(&mut text)
    } else {
        std::fs::File::open(path).and_then(|f| f.take(1024).read_to_string(&mut text))
    };
    result.map_err(|e| format!("cannot read key file '{path}': {e}"))?;
    Ok(text.trim().to_string())
}

pub fn set(iface: &str, args: &[String]) -> anyhow::Result<()> {
    super::check_iface_name(iface)?;
    let req = parse_set_args(args, read_key_file)?;
    client::call(iface, &req.to_uapi())?;
    Ok(())
}
