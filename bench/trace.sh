#!/usr/bin/env bash
# Traceability benchmark (results in docs/performance.md, "Traceability"):
#   - capture rate: POST /epcis/capture of documents of 10,000 generated events each (a supply
#     chain of lots, cases, pallets and shipments, as tests/integration/test_trace_recall.py
#     builds), the server pinned to CPU 0 with one HTTP thread, the client on CPU 1; the rate is
#     reported for the whole run and per million events captured, as the repository grows;
#   - MATCH_anyEPC query latency (random case identifiers) on the resulting repository;
#   - a five-level recall trace (water lot -> bottle lot -> cases -> pallets -> shipments)
#     latency, GET /api/v1/trace/{lot}/recall;
#   - then the same events in-process (bench_trace_capture: trace/ and store/ without HTTP)
#     beside "SQLite alone" (the event JSON in a table with a unique id and an identifier index,
#     what a maker without an EPCIS repository would write), on INPROC_EVENTS events (default
#     the smaller of EVENTS and 1,000,000), and the ratio.
# Usage: bench/trace.sh [EVENTS] (default 1000000: the repository size). The generator is the
# Python below; latencies are medians and p99 of sequential requests on one keep-alive
# connection (Python's http.client, so the client's own cost stays small).
set -euo pipefail
cd "$(dirname "$0")/.."
EVENTS=${1:-1000000}
ROOT=$(pwd)
BUILD=${BUILD:-$ROOT/build}
cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DPLATEAU_TESTS=OFF ${CMAKE_ARGS:-} >/dev/null
ninja --quiet -C "$BUILD" plateau bench_trace_capture
BIN=$BUILD/plateau
W=$(mktemp -d /tmp/plateau-bench-trace.XXXXXX)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$W"; }
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

export PLATEAU_ADMIN_PASSWORD=bench-password-123
"$BIN" init --data "$W/data" >/dev/null
"$BIN" tenant create bench --data "$W/data" >/dev/null
HTTP=$(free_port)
taskset -c 0 "$BIN" serve --data "$W/data" --http "127.0.0.1:$HTTP" --mqtt "127.0.0.1:$(free_port)" \
  --handle "127.0.0.1:$(free_port)" --http-threads 1 --http-max-body-bytes 64MiB --log-level warn 2>"$W/serve.log" &
PIDS+=($!)
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$HTTP/healthz" >/dev/null && break; sleep 0.1; done
TOKEN=$("$BIN" token create --data "$W/data" --tenant bench --role tenant-admin)

taskset -c 1 /usr/bin/python3 - "$EVENTS" "$HTTP" "$TOKEN" <<'PY'
import http.client, json, random, statistics, sys, time, urllib.parse

total, port, token = int(sys.argv[1]), sys.argv[2], sys.argv[3]
conn = http.client.HTTPConnection("127.0.0.1", int(port), timeout=600)
H = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}

def call(method, path, body=None):
    conn.request(method, path, body=body, headers=H)
    r = conn.getresponse()
    return r.status, r.read()
CP = "4012345"

def ev(kind, t, **kw):
    e = {"type": kind, "eventTime": t, "eventTimeZoneOffset": "+00:00"}
    e.update(kw)
    return e

def sscc(n): return f"urn:epc:id:sscc:{CP}.{n:010d}"

# One "lot" produces 2 transformations + 40 cases + 4 pallets + 1 shipment + 4 receipts = 51 events.
# Lots are made one after another, one every 5 minutes from 2025-01-01, and captured as they
# happen (a plant's events arrive in time order).
PER_LOT = 51
T0 = 1735689600  # 2025-01-01T00:00:00Z
def lot_events(lot):
    t = time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(T0 + lot * 300))
    w = f"urn:epc:class:lgtin:{CP}.000002.W{lot}"
    b = f"urn:epc:class:lgtin:{CP}.000003.B{lot}"
    out = [ev("TransformationEvent", t, inputQuantityList=[{"epcClass": f"urn:epc:class:lgtin:{CP}.000001.S{lot % 3}", "quantity": 5000}],
              outputQuantityList=[{"epcClass": w, "quantity": 5000}], bizStep="commissioning"),
           ev("TransformationEvent", t, inputQuantityList=[{"epcClass": w, "quantity": 5000}],
              outputQuantityList=[{"epcClass": b, "quantity": 960}], bizStep="commissioning")]
    cases = [sscc(lot * 100 + c) for c in range(40)]
    for c in cases:
        out.append(ev("AggregationEvent", t, action="ADD", bizStep="packing", parentID=c,
                      childQuantityList=[{"epcClass": b, "quantity": 24}]))
    pallets = [sscc(900000000 + lot * 10 + p) for p in range(4)]
    for p in range(4):
        out.append(ev("AggregationEvent", t, action="ADD", bizStep="packing", parentID=pallets[p],
                      childEPCs=cases[p * 10:(p + 1) * 10]))
    out.append(ev("TransactionEvent", t, action="ADD", bizStep="shipping", parentID=sscc(800000000 + lot),
                  epcList=pallets, bizTransactionList=[{"type": "desadv", "bizTransaction": f"urn:x:desadv:{lot}"}]))
    for p in pallets:
        out.append(ev("ObjectEvent", t, action="OBSERVE", bizStep="receiving", epcList=[p],
                      bizLocation={"id": f"urn:epc:id:sgln:{CP}.{lot % 500:05d}.0"}))
    return out

lots = max(1, total // PER_LOT)
batch, sent, busy, docs = [], 0, 0.0, 0
step_busy, step_sent, step = 0.0, 0, 1000000
for lot in range(lots):
    batch += lot_events(lot)
    if len(batch) >= 9990 or lot == lots - 1:
        body = json.dumps({"type": "EPCISDocument", "schemaVersion": "2.0", "creationDate": "2026-01-01T00:00:00Z",
                           "epcisBody": {"eventList": batch}})
        t0 = time.perf_counter()
        status, text = call("POST", "/epcis/capture", body.encode())
        dt = time.perf_counter() - t0
        busy += dt; step_busy += dt
        assert status == 202 and json.loads(text)["captured"] == len(batch), text[:300]
        sent += len(batch); step_sent += len(batch); docs += 1
        batch = []
        if sent >= step and total > step:
            print(f"  capture up to {sent:,} events: {step_sent / step_busy:,.0f} events/s", flush=True)
            step += 1000000; step_sent = 0; step_busy = 0.0
print(f"capture: {sent} events in {docs} documents of <=10,000: {busy:.1f} s in requests -> {sent / busy:,.0f} events/s")

def lat(path, n):
    xs = []
    for i in range(n):
        p = path(i)
        t0 = time.perf_counter()
        status, text = call("GET", p)
        xs.append((time.perf_counter() - t0) * 1000)
        assert status == 200, text[:300]
    xs.sort()
    return statistics.median(xs), xs[int(len(xs) * 0.99) - 1], json.loads(text)

rnd = random.Random(7)
med, p99, r = lat(lambda i: "/epcis/events?MATCH_anyEPC=" + urllib.parse.quote(sscc(rnd.randrange(lots) * 100 + rnd.randrange(40)), safe=""), 1000)
print(f"MATCH_anyEPC (one case): median {med:.2f} ms, p99 {p99:.2f} ms, {len(r['epcisBody']['queryResults']['resultsBody']['eventList'])} events")
med, p99, r = lat(lambda i: "/api/v1/trace/" + urllib.parse.quote(f"urn:epc:class:lgtin:{CP}.000002.W{rnd.randrange(lots)}", safe="") + "/recall", 500)
print(f"recall (5 levels: lot, bottle lot, 40 cases, 4 pallets, 1 shipment): median {med:.2f} ms, p99 {p99:.2f} ms, {r['count']} identifiers")
PY
ls -la "$W/data" | awk '/meta.db$/ {print "meta.db: " $5 " bytes"}'
for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
rm -rf "$W/data"

INPROC_EVENTS=${INPROC_EVENTS:-$(( EVENTS < 1000000 ? EVENTS : 1000000 ))}
mkdir -p "$W/inproc"
echo "in-process, $INPROC_EVENTS events (bench_trace_capture --side both, CPU 0):"
taskset -c 0 "$BUILD/bench_trace_capture" --dir "$W/inproc" --events "$INPROC_EVENTS" --side both --queries 1000 \
  2>/dev/null | tee "$W/inproc.txt" | sed 's/^/  /'
awk -F= '/^plateau_events_per_s=/ {p=$2} /^sqlite_events_per_s=/ {s=$2}
  END {if (s > 0) printf "capture ratio Plateau / SQLite alone: %.2fx (Plateau also validates, hashes, normalises and indexes by role)\n", p / s}' "$W/inproc.txt"
