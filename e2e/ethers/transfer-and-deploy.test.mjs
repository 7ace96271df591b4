// ethers v6 against a real `aicoin node --dev` (AICOIN_RPC_URL): zero-fee transfers of every
// transaction type, and a Solidity contract deployed, called, and reverting with reasons.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { ethers } from 'ethers';

const url = process.env.AICOIN_RPC_URL;
const provider = new ethers.JsonRpcProvider(url, undefined, { pollingInterval: 200 });
const DEV_KEY = '0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80';
const wallet = new ethers.NonceManager(new ethers.Wallet(DEV_KEY, provider));
const artifact = (name) => JSON.parse(fs.readFileSync(new URL(`../../contracts/out/${name}.json`, import.meta.url)));

test('chain id and zero fee data', async () => {
  const network = await provider.getNetwork();
  assert.equal(network.chainId, 2108n);
  const fees = await provider.getFeeData();
  assert.equal(fees.gasPrice, 0n);
  const block = await provider.getBlock('latest');
  assert.equal(block.baseFeePerGas, 0n);
});

for (const [label, overrides] of [
  ['legacy, gasPrice 0', { type: 0, gasPrice: 0 }],
  ['EIP-2930', { type: 1, gasPrice: 0, accessList: [] }],
  ['EIP-1559 with default fee data', { type: 2 }],
  ['EIP-1559 offering a tip', { type: 2, maxFeePerGas: ethers.parseUnits('5', 'gwei'), maxPriorityFeePerGas: ethers.parseUnits('2', 'gwei') }],
]) {
  test(`transfer (${label}) charges the sender exactly the value`, async () => {
    const to = ethers.Wallet.createRandom().address;
    const value = ethers.parseEther('1.25');
    const tx = await wallet.sendTransaction({ to, value, ...overrides });
    const receipt = await tx.wait();
    assert.equal(receipt.status, 1);
    assert.equal(receipt.gasPrice, 0n);
    const from = await wallet.getAddress();
    const before = await provider.getBalance(from, receipt.blockNumber - 1);
    const after = await provider.getBalance(from, receipt.blockNumber);
    assert.equal(before - after, value);
    assert.equal(await provider.getBalance(to), value);
  });
}

test('deploys a contract, emits events, and reverts with reasons', async () => {
  const { abi, bytecode } = artifact('Probe');
  const factory = new ethers.ContractFactory(abi, bytecode, wallet);
  const probe = await factory.deploy();
  await probe.waitForDeployment();
  const address = await probe.getAddress();
  assert.notEqual(await provider.getCode(address), '0x');

  const receipt = await (await probe.set(42n)).wait();
  const [event] = receipt.logs.map((l) => probe.interface.parseLog(l));
  assert.equal(event.name, 'ValueSet');
  assert.equal(event.args.value, 42n);
  assert.equal(await probe.value(), 42n);

  await assert.rejects(probe.fail.staticCall('no way'), (e) => e.reason === 'no way');
  const stranger = new ethers.Wallet(ethers.Wallet.createRandom().privateKey, provider);
  await assert.rejects(probe.connect(stranger).onlyOwner.staticCall(), (e) => e.revert?.name === 'Unauthorized');
});
