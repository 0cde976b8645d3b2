#!/usr/bin/env bash
# `make run`: initialise the data directory on first use, print where the platform answers and
# how to sign in, then serve in the foreground on loopback (Ctrl-C stops it).
set -euo pipefail
data=$1 http=$2 mqtt=$3 handle=$4
bin=$(dirname "$0")/../build/plateau
creds="$data/.admin-password"
if [ ! -f "$data/meta.db" ]; then
  password=${PLATEAU_ADMIN_PASSWORD:-$(head -c 15 /dev/urandom | base64 | tr -d '/+=' | head -c 16)}
  PLATEAU_ADMIN_PASSWORD=$password "$bin" init --data "$data" >/dev/null
  # Kept beside the data, readable only by its owner, so that `make run` can show it again.
  umask 077
  printf '%s\n' "$password" >"$creds"
fi
cat <<TXT

  Plateau is starting.
    HTTP API:         http://$http/api/v1/  (docs/api.md)
    health check:     curl http://$http/healthz
    sign in:          user "admin", password "$(cat "$creds" 2>/dev/null || echo '(set at init)')"
      curl -s -X POST http://$http/api/v1/login -H 'Content-Type: application/json' \\
           -d '{"username":"admin","password":"…"}'
    data directory:   $data
  Ctrl-C stops it.

TXT
exec "$bin" serve --data "$data" --http "$http" --mqtt "$mqtt" --handle "$handle"
