//! `flowshield genkey`, `pubkey` and `genpsk` agree with wireguard-tools.

use flowshield_e2e::process::run_ok;
use flowshield_e2e::wg::{flowshield_pubkey, wg_pubkey, KeyPair};
use std::process::Command;

#[test]
fn keys_match_wireguard_tools() -> anyhow::Result<()> {
    flowshield_e2e::require_environment()?;
    let ours = KeyPair::generate()?;
    assert_eq!(
        wg_pubkey(&ours.private)?,
        ours.public,
        "wg pubkey disagrees"
    );
    let theirs = KeyPair::generate_with_wg()?;
    assert_eq!(flowshield_pubkey(&theirs.private)?, theirs.public);
    assert_ne!(
        KeyPair::generate()?.private,
        ours.private,
        "genkey repeats itself"
    );
    assert_eq!(ours.private_hex().len(), 64);

    let psk = run_ok(Command::new(flowshield_e2e::flowshield_bin()?).arg("genpsk"))?;
    // A preshared key is any 32 bytes: `wg pubkey` accepts it as a key.
    wg_pubkey(psk.trim())?;
    assert!(
        flowshield_pubkey("not a key").is_err(),
        "pubkey accepted garbage"
    );
    Ok(())
}
