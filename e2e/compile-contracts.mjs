// Compiles contracts/*.sol and the chain modules' interfaces, contracts/interfaces/I<Name>.sol,
// with solc-js into contracts/out/<Name>.json ({abi, bytecode}): the artifacts Rust tests,
// benchmarks and the e2e suites load, and the ABIs clients call the modules with. (The node
// decodes module calls from the same .sol files, through alloy's sol! macro.)
//   node e2e/compile-contracts.mjs          regenerate the artifacts
//   node e2e/compile-contracts.mjs --check  fail if the committed artifacts are stale
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import solc from 'solc';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', 'contracts');
const solidity = (dir) => fs.readdirSync(path.join(root, dir)).filter((f) => f.endsWith('.sol'))
  .map((f) => path.posix.join(dir, f));
const sources = Object.fromEntries(
  [...solidity('.'), ...solidity('interfaces')]
    .map((f) => [path.posix.normalize(f), { content: fs.readFileSync(path.join(root, f), 'utf8') }]),
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
const check = process.argv.includes('--check');
fs.mkdirSync(path.join(root, 'out'), { recursive: true });
let stale = 0;
for (const [file, contracts] of Object.entries(output.contracts)) {
  for (const [name, c] of Object.entries(contracts)) {
    const artifact = { contract: name, source: file, solc: solc.version(), abi: c.abi, bytecode: '0x' + c.evm.bytecode.object };
    const target = path.join(root, 'out', `${name}.json`);
    const text = JSON.stringify(artifact, null, 2) + '\n';
    if (check) {
      if (!fs.existsSync(target) || fs.readFileSync(target, 'utf8') !== text) {
        console.error(`contracts/out/${name}.json is stale: run node e2e/compile-contracts.mjs`);
        stale += 1;
      }
    } else {
      fs.writeFileSync(target, text);
      console.log(`contracts/out/${name}.json`);
    }
  }
}
process.exit(stale ? 1 : 0);
