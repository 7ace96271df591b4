#!/usr/bin/env bash
# Every test: unit and property tests, integration tests with real node processes, and the
# end-to-end suites with real clients (ethers v6, web3.py). Needs e2e/node_modules and
# e2e/.venv (.ci/run installs both on a fresh machine).
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== contract artifacts are up to date"
node e2e/compile-contracts.mjs --check

echo "== cargo test (unit, property and integration tests)"
cargo test --workspace --locked

echo "== end-to-end: ethers v6 and web3.py against aicoin node --dev"
e2e/run.sh target/debug/aicoin
