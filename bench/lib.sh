# Shared scaffolding of the benchmark scripts (sourced, not run): logging, a scratch directory
# removed at exit (kept with BENCH_KEEP=1), and the server processes started into `pids`,
# stopped at exit with TERM, then KILL after BENCH_STOP_WAIT_S seconds (default 10).
#   BENCH_NAME=tsdb; source "$(dirname "$0")/lib.sh"   # sets $tmp, $pids; defines log, die, has
log() { printf '%s [%s-bench] %s\n' "$(date +%H:%M:%S)" "$BENCH_NAME" "$*" >&2; }
die() {
  log "error: $*"
  exit 1
}
has() { [[ " $SIDES " == *" $1 "* ]]; }

tmp=$(mktemp -d "${BENCH_TMPDIR:-/tmp}/plateau-bench-$BENCH_NAME.XXXXXX")
pids=()
cleanup() {
  local rc=$? pid
  for pid in "${pids[@]}"; do
    if kill -0 "$pid" 2>/dev/null; then
      kill -TERM "$pid" 2>/dev/null || true
      for _ in $(seq 1 $((${BENCH_STOP_WAIT_S:-10} * 10))); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      kill -KILL "$pid" 2>/dev/null || true
    fi
  done
  if [[ ${BENCH_KEEP:-0} == 1 ]]; then log "kept $tmp"; else rm -rf "$tmp"; fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
