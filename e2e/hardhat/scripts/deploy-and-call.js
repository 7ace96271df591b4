// Deploys Counter to the `aicoin` network with hardhat-ethers, calls it, and prints what it saw
// as JSON for the test to check.
import { network } from 'hardhat';

const { ethers } = await network.getOrCreate();
const [deployer] = await ethers.getSigners();
const counter = await ethers.deployContract('Counter');
await counter.waitForDeployment();
const receipt = await (await counter.incBy(2108n)).wait();
const event = counter.interface.parseLog(receipt.logs[0]);
let reverted = null;
try {
  await counter.incBy.staticCall(0n);
} catch (e) {
  reverted = e.reason ?? e.message;
}

console.log(JSON.stringify({
  chainId: (await ethers.provider.getNetwork()).chainId.toString(),
  deployer: deployer.address,
  address: await counter.getAddress(),
  x: (await counter.x()).toString(),
  event: event.name,
  eventBy: event.args.by.toString(),
  gasPrice: receipt.gasPrice.toString(),
  reverted,
}));
