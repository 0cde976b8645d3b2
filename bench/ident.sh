#!/usr/bin/env bash
# Identifier resolution benchmark, one run, side by side (results in docs/performance.md,
# "Identifiers"):
#   - bulk registration: `plateau ident import` of COUNT identifiers (CSV), and one
#     POST /api/v1/ident/bulk of 100,000;
#   - Handle protocol resolution over UDP and TCP of random identifiers among COUNT
#     (bench_ident_load), the server on CPU 0 and the load on CPU 1;
#   - HTTP resolution GET /api/handles/{random identifier} with wrk, 50 keep-alive connections;
#   - references on the same machine: Knot DNS (one UDP and one TCP worker) answering dnsperf
#     from a zone of COUNT ~100-byte TXT records, and nginx (one worker) serving a 315-byte
#     static JSON file to wrk.
# Usage: bench/ident.sh [COUNT] [SECONDS]   (defaults 1000000 and 10). Needs: knot, dnsperf,
# nginx-light, wrk (scripts/install-deps.sh installs them); a missing peer is reported and
# skipped.
set -euo pipefail
cd "$(dirname "$0")/.."
COUNT=${1:-1000000}
SECS=${2:-10}
ROOT=$(pwd)
BUILD=${BUILD:-$ROOT/build}
cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DPLATEAU_TESTS=OFF ${CMAKE_ARGS:-} >/dev/null
ninja --quiet -C "$BUILD" plateau bench_ident_load
BIN=$BUILD/plateau
LOAD=$BUILD/bench_ident_load
W=$(mktemp -d /tmp/plateau-bench-ident.XXXXXX)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$W"; }
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
on0() { taskset -c 0 "$@"; }
on1() { taskset -c 1 "$@"; }
declare -A R

echo "== data: $COUNT identifiers"
export PLATEAU_ADMIN_PASSWORD=bench-password-123
"$BIN" init --data "$W/data" >/dev/null
"$BIN" tenant create bench --data "$W/data" >/dev/null
"$BIN" prefix create 88.118.9 --tenant bench --data "$W/data" >/dev/null
"$BIN" prefix create 88.118.8 --tenant bench --data "$W/data" >/dev/null
python3 - "$COUNT" "$W/ids.csv" <<'PY'
import sys
n, path = int(sys.argv[1]), sys.argv[2]
with open(path, "w") as f:
    f.write("handle,URL,DESC\n")
    for i in range(n):
        f.write(f"88.118.9/SN{i:07d},https://water.example.com/p/{i:07d},Spring water 500 ml lot {i // 10000}\n")
PY
t0=$(date +%s.%N)
on0 "$BIN" ident import "$W/ids.csv" --data "$W/data" --tenant bench >"$W/import.out" 2>/dev/null
t1=$(date +%s.%N)
R[bulk_cli]=$(python3 -c "print(round($COUNT/($t1-$t0)))")
echo "bulk import (CLI): $(cat "$W/import.out") -> ${R[bulk_cli]} identifiers/s"

HTTP=$(free_port); HDL=$(free_port)
taskset -c 0 "$BIN" serve --data "$W/data" --http "127.0.0.1:$HTTP" --mqtt "127.0.0.1:$(free_port)" --handle "127.0.0.1:$HDL" \
  --http-threads 1 --http-max-body-bytes 64MiB --log-level warn 2>"$W/serve.log" &
PIDS+=($!)
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$HTTP/healthz" >/dev/null && break; sleep 0.1; done
TOKEN=$("$BIN" token create --data "$W/data" --tenant bench --role tenant-admin)

echo "== Plateau Handle protocol ($SECS s each)"
on1 "$LOAD" --server "127.0.0.1:$HDL" --udp --prefix 88.118.9 --count "$COUNT" --duration 2 --window 64 >/dev/null
UDP_JSON=$(on1 "$LOAD" --server "127.0.0.1:$HDL" --udp --prefix 88.118.9 --count "$COUNT" --duration "$SECS" --window 64)
TCP_JSON=$(on1 "$LOAD" --server "127.0.0.1:$HDL" --tcp --prefix 88.118.9 --count "$COUNT" --duration "$SECS" --window 16 --connections 8)
echo "udp: $UDP_JSON"
echo "tcp: $TCP_JSON"
R[udp]=$(echo "$UDP_JSON" | python3 -c 'import json,sys; print(round(json.load(sys.stdin)["qps"]))')
R[tcp]=$(echo "$TCP_JSON" | python3 -c 'import json,sys; print(round(json.load(sys.stdin)["qps"]))')

echo "== Plateau HTTP /api/handles (wrk, 50 connections)"
cat >"$W/rand.lua" <<LUA
math.randomseed(42)
request = function()
  return wrk.format("GET", string.format("/api/handles/88.118.9/SN%07d", math.random(0, $COUNT - 1)))
end
LUA
on1 wrk -t1 -c50 -d"${SECS}s" --latency -s "$W/rand.lua" "http://127.0.0.1:$HTTP" >"$W/wrk_plateau.txt"
R[http]=$(awk '/Requests\/sec/ {printf "%d", $2}' "$W/wrk_plateau.txt")
grep -E "Requests/sec|50%|99%|Non-2xx" "$W/wrk_plateau.txt" || true
# Bulk over HTTP last, so the resolution figures above read a checkpointed database (as after
# `plateau ident import`), not one whose newest pages still sit in the write-ahead log.
python3 - "$W/bulk.csv" <<'PY'
import sys
with open(sys.argv[1], "w") as f:
    f.write("handle,URL,DESC\n")
    for i in range(100000):
        f.write(f"88.118.8/SN{i:07d},https://water.example.com/p/{i:07d},Spring water 500 ml\n")
PY
R[bulk_http]=$(curl -sf -X POST -H "Authorization: Bearer $TOKEN" -H 'Content-Type: text/csv' --data-binary @"$W/bulk.csv" \
  "http://127.0.0.1:$HTTP/api/v1/ident/bulk" | python3 -c 'import json,sys; d=json.load(sys.stdin); print(round(d["rows_per_second"]))')
echo "bulk registration (HTTP, 100000 rows in one request): ${R[bulk_http]} identifiers/s"
kill "${PIDS[-1]}"; wait "${PIDS[-1]}" 2>/dev/null || true

if command -v knotd >/dev/null && command -v dnsperf >/dev/null; then
  echo "== Knot DNS reference ($COUNT TXT records of ~100 bytes; 1 UDP + 1 TCP worker)"
  mkdir -p "$W/knot"
  python3 - "$COUNT" "$W/knot/bench.zone" "$W/queries.txt" <<'PY'
import random, sys
n, zone, queries = int(sys.argv[1]), sys.argv[2], sys.argv[3]
with open(zone, "w") as f:
    f.write("$ORIGIN bench.\n$TTL 86400\n@ SOA ns.bench. admin.bench. 1 3600 600 86400 60\n@ NS ns.bench.\nns A 127.0.0.1\n")
    for i in range(n):
        f.write(f'sn{i:07d} TXT "https://water.example.com/p/{i:07d} Spring water 500 ml lot {i // 10000:03d} producer=bench"\n')
random.seed(42)
with open(queries, "w") as f:
    for _ in range(1000000):
        f.write(f"sn{random.randrange(n):07d}.bench. TXT\n")
PY
  KP=$(free_port)
  cat >"$W/knot/knot.conf" <<CONF
server:
    rundir: "$W/knot"
    listen: 127.0.0.1@$KP
    udp-workers: 1
    tcp-workers: 1
    background-workers: 1
database:
    storage: "$W/knot"
log:
  - target: stderr
    any: warning
zone:
  - domain: bench.
    file: "$W/knot/bench.zone"
    zonefile-load: whole
    journal-content: none
CONF
  taskset -c 0 knotd -c "$W/knot/knot.conf" 2>"$W/knot.log" &
  PIDS+=($!)
  # Ready when a record of the zone answers (kdig comes with knot).
  for _ in $(seq 600); do kdig +short -p "$KP" @127.0.0.1 sn0000001.bench. TXT 2>/dev/null | grep -q water && break; sleep 0.5; done
  on1 dnsperf -s 127.0.0.1 -p "$KP" -d "$W/queries.txt" -l "$SECS" -c 1 -q 64 >"$W/dnsperf_udp.txt" 2>&1 || true
  on1 dnsperf -s 127.0.0.1 -p "$KP" -d "$W/queries.txt" -l "$SECS" -m tcp -c 8 -q 128 >"$W/dnsperf_tcp.txt" 2>&1 || true
  R[knot_udp]=$(awk '/Queries per second/ {printf "%d", $4}' "$W/dnsperf_udp.txt")
  R[knot_tcp]=$(awk '/Queries per second/ {printf "%d", $4}' "$W/dnsperf_tcp.txt")
  grep -E "Queries per second|Average Latency" "$W/dnsperf_udp.txt" "$W/dnsperf_tcp.txt" || true
  kill "${PIDS[-1]}"; wait "${PIDS[-1]}" 2>/dev/null || true
else
  echo "knot or dnsperf missing: the DNS reference is skipped"
fi

if command -v nginx >/dev/null; then
  echo "== nginx reference (1 worker, 315-byte static JSON)"
  mkdir -p "$W/nginx/html" "$W/nginx/tmp"
  python3 -c "
import json
body = json.dumps({'responseCode': 1, 'handle': '88.118.9/SN0000001', 'values': [{'index': 1, 'type': 'URL', 'data': {'format': 'string', 'value': 'https://water.example.com/p/0000001'}, 'ttl': 86400, 'timestamp': '2026-11-29T00:00:00Z'}, {'index': 2, 'type': 'DESC', 'data': {'format': 'string', 'value': 'Spring water 500 ml lot 0'}, 'ttl': 86400}]})
body = body[:315].ljust(315)
open('$W/nginx/html/h.json', 'w').write(body)"
  NP=$(free_port)
  cat >"$W/nginx/nginx.conf" <<CONF
worker_processes 1;
daemon off;
pid $W/nginx/nginx.pid;
error_log $W/nginx/error.log warn;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path $W/nginx/tmp; proxy_temp_path $W/nginx/tmp; fastcgi_temp_path $W/nginx/tmp;
  uwsgi_temp_path $W/nginx/tmp; scgi_temp_path $W/nginx/tmp;
  keepalive_requests 1000000;
  server { listen 127.0.0.1:$NP; root $W/nginx/html; default_type application/json; }
}
CONF
  taskset -c 0 nginx -c "$W/nginx/nginx.conf" -p "$W/nginx" &
  PIDS+=($!)
  sleep 1
  on1 wrk -t1 -c50 -d"${SECS}s" --latency "http://127.0.0.1:$NP/h.json" >"$W/wrk_nginx.txt"
  R[nginx]=$(awk '/Requests\/sec/ {printf "%d", $2}' "$W/wrk_nginx.txt")
  grep -E "Requests/sec|50%|99%" "$W/wrk_nginx.txt" || true
  kill "${PIDS[-1]}"; wait "${PIDS[-1]}" 2>/dev/null || true
else
  echo "nginx missing: the HTTP reference is skipped"
fi

ratio() { [ -n "${2:-}" ] && [ "${2:-0}" != 0 ] && python3 -c "print(f'{$1/$2*100:.0f}%')" || echo "n/a"; }
echo
echo "== summary (Plateau vs reference, this machine, one run)"
printf "%-34s %12s %12s %8s\n" "measure" "Plateau" "reference" "ratio"
printf "%-34s %12s %12s %8s\n" "Handle/UDP vs Knot UDP (q/s)" "${R[udp]}" "${R[knot_udp]:-}" "$(ratio "${R[udp]}" "${R[knot_udp]:-}")"
printf "%-34s %12s %12s %8s\n" "Handle/TCP vs Knot TCP (q/s)" "${R[tcp]}" "${R[knot_tcp]:-}" "$(ratio "${R[tcp]}" "${R[knot_tcp]:-}")"
printf "%-34s %12s %12s %8s\n" "HTTP /api/handles vs nginx (req/s)" "${R[http]}" "${R[nginx]:-}" "$(ratio "${R[http]}" "${R[nginx]:-}")"
printf "%-34s %12s\n" "bulk import, CLI (ids/s)" "${R[bulk_cli]}"
printf "%-34s %12s\n" "bulk registration, HTTP (ids/s)" "${R[bulk_http]}"
