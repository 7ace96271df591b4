// ethers v6 against a real `aicoin node --dev` (AICOIN_RPC_URL): the governance module, called
// with nothing but its interface's ABI (contracts/out/IGovernance.json). A holder proposes a
// parameter change, two holders vote, and the proposal's state, tallies and snapshot weights are
// read back, with the Governor events found by queryFilter. (The dev chain votes for 7 days, so
// execution is covered by the node's integration tests, on a chain with short votes.)
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { ethers } from 'ethers';

const url = process.env.AICOIN_RPC_URL;
const provider = new ethers.JsonRpcProvider(url, undefined, { pollingInterval: 200 });
// Dev accounts 6 and 7: the other ethers suites run at the same time with accounts 0, 2 and 5.
const proposer = new ethers.NonceManager(new ethers.Wallet('0x92db14e403b83dfe3df233f83dfa3a0d7096f21ca9b0d6d6b8d88b2b4ec1564e', provider));
const voter = new ethers.NonceManager(new ethers.Wallet('0x4bbbf85ce3377467afe5d46f804f221813b2bb87f24d81f60f1fcdbf7cbf4356', provider));
const { abi } = JSON.parse(fs.readFileSync(new URL('../../contracts/out/IGovernance.json', import.meta.url)));
const GOVERNANCE = '0x0000000000000000000000000000000000a1c004';
const AIC = 10n ** 18n;
const Support = { Against: 0, For: 1, Abstain: 2 };
const State = { Active: 1n };

test('propose, vote, read the state and the Governor events', async () => {
  const modules = await provider.send('aic_modules', []);
  assert.equal(modules.governance.toLowerCase(), GOVERNANCE);
  const governance = new ethers.Contract(GOVERNANCE, abi, proposer);
  const payload = ethers.AbiCoder.defaultAbiCoder().encode(
    ['bytes32', 'uint256'], [ethers.encodeBytes32String('slashBps'), 1500n],
  );
  const id = await governance.propose.staticCall(0, payload, 'Slash 15% for a failed audit');
  const proposed = await (await governance.propose(0, payload, 'Slash 15% for a failed audit')).wait();
  assert.equal(proposed.status, 1);

  const [created] = await governance.queryFilter(governance.filters.ProposalCreated(), proposed.blockNumber, proposed.blockNumber);
  assert.equal(created.args.proposalId, id);
  assert.equal(created.args.proposer, await proposer.getAddress());
  assert.deepEqual(created.args.targets.map((a) => a.toLowerCase()), ['0x0000000000000000000000000000000000a1c001']);
  assert.equal(created.args.calldatas[0], payload);
  assert.equal(created.args.description, 'Slash 15% for a failed audit');
  assert.equal(await governance.state(id), State.Active);

  const proposal = await governance.proposal(id);
  assert.equal(proposal.snapshot, BigInt(proposed.blockNumber - 1));
  assert.equal(proposal.kind, 0n);
  const weight = await governance.getVotes(await voter.getAddress(), proposal.snapshot);
  assert.equal(weight, 10_000n * AIC, 'a dev account holds 10,000 AIC');

  const asVoter = governance.connect(voter);
  const voted = await (await asVoter.vote(id, Support.For)).wait();
  await (await governance.vote(id, Support.Against)).wait();
  const [cast] = await governance.queryFilter(governance.filters.VoteCast(await voter.getAddress()), voted.blockNumber);
  assert.equal(cast.args.proposalId, id);
  assert.equal(cast.args.support, BigInt(Support.For));
  assert.equal(cast.args.weight, weight);

  const [against, forVotes, abstain] = await governance.proposalVotes(id);
  assert.equal(forVotes, weight);
  assert.ok(against > 0n && abstain === 0n);
  assert.equal(await governance.hasVoted(id, await voter.getAddress()), true);
  await assert.rejects(asVoter.vote.staticCall(id, Support.Against), (e) => {
    assert.equal(e.code, 'CALL_EXCEPTION');
    assert.match(e.reason, /already voted on proposal/);
    return true;
  });
  await assert.rejects(governance.execute.staticCall(id), (e) => {
    assert.match(e.reason, /still being voted on/);
    return true;
  });
});
