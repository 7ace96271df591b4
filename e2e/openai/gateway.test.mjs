// The official `openai` npm SDK against the paid gateway (`aicoin node --gateway`) of a devnet
// whose provider serves SmolLM2 and MiniLM: tiers bought with ethers, keys made from an
// EIP-712 signature (`eth_signTypedData_v4`'s message, through POST /v1/keys), and the answers
// an application relies on: 402 without a tier, usage and the provider on every answer, 429
// with Retry-After once the rate is spent, 402 once the tier expired, 401 for a revoked key, a
// key of another chain and one signed by someone else.
// AICOIN_GATEWAY_URL is the gateway's base (`http://host:port/v1`), AICOIN_GATEWAY_RPC_URL
// its chain's JSON-RPC. The chain's params: Basic 3 requests a minute, tiers last 60 blocks.
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';
import { ethers } from 'ethers';

const CHAT = 'smollm2-135m-instruct';
const EMBED = 'all-minilm-l6-v2';
const ACCESS = '0x0000000000000000000000000000000000a1c003';
const MNEMONIC = 'test test test test test test test test test test test junk';
const GATEWAY = process.env.AICOIN_GATEWAY_URL;
const provider = new ethers.JsonRpcProvider(process.env.AICOIN_GATEWAY_RPC_URL);
const access = new ethers.Contract(ACCESS, [
  'function buy(uint8 tier) payable returns (uint64)',
  'function revokeKeys() returns (uint64)',
  'function subscription(address) view returns ((uint8 tier, uint64 expiresAt, bool active, uint64 keyGeneration, uint256 requestsPerMinute, uint256 tokensPerDay))',
], provider);
const TYPES = {
  ApiKey: [
    { name: 'account', type: 'address' },
    { name: 'expires', type: 'uint64' },
    { name: 'generation', type: 'uint64' },
    { name: 'chainId', type: 'uint64' },
  ],
};

// This suite's own dev accounts (the Python suite uses others).
const wallet = (i) => ethers.HDNodeWallet.fromPhrase(MNEMONIC, undefined, `m/44'/60'/0'/0/${i}`).connect(provider);
const user = wallet(6);
const limited = wallet(7);
const expiring = wallet(8);

const client = (apiKey) => new OpenAI({ baseURL: GATEWAY, apiKey, maxRetries: 0 });

async function chainId() {
  return Number((await provider.getNetwork()).chainId);
}

// A key signed by `signer` for `account` on `chain`, encoded locally as the gateway encodes
// them: `aic_` + base64url(abi(account, expires, generation, chainId) ++ signature).
async function localKey(signer, { account = signer.address, chain, generation = 0n } = {}) {
  const message = { account, expires: BigInt(Math.floor(Date.now() / 1000) + 3600), generation, chainId: BigInt(chain ?? await chainId()) };
  const domain = { name: 'AICoin API', version: '1', chainId: message.chainId };
  const signature = await signer.signTypedData(domain, TYPES, message);
  const encoded = ethers.AbiCoder.defaultAbiCoder().encode(
    ['address', 'uint64', 'uint64', 'uint64'], [message.account, message.expires, message.generation, message.chainId]);
  return 'aic_' + Buffer.from(ethers.concat([encoded, signature]).slice(2), 'hex').toString('base64url');
}

// A key from POST /v1/keys: the typed data a dApp has MetaMask sign.
async function keyFromGateway(signer) {
  const sub = await access.subscription(signer.address);
  const message = { account: signer.address, expires: Math.floor(Date.now() / 1000) + 3600, generation: Number(sub.keyGeneration), chainId: await chainId() };
  const signature = await signer.signTypedData({ name: 'AICoin API', version: '1', chainId: message.chainId }, TYPES, message);
  const response = await fetch(`${GATEWAY}/keys`, {
    method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ ...message, signature }),
  });
  assert.equal(response.status, 201, await response.clone().text());
  return (await response.json()).key;
}

async function buy(signer, tier, aic) {
  const tx = await access.connect(signer).buy(tier, { value: ethers.parseEther(aic) });
  assert.equal((await tx.wait()).status, 1);
}

const ask = (c, extra = {}) => c.chat.completions.create({
  model: CHAT, messages: [{ role: 'user', content: 'Say hi.' }], max_tokens: 4, temperature: 0, ...extra,
});

before(async () => {
  // Bought first, so it has expired by the last test.
  await buy(expiring, 1, '1');
});

test('a wallet with no tier gets 402 insufficient_quota', async () => {
  const fresh = ethers.Wallet.createRandom();
  await assert.rejects(ask(client(await localKey(fresh))), (e) => {
    assert.equal(e.status, 402);
    assert.equal(e.code, 'insufficient_quota');
    return true;
  });
});

test('after buy(standard) the key works for models, chat, streaming, completions and embeddings, each with usage', async () => {
  await buy(user, 2, '5');
  const c = client(await keyFromGateway(user));
  const ids = [];
  for await (const model of c.models.list()) ids.push(model.id);
  assert.ok(ids.includes(CHAT) && ids.includes(EMBED), `models: ${ids}`);

  const { data: chat, response } = await ask(c).withResponse();
  assert.ok(chat.choices[0].message.content.length > 0);
  assert.ok(chat.usage.total_tokens > chat.usage.prompt_tokens);
  assert.match(response.headers.get('x-aicoin-provider'), /^0x[0-9a-fA-F]{40}$/);
  assert.ok(Number(response.headers.get('x-ratelimit-remaining-tokens')) > 0);

  // Usage in the last chunk, though the client did not ask for it.
  const stream = await ask(c, { stream: true });
  let text = '';
  let usage = null;
  for await (const chunk of stream) {
    text += chunk.choices[0]?.delta?.content ?? '';
    if (chunk.usage) usage = chunk.usage;
  }
  assert.ok(text.length > 0);
  assert.ok(usage && usage.completion_tokens > 0, `usage: ${JSON.stringify(usage)}`);

  const completion = await c.completions.create({ model: CHAT, prompt: 'The sky is', max_tokens: 3, temperature: 0 });
  assert.ok(completion.usage.completion_tokens > 0);

  const embedding = await c.embeddings.create({ model: EMBED, input: ['hello world', 'good morning'] });
  assert.equal(embedding.data.length, 2);
  assert.equal(embedding.data[0].embedding.length, 384);
  assert.ok(embedding.usage.prompt_tokens > 0);

  const account = await (await fetch(`${GATEWAY}/account`, { headers: { authorization: `Bearer ${await localKey(user)}` } })).json();
  assert.equal(account.tier_name, 'standard');
  assert.ok(account.quota.tokens_used_today > 0);
});

test('a quota run to its end gets 429 with Retry-After', async () => {
  await buy(limited, 1, '1');
  const c = client(await localKey(limited));
  for (let i = 0; i < 3; i++) await ask(c, { max_tokens: 1 });
  await assert.rejects(ask(c, { max_tokens: 1 }), (e) => {
    assert.equal(e.status, 429);
    assert.ok(Number(e.headers.get('retry-after')) >= 1);
    assert.equal(e.headers.get('x-ratelimit-limit-requests'), '3');
    return true;
  });
});

test('a revoked key, a key for another chain and a key signed by another address get 401', async () => {
  const key = await localKey(user);
  const tx = await access.connect(user).revokeKeys();
  await tx.wait();
  for (const bad of [
    key,
    await localKey(user, { chain: 1, generation: 1n }),
    await localKey(limited, { account: user.address, generation: 1n }),
  ]) {
    await assert.rejects(ask(client(bad)), (e) => {
      assert.equal(e.status, 401);
      return true;
    });
  }
  // The new generation's key works.
  await ask(client(await localKey(user, { generation: 1n })));
});

test('an expired subscription gets 402', async () => {
  const c = client(await localKey(expiring));
  for (;;) {
    const sub = await access.subscription(expiring.address);
    if (!sub.active) break;
    await new Promise((r) => setTimeout(r, 500));
  }
  await assert.rejects(ask(c), (e) => {
    assert.equal(e.status, 402);
    assert.equal(e.code, 'insufficient_quota');
    return true;
  });
});
