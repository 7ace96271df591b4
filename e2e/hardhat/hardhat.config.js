// A Hardhat 3 project pointed at an AICoin node: the only change a dApp needs is the network.
// It compiles contracts/ with solc-js from npm (no compiler download).
import { fileURLToPath } from 'node:url';
import hardhatEthers from '@nomicfoundation/hardhat-ethers';

// Dev account 4 of the `test ... junk` mnemonic (funded by `aicoin node --dev`).
const DEV_KEY = '0x47e179ec197488593b187f80a00eb0da91f1b9d0b13f8733639f19c30a34926a';
const local = (path) => fileURLToPath(new URL(path, import.meta.url));

export default {
  plugins: [hardhatEthers],
  solidity: {
    compilers: [{ version: '0.8.37', path: local('./node_modules/solc/soljson.js') }],
  },
  networks: {
    aicoin: {
      type: 'http',
      chainType: 'l1',
      url: process.env.AICOIN_RPC_URL ?? 'http://127.0.0.1:8546',
      chainId: 2108,
      accounts: [DEV_KEY],
    },
  },
};
