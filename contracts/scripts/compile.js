#!/usr/bin/env node
// Compile contracts/solidity/*.sol with the pinned solc-js (standard JSON, optimizer on)
// and write contracts/build/<Name>.json = {contractName, abi, bytecode, deployedBytecode}.
//
//   node scripts/compile.js          write build/*.json
//   node scripts/compile.js --check  compile in memory; exit 1 if build/*.json is stale
//
// Imports ("@openzeppelin/...") are resolved from node_modules by the import callback;
// nothing is downloaded.
'use strict';

const fs = require('fs');
const path = require('path');
const solc = require('solc');

const ROOT = path.resolve(__dirname, '..');
const SRC_DIR = path.join(ROOT, 'solidity');
const BUILD_DIR = path.join(ROOT, 'build');
const EXPECTED_SOLC = require(path.join(ROOT, 'package.json')).devDependencies.solc;

function findImports(importPath) {
  const candidates = [path.join(ROOT, importPath), path.join(ROOT, 'node_modules', importPath)];
  for (const file of candidates) {
    // Only resolve inside the contracts folder.
    if (!file.startsWith(ROOT + path.sep)) continue;
    if (fs.existsSync(file)) return { contents: fs.readFileSync(file, 'utf8') };
  }
  return { error: `import not found: ${importPath}` };
}

function compile() {
  const version = solc.version();
  if (!version.startsWith(EXPECTED_SOLC + '+')) {
    throw new Error(`solc-js ${version} does not match pinned ${EXPECTED_SOLC}; run npm ci`);
  }
  // solidity/*.sol and solidity/test/*.sol (test-only helper contracts).
  const files = fs
    .readdirSync(SRC_DIR, { recursive: true })
    .filter((f) => f.endsWith('.sol'))
    .map((f) => f.split(path.sep).join('/'))
    .sort();
  const sources = {};
  for (const f of files) {
    sources[`solidity/${f}`] = { content: fs.readFileSync(path.join(SRC_DIR, f), 'utf8') };
  }
  const input = {
    language: 'Solidity',
    sources,
    settings: {
      optimizer: { enabled: true, runs: 200 },
      evmVersion: 'cancun',
      outputSelection: { '*': { '*': ['abi', 'evm.bytecode.object', 'evm.deployedBytecode.object'] } },
    },
  };
  const output = JSON.parse(solc.compile(JSON.stringify(input), { import: findImports }));
  const errors = (output.errors || []).filter((e) => e.severity === 'error');
  for (const e of output.errors || []) process.stderr.write(e.formattedMessage + '\n');
  if (errors.length > 0) throw new Error(`${errors.length} compile error(s)`);

  const artifacts = {};
  for (const unit of Object.keys(sources)) {
    for (const [name, c] of Object.entries(output.contracts[unit] || {})) {
      if (!c.evm.bytecode.object) continue; // interfaces / abstract contracts
      const artifact = {
        contractName: name,
        compiler: `solc-js ${version}`,
        abi: c.abi,
        bytecode: '0x' + c.evm.bytecode.object,
        deployedBytecode: '0x' + c.evm.deployedBytecode.object,
      };
      artifacts[`${name}.json`] = JSON.stringify(artifact, null, 2) + '\n';
    }
  }
  return artifacts;
}

function main() {
  const check = process.argv.includes('--check');
  const artifacts = compile();
  if (check) {
    let stale = 0;
    const existing = fs.existsSync(BUILD_DIR) ? fs.readdirSync(BUILD_DIR).filter((f) => f.endsWith('.json')) : [];
    for (const f of new Set([...existing, ...Object.keys(artifacts)])) {
      const file = path.join(BUILD_DIR, f);
      const onDisk = fs.existsSync(file) ? fs.readFileSync(file, 'utf8') : null;
      if (onDisk !== (artifacts[f] ?? null)) {
        process.stderr.write(`stale artifact: build/${f}\n`);
        stale++;
      }
    }
    if (stale > 0) {
      process.stderr.write('build/ is stale: run `node scripts/compile.js` and commit build/\n');
      process.exit(1);
    }
    process.stdout.write(`build/ is up to date (${Object.keys(artifacts).length} artifacts)\n`);
    return;
  }
  fs.mkdirSync(BUILD_DIR, { recursive: true });
  for (const [f, text] of Object.entries(artifacts)) {
    fs.writeFileSync(path.join(BUILD_DIR, f), text);
    process.stdout.write(`wrote build/${f}\n`);
  }
}

try {
  main();
} catch (e) {
  process.stderr.write(`compile failed: ${e.message}\n`);
  process.exit(1);
}
