#!/usr/bin/env bash
# Regenerates the configuration table of docs/operations.md from the option table
# (`plateau config markdown`), between the config-table markers.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${1:-build/plateau}
table=$("$bin" config markdown)
python3 - "$table" <<'PY'
import sys, re
table = sys.argv[1]
p = "docs/operations.md"
s = open(p).read()
s = re.sub(r"<!-- config-table -->.*?<!-- /config-table -->",
           "<!-- config-table -->\n" + table.rstrip("\n") + "\n<!-- /config-table -->", s, flags=re.S)
open(p, "w").write(s)
PY
