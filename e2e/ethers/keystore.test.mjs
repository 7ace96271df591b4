// Keystores cross between `aicoin wallet` and ethers v6 both ways: Wallet.fromEncryptedJson
// decrypts what `aicoin wallet export --keystore` writes, and `aicoin wallet import --keystore`
// reads what wallet.encrypt writes.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ethers } from 'ethers';

const PASSWORD = 'correct horse battery';
const JUNK = 'test test test test test test test test test test test junk';

async function wallet(dir, ...args) {
  const { stdout } = await promisify(execFile)(
    process.env.AICOIN_BIN,
    ['wallet', '--wallet-dir', dir, '--json', ...args],
    { env: { ...process.env, AICOIN_WALLET_PASSWORD: PASSWORD, AICOIN_LOG: 'warn' } },
  );
  return JSON.parse(stdout);
}

const tmp = () => fs.mkdtempSync(path.join(os.tmpdir(), 'aicoin-keystore-'));

test('ethers decrypts an aicoin keystore', async () => {
  const dir = tmp();
  await wallet(path.join(dir, 'w'), 'import', '--mnemonic', JUNK);
  const out = path.join(dir, 'exported.json');
  await wallet(path.join(dir, 'w'), 'export', '--keystore', '--out', out);
  const decrypted = await ethers.Wallet.fromEncryptedJson(fs.readFileSync(out, 'utf8'), PASSWORD);
  assert.equal(decrypted.address, '0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266');
  await assert.rejects(ethers.Wallet.fromEncryptedJson(fs.readFileSync(out, 'utf8'), 'nope'));
});

test('aicoin imports an ethers keystore', async () => {
  const dir = tmp();
  const account = ethers.Wallet.createRandom();
  const file = path.join(dir, 'from-ethers.json');
  fs.writeFileSync(file, await account.encrypt('its own password'));
  fs.writeFileSync(path.join(dir, 'pw'), 'its own password\n');
  const imported = await wallet(
    path.join(dir, 'w'), 'import', '--keystore', file, '--keystore-password-file', path.join(dir, 'pw'),
  );
  assert.equal(imported.address, account.address);
  const { signature } = await wallet(path.join(dir, 'w'), 'sign-message', 'hi');
  assert.equal(ethers.verifyMessage('hi', signature), account.address);
});
