// Minimal Hardhat config: only the local EDR node is used (`hardhat node`).
// Contracts are compiled by scripts/compile.js with the pinned solc-js, never by
// Hardhat, so Hardhat never needs to download a compiler.
process.env.HARDHAT_DISABLE_TELEMETRY_PROMPT = 'true';

function devAccounts() {
  const keys = (process.env.FLOWSHIELD_DEV_KEYS || '').split(',').filter((k) => k.length > 0);
  const balance = process.env.FLOWSHIELD_DEV_BALANCE || '10000000000000000000000';
  if (keys.length === 0) return { count: 10, accountsBalance: balance };
  return keys.map((privateKey) => ({ privateKey, balance }));
}

/** @type import('hardhat/config').HardhatUserConfig */
module.exports = {
  networks: {
    hardhat: {
      chainId: 31337,
      hardfork: 'cancun',
      // LocalChain (Rust) passes its deterministic, test-only dev keys through the
      // environment; otherwise Hardhat's well-known test mnemonic is used.
      accounts: devAccounts(),
      mining: { auto: true },
    },
  },
  paths: { sources: './hardhat-unused-sources', cache: './cache', artifacts: './artifacts' },
};
