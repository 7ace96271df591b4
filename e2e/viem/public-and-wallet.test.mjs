// viem against a real `aicoin node --dev` (AICOIN_RPC_URL): public and wallet clients on an
// AICoin chain definition, zero-fee transfers, contract deployment, simulateContract (with a
// revert reason), getLogs with an event ABI, and watchBlocks over WebSocket.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import {
  createPublicClient,
  createWalletClient,
  defineChain,
  http,
  parseEther,
  webSocket,
  getContract,
  BaseError,
  ContractFunctionRevertedError,
} from 'viem';
import { privateKeyToAccount, generatePrivateKey } from 'viem/accounts';

const url = process.env.AICOIN_RPC_URL;
const aicoin = defineChain({
  id: 2108,
  name: 'AICoinChain',
  nativeCurrency: { name: 'AIC', symbol: 'AIC', decimals: 18 },
  rpcUrls: { default: { http: [url], webSocket: [url.replace('http://', 'ws://')] } },
});
// Dev account 3 of the `test ... junk` mnemonic: the other suites use other accounts.
const account = privateKeyToAccount('0x7c852118294e51e653712a81e05800f419141751be58f605c371e15141b007a6');
const publicClient = createPublicClient({ chain: aicoin, transport: http(), pollingInterval: 200 });
const wallet = createWalletClient({ account, chain: aicoin, transport: http() });
const { abi, bytecode } = JSON.parse(fs.readFileSync(new URL('../../contracts/out/Probe.json', import.meta.url)));

test('chain, zero fees and a transfer that costs exactly its value', async () => {
  assert.equal(await publicClient.getChainId(), 2108);
  assert.equal(await publicClient.getGasPrice(), 0n);
  const fees = await publicClient.estimateFeesPerGas();
  assert.equal(fees.maxFeePerGas, 0n);

  const to = privateKeyToAccount(generatePrivateKey()).address;
  const before = await publicClient.getBalance({ address: account.address });
  const hash = await wallet.sendTransaction({ to, value: parseEther('2.5') });
  const receipt = await publicClient.waitForTransactionReceipt({ hash });
  assert.equal(receipt.status, 'success');
  assert.equal(receipt.effectiveGasPrice, 0n);
  assert.equal(await publicClient.getBalance({ address: to }), parseEther('2.5'));
  const after = await publicClient.getBalance({ address: account.address, blockNumber: receipt.blockNumber });
  assert.equal(before - after, parseEther('2.5'));
});

test('deploy, simulateContract, write, and getLogs', async () => {
  const deployHash = await wallet.deployContract({ abi, bytecode });
  const { contractAddress } = await publicClient.waitForTransactionReceipt({ hash: deployHash });
  const probe = getContract({ address: contractAddress, abi, client: { public: publicClient, wallet } });

  const { request, result } = await publicClient.simulateContract({
    account, address: contractAddress, abi, functionName: 'deploy', args: ['0x' + '11'.repeat(32)],
  });
  assert.equal(result, await probe.read.predict(['0x' + '11'.repeat(32)]));
  await publicClient.waitForTransactionReceipt({ hash: await wallet.writeContract(request) });

  await assert.rejects(
    publicClient.simulateContract({ account, address: contractAddress, abi, functionName: 'fail', args: ['not today'] }),
    (e) => {
      const revert = e instanceof BaseError && e.walk((err) => err instanceof ContractFunctionRevertedError);
      return revert && revert.reason === 'not today';
    },
  );

  const setHash = await probe.write.set([77n]);
  const setReceipt = await publicClient.waitForTransactionReceipt({ hash: setHash });
  const event = abi.find((item) => item.type === 'event' && item.name === 'ValueSet');
  const logs = await publicClient.getLogs({
    address: contractAddress, event, args: { by: account.address },
    fromBlock: setReceipt.blockNumber, toBlock: setReceipt.blockNumber,
  });
  assert.equal(logs.length, 1);
  assert.equal(logs[0].args.value, 77n);
  assert.equal(logs[0].transactionHash, setHash);
  assert.equal(await probe.read.value(), 77n);
});

test('watchBlocks over WebSocket sees consecutive blocks', async () => {
  const wsClient = createPublicClient({ chain: aicoin, transport: webSocket() });
  const seen = await new Promise((resolve, reject) => {
    const blocks = [];
    const timer = setTimeout(() => reject(new Error('no blocks within 30 s')), 30_000);
    const unwatch = wsClient.watchBlocks({
      onBlock: (block) => {
        blocks.push(block);
        if (blocks.length === 3) {
          clearTimeout(timer);
          unwatch();
          resolve(blocks);
        }
      },
      onError: reject,
    });
  });
  assert.equal(seen[1].number, seen[0].number + 1n);
  assert.equal(seen[2].parentHash, seen[1].hash);
  assert.equal(seen[2].baseFeePerGas, 0n);
  await wsClient.transport.getRpcClient().then((c) => c.close());
});
