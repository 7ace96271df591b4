#!/usr/bin/env bash
# The production deployment in deploy/, checked as an operator would use it:
#   - `systemd-analyze verify` passes on deploy/aicoin.service, with no warning;
#   (deploy/aicoin.toml is parsed by a unit test of `aicoin node`'s config file);
#   - `nginx -t` passes on deploy/nginx.conf, then nginx runs it in front of a node, with a
#     certificate from a CA made here, and ethers (https://, wss://), CORS preflights, the
#     redirect from http and a streamed chat completion go through it (proxy.test.mjs).
# Only the ports, the certificate paths and the upstreams' ports are changed, by sed, so that no
# root and no port below 1024 is needed.
# Usage: e2e/deploy/run.sh RPC_URL API_URL   (a node started with --rpc-trusted-proxies 127.0.0.1)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
rpc_url=$1 api_url=$2
bin=${AICOIN_BIN:-$root/target/debug/aicoin}
nginx=$(command -v nginx || echo /usr/sbin/nginx)
work=$(mktemp -d)
cleanup() { [ -f "$work/nginx.pid" ] && kill "$(cat "$work/nginx.pid")" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT

echo "-- systemd-analyze verify deploy/aicoin.service"
# verify resolves ExecStart and the targets the unit names inside --root: the unit's own
# binary path is filled with this build, the targets are the host's.
mkdir -p "$work/root/usr/local/bin" "$work/root/etc/systemd/system" "$work/root/usr/lib/systemd"
cp "$bin" "$work/root/usr/local/bin/aicoin"
cp -r /usr/lib/systemd/system "$work/root/usr/lib/systemd/"
cp "$root/deploy/aicoin.service" "$work/root/etc/systemd/system/"
if ! systemd-analyze verify --root="$work/root" "$work/root/etc/systemd/system/aicoin.service" >"$work/verify" 2>&1 \
  || [ -s "$work/verify" ]; then
  cat "$work/verify"; echo "systemd-analyze verify failed or warned" >&2; exit 1
fi

echo "-- a CA and a certificate for localhost"
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=aicoin-e2e-ca \
  -keyout "$work/ca.key" -out "$work/ca.pem" 2>/dev/null
openssl req -newkey rsa:2048 -nodes -subj /CN=localhost \
  -keyout "$work/server.key" -out "$work/server.csr" 2>/dev/null
printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\n' >"$work/san"
openssl x509 -req -in "$work/server.csr" -CA "$work/ca.pem" -CAkey "$work/ca.key" -CAcreateserial \
  -days 2 -extfile "$work/san" -out "$work/server.pem" 2>/dev/null

echo "-- nginx -t on deploy/nginx.conf"
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
tls=$(port) plain=$(port)
rpc_port=${rpc_url##*:}
api_port=$(echo "$api_url" | sed -E 's#^http://[^:]+:([0-9]+).*#\1#')
sed -e "s#listen 443 ssl http2;#listen 127.0.0.1:$tls ssl http2;#" \
    -e "s#listen 80;#listen 127.0.0.1:$plain;#" \
    -e '/listen \[::\]/d' \
    -e "s#server 127.0.0.1:8546;#server 127.0.0.1:$rpc_port;#" \
    -e "s#server 127.0.0.1:8080;#server 127.0.0.1:$api_port;#" \
    -e "s#/etc/letsencrypt/live/rpc1.example.com/fullchain.pem#$work/server.pem#" \
    -e "s#/etc/letsencrypt/live/rpc1.example.com/privkey.pem#$work/server.key#" \
    "$root/deploy/nginx.conf" >"$work/aicoin.conf"
# Every change above must have landed: the ports and paths a real host uses are gone.
if grep -nE 'listen (80|443|\[::\])|:8546;|:8080;|letsencrypt' "$work/aicoin.conf"; then
  echo "deploy/nginx.conf changed shape: update e2e/deploy/run.sh's substitutions" >&2; exit 1
fi
cat >"$work/nginx.conf" <<CONF
pid $work/nginx.pid;
error_log $work/error.log;
events {}
http {
  access_log off;
  client_body_temp_path $work/body;
  proxy_temp_path $work/proxy;
  fastcgi_temp_path $work/fastcgi;
  uwsgi_temp_path $work/uwsgi;
  scgi_temp_path $work/scgi;
  include $work/aicoin.conf;
}
CONF
"$nginx" -t -c "$work/nginx.conf" -p "$work"
"$nginx" -c "$work/nginx.conf" -p "$work"

echo "-- clients through nginx"
cd "$root/e2e"
AICOIN_PROXY_URL=https://localhost:$tls AICOIN_PROXY_HTTP_URL=http://127.0.0.1:$plain \
  NODE_EXTRA_CA_CERTS="$work/ca.pem" node --test deploy/proxy.test.mjs \
  || { tail -20 "$work/error.log"; exit 1; }
