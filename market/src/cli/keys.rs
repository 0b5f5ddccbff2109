//! `flowshield-market keys`: print the node's public identities, creating
//! absent key files (0600). Never prints a private key.

use anyhow::Result;
use flowshield_market::{chain, identity};
use std::path::PathBuf;

#[derive(clap::Args)]
#[command(group(clap::ArgGroup::new("key_files").required(true).multiple(true)))]
pub struct KeysArgs {
    /// libp2p node key (a provider's `identity_file`).
    #[arg(long, group = "key_files")]
    identity: Option<PathBuf>,
    /// Chain key, hex secp256k1 (a provider's `chain.key_file`).
    #[arg(long, group = "key_files")]
    chain_key: Option<PathBuf>,
}

pub fn run(args: KeysArgs) -> Result<()> {
    if let Some(path) = args.identity {
        let keypair = identity::load_or_create(&path)?;
        println!("peer_id {}", keypair.public().to_peer_id());
    }
    if let Some(path) = args.chain_key {
        let signer = chain::load_or_create_key_file(&path)?;
        println!("chain_address {}", signer.address());
    }
    Ok(())
}
