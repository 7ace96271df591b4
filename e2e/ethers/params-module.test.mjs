// ethers v6 against a real `aicoin node --dev` (AICOIN_RPC_URL): the parameters module, a native
// chain module, called with nothing but its Solidity interface's ABI (contracts/out/IParams.json):
// views at several blocks, the same values through aic_getParams, from a Solidity contract, from
// eth_estimateGas and from debug_traceCall, and a write that reverts with its reason.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { ethers } from 'ethers';

const url = process.env.AICOIN_RPC_URL;
const provider = new ethers.JsonRpcProvider(url, undefined, { pollingInterval: 200 });
// Dev account 5: the other ethers suites run at the same time with accounts 0 and 2.
const DEV_KEY = '0x8b3a350cf5c34c9194ca85829a2df0ec3153be0318b5e2d3348e872092edffba';
const wallet = new ethers.NonceManager(new ethers.Wallet(DEV_KEY, provider));
const artifact = (name) => JSON.parse(fs.readFileSync(new URL(`../../contracts/out/${name}.json`, import.meta.url)));
const { abi } = artifact('IParams');
const key = (name) => ethers.encodeBytes32String(name);
const AIC = 10n ** 18n;

async function moduleAddress() {
  const modules = await provider.send('aic_modules', []);
  assert.ok(ethers.isAddress(modules.params), JSON.stringify(modules));
  return modules.params;
}

test('aic_modules names the parameters module, which has code for tools to see', async () => {
  const address = await moduleAddress();
  assert.equal(address.toLowerCase(), '0x0000000000000000000000000000000000a1c001');
  assert.notEqual(await provider.getCode(address), '0x');
});

test('views through the interface ABI agree with aic_getParams at several blocks', async () => {
  const params = new ethers.Contract(await moduleAddress(), abi, provider);
  const head = await provider.getBlockNumber();
  for (const blockTag of [0, Math.floor(head / 2), head]) {
    const rpc = await provider.send('aic_getParams', [ethers.toQuantity(blockTag)]);
    assert.equal(await params.get(key('epochLength'), { blockTag }), 100n);
    assert.equal(await params.epochLength({ blockTag }), BigInt(rpc.epochLength));
    assert.equal(await params.initialReward({ blockTag }), 50n * AIC);
    assert.equal(await params.initialReward({ blockTag }), BigInt(rpc.initialReward));
    assert.equal(await params.minStake({ blockTag }), BigInt(rpc.minStake));
    const [price, rpm, tokens] = await params.tier(2, { blockTag });
    assert.deepEqual([price, rpm, tokens], [5n * AIC, 60n, 100000n]);
    const [keys, values] = await params.all({ blockTag });
    assert.equal(keys.length, Object.keys(rpc).length);
    keys.forEach((k, i) => assert.equal(values[i], BigInt(rpc[ethers.decodeBytes32String(k)]), k));
  }
});

test('unknown keys and writes revert with a reason ethers shows', async () => {
  const params = new ethers.Contract(await moduleAddress(), abi, wallet);
  await assert.rejects(params.get(key('noSuchParam')), (e) => {
    assert.equal(e.code, 'CALL_EXCEPTION');
    assert.match(e.reason, /unknown parameter "noSuchParam"/);
    return true;
  });
  await assert.rejects(params.set.estimateGas(key('epochLength'), 5n), (e) => {
    assert.match(e.reason ?? e.message, /only governance may set parameters/);
    return true;
  });
  // Mined anyway (an explicit gas limit skips estimation): the transaction fails, nothing changes.
  const tx = await params.set(key('epochLength'), 5n, { gasLimit: 100_000 });
  await assert.rejects(tx.wait(), (e) => e.code === 'CALL_EXCEPTION' && e.receipt.status === 0);
  assert.equal(await params.epochLength(), 100n);
  // No parameter has changed since genesis: the module's ParamChanged log is empty.
  assert.deepEqual(await params.queryFilter(params.filters.ParamChanged(), 0), []);
});

test('a Solidity contract calls the module: same values, events in getLogs, reverts bubble up', async () => {
  const { abi: userAbi, bytecode } = artifact('ParamsUser');
  const user = await new ethers.ContractFactory(userAbi, bytecode, wallet).deploy();
  await user.waitForDeployment();
  assert.equal(await user.epochLength(), 100n);
  assert.deepEqual([...(await user.standardTier())], [5n * AIC, 60n, 100000n]);

  const receipt = await (await user.observe(key('slashBps'))).wait();
  const [seen] = await user.queryFilter(user.filters.Observed(key('slashBps')), receipt.blockNumber);
  assert.equal(seen.args.value, 1000n);
  assert.equal(seen.transactionHash, receipt.hash);

  await assert.rejects(user.trySet.staticCall(key('slashBps'), 0n), (e) => {
    assert.match(e.reason, /only governance may set parameters/);
    return true;
  });
});

test('eth_estimateGas and debug_traceCall see the module as eth_call does', async () => {
  const address = await moduleAddress();
  const iface = new ethers.Interface(abi);
  const data = iface.encodeFunctionData('epochLength');
  const gas = await provider.estimateGas({ to: address, data });
  // A transaction's 21,000, its calldata, and the module's metered read: bounded, not free.
  assert.ok(gas > 21_000n && gas < 30_000n, `estimated ${gas}`);
  const call = await provider.call({ to: address, data });
  const trace = await provider.send('debug_traceCall', [{ to: address, data }, 'latest', { tracer: 'callTracer' }]);
  assert.equal(trace.output, call);
  assert.equal(iface.decodeFunctionResult('epochLength', trace.output)[0], 100n);
  const steps = await provider.send('debug_traceCall', [{ to: address, data }, 'latest', {}]);
  assert.equal(steps.failed, false);
  assert.equal(ethers.toBeHex(BigInt('0x' + steps.returnValue.replace(/^0x/, '')), 32), call);
  const failing = await provider.send('debug_traceCall', [
    { to: address, data: iface.encodeFunctionData('set', [key('epochLength'), 5n]) }, 'latest', { tracer: 'callTracer' },
  ]);
  assert.match(failing.revertReason ?? '', /only governance/);
});
