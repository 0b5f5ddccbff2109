//! `sol!` bindings generated from the committed solc-js artifacts in `contracts/build/`.
//!
//! The artifacts carry the creation bytecode, so `BandwidthMarket::deploy` and
//! `DecaRegistry::deploy` work without node or solc. `FlowShieldTimelock` is
//! OpenZeppelin's TimelockController, the market's owner. `scripts/compile.js --check`
//! (run by the test suite) keeps them in sync with `contracts/solidity/`.

#![allow(missing_docs, clippy::too_many_arguments)]

use alloy::sol;

sol!(
    #[sol(rpc, all_derives)]
    BandwidthMarket,
    "build/BandwidthMarket.json"
);

sol!(
    #[sol(rpc, all_derives)]
    DecaRegistry,
    "build/DecaRegistry.json"
);

sol!(
    #[sol(rpc, all_derives)]
    FlowShieldTimelock,
    "build/FlowShieldTimelock.json"
);
