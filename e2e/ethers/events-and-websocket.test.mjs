// ethers v6 against a real `aicoin node --dev` (AICOIN_RPC_URL): queryFilter over events,
// WebSocketProvider block and log subscriptions, waitForTransaction, and the node's own signer
// for unlocked dev accounts (eth_sendTransaction, personal_sign, eth_signTypedData_v4).
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { ethers } from 'ethers';

const url = process.env.AICOIN_RPC_URL;
const provider = new ethers.JsonRpcProvider(url, undefined, { pollingInterval: 200 });
const ws = new ethers.WebSocketProvider(url.replace('http://', 'ws://'));
// Dev account 2: transfer-and-deploy.test.mjs runs at the same time with account 0.
const DEV_KEY = '0x5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a';
const wallet = new ethers.NonceManager(new ethers.Wallet(DEV_KEY, provider));
const { abi, bytecode } = JSON.parse(fs.readFileSync(new URL('../../contracts/out/Probe.json', import.meta.url)));

after(() => ws.destroy());

/** Resolves with the first `count` values `subscribe(push)` pushes, or rejects after 30 s. */
function collect(count, subscribe) {
  return new Promise((resolve, reject) => {
    const seen = [];
    const timer = setTimeout(() => reject(new Error(`only ${seen.length} of ${count} events in 30 s`)), 30_000);
    const stop = subscribe((value) => {
      seen.push(value);
      if (seen.length === count) {
        clearTimeout(timer);
        Promise.resolve(stop()).then(() => resolve(seen));
      }
    });
  });
}

test('queryFilter finds events by indexed argument and block range', async () => {
  const probe = await new ethers.ContractFactory(abi, bytecode, wallet).deploy();
  await probe.waitForDeployment();
  const first = await (await probe.set(1n)).wait();
  const second = await (await probe.set(2n)).wait();
  const all = await probe.queryFilter(probe.filters.ValueSet(), first.blockNumber, second.blockNumber);
  assert.deepEqual(all.map((e) => e.args.value), [1n, 2n]);
  const fromOne = await probe.queryFilter(probe.filters.ValueSet(null, 1n), first.blockNumber);
  assert.equal(fromOne.length, 1);
  assert.equal(fromOne[0].transactionHash, second.hash);
});

test('WebSocketProvider streams blocks and contract events', async () => {
  const blocks = await collect(2, (push) => {
    ws.on('block', push);
    return () => ws.off('block', push);
  });
  assert.equal(blocks[1], blocks[0] + 1);

  const probe = await new ethers.ContractFactory(abi, bytecode, wallet).deploy();
  await probe.waitForDeployment();
  const watched = new ethers.Contract(await probe.getAddress(), abi, ws);
  const events = collect(2, (push) => {
    const listener = (by, previous, value) => push({ by, previous, value });
    watched.on('ValueSet', listener);
    return () => watched.off('ValueSet', listener);
  });
  await (await probe.set(10n)).wait();
  await (await probe.set(20n)).wait();
  const [a, b] = await events;
  assert.deepEqual([a.value, b.previous, b.value], [10n, 10n, 20n]);
  assert.equal(a.by, await wallet.getAddress());
});

test('waitForTransaction resolves with the receipt after confirmations', async () => {
  const tx = await wallet.sendTransaction({ to: ethers.Wallet.createRandom().address, value: 1n });
  const receipt = await provider.waitForTransaction(tx.hash, 2, 60_000);
  assert.equal(receipt.status, 1);
  assert.ok((await receipt.confirmations()) >= 2);
});

test("the node's signer for unlocked dev accounts", async () => {
  const accounts = await provider.listAccounts();
  assert.equal(accounts.length, 10);
  const signer = await provider.getSigner(9);
  const to = ethers.Wallet.createRandom().address;
  const tx = await signer.sendTransaction({ to, value: ethers.parseEther('0.5') });
  assert.equal((await tx.wait()).status, 1);
  assert.equal(await provider.getBalance(to), ethers.parseEther('0.5'));

  const message = 'AICoin says hi';
  assert.equal(ethers.verifyMessage(message, await signer.signMessage(message)), signer.address);
  const domain = { name: 'AICoin', version: '1', chainId: 2108 };
  const types = { Pay: [{ name: 'to', type: 'address' }, { name: 'amount', type: 'uint256' }] };
  const value = { to, amount: 5n };
  const signature = await signer.signTypedData(domain, types, value);
  assert.equal(ethers.verifyTypedData(domain, types, value, signature), signer.address);

  const stranger = new ethers.JsonRpcSigner(provider, ethers.Wallet.createRandom().address);
  await assert.rejects(stranger.sendTransaction({ to, value: 1n, gasLimit: 21_000n }), /unknown account/);
  // Without a gas limit ethers estimates first, and learns the stranger cannot pay.
  await assert.rejects(stranger.sendTransaction({ to, value: 1n }), (e) => e.code === 'INSUFFICIENT_FUNDS');
});
