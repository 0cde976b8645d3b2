#!/usr/bin/env bash
# `make bench`: the benchmarks against peer systems, one after the other -- bench/tsdb.sh (the
# time-series engine against InfluxDB 1.6) first, then every other bench/*.sh. Each prints its
# figures; one that fails is reported and the others still run. Knobs are the environment
# variables each script documents (e.g. BENCH_HOURS=1 for a quick tsdb run).
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
failed=()
for script in "$here/tsdb.sh" "$here"/*.sh; do
  name=$(basename "$script")
  [[ $name == run.sh ]] && continue
  [[ $name == tsdb.sh && $script != "$here/tsdb.sh" ]] && continue # already ran first
  echo "==> bench/$name"
  bash "$script" || failed+=("$name (exit $?)")
done
if ((${#failed[@]})); then
  echo "benchmarks that failed: ${failed[*]}" >&2
  exit 1
fi
