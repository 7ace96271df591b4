// Runs `npx hardhat run --network aicoin` against the node in AICOIN_RPC_URL (Hardhat compiles
// contracts/, deploys with hardhat-ethers and calls), then checks on the chain itself that the
// contract is there and holds what the script wrote.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { fileURLToPath } from 'node:url';

const url = process.env.AICOIN_RPC_URL;
const project = fileURLToPath(new URL('..', import.meta.url));

async function rpc(method, params) {
  const response = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ jsonrpc: '2.0', id: 1, method, params }),
  });
  const { result, error } = await response.json();
  assert.equal(error, undefined, `${method}: ${JSON.stringify(error)}`);
  return result;
}

test('npx hardhat run --network aicoin deploys and calls a contract', async () => {
  const { stdout } = await promisify(execFile)(
    'npx',
    ['hardhat', 'run', '--network', 'aicoin', 'scripts/deploy-and-call.js'],
    { cwd: project, env: process.env, timeout: 300_000 },
  );
  const report = JSON.parse(stdout.trim().split('\n').filter((l) => l.startsWith('{')).pop());
  assert.equal(report.chainId, '2108');
  assert.equal(report.deployer, '0x15d34AAf54267DB7D7c367839AAf71A00a2C6A65');
  assert.equal(report.x, '2108');
  assert.equal(report.event, 'Increment');
  assert.equal(report.eventBy, '2108');
  assert.equal(report.gasPrice, '0');
  assert.match(report.reverted, /incBy: increment should be positive/);

  // The chain agrees: code at the address, and x() (selector 0x0c55699c) is 2108.
  assert.notEqual(await rpc('eth_getCode', [report.address, 'latest']), '0x');
  const x = await rpc('eth_call', [{ to: report.address, data: '0x0c55699c' }, 'latest']);
  assert.equal(BigInt(x), 2108n);
});
