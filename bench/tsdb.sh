#!/usr/bin/env bash
# The time-series benchmark: Plateau's engine (in-process and over HTTP) side by side with
# InfluxDB 1.6 from Debian, on the same generated points, in one run. See bench/README.md.
#
#   bench/tsdb.sh                  the full data set: 1,000 devices x 1 day = 60.5 M points
#   BENCH_HOURS=1 bench/tsdb.sh    a quick run: 1,000 devices x 1 hour = 2.5 M points (~70 s)
#
# Knobs (environment): BENCH_DEVICES (1000), BENCH_HOURS (24), BENCH_SEED (1), BENCH_BATCH
# (5000 rows a request or tsdb_write call), BENCH_CONNECTIONS (4 HTTP connections),
# BENCH_QUERY_RUNS (10 measured runs a query, after 2 warm-ups; at most ~30 s a query),
# BENCH_SIDES ("influxdb inprocess http": which sides to run), BENCH_BUILD_DIR (build),
# BENCH_TMPDIR (/tmp: scratch space, about 4 GB for the full set), BENCH_KEEP=1 (keep it),
# BENCH_NO_BUILD=1 (use the programs already in the build directory),
# BENCH_PROFILE=1 (also profile Plateau's ingest, in-process and in the server, with perf, else
# callgrind; into $BENCH_BUILD_DIR/bench-tsdb-profile.txt).
#
# Figures are printed as a table and written to $BENCH_BUILD_DIR/bench-tsdb.md; the benchmark
# reports, it does not assert. Every server it starts listens on a free loopback port, in a
# temporary directory, and is stopped on exit, whatever happens.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
DEVICES=${BENCH_DEVICES:-1000}
HOURS=${BENCH_HOURS:-24}
SEED=${BENCH_SEED:-1}
BATCH=${BENCH_BATCH:-5000}
CONNS=${BENCH_CONNECTIONS:-4}
RUNS=${BENCH_QUERY_RUNS:-10}
SIDES=${BENCH_SIDES:-influxdb inprocess http}
BUILD=${BENCH_BUILD_DIR:-$root/build}
PROFILE=${BENCH_PROFILE:-0}
QUERY_SECONDS=${BENCH_QUERY_SECONDS:-30}
FIELDS=7
START_NS=1704067200000000000 # 2024-01-01T00:00:00Z, as bench_tsdb_gen
HOUR_NS=3600000000000

BENCH_NAME=tsdb
# shellcheck source=bench/lib.sh
source "$root/bench/lib.sh"

# ---- results: R[key]=value, printed as a table at the end ----
declare -A R
notes=()
note() {
  notes+=("$*")
  log "note: $*"
}
# kv KEY-PREFIX "a=1 b=2": stores R[prefix.a]=1 ...
kv() {
  local prefix=$1 pair
  for pair in $2; do R[$prefix.${pair%%=*}]=${pair#*=}; done
}
ms_now() { date +%s%3N; }

# ---- build ----
build() {
  if [[ ${BENCH_NO_BUILD:-0} == 1 ]]; then
    [[ -x $BUILD/bench_tsdb_gen && -x $BUILD/bench_tsdb_http ]] || die "BENCH_NO_BUILD=1 but $BUILD has no bench_tsdb_gen"
    return
  fi
  command -v cmake >/dev/null && command -v ninja >/dev/null || die "cmake and ninja are needed (make deps)"
  if [[ ! -f $BUILD/build.ninja ]]; then
    cmake -S "$root" -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DPLATEAU_TESTS=OFF >/dev/null
  fi
  # CMake picks up new bench/*.c files only when it re-runs its globs.
  cmake "$BUILD" >/dev/null
  local t
  for t in bench_tsdb_gen bench_tsdb_http bench_tsdb plateau; do
    ninja -C "$BUILD" "$t" >"$tmp/build-$t.log" 2>&1 || log "could not build $t (see below); its side is skipped"
    [[ -x $BUILD/$t ]] || tail -n 20 "$tmp/build-$t.log" >&2
  done
  [[ -x $BUILD/bench_tsdb_gen && -x $BUILD/bench_tsdb_http ]] || die "the generator and the HTTP client must build"
}

GEN=$BUILD/bench_tsdb_gen
HTTP=$BUILD/bench_tsdb_http

wait_ready() { # URL SECONDS PID
  local i
  for i in $(seq 1 $(($2 * 10))); do
    "$HTTP" request --url "$1" --timeout-s 2 >/dev/null 2>&1 && return 0
    kill -0 "$3" 2>/dev/null || return 1
    sleep 0.1
  done
  return 1
}

# wait_settled QUIET_S STATE_FN ARGS...: waits until STATE_FN ARGS prints the same thing for
# QUIET_S seconds in a row (at most 30 minutes); sets SETTLED_S to how long the changes went on.
wait_settled() {
  local quiet=$1 fn=$2 t0 last="" same=0 state
  shift 2
  t0=$(ms_now)
  while :; do
    state=$("$fn" "$@")
    if [[ -n $state && $state == "$last" ]]; then same=$((same + 1)); else same=0; fi
    last=$state
    ((same >= quiet)) && break
    if (($(ms_now) - t0 > 1800000)); then
      note "$* still changing after 30 min; measured as it was"
      break
    fi
    sleep 1
  done
  SETTLED_S=$(((($(ms_now) - t0) / 1000) - quiet))
}

# The state of InfluxDB's files; empty (never settled) while a compaction's .tmp output exists or
# the WAL holds data.
influx_state() {
  find "$1/data/bench" -name '*.tmp' | grep -q . && return
  [[ -n $(find "$1/wal/bench" -name '*.wal' -size +0 2>/dev/null) ]] && return
  find "$1/data/bench" "$1/wal/bench" -type f -printf '%p %s %T@\n' 2>/dev/null | sort | md5sum
}

# The state of Plateau's engine directory (chunks.db, its SQLite WAL, the engine's WAL).
plateau_state() {
  find "$1" -type f -printf '%p %s %T@\n' 2>/dev/null | sort | md5sum
}

# CPU seconds (user + system) a process has used so far.
cpu_s() { awk -v hz="$(getconf CLK_TCK)" '{printf "%.2f\n", ($14 + $15) / hz}' "/proc/$1/stat" 2>/dev/null || echo 0; }

peak_rss_kb() { awk '/^VmHWM:/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }

stop_pid() { # PID: SIGTERM, wait up to 5 minutes (a clean shutdown may flush), then SIGKILL
  local i
  kill -TERM "$1" 2>/dev/null || return 0
  for i in $(seq 1 3000); do kill -0 "$1" 2>/dev/null || return 0; sleep 0.1; done
  log "pid $1 did not stop in 5 minutes: killed"
  kill -KILL "$1" 2>/dev/null || true
}

# ---- the data set ----
generate() {
  log "generating $DEVICES devices x $HOURS h at 10 s (seed $SEED)"
  local t0 out
  t0=$(ms_now)
  [[ $HOURS -ge 1 && $DEVICES -ge 1 ]] || die "BENCH_HOURS and BENCH_DEVICES must be at least 1"
  # Scratch space: line protocol (~175 bytes a row), JSON (~275), InfluxDB's WAL and shard, and
  # Plateau's directories, one at a time.
  local need=$((DEVICES * HOURS * 360 * 700)) avail
  avail=$(df -P -B1 "$tmp" | awk 'NR == 2 {print $4}')
  ((avail > need)) || die "$tmp has $((avail >> 20)) MiB free; this run needs about $((need >> 20)) MiB (set BENCH_TMPDIR)"
  out=$("$GEN" --format lp --devices "$DEVICES" --hours "$HOURS" --seed "$SEED" --out "$tmp/data.lp" 2>&1) ||
    die "bench_tsdb_gen failed: $out"
  log "  $out ($(($(ms_now) - t0)) ms)"
  ROWS=$(sed -n 's/.* rows=\([0-9]*\).*/\1/p' <<<"$out")
  POINTS=$((ROWS * FIELDS))
  if has http; then
    out=$("$GEN" --format json --batch "$BATCH" --devices "$DEVICES" --hours "$HOURS" --seed "$SEED" \
      --out "$tmp/data.json" 2>&1) || die "bench_tsdb_gen failed: $out"
    log "  $out"
  fi
  LP_BYTES=$(stat -c %s "$tmp/data.lp")
  # Query parameters: one device in the middle of the fleet, an hour in the middle of the span,
  # and "a day": the first 24 h (or the whole span when it is shorter).
  QDEV=$(printf 'dev-%05d' $((DEVICES / 2)))
  QH0=$((START_NS + HOURS / 2 * HOUR_NS))
  DAY_H=$((HOURS < 24 ? HOURS : 24))
  QEND=$((START_NS + DAY_H * HOUR_NS))
  ALL_END=$((START_NS + (HOURS + 1) * HOUR_NS))
}

# ---- InfluxDB ----
influx_side() {
  if ! command -v influxd >/dev/null; then
    note "InfluxDB side skipped: influxd not found (apt-get install influxdb)"
    return
  fi
  local dir=$tmp/influxdb port rpc pid out v
  mkdir -p "$dir/meta" "$dir/data" "$dir/wal"
  port=$("$HTTP" freeport)
  rpc=$("$HTTP" freeport)
  R[influx.version]=$(influxd version 2>/dev/null | awk '{print $2}')
  # Defaults except: private dirs and ports, no usage reporting, no _internal monitoring
  # database (it would write beside the benchmark), no per-request access log, unlimited tag
  # values, and cold durations of 1 s so that the cache is snapshotted and the shard fully
  # compacted as soon as writing stops. wal-fsync-delay stays "0s": fsync on every write.
  cat >"$dir/influxdb.conf" <<EOF
reporting-disabled = true
bind-address = "127.0.0.1:$rpc"
[meta]
  dir = "$dir/meta"
[data]
  dir = "$dir/data"
  wal-dir = "$dir/wal"
  wal-fsync-delay = "0s"
  index-version = "inmem"
  query-log-enabled = false
  cache-snapshot-write-cold-duration = "1s"
  compact-full-write-cold-duration = "1s"
  max-values-per-tag = 0
  max-series-per-database = 0
[monitor]
  store-enabled = false
[http]
  bind-address = "127.0.0.1:$port"
  log-enabled = false
  max-body-size = 0
[logging]
  level = "warn"
EOF
  log "InfluxDB ${R[influx.version]}: starting on 127.0.0.1:$port"
  influxd run -config "$dir/influxdb.conf" >"$dir/influxd.log" 2>&1 &
  pid=$!
  pids+=("$pid")
  if ! wait_ready "http://127.0.0.1:$port/ping" 60 "$pid"; then
    tail -n 20 "$dir/influxd.log" >&2
    note "InfluxDB side skipped: influxd did not start"
    stop_pid "$pid"
    return
  fi
  if ! "$HTTP" request --method POST --url "http://127.0.0.1:$port/query" --param "q=CREATE DATABASE bench" >/dev/null; then
    note "InfluxDB side skipped: CREATE DATABASE failed"
    stop_pid "$pid"
    return
  fi

  log "InfluxDB: writing $POINTS points ($ROWS lines, $BATCH a request, $CONNS connections)"
  R[influx.load]=$(cut -d' ' -f1-3 /proc/loadavg)
  local cpu0
  cpu0=$(cpu_s "$pid")
  out=$(timeout 7200 "$HTTP" ingest --url "http://127.0.0.1:$port/write" --param db=bench --param precision=ns \
    --file "$tmp/data.lp" --lines "$BATCH" --connections "$CONNS" --points "$POINTS") || {
    note "InfluxDB ingest failed ($(tail -n 3 "$dir/influxd.log" | tr '\n' ' '))"
    stop_pid "$pid"
    return
  }
  log "  $out"
  kv influx.ingest "$out"
  R[influx.ingest.cpu_s]=$(awk -v a="$(cpu_s "$pid")" -v b="$cpu0" 'BEGIN {printf "%.2f", a - b}')
  R[influx.ingest.points_per_cpu_s]=$(div "$POINTS" "${R[influx.ingest.cpu_s]}" %.0f)
  R[influx.rss_ingest_kb]=$(peak_rss_kb "$pid")

  # Full compaction: wait until the shard files have not changed for 20 s, no compaction
  # output (.tmp) is pending and the WAL holds nothing (cold after 1 s, then snapshotted).
  log "InfluxDB: waiting for the full compaction"
  wait_settled 20 influx_state "$dir"
  R[influx.compact_s]=$SETTLED_S
  R[influx.tsm_files]=$(find "$dir/data/bench" -name '*.tsm' | wc -l)
  # Bytes on disk: blocks allocated to the database directory (shards, and the series file,
  # whose segments are preallocated sparse files), and the TSM files' own size.
  R[influx.disk_bytes]=$(du -s --block-size=1 "$dir/data/bench" | awk '{print $1}')
  R[influx.tsm_bytes]=$(find "$dir/data/bench" -name '*.tsm' -printf '%s\n' | awk '{s += $1} END {print s + 0}')
  R[influx.wal_bytes]=$(du -s --block-size=1 "$dir/wal/bench" | awk '{print $1}')
  log "  compacted in ${R[influx.compact_s]} s: ${R[influx.tsm_files]} TSM files, ${R[influx.disk_bytes]} bytes"

  local q=(
    "raw|SELECT * FROM line WHERE device = '$QDEV' AND time >= $QH0 AND time < $((QH0 + HOUR_NS))"
    "mean1m|SELECT mean(temperature) FROM line WHERE device = '$QDEV' AND time >= $START_NS AND time < $QEND GROUP BY time(1m)"
    "max1h|SELECT max(temperature) FROM line WHERE time >= $START_NS AND time < $QEND GROUP BY time(1h), device"
    "last|SELECT last(*) FROM line GROUP BY device"
    "count|SELECT count(*) FROM line"
  )
  local item name text
  for item in "${q[@]}"; do
    name=${item%%|*} text=${item#*|}
    out=$("$HTTP" query --url "http://127.0.0.1:$port/query" --param db=bench --param "q=$text" \
      --runs "$RUNS" --warmup 2 --max-seconds "$QUERY_SECONDS") || {
      note "InfluxDB query $name failed"
      continue
    }
    log "  query $name: $out"
    kv "influx.q.$name" "$out"
  done
  # The count query's answer, as a check that every point arrived: one column per field.
  R[influx.count_check]=$("$HTTP" request --url "http://127.0.0.1:$port/query" --param db=bench --param epoch=ns \
    --param "q=SELECT count(*) FROM line" 2>/dev/null | grep -o '"values":\[\[[^]]*\]' | tr -cs '0-9' ' ' |
    awk '{s = 0; for (i = 1; i <= NF; i++) s += $i; print s}') || true
  R[influx.rss_kb]=$(peak_rss_kb "$pid")
  stop_pid "$pid"
}

# ---- Plateau in-process ----
inprocess_side() {
  if [[ ! -x $BUILD/bench_tsdb ]]; then
    note "Plateau in-process side skipped: $BUILD/bench_tsdb was not built"
    return
  fi
  local pol out k v
  # fsync always is the equal-durability figure (and the one whose disk use and queries are
  # measured); interval is Plateau's default.
  for pol in always interval; do
    local args=(--dir "$tmp/inproc-$pol" --fsync "$pol" --devices "$DEVICES" --hours "$HOURS" --seed "$SEED"
      --batch "$BATCH")
    [[ $pol == always ]] && args+=(--queries --runs "$RUNS" --max-seconds "$QUERY_SECONDS")
    log "Plateau in-process, fsync $pol: writing $POINTS points, $BATCH rows a tsdb_write"
    R[inproc.$pol.load]=$(cut -d" " -f1-3 /proc/loadavg)
    local rc=0
    out=$(timeout 7200 "$BUILD/bench_tsdb" "${args[@]}" 2>"$tmp/inproc-$pol.err") || rc=$?
    if [[ $rc != 0 ]]; then
      local why="exit status $rc"
      [[ $rc -gt 128 ]] && why="killed by signal $((rc - 128))"
      [[ $rc == 124 ]] && why="timed out"
      note "Plateau in-process (fsync $pol) failed ($why) after: $(tail -n 1 <<<"$out") $(tail -n 3 "$tmp/inproc-$pol.err" | tr '\n' ' ')"
    fi
    while IFS='=' read -r k v; do [[ -n $k ]] && R[inproc.$pol.$k]=$v; done <<<"$out"
    log "  $(tr '\n' ' ' <<<"$out")"
    rm -rf "$tmp/inproc-$pol"
  done
}

# ---- Plateau over HTTP ----
# plateau_start DIR POLICY: starts `plateau serve` on free loopback ports; sets PPORT and PPID.
plateau_start() {
  local dir=$1 pol=$2
  PPORT=$("$HTTP" freeport)
  PLATEAU_TSDB_FSYNC=$pol PLATEAU_LOG_LEVEL=warn "$BUILD/plateau" serve --data "$dir" --http "127.0.0.1:$PPORT" \
    --mqtt "127.0.0.1:$("$HTTP" freeport)" --handle "127.0.0.1:$("$HTTP" freeport)" >>"$dir.log" 2>&1 &
  PPID_=$!
  pids+=("$PPID_")
  wait_ready "http://127.0.0.1:$PPORT/healthz" 600 "$PPID_"
}

plateau_query() { # NAME ARGS...: one timed query against the running server
  local name=$1 out
  shift
  out=$("$HTTP" query --url "http://127.0.0.1:$PPORT/api/v1/query" --header "Authorization: Bearer $TOKEN" \
    --runs "$RUNS" --warmup 2 --max-seconds "$QUERY_SECONDS" "$@") || {
    note "Plateau HTTP query $name failed"
    return 0
  }
  log "  query $name: $out"
  kv "http.always.q.$name" "$out"
}

# plateau_init DIR: a data directory with tenant "bench" and an operator token in TOKEN.
plateau_init() {
  local dir=$1
  PLATEAU_ADMIN_PASSWORD=bench-$RANDOM-$RANDOM-password "$BUILD/plateau" init --data "$dir" >"$dir.log" 2>&1 &&
    "$BUILD/plateau" tenant create bench --data "$dir" >>"$dir.log" 2>&1 &&
    TOKEN=$("$BUILD/plateau" token create --data "$dir" --tenant bench --role operator --name bench 2>>"$dir.log")
}

# The InfluxDB-compatible endpoint (/write), if this build of Plateau has one: creates database
# "bench" there (as on InfluxDB) and prints its name, or prints nothing.
plateau_lp_db() {
  "$HTTP" request --url "http://127.0.0.1:$PPORT/ping" >/dev/null 2>&1 || return 0
  if "$HTTP" request --method POST --url "http://127.0.0.1:$PPORT/query" --param "q=CREATE DATABASE bench" \
    --header "Authorization: Bearer $TOKEN" >/dev/null 2>&1; then
    echo bench
  else
    echo plateau # the tenant's default database
  fi
}

# plateau_http_run KEY POLICY FORMAT: a fresh server with tsdb_fsync=POLICY ingests the data set
# as JSON (POST /api/v1/telemetry) or line protocol (POST /write); figures go to R[KEY.*].
# The "http.always" run also measures disk use, restart and the queries.
plateau_http_run() {
  local key=$1 pol=$2 format=$3 dir=$tmp/plateau-$1 out t0 db
  plateau_init "$dir" || {
    note "Plateau HTTP ($key) skipped: setting up the data directory failed ($(tail -n 2 "$dir.log" | tr '\n' ' '))"
    return
  }
  if ! plateau_start "$dir" "$pol"; then
    note "Plateau HTTP ($key) skipped: plateau serve did not start ($(tail -n 3 "$dir.log" | tr '\n' ' '))"
    return
  fi
  local ingest=(--connections "$CONNS" --points "$POINTS")
  if [[ $format == json ]]; then
    ingest+=(--url "http://127.0.0.1:$PPORT/api/v1/telemetry" --file "$tmp/data.json" --lines 1
      --content-type application/json --header "Authorization: Bearer $TOKEN")
  else
    db=$(plateau_lp_db)
    if [[ -z $db ]]; then
      note "Plateau line-protocol ingest not measured: this build has no /write endpoint"
      stop_pid "$PPID_"
      rm -rf "$dir"
      return
    fi
    ingest+=(--url "http://127.0.0.1:$PPORT/write" --param "db=$db" --param precision=ns --file "$tmp/data.lp"
      --lines "$BATCH" --header "Authorization: Bearer $TOKEN")
  fi
  log "Plateau over HTTP ($format), tsdb_fsync=$pol: writing $POINTS points ($BATCH rows a request, $CONNS connections)"
  R[$key.load]=$(cut -d' ' -f1-3 /proc/loadavg)
  local cpu0
  cpu0=$(cpu_s "$PPID_")
  out=$(timeout 7200 "$HTTP" ingest "${ingest[@]}") || {
    note "Plateau HTTP ingest ($key) failed"
    stop_pid "$PPID_"
    rm -rf "$dir"
    return
  }
  log "  $out"
  kv "$key.ingest" "$out"
  R[$key.ingest.cpu_s]=$(awk -v a="$(cpu_s "$PPID_")" -v b="$cpu0" 'BEGIN {printf "%.2f", a - b}')
  R[$key.ingest.points_per_cpu_s]=$(div "$POINTS" "${R[$key.ingest.cpu_s]}" %.0f)
  R[$key.rss_ingest_kb]=$(peak_rss_kb "$PPID_")
  if [[ $format == lp ]]; then # the points counted back, with InfluxQL as on InfluxDB
    R[$key.count_check]=$("$HTTP" request --url "http://127.0.0.1:$PPORT/query" --param "db=$db" --param epoch=ns \
      --param "q=SELECT count(*) FROM line" --header "Authorization: Bearer $TOKEN" 2>/dev/null |
      grep -o '"values":\[\[[^]]*\]' | tr -cs '0-9' ' ' | awk '{s = 0; for (i = 1; i <= NF; i++) s += $i; print s}') || true
  fi
  if [[ $key != http.always ]]; then
    stop_pid "$PPID_"
    rm -rf "$dir"
    return
  fi
  # A clean stop flushes every head into chunks; the restart then measures recovery, and the
  # queries run on the data as it lies on disk.
  t0=$(ms_now)
  stop_pid "$PPID_"
  R[$key.stop_s]=$(awk -v ms=$(($(ms_now) - t0)) 'BEGIN {printf "%.1f", ms / 1000}')
  R[$key.disk_bytes]=$(du -s --block-size=1 "$dir/tsdb" | awk '{print $1}')
  t0=$(ms_now)
  plateau_start "$dir" "$pol" || {
    note "plateau serve did not restart"
    return
  }
  R[$key.restart_s]=$(awk -v ms=$(($(ms_now) - t0)) 'BEGIN {printf "%.1f", ms / 1000}')
  # As for InfluxDB: let the server's background compaction finish (its files unchanged for
  # 10 s) before measuring the disk again and querying.
  wait_settled 10 plateau_state "$dir/tsdb"
  R[$key.compact_s]=$SETTLED_S
  R[$key.disk_bytes_stop]=${R[$key.disk_bytes]}
  R[$key.disk_bytes]=$(du -s --block-size=1 "$dir/tsdb" | awk '{print $1}')
  log "  stopped in ${R[$key.stop_s]} s (${R[$key.disk_bytes_stop]} bytes on disk), restarted in ${R[$key.restart_s]} s," \
    "compacted for ${R[$key.compact_s]} s (${R[$key.disk_bytes]} bytes)"
  local f fields="temperature pressure ozone humidity voltage bottles running" each=()
  for f in $fields; do each+=(--each "field=$f"); done
  local m=(--param measurement=line) day=(--param "start=$(ns_rfc3339 "$START_NS")" --param "end=$(ns_rfc3339 "$QEND")")
  local all=(--param "start=$(ns_rfc3339 "$START_NS")" --param "end=$(ns_rfc3339 "$ALL_END")")
  plateau_query raw "${m[@]}" --param "tag.device=$QDEV" --param "start=$(ns_rfc3339 "$QH0")" \
    --param "end=$(ns_rfc3339 $((QH0 + HOUR_NS)))"
  plateau_query mean1m "${m[@]}" --param "tag.device=$QDEV" --param field=temperature --param agg=mean \
    --param every=1m --param fill=none "${day[@]}"
  plateau_query max1h "${m[@]}" --param field=temperature --param agg=max --param every=1h --param fill=none "${day[@]}"
  # A query selects at most 1,000 series (devices x fields): "every field of every device" is
  # asked one field at a time, one request after the other, and a run's time is their sum.
  plateau_query last "${m[@]}" --param agg=last "${all[@]}" "${each[@]}"
  plateau_query count "${m[@]}" --param agg=count "${all[@]}" "${each[@]}"
  R[$key.count_check]=$(for f in $fields; do
    "$HTTP" request --url "http://127.0.0.1:$PPORT/api/v1/query" --header "Authorization: Bearer $TOKEN" \
      "${m[@]}" --param agg=count "${all[@]}" --param "field=$f" --param epoch=ns 2>/dev/null |
      grep -o '"values":\[\[[0-9]*,[0-9]*\]\]' | sed 's/.*,\([0-9]*\)\]\]/\1/'
  done | awk '{s += $1} END {print s + 0}')
  R[$key.rss_kb]=$(peak_rss_kb "$PPID_")
  stop_pid "$PPID_"
  rm -rf "$dir"
}

# ---- where Plateau's time goes (BENCH_PROFILE=1) ----
# profile_server FORMAT DIR OUTF: perf on a fresh server (fsync interval) while it ingests the
# data set as JSON or line protocol.
profile_server() {
  local format=$1 dir=$2/server-$1 outf=$3 perf_pid db args=()
  plateau_init "$dir" && plateau_start "$dir" interval || return 0
  if [[ $format == json ]]; then
    args=(--url "http://127.0.0.1:$PPORT/api/v1/telemetry" --file "$tmp/data.json" --lines 1
      --content-type application/json)
  else
    db=$(plateau_lp_db)
    [[ -n $db ]] || { stop_pid "$PPID_"; return 0; }
    args=(--url "http://127.0.0.1:$PPORT/write" --param "db=$db" --param precision=ns --file "$tmp/data.lp"
      --lines "$BATCH")
  fi
  log "profiling the server during the $format ingest"
  perf record -e cpu-clock -F 1999 -p "$PPID_" -o "$dir.perf" >/dev/null 2>>"$2/perf.log" &
  perf_pid=$!
  pids+=("$perf_pid")
  sleep 1
  "$HTTP" ingest "${args[@]}" --connections "$CONNS" --points "$POINTS" --header "Authorization: Bearer $TOKEN" \
    >"$dir.ingest" || true
  kill -INT "$perf_pid" 2>/dev/null
  wait "$perf_pid" 2>/dev/null || true
  stop_pid "$PPID_"
  {
    echo
    echo "## plateau serve during the $format ingest ($(head -c 300 "$dir.ingest"))"
    perf_top "$dir.perf"
  } >>"$outf"
  rm -rf "$dir"
}

perf_top() { # PERF_DATA: self time by library, then by function
  local out sort limit
  for sort in dso dso,symbol; do
    if [[ $sort == dso ]]; then limit=1 && echo "### by library"; else limit=0.7 && echo "### by function"; fi
    out=$(perf report -i "$1" --stdio --no-children --sort "$sort" --percent-limit "$limit" 2>"$1.report.log" |
      grep -v '^#' | grep -v '^$' | sed 's/[[:space:]]*-[[:space:]]*-[[:space:]]*$//')
    [[ -n $out ]] || out="(perf report printed nothing: $(tail -n 2 "$1.report.log" | tr '\n' ' '))"
    echo "$out"
  done
}

# perf samples on CPU time (cpu-clock: this VM may have no hardware counters), else callgrind.
# Self time per function, into $BUILD/bench-tsdb-profile.txt.
profile_side() {
  local outf=$BUILD/bench-tsdb-profile.txt hours=$((HOURS < 2 ? HOURS : 2)) dir=$tmp/profile
  local args=(--dir "$dir/inproc" --fsync interval --devices "$DEVICES" --hours "$hours" --seed "$SEED" --batch "$BATCH")
  mkdir -p "$dir"
  : >"$outf"
  if [[ -x $BUILD/bench_tsdb ]] && command -v perf >/dev/null && perf record -e cpu-clock -o "$dir/probe" -- true >/dev/null 2>&1; then
    log "profiling the in-process ingest ($DEVICES devices x $hours h) with perf"
    perf record -e cpu-clock -F 1999 -o "$dir/inproc.perf" -- "$BUILD/bench_tsdb" "${args[@]}" >/dev/null 2>"$dir/perf.log"
    { echo "## in-process ingest: bench_tsdb ${args[*]}"
      perf_top "$dir/inproc.perf"
    } >>"$outf"
    if [[ -x $BUILD/plateau ]] && has http; then
      profile_server json "$dir" "$outf"
      profile_server lp "$dir" "$outf"
    fi
  elif [[ -x $BUILD/bench_tsdb ]] && command -v valgrind >/dev/null; then
    log "profiling a small in-process ingest with callgrind (perf is not usable here)"
    args=(--dir "$dir/inproc" --fsync interval --devices $((DEVICES < 100 ? DEVICES : 100)) --hours 1 --seed "$SEED" --batch "$BATCH")
    valgrind --tool=callgrind --callgrind-out-file="$dir/callgrind.out" "$BUILD/bench_tsdb" "${args[@]}" >/dev/null 2>"$dir/vg.log"
    { echo "## in-process ingest under callgrind: bench_tsdb ${args[*]}"
      callgrind_annotate "$dir/callgrind.out" 2>/dev/null | head -n 40
    } >>"$outf"
  else
    note "profile skipped: neither perf nor valgrind works here"
    return
  fi
  log "profile written to $outf"
}

http_side() {
  if [[ ! -x $BUILD/plateau ]]; then
    note "Plateau HTTP side skipped: $BUILD/plateau was not built"
    return
  fi
  plateau_http_run http.always always json
  plateau_http_run http.interval interval json
  plateau_http_run http_lp.always always lp
}

ns_rfc3339() { # ns since the epoch (whole seconds) -> RFC 3339
  date -u -d "@$(($1 / 1000000000))" +%Y-%m-%dT%H:%M:%SZ
}

# ---- report ----
fmt_int() { # 1234567.8 -> 1,234,568; empty -> –
  [[ -n ${1:-} ]] || { echo "–"; return; }
  printf '%.0f' "$1" | sed ':a;s/\B[0-9]\{3\}\>/,&/;ta'
}
div() { awk -v a="${1:-}" -v b="${2:-}" -v f="${3:-%.2f}" 'BEGIN { if (a == "" || b == "" || b + 0 == 0) print ""; else printf f "\n", a / b }'; }
ratio() { # HIGHER_IS_BETTER PLATEAU INFLUX -> how many times better Plateau is
  awk -v hib="$1" -v p="${2:-}" -v i="${3:-}" 'BEGIN {
    if (p == "" || i == "" || p + 0 == 0 || i + 0 == 0) { print "–"; exit }
    r = hib ? p / i : i / p; printf(r >= 10 ? "%.0f×\n" : "%.2f×\n", r) }'
}
row() { # LABEL PLATEAU INFLUX HIGHER_IS_BETTER [int]
  local p=${2:-} i=${3:-}
  if [[ ${5:-} == int ]]; then
    printf '| %s | %s | %s | %s |\n' "$1" "$(fmt_int "$p")" "$(fmt_int "$i")" "$(ratio "$4" "$p" "$i")"
  else
    printf '| %s | %s | %s | %s |\n' "$1" "${p:-–}" "${i:-–}" "$(ratio "$4" "$p" "$i")"
  fi
}

plateau_rev() {
  local rev
  if rev=$(git -C "$root" rev-parse --short HEAD 2>/dev/null); then
    git -C "$root" diff --quiet HEAD -- src 2>/dev/null || rev="$rev with uncommitted changes in src/"
    echo "$rev"
  else
    echo "${BENCH_PLATEAU_REV:-built from $root}"
  fi
}

report() {
  local md=$BUILD/bench-tsdb.md cpu q label series=$((DEVICES * FIELDS))
  cpu=$(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //')
  {
    echo "Command: \`BENCH_DEVICES=$DEVICES BENCH_HOURS=$HOURS bench/tsdb.sh\` on $(date -u '+%Y-%m-%d %H:%M UTC');"
    echo "$(nproc) cores ($cpu), $(awk '/MemTotal/ {printf "%.0f GB", $2 / 1048576}' /proc/meminfo) RAM, Linux $(uname -r);"
    echo "load average before the run ${R[load_start]}, after it $(cut -d' ' -f1-3 /proc/loadavg)."
    echo "Data: $DEVICES devices × $FIELDS fields × $HOURS h at 10 s = $(fmt_int "$ROWS") rows = $(fmt_int "$POINTS")"
    echo "points ($(fmt_int "$LP_BYTES") bytes of line protocol); batches of $BATCH rows; $CONNS HTTP connections."
    echo "InfluxDB ${R[influx.version]:-(not run)}; Plateau $(plateau_rev)."
    echo
    echo "| metric | Plateau | InfluxDB | Plateau's advantage |"
    echo "| --- | ---: | ---: | ---: |"
    row "ingest over HTTP, fsync every write: Plateau JSON (points/s)" "${R[http.always.ingest.points_per_s]:-}" "${R[influx.ingest.points_per_s]:-}" 1 int
    row "ingest over HTTP, fsync every write: Plateau line protocol (points/s)" "${R[http_lp.always.ingest.points_per_s]:-}" "${R[influx.ingest.points_per_s]:-}" 1 int
    row "ingest over HTTP, Plateau's default fsync interval, JSON (points/s)" "${R[http.interval.ingest.points_per_s]:-}" "${R[influx.ingest.points_per_s]:-}" 1 int
    row "ingest in-process, one core, fsync always, incl. chunk flushes (points/s)" "${R[inproc.always.points_per_s]:-}" "${R[influx.ingest.points_per_s]:-}" 1 int
    row "ingest in-process, one core, fsync always, tsdb_write alone (points/s)" "${R[inproc.always.write_points_per_s]:-}" "${R[influx.ingest.points_per_s]:-}" 1 int
    row "ingest in-process, one core, fsync interval, incl. chunk flushes (points/s)" "${R[inproc.interval.points_per_s]:-}" "${R[influx.ingest.points_per_s]:-}" 1 int
    row "ingest CPU cost over HTTP, fsync every write: Plateau JSON (points per CPU-second)" "${R[http.always.ingest.points_per_cpu_s]:-}" "${R[influx.ingest.points_per_cpu_s]:-}" 1 int
    row "ingest CPU cost over HTTP, fsync every write: Plateau line protocol (points per CPU-second)" "${R[http_lp.always.ingest.points_per_cpu_s]:-}" "${R[influx.ingest.points_per_cpu_s]:-}" 1 int
    row "ingest CPU cost in-process, fsync always (points per CPU-second)" "$(div "$POINTS" "${R[inproc.always.cpu_s]:-}" %.0f)" "${R[influx.ingest.points_per_cpu_s]:-}" 1 int
    row "bytes per point on disk, after compaction / at rest" "$(div "${R[inproc.always.disk_bytes]:-}" "$POINTS" %.3f)" "$(div "${R[influx.disk_bytes]:-}" "$POINTS" %.3f)" 0
    row "bytes per point, encoded chunks / TSM files only" "$(div "${R[inproc.always.chunk_bytes]:-}" "$POINTS" %.3f)" "$(div "${R[influx.tsm_bytes]:-}" "$POINTS" %.3f)" 0
    row "bytes per point on disk, HTTP server's tsdb/ after its compaction" "$(div "${R[http.always.disk_bytes]:-}" "$POINTS" %.3f)" "$(div "${R[influx.disk_bytes]:-}" "$POINTS" %.3f)" 0
    for q in raw mean1m max1h last count; do
      case $q in
      raw) label="a raw hour of one device, 7 fields" ;;
      mean1m) label="1-day mean per minute of one field of one device" ;;
      max1h) label="1-day max per hour of one field, every device" ;;
      last) label="the last point of every device, 7 fields" ;;
      count) label="count of every point" ;;
      esac
      row "query: $label, in-process (ms)" "${R[inproc.always.q.$q.median_ms]:-}" "${R[influx.q.$q.median_ms]:-}" 0
      row "query: $label, over HTTP (ms)" "${R[http.always.q.$q.median_ms]:-}" "${R[influx.q.$q.median_ms]:-}" 0
    done
    local server_rss
    server_rss=$(printf '%s\n' "${R[http.always.rss_ingest_kb]:-}" "${R[http.always.rss_kb]:-}" | sort -n | tail -n 1)
    row "peak RSS of the server, ingest or queries (MB)" "$(div "$server_rss" 1024 %.0f)" "$(div "${R[influx.rss_kb]:-}" 1024 %.0f)" 0
    row "peak RSS in-process, ingest (MB)" "$(div "${R[inproc.always.rss_kb]:-}" 1024 %.0f)" "$(div "${R[influx.rss_kb]:-}" 1024 %.0f)" 0
    row "peak RSS per series, in-process / influxd (bytes; $(fmt_int $series) series)" "$(div "${R[inproc.always.rss_kb]:-}" "$(div $series 1024 %.6f)" %.0f)" "$(div "${R[influx.rss_kb]:-}" "$(div $series 1024 %.6f)" %.0f)" 0 int
    echo
    echo "Points counted back: InfluxDB ${R[influx.count_check]:-–}, Plateau in-process ${R[inproc.always.count_check]:-–},"
    echo "over HTTP ${R[http.always.count_check]:-–} (JSON) and ${R[http_lp.always.count_check]:-–} (/write) of $(fmt_int "$POINTS"). InfluxDB's full compaction went on for ${R[influx.compact_s]:-–} s"
    echo "after the last write. Plateau's server stopped (flushing its heads) in ${R[http.always.stop_s]:-–} s, restarted in"
    echo "${R[http.always.restart_s]:-–} s and then compacted for ${R[http.always.compact_s]:-–} s."
    local n
    for n in "${notes[@]}"; do echo "- $n"; done
  } >"$md"
  echo
  cat "$md"
  echo
  local k
  for k in $(printf '%s\n' "${!R[@]}" | sort); do printf '%s=%s\n' "$k" "${R[$k]}"; done >"$BUILD/bench-tsdb.raw"
  log "written to $md; every figure in $BUILD/bench-tsdb.raw"
}

main() {
  R[load_start]=$(cut -d' ' -f1-3 /proc/loadavg)
  build
  generate
  has influxdb && influx_side
  has inprocess && inprocess_side
  has http && http_side
  [[ $PROFILE == 1 ]] && profile_side
  report
}
main
