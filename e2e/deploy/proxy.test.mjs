// Clients through deploy/nginx.conf (started by deploy/run.sh in front of a dev node, with a
// certificate from a CA that NODE_EXTRA_CA_CERTS trusts): ethers over https:// and wss://,
// the CORS preflight a browser wallet sends, the redirect from plain http, and a chat completion
// streamed as server-sent events through the /v1/ location.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { ethers } from 'ethers';

const url = process.env.AICOIN_PROXY_URL;           // https://localhost:PORT
const plainUrl = process.env.AICOIN_PROXY_HTTP_URL; // http://127.0.0.1:PORT
// Dev account 9: the other suites have finished by the time this one runs.
const DEV_KEY = '0x2a871d0798f97d79848a013d4936a73bf4cc922c825d33c1cf7073dff6d409c6';
const provider = new ethers.JsonRpcProvider(url, undefined, { pollingInterval: 200 });
const ws = new ethers.WebSocketProvider(url.replace('https://', 'wss://'));

after(() => ws.destroy());

test('ethers over https sends a transfer and reads it back to the wei', async () => {
  assert.equal((await provider.getNetwork()).chainId, 2108n);
  const wallet = new ethers.Wallet(DEV_KEY, provider);
  const to = ethers.Wallet.createRandom().address;
  const value = ethers.parseEther('1.25') + 7n;
  const receipt = await (await wallet.sendTransaction({ to, value, gasPrice: 0 })).wait();
  assert.equal(receipt.status, 1);
  assert.equal(await provider.getBalance(to), value);
});

test('ethers over wss:// subscribes to new blocks through the proxy', async () => {
  const heads = await new Promise((resolve, reject) => {
    const seen = [];
    const timer = setTimeout(() => reject(new Error(`only ${seen.length} blocks in 30 s`)), 30_000);
    ws.on('block', (n) => {
      seen.push(n);
      if (seen.length === 2) {
        clearTimeout(timer);
        ws.off('block');
        resolve(seen);
      }
    });
  });
  assert.ok(heads[1] > heads[0]);
  assert.equal(await ws.send('eth_chainId', []), '0x83c');
});

test('a browser wallet\'s CORS preflight is answered once, by the node', async () => {
  const response = await fetch(url, {
    method: 'OPTIONS',
    headers: {
      Origin: 'chrome-extension://nkbihfbeogaeaoehlefnkodbefgpgknn',
      'Access-Control-Request-Method': 'POST',
      'Access-Control-Request-Headers': 'content-type',
    },
  });
  assert.ok(response.ok, `preflight: ${response.status}`);
  assert.equal(response.headers.get('access-control-allow-origin'), '*');
  const post = await fetch(url, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', Origin: 'https://app.example' },
    body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'eth_chainId', params: [] }),
  });
  assert.equal(post.headers.get('access-control-allow-origin'), '*');
  assert.equal((await post.json()).result, '0x83c');
});

test('plain http is redirected to https', async () => {
  const response = await fetch(`${plainUrl}/health`, { redirect: 'manual' });
  assert.equal(response.status, 301);
  assert.match(response.headers.get('location'), /^https:\/\/.*\/health$/);
});

test('a chat completion streams through /v1/ as server-sent events', async () => {
  const models = await (await fetch(`${url}/v1/models`)).json();
  assert.ok(models.data.some((m) => m.id === 'smollm2-135m-instruct'), JSON.stringify(models));
  const response = await fetch(`${url}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({
      model: 'smollm2-135m-instruct',
      messages: [{ role: 'user', content: 'Say hello.' }],
      max_tokens: 8,
      temperature: 0,
      stream: true,
    }),
  });
  assert.equal(response.status, 200);
  assert.match(response.headers.get('content-type'), /^text\/event-stream/);
  // Events arrive as they are generated: more than one read, each carrying whole events.
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let text = '';
  let reads = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    reads += 1;
    text += decoder.decode(value, { stream: true });
  }
  const events = text.split('\n\n').filter((e) => e.startsWith('data: '));
  assert.equal(events.at(-1), 'data: [DONE]');
  const chunks = events.slice(0, -1).map((e) => JSON.parse(e.slice(6)));
  assert.ok(chunks.some((c) => c.choices?.[0]?.delta?.content), text);
  assert.ok(reads > 1, `the stream came in ${reads} read(s): nginx buffered it`);
});
