// Compiles contracts/*.sol with solc-js into contracts/out/<Name>.json ({abi, bytecode}), the
// artifacts Rust tests, benchmarks and the e2e suites load. Run: node e2e/compile-contracts.mjs
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import solc from 'solc';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', 'contracts');
const sources = Object.fromEntries(
  fs.readdirSync(root).filter((f) => f.endsWith('.sol'))
    .map((f) => [f, { content: fs.readFileSync(path.join(root, f), 'utf8') }]),
);
const input = {
  language: 'Solidity',
  sources,
  settings: {
    optimizer: { enabled: true, runs: 200 },
    evmVersion: 'cancun',
    outputSelection: { '*': { '*': ['abi', 'evm.bytecode.object'] } },
  },
};
const output = JSON.parse(solc.compile(JSON.stringify(input)));
const errors = (output.errors ?? []).filter((e) => e.severity === 'error');
if (errors.length) {
  for (const e of errors) console.error(e.formattedMessage);
  process.exit(1);
}
fs.mkdirSync(path.join(root, 'out'), { recursive: true });
for (const [file, contracts] of Object.entries(output.contracts)) {
  for (const [name, c] of Object.entries(contracts)) {
    const artifact = { contract: name, source: file, solc: solc.version(), abi: c.abi, bytecode: '0x' + c.evm.bytecode.object };
    fs.writeFileSync(path.join(root, 'out', `${name}.json`), JSON.stringify(artifact, null, 2) + '\n');
    console.log(`contracts/out/${name}.json`);
  }
}
