#!/usr/bin/env bash
# Runs every libFuzzer target in build-fuzz/ for N seconds each, starting from its seed corpus
# (tests/fuzz/corpus/<target>/); new inputs go to a scratch directory, not into the tree.
set -euo pipefail
seconds=${1:-10}
cd "$(dirname "$0")/.."
shopt -s nullglob
status=0
for src in tests/fuzz/*_fuzz.c; do
  name=$(basename "$src" .c)
  bin=build-fuzz/$name
  [ -x "$bin" ] || { echo "fuzz: $bin missing" >&2; exit 1; }
  scratch=$(mktemp -d)
  seeds=tests/fuzz/corpus/$name
  mkdir -p "$seeds"
  echo "fuzz: $name for ${seconds}s"
  if ! "$bin" -max_total_time="$seconds" -max_len=65536 -timeout=10 -rss_limit_mb=2048 \
        -print_final_stats=0 "$scratch" "$seeds" >"$scratch.log" 2>&1; then
    echo "fuzz: $name FAILED" >&2
    tail -n 60 "$scratch.log" >&2
    status=1
  fi
  rm -rf "$scratch" "$scratch.log"
done
exit $status
