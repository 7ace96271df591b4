// The "Add AICoin to MetaMask" page a node serves at GET /, in headless Chromium (Debian's
// /usr/bin/chromium driven by playwright-core). An injected EIP-1193 provider stands in for
// MetaMask and records the calls the page makes.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { chromium } from 'playwright-core';

const url = process.env.AICOIN_RPC_URL;
let browser;

before(async () => {
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
    headless: true,
    args: [
      '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
    ],
  });
});

after(() => browser?.close());

/** A page with a recording wallet, or none at all. */
async function open(withWallet) {
  const context = await browser.newContext();
  if (withWallet) {
    await context.addInitScript(() => {
      window.walletCalls = [];
      window.ethereum = {
        isMetaMask: true,
        request: async (args) => {
          window.walletCalls.push(JSON.parse(JSON.stringify(args)));
          return null;
        },
      };
    });
  }
  const page = await context.newPage();
  await page.goto(url);
  return page;
}

const blockShown = (page) => page.evaluate(() => document.getElementById('block').textContent);

test('the button asks the wallet to add AICoin with the spec parameters', async () => {
  const page = await open(true);
  await page.getByRole('button', { name: 'Add AICoin to MetaMask' }).click();
  await page.waitForFunction(() => document.getElementById('status').textContent.includes('in your wallet'));
  const calls = await page.evaluate(() => window.walletCalls);
  assert.deepEqual(calls, [{
    method: 'wallet_addEthereumChain',
    params: [{
      chainId: '0x83C',
      chainName: 'AICoinChain',
      nativeCurrency: { name: 'AIC', symbol: 'AIC', decimals: 18 },
      rpcUrls: [url],
      blockExplorerUrls: null,
    }],
  }]);
});

test('the page shows the live block number', async () => {
  const page = await open(true);
  await page.waitForFunction(() => /^\d+$/.test(document.getElementById('block').textContent));
  const first = Number(await blockShown(page));
  await page.waitForFunction(
    (n) => Number(document.getElementById('block').textContent) > n,
    first,
    { timeout: 30_000 },
  );
  assert.ok(Number(await blockShown(page)) > first);
  // The node's version, and no upgrade banner: governance scheduled none on the dev chain.
  const upgrade = await (await fetch(url, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'aic_upgrade', params: [] }),
  })).json();
  await page.waitForFunction((v) => document.getElementById('version').textContent === v, upgrade.result.nodeVersion);
  assert.equal(await page.evaluate(() => getComputedStyle(document.getElementById('upgrade')).display), 'none');
});

test('without a wallet the page says what to install', async () => {
  const page = await open(false);
  await page.getByRole('button', { name: 'Add AICoin to MetaMask' }).click();
  const status = await page.evaluate(() => document.getElementById('status').textContent);
  assert.match(status, /install MetaMask/);
});
