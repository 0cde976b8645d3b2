#!/usr/bin/env bash
# The MQTT benchmark: Plateau's MQTT server side by side with Debian's Mosquitto, in one run, with
# one load generator (bench_mqtt_load, our own codec) over 127.0.0.1.
#
#   bench/mqtt.sh                          the full run (a few minutes)
#   BENCH_MESSAGES=20000 BENCH_RUNS=1 bench/mqtt.sh     a quick one
#
# What it measures:
#   fan-in     BENCH_PUBLISHERS (4) publishers -> 1 subscriber, BENCH_SIZE (100)-byte payloads,
#              BENCH_MESSAGES (100000) each, at QoS 0 and QoS 1; messages/s accepted (Plateau also
#              writes every one to its time-series engine, and the script checks they are all
#              there afterwards), messages/s delivered to the subscriber, p50/p99 PUBLISH->PUBACK
#              (for Plateau: publish to durably stored) and p50/p99 PUBLISH->delivery.
#              Runs alternate between the two servers, BENCH_RUNS (3) times; medians are reported.
#   idle       memory per idle MQTT 3.1.1 connection: RSS growth of each server for
#              BENCH_IDLE (10000) connections (anonymous on both; Plateau also with one tenant
#              token, and as BENCH_IDLE (10000) distinct devices, each with its own token).
#
# Both servers get the settings the issue names for Mosquitto: 1000 messages in flight and 100000
# queued per client; Plateau's per-connection and per-tenant rate limits are off.
# Knobs: BENCH_BUILD_DIR (build), BENCH_NO_BUILD=1, BENCH_TMPDIR (/tmp), BENCH_KEEP=1,
# BENCH_SIDES ("plateau mosquitto").
# Figures are printed and written to $BENCH_BUILD_DIR/bench-mqtt.md. The benchmark reports; it
# does not assert. Everything it starts listens on free loopback ports and is stopped on exit.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
MESSAGES=${BENCH_MESSAGES:-100000}
PUBLISHERS=${BENCH_PUBLISHERS:-4}
SIZE=${BENCH_SIZE:-100}
RUNS=${BENCH_RUNS:-3}
IDLE=${BENCH_IDLE:-10000}
SIDES=${BENCH_SIDES:-plateau mosquitto}
BUILD=${BENCH_BUILD_DIR:-$root/build}

BENCH_NAME=mqtt
# shellcheck source=bench/lib.sh
source "$root/bench/lib.sh"

# 10,000 connections need 10,000 descriptors in the server and in the load generator.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
(( $(ulimit -n) > IDLE + 100 )) || die "ulimit -n is $(ulimit -n); $((IDLE + 100)) descriptors are needed"

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
rss_kb() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

# ---- build ----
if [[ ${BENCH_NO_BUILD:-0} != 1 ]]; then
  log "building the release binaries in $BUILD"
  cmake -S "$root" -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DPLATEAU_TESTS=OFF >/dev/null
  ninja -C "$BUILD" plateau bench_mqtt_load >/dev/null
fi
PLATEAU=$BUILD/plateau
LOAD=$BUILD/bench_mqtt_load
[[ -x $PLATEAU && -x $LOAD ]] || die "missing $PLATEAU or $LOAD"
if has mosquitto; then command -v mosquitto >/dev/null || die "mosquitto is not installed (apt-get install mosquitto)"; fi

# ---- servers ----
declare -A PORT PID
start_plateau() { # [dir name]
  local d=$tmp/${1:-plateau}
  mkdir -p "$d"
  PLATEAU_ADMIN_PASSWORD=bench-password-0 "$PLATEAU" init --data "$d/data" >/dev/null
  "$PLATEAU" tenant create bench --data "$d/data" >/dev/null
  : >"$d/tokens"
  for i in $(seq 0 $((PUBLISHERS - 1))); do "$PLATEAU" device create "dev$i" --data "$d/data" --tenant bench >>"$d/tokens"; done
  SUB_TOKEN=$("$PLATEAU" token create --data "$d/data" --tenant bench --role operator)
  ADMIN_TOKEN=$("$PLATEAU" token create --data "$d/data" --tenant bench --role tenant-admin)
  PORT[plateau]=$(free_port)
  HTTP_PORT=$(free_port)
  "$PLATEAU" serve --data "$d/data" --http "127.0.0.1:$HTTP_PORT" --mqtt "127.0.0.1:${PORT[plateau]}" \
    --handle "127.0.0.1:$(free_port)" --mqtt-allow-anonymous --mqtt-max-inflight 1000 --mqtt-max-queued 100000 \
    --mqtt-connection-rate-max 0 --mqtt-tenant-rate-max 0 --mqtt-max-connections 100000 \
    --mqtt-tenant-connections-max 100000 --log-level warn >"$d/serve.log" 2>&1 &
  PID[plateau]=$!
  pids+=("${PID[plateau]}")
  for _ in $(seq 1 100); do
    curl -sf "http://127.0.0.1:$HTTP_PORT/healthz" >/dev/null 2>&1 && return
    sleep 0.1
  done
  die "plateau did not start: $(tail -5 "$d/serve.log")"
}

start_mosquitto() { # [dir name]
  local d=$tmp/${1:-mosquitto}
  mkdir -p "$d"
  PORT[mosquitto]=$(free_port)
  cat >"$d/mosquitto.conf" <<EOF
listener ${PORT[mosquitto]} 127.0.0.1
allow_anonymous true
max_inflight_messages 1000
max_queued_messages 100000
persistence false
log_type error
EOF
  mosquitto -c "$d/mosquitto.conf" >"$d/mosquitto.log" 2>&1 &
  PID[mosquitto]=$!
  pids+=("${PID[mosquitto]}")
  for _ in $(seq 1 50); do
    (exec 3<>"/dev/tcp/127.0.0.1/${PORT[mosquitto]}") 2>/dev/null && return
    sleep 0.1
  done
  die "mosquitto did not start: $(cat "$d/mosquitto.log")"
}

# The same data directory again (after creating devices, so the baseline is a fresh process).
start_plateau_again() {
  local d=$tmp/$1
  PORT[plateau]=$(free_port)
  HTTP_PORT=$(free_port)
  "$PLATEAU" serve --data "$d/data" --http "127.0.0.1:$HTTP_PORT" --mqtt "127.0.0.1:${PORT[plateau]}" \
    --handle "127.0.0.1:$(free_port)" --mqtt-max-connections 100000 --mqtt-tenant-connections-max 100000 \
    --log-level warn >>"$d/serve.log" 2>&1 &
  PID[plateau]=$!
  pids+=("${PID[plateau]}")
  for _ in $(seq 1 100); do
    curl -sf "http://127.0.0.1:$HTTP_PORT/healthz" >/dev/null 2>&1 && return
    sleep 0.1
  done
  die "plateau did not start again: $(tail -5 "$d/serve.log")"
}

has plateau && start_plateau
has mosquitto && start_mosquitto
FANIN_HTTP_PORT=${HTTP_PORT:-}
FANIN_TOKENS=$tmp/plateau/tokens
MOSQ_VERSION=$(mosquitto -h 2>/dev/null | head -1 | awk '{print $3}' || true)
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
log "servers up: plateau port ${PORT[plateau]:-} mosquitto port ${PORT[mosquitto]:-}; load average $LOAD_START"

# ---- fan-in ----
results=$tmp/results.txt
: >"$results"
fanin() { # side qos run
  local side=$1 qos=$2 run=$3 out cpu0 cpu1
  local args=(fanin --port "${PORT[$side]}" --publishers "$PUBLISHERS" --messages "$MESSAGES" --size "$SIZE"
              --qos "$qos" --window 1000 --timeout 300)
  if [[ $side == plateau ]]; then
    args+=(--pub-topic "v1/devices/me/telemetry" --pub-users "$FANIN_TOKENS"
           --sub-topic "v1/devices/+/telemetry" --sub-user bench --sub-pass "$SUB_TOKEN")
  else
    args+=(--pub-topic "v1/devices/dev%d/telemetry" --sub-topic "v1/devices/+/telemetry")
  fi
  cpu0=$(cpu_ticks "${PID[$side]}")
  out=$("$LOAD" "${args[@]}" 2>>"$tmp/load.err") || log "$side qos $qos run $run: $out (see $tmp/load.err)"
  cpu1=$(cpu_ticks "${PID[$side]}")
  echo "side=$side qos=$qos run=$run server_cpu_s=$(awk -v a="$cpu0" -v b="$cpu1" 'BEGIN{printf "%.2f", (b-a)/100}') $out" \
    | tee -a "$results" >&2
}
for run in $(seq 1 "$RUNS"); do
  for qos in 0 1; do
    for side in $SIDES; do fanin "$side" "$qos" "$run"; done
  done
done

# Every message Plateau acknowledged or received is in its engine: count them per device.
STORED=0
if has plateau; then
  for i in $(seq 0 $((PUBLISHERS - 1))); do
    n=$(curl -s -H "Authorization: Bearer $ADMIN_TOKEN" \
      "http://127.0.0.1:$FANIN_HTTP_PORT/api/v1/query?device=dev$i&field=seq&agg=count&start=-1d" |
      python3 -c 'import sys, json; s = json.load(sys.stdin)["series"]; print(s[0]["values"][0][1] if s else 0)')
    STORED=$((STORED + n))
  done
  EXPECTED=$(( (MESSAGES + 1) * PUBLISHERS * RUNS * 2 ))
  log "plateau stored $STORED telemetry points of $EXPECTED messages (each run adds one marker a publisher)"
fi

# ---- idle connections, on fresh processes (a heap grown by the fan-in would hide the growth) ----
stop_side() {
  kill -TERM "${PID[$1]}" 2>/dev/null || true
  for _ in $(seq 1 100); do kill -0 "${PID[$1]}" 2>/dev/null || break; sleep 0.1; done
}

idle_half() { # side first count out [args...]: opens one half of the idle connections
  local side=$1 first=$2 count=$3 out=$4 fifo=$tmp/idle-$2.fifo fd
  shift 4
  rm -f "$fifo"
  mkfifo "$fifo"
  "$LOAD" idle --port "${PORT[$side]}" --count "$count" --first "$first" --hold 600 "$@" <"$fifo" >"$out" \
    2>>"$tmp/load.err" &
  IDLE_PIDS+=($!)
  exec {fd}>"$fifo"
  IDLE_FDS+=("$fd")
  for _ in $(seq 1 900); do grep -q connected "$out" 2>/dev/null && break; sleep 0.2; done
  sleep 3 # let the servers settle (Plateau frees drained buffers at once; its tick runs each second)
}

# RSS before, after half and after all the connections: the whole growth per connection, and the
# growth of the second half alone (one-time costs — caches, allocator arenas — fall in the first).
idle_mem() { # side label [--user U --pass W | --users FILE]
  local side=$1 label=$2 before mid after half=$((IDLE / 2)) got_a got_b fd p
  shift 2
  IDLE_PIDS=()
  IDLE_FDS=()
  sleep 1
  before=$(rss_kb "${PID[$side]}")
  idle_half "$side" 0 "$half" "$tmp/idle-a.out" "$@"
  mid=$(rss_kb "${PID[$side]}")
  idle_half "$side" "$half" "$((IDLE - half))" "$tmp/idle-b.out" "$@"
  after=$(rss_kb "${PID[$side]}")
  got_a=$(sed -n 's/.*connected=\([0-9]*\).*/\1/p' "$tmp/idle-a.out")
  got_b=$(sed -n 's/.*connected=\([0-9]*\).*/\1/p' "$tmp/idle-b.out")
  for fd in "${IDLE_FDS[@]}"; do exec {fd}>&-; done
  for p in "${IDLE_PIDS[@]}"; do wait "$p" || true; done
  echo "idle side=$side label=$label connected=$((got_a + got_b)) rss_before_kb=$before rss_mid_kb=$mid" \
    "rss_after_kb=$after bytes_per_conn=$(( (after - before) * 1024 / IDLE ))" \
    "marginal_bytes_per_conn=$(( (after - mid) * 1024 / (IDLE - half) ))" | tee -a "$results" >&2
  sleep 2
}

if has plateau; then
  stop_side plateau
  start_plateau plateau-idle
  idle_mem plateau anonymous
fi
if has mosquitto; then
  stop_side mosquitto
  start_mosquitto mosquitto-idle
  idle_mem mosquitto anonymous
fi
if has plateau; then
  stop_side plateau
  start_plateau plateau-idle-token
  idle_mem plateau token --user bench --pass "$SUB_TOKEN"
  # Devices: each connection its own device and token (created through the HTTP API).
  stop_side plateau
  start_plateau plateau-idle-devices
  log "creating $IDLE devices"
  python3 - "$HTTP_PORT" "$ADMIN_TOKEN" "$IDLE" "$tmp/device-tokens" <<'PY'
import json, sys, urllib.request
port, token, n, out = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
with open(out, "w") as f:
    for i in range(n):
        req = urllib.request.Request(f"http://127.0.0.1:{port}/api/v1/devices", method="POST",
                                     data=json.dumps({"name": f"idle-{i}"}).encode(),
                                     headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
        f.write(json.load(urllib.request.urlopen(req))["token"] + "\n")
PY
  stop_side plateau
  start_plateau_again plateau-idle-devices
  idle_mem plateau devices --users "$tmp/device-tokens"
fi
LOAD_END=$(cut -d' ' -f1-3 /proc/loadavg)

# ---- report ----
python3 - "$results" "$BUILD/bench-mqtt.md" "$PUBLISHERS" "$MESSAGES" "$SIZE" "$RUNS" "$IDLE" "$STORED" \
  "${EXPECTED:-0}" "$LOAD_START" "$LOAD_END" "${MOSQ_VERSION:-?}" <<'PY'
import statistics, sys
res, out, pubs, msgs, size, runs, idle, stored, expected, l0, l1, mv = sys.argv[1:]
rows = []
for line in open(res):
    kv = dict(p.split("=", 1) for p in line.split() if "=" in p)
    rows.append(kv)
def med(side, qos, key):
    v = [float(r[key]) for r in rows if r.get("side") == side and r.get("qos") == qos and key in r]
    return statistics.median(v) if v else None
def fmt(v, unit=""):
    return "–" if v is None else (f"{v:,.0f}{unit}" if v >= 100 else f"{v:.2f}{unit}")
lines = [f"Fan-in: {pubs} publishers -> 1 subscriber, {size}-byte payloads, {msgs} messages per publisher, "
         f"median of {runs} alternating runs. Load average {l0} at the start, {l1} at the end.", "",
         "| server | QoS | accepted msg/s | delivered msg/s | PUBLISH->PUBACK p50 / p99 | PUBLISH->delivery p50 / p99 | server CPU s |",
         "| --- | --- | --- | --- | --- | --- | --- |"]
for side, name in (("plateau", "Plateau (stores every message)"), ("mosquitto", f"Mosquitto {mv}")):
    for q in ("0", "1"):
        if med(side, q, "pub_rate") is None:
            continue
        ack = "–" if q == "0" else f"{fmt(med(side, q, 'ack_p50_us')/1000, ' ms')} / {fmt(med(side, q, 'ack_p99_us')/1000, ' ms')}"
        lat = f"{fmt(med(side, q, 'lat_p50_us')/1000, ' ms')} / {fmt(med(side, q, 'lat_p99_us')/1000, ' ms')}"
        lines.append(f"| {name} | {q} | {fmt(med(side, q, 'pub_rate'))} | {fmt(med(side, q, 'sub_rate'))} | {ack} | {lat} | "
                     f"{fmt(med(side, q, 'server_cpu_s'))} |")
lines += ["", f"Plateau stored {int(stored):,} telemetry points for {int(expected):,} messages sent (markers included).", "",
          f"Idle connections ({idle}, MQTT 3.1.1, keep-alive 600 s):", "",
          "| server | credentials | connected | RSS before | RSS after | bytes per connection | second half only |",
          "| --- | --- | --- | --- | --- | --- | --- |"]
for r in rows:
    if "label" in r:
        name = "Plateau" if r["side"] == "plateau" else f"Mosquitto {mv}"
        lines.append(f"| {name} | {r['label']} | {r['connected']} | {int(r['rss_before_kb'])/1024:.1f} MB | "
                     f"{int(r['rss_after_kb'])/1024:.1f} MB | {r['bytes_per_conn']} | {r['marginal_bytes_per_conn']} |")
text = "\n".join(lines) + "\n"
open(out, "w").write(text)
print(text)
PY
log "written to $BUILD/bench-mqtt.md"
