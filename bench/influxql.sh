#!/usr/bin/env bash
# InfluxQL query latency: Plateau's GET /query side by side with InfluxDB 1.6 (Debian's
# `influxd`), on the same line protocol written to both through /write, the same queries sent
# by the same client (bench_tsdb_http), in one run. The figures go to docs/performance.md,
# section "InfluxQL queries".
#
#   bench/influxql.sh                         100 devices x 30 days at 60 s = 4.3 M rows, 30 M points
#   BENCH_DAYS=2 BENCH_DEVICES=20 bench/influxql.sh   a quick run
#
# Knobs (environment): BENCH_DEVICES (100), BENCH_DAYS (30), BENCH_INTERVAL_S (60), BENCH_SEED (1),
# BENCH_QUERY_RUNS (10 measured runs after 2 warm-ups; at most ~30 s a query), BENCH_BUILD_DIR
# (build: a release build; made with cmake/ninja unless BENCH_NO_BUILD=1), BENCH_TMPDIR (/tmp;
# about 2 GB for the default set), BENCH_KEEP=1 (keep the scratch directory).
#
# The data is bench_tsdb_gen's (see bench/README.md: measurement `line`, tags device/line/site,
# five floats, an integer, a boolean). Both servers get it in 5,000-line requests over one
# connection, in time order (Plateau refuses points more than its out-of-order window behind a
# series, which parallel requests of a time-major file would be); then InfluxDB is left until its shard is compacted and Plateau is restarted (a
# clean stop writes its heads into chunks), so both answer from their at-rest form. The queries:
#   1-day aggregate      mean/min/max of one field of one device over a day, GROUP BY time(1h)
#   30-day aggregate     the same over 30 days, GROUP BY time(1d)
#   30-day fleet         mean of one field over every device, 30 days, GROUP BY time(1d)
#   many series          mean per device (GROUP BY time(1h), device) over a day
#   last per device      last(temperature) GROUP BY device; and TSBS's lastpoint
#                        (SELECT * ... GROUP BY device ORDER BY time DESC LIMIT 1)
# Each is the median of the runs. The benchmark reports; it does not assert. Servers listen on
# free loopback ports in the scratch directory and are stopped on exit.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
DEVICES=${BENCH_DEVICES:-100}
DAYS=${BENCH_DAYS:-30}
INTERVAL=${BENCH_INTERVAL_S:-60}
SEED=${BENCH_SEED:-1}
RUNS=${BENCH_QUERY_RUNS:-10}
BUILD=${BENCH_BUILD_DIR:-$root/build}
START_NS=1704067200000000000 # 2024-01-01T00:00:00Z, as bench_tsdb_gen
DAY_NS=86400000000000

BENCH_NAME=influxql
BENCH_STOP_WAIT_S=${BENCH_STOP_WAIT_S:-30}
# shellcheck source=bench/lib.sh
source "$root/bench/lib.sh"

# ---- build ----
if [[ ${BENCH_NO_BUILD:-0} != 1 ]]; then
  command -v cmake >/dev/null && command -v ninja >/dev/null || die "cmake and ninja are needed (make deps)"
  [[ -f $BUILD/build.ninja ]] ||
    cmake -S "$root" -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DPLATEAU_TESTS=OFF >/dev/null
  cmake "$BUILD" >/dev/null
  ninja -C "$BUILD" plateau bench_tsdb_gen bench_tsdb_http >"$tmp/build.log" 2>&1 || {
    tail -n 30 "$tmp/build.log" >&2
    die "build failed"
  }
fi
GEN=$BUILD/bench_tsdb_gen
HTTP=$BUILD/bench_tsdb_http
PLATEAU=$BUILD/plateau
command -v influxd >/dev/null || die "influxd is needed for the comparison (apt-get install influxdb)"

wait_ready() { # URL SECONDS PID
  local i
  for i in $(seq 1 $(($2 * 10))); do
    "$HTTP" request --url "$1" --timeout-s 2 >/dev/null 2>&1 && return 0
    kill -0 "$3" 2>/dev/null || return 1
    sleep 0.1
  done
  return 1
}

stop_pid() {
  local i
  kill -TERM "$1" 2>/dev/null || return 0
  for i in $(seq 1 3000); do kill -0 "$1" 2>/dev/null || return 0; sleep 0.1; done
  kill -KILL "$1" 2>/dev/null || true
}

# ---- data ----
HOURS=$((DAYS * 24))
log "generating $DEVICES devices x $DAYS days at ${INTERVAL} s"
gen_out=$("$GEN" --format lp --devices "$DEVICES" --hours "$HOURS" --interval-s "$INTERVAL" --seed "$SEED" \
  --out "$tmp/data.lp" 2>&1) || die "bench_tsdb_gen: $gen_out"
log "  $gen_out"
ROWS=$(sed -n 's/.* rows=\([0-9]*\).*/\1/p' <<<"$gen_out")
QDEV=$(printf 'dev-%05d' $((DEVICES / 2)))
D1=$((START_NS + DAY_NS))
DN=$((START_NS + DAYS * DAY_NS))

# ---- InfluxDB ----
idir=$tmp/influxdb
mkdir -p "$idir"
iport=$("$HTTP" freeport)
irpc=$("$HTTP" freeport)
cat >"$idir/influxdb.conf" <<EOF
reporting-disabled = true
bind-address = "127.0.0.1:$irpc"
[meta]
  dir = "$idir/meta"
  logging-enabled = false
[data]
  dir = "$idir/data"
  wal-dir = "$idir/wal"
  query-log-enabled = false
  cache-snapshot-write-cold-duration = "1s"
  compact-full-write-cold-duration = "1s"
  max-values-per-tag = 0
[monitor]
  store-enabled = false
[http]
  bind-address = "127.0.0.1:$iport"
  log-enabled = false
[continuous_queries]
  enabled = false
EOF
influxd run -config "$idir/influxdb.conf" >"$idir/influxd.log" 2>&1 &
ipid=$!
pids+=("$ipid")
IURL=http://127.0.0.1:$iport
wait_ready "$IURL/ping" 60 "$ipid" || die "influxd did not start: $(tail -n 5 "$idir/influxd.log")"
"$HTTP" request --method POST --url "$IURL/query" --param "q=CREATE DATABASE bench" >/dev/null
log "InfluxDB $(influxd version | awk '{print $2}'): writing"
ing=$("$HTTP" ingest --url "$IURL/write?db=bench&precision=ns" --file "$tmp/data.lp" --lines 5000 --connections 1 \
  --points $((ROWS * 7)))
log "  $ing"
# until the shard is compacted: no .tmp files, an empty WAL, files unchanged for 10 s
last="" same=0
for _ in $(seq 1 1800); do
  state=""
  if ! find "$idir/data/bench" -name '*.tmp' | grep -q . && [[ -z $(find "$idir/wal/bench" -name '*.wal' -size +0) ]]; then
    state=$(find "$idir/data/bench" -type f -printf '%p %s %T@\n' | sort | md5sum)
  fi
  if [[ -n $state && $state == "$last" ]]; then same=$((same + 1)); else same=0; fi
  last=$state
  ((same >= 10)) && break
  sleep 1
done

# ---- Plateau ----
pdir=$tmp/plateau
mkdir -p "$pdir"
PLATEAU_ADMIN_PASSWORD=bench-password-1 "$PLATEAU" init --data "$pdir/data" >/dev/null 2>&1
"$PLATEAU" tenant create bench --data "$pdir/data" >/dev/null
TOKEN=$("$PLATEAU" token create --data "$pdir/data" --tenant bench --role operator)
pport=$("$HTTP" freeport)
start_plateau() {
  "$PLATEAU" serve --data "$pdir/data" --http "127.0.0.1:$pport" --mqtt "" --handle "127.0.0.1:0" \
    >>"$pdir/serve.log" 2>&1 &
  ppid=$!
  pids+=("$ppid")
  wait_ready "http://127.0.0.1:$pport/healthz" 60 "$ppid" || die "plateau did not start: $(tail -n 5 "$pdir/serve.log")"
}
start_plateau
PURL=http://127.0.0.1:$pport
AUTH="Authorization: Bearer $TOKEN"
"$HTTP" request --method POST --url "$PURL/query" --param "q=CREATE DATABASE bench" --header "$AUTH" >/dev/null
log "Plateau: writing"
ing=$("$HTTP" ingest --url "$PURL/write?db=bench&precision=ns" --file "$tmp/data.lp" --lines 5000 --connections 1 \
  --points $((ROWS * 7)) --header "$AUTH")
log "  $ing"
stop_pid "$ppid" # a clean stop writes every head into chunks
start_plateau

# ---- queries ----
declare -A Q
Q[agg1d]="SELECT mean(temperature), min(temperature), max(temperature) FROM line WHERE device = '$QDEV' AND time >= ${START_NS} AND time < ${D1} GROUP BY time(1h)"
Q[agg30d]="SELECT mean(temperature), min(temperature), max(temperature) FROM line WHERE device = '$QDEV' AND time >= ${START_NS} AND time < ${DN} GROUP BY time(1d)"
Q[fleet30d]="SELECT mean(temperature) FROM line WHERE time >= ${START_NS} AND time < ${DN} GROUP BY time(1d)"
Q[many]="SELECT mean(temperature) FROM line WHERE time >= ${START_NS} AND time < ${D1} GROUP BY time(1h), device"
Q[last]="SELECT last(temperature) FROM line GROUP BY device"
Q[lastpoint]="SELECT * FROM line GROUP BY device ORDER BY time DESC LIMIT 1"
order=(agg1d agg30d fleet30d many last lastpoint)
declare -A label=([agg1d]="1-day aggregate, one device (24 buckets)" [agg30d]="30-day aggregate, one device (30 buckets)"
  [fleet30d]="30-day aggregate over all $DEVICES devices" [many]="group-by-time over $DEVICES series, 1 day"
  [last]="last(temperature) per device" [lastpoint]="TSBS lastpoint (SELECT * ... ORDER BY time DESC LIMIT 1)")

median() { sed -n 's/.*median_ms=\([0-9.]*\).*/\1/p' <<<"$1"; }
printf '| query | Plateau (ms) | InfluxDB 1.6 (ms) | ratio |\n| --- | --- | --- | --- |\n' >"$tmp/table.md"
for k in "${order[@]}"; do
  q=${Q[$k]}
  a=$("$HTTP" query --url "$PURL/query" --param "db=bench" --param "q=$q" --header "$AUTH" --runs "$RUNS" --warmup 2 \
    --max-seconds 30)
  b=$("$HTTP" query --url "$IURL/query" --param "db=bench" --param "q=$q" --runs "$RUNS" --warmup 2 --max-seconds 30)
  # the answers must agree (the differential test checks the details; here the sizes)
  pa=$(median "$a") pb=$(median "$b")
  ratio=$(awk -v a="$pa" -v b="$pb" 'BEGIN { if (a > 0) printf "%.1f×", b / a; else print "-" }')
  log "$k: plateau ${pa} ms ($(sed -n 's/.*bytes=\([0-9]*\).*/\1/p' <<<"$a") B), influxdb ${pb} ms ($(sed -n 's/.*bytes=\([0-9]*\).*/\1/p' <<<"$b") B)"
  printf '| %s | %s | %s | %s |\n' "${label[$k]}" "$pa" "$pb" "$ratio" >>"$tmp/table.md"
done
echo
echo "InfluxQL queries: $DEVICES devices x $DAYS days at ${INTERVAL} s ($ROWS rows, $((ROWS * 7)) points), median of $RUNS runs"
cat "$tmp/table.md"
cp "$tmp/table.md" "$BUILD/bench-influxql.md" 2>/dev/null || true
