"""Crash safety of telemetry writes (ARCHITECTURE.md, time-series engine): a writer thread streams
batches over HTTP while the daemon is killed with SIGKILL at random moments. After each restart
every acknowledged point is there with its exact value, and the batch that was in flight when the
daemon died is either wholly present or wholly absent, never half.

With the default fsync policy (interval) a process kill loses nothing the daemon wrote to the OS,
so acknowledged means durable here; the same holds, more slowly, with --tsdb-fsync always."""

import json
import random
import threading
import time

import pytest
import requests

from plateau_helpers import describe, uniq
from tsdb_helpers import HOUR_MS, base_ms, create_device

BATCH_ROWS = 200
ROUNDS = 5
WRITE_SECONDS = (0.3, 2.0)  # how long each round writes before the kill, at random
ROUND_BATCHES_MAX = 400  # keeps every field under the query's 1,000,000 points


def value_of(seq):
    """The float written at sequence number seq (not exactly representable: tests the round trip)."""
    return seq / 7 + 0.1


class Writer(threading.Thread):
    """Posts batch after batch of BATCH_ROWS rows with unique timestamps until told to stop or the
    server goes away. Batch k holds sequence numbers k*BATCH_ROWS .. (k+1)*BATCH_ROWS - 1."""

    def __init__(self, url, token, t0_ms, first_batch):
        super().__init__(daemon=True)
        self.url, self.token, self.t0_ms = url, token, t0_ms
        self.batch = first_batch
        self.acked, self.unacked, self.errors = [], [], []
        self.halt = threading.Event()

    def body(self, k):
        rows = []
        for j in range(BATCH_ROWS):
            seq = k * BATCH_ROWS + j
            rows.append({"ts": self.t0_ms + seq, "values": {"v": value_of(seq), "n": {"int": seq}}})
        return json.dumps(rows).encode()

    def run(self):
        with requests.Session() as s:
            s.trust_env = False
            headers = {"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"}
            first = self.batch
            while not self.halt.is_set():
                if self.batch - first >= ROUND_BATCHES_MAX:
                    time.sleep(0.01)
                    continue
                k = self.batch
                self.batch += 1
                try:
                    r = s.post(self.url, data=self.body(k), headers=headers, timeout=30)
                except requests.RequestException:
                    self.unacked.append(k)
                    return
                if r.status_code != 200:
                    self.unacked.append(k)
                    self.errors.append(describe(r))
                    return
                if r.json() != {"rows": BATCH_ROWS, "points": 2 * BATCH_ROWS}:
                    self.errors.append(f"batch {k}: {r.text}")
                self.acked.append(k)


def stored(p, token, device, t0_ms, end_ms):
    """{seq: (v, n)} of everything stored for the device."""
    out, fields = {}, {}
    for field in ("v", "n"):
        params = {"device": device, "field": field, "start": str(t0_ms), "end": str(end_ms), "epoch": "ms"}
        r = p.api("GET", "/api/v1/query", token=token, params=params, timeout=120)
        assert r.status_code == 200, describe(r)
        series = r.json()["series"]
        assert len(series) <= 1, series
        fields[field] = series[0]["values"] if series else []
    v = {ts - t0_ms: val for ts, val in fields["v"]}
    n = {ts - t0_ms: val for ts, val in fields["n"]}
    assert v.keys() == n.keys(), "the two fields of one row were stored apart"
    for seq in v:
        out[seq] = (v[seq], n[seq])
    return out


def check(stored_points, acked, unacked):
    acked_seqs = {k * BATCH_ROWS + j for k in acked for j in range(BATCH_ROWS)}
    missing = sorted(acked_seqs - stored_points.keys())
    assert not missing, f"{len(missing)} acknowledged points lost, e.g. seq {missing[:5]}"
    for seq, (v, n) in stored_points.items():
        assert v == value_of(seq) and n == seq, f"seq {seq}: stored ({v!r}, {n!r})"
    for k in unacked:
        present = sum(k * BATCH_ROWS + j in stored_points for j in range(BATCH_ROWS))
        assert present in (0, BATCH_ROWS), f"batch {k} in flight at the kill is half there: {present} rows"
    known = acked_seqs | {k * BATCH_ROWS + j for k in unacked for j in range(BATCH_ROWS)}
    stray = sorted(stored_points.keys() - known)
    assert not stray, f"points nobody wrote: {stray[:5]}"


@pytest.mark.parametrize("policy", ["interval", "always"])
def test_kill9_under_write_load_keeps_every_acknowledged_point(plateau_factory, policy):
    extra = [] if policy == "interval" else ["--tsdb-fsync", "always"]
    p = plateau_factory.new(extra_args=extra)
    tenant, ta = p.tenant_with_admin("crash")
    device = uniq("edge")
    _, dev_token = create_device(p, ta, device)
    t0_ms = base_ms(hours_ago=24)
    rng = random.Random(20261129)
    acked, unacked, batch = [], [], 0
    deadline = time.monotonic() + 90
    for round_no in range(ROUNDS):
        writer = Writer(p.url("/api/v1/telemetry"), dev_token, t0_ms, batch)
        writer.start()
        # Let at least one batch through, then kill at a random moment of the stream.
        wait_until = time.monotonic() + 20
        while not writer.acked and writer.is_alive() and time.monotonic() < wait_until:
            time.sleep(0.01)
        assert writer.acked, f"round {round_no}: no batch acknowledged: {writer.errors}\n{p.log_tail()}"
        time.sleep(rng.uniform(*WRITE_SECONDS))
        p.kill9()
        writer.halt.set()
        writer.join(timeout=60)
        assert not writer.is_alive(), "the writer hung after the kill"
        assert not writer.errors, writer.errors
        acked += writer.acked
        unacked += writer.unacked
        batch = writer.batch
        p.start()
        end_ms = t0_ms + batch * BATCH_ROWS + 1
        check(stored(p, ta, device, t0_ms, end_ms), acked, unacked)
        assert time.monotonic() < deadline, f"too slow: {round_no + 1} rounds"
    assert len(acked) >= ROUNDS
    # After a final clean restart the data is still all there.
    p.restart()
    check(stored(p, ta, device, t0_ms, t0_ms + batch * BATCH_ROWS + 1), acked, unacked)
    assert t0_ms + batch * BATCH_ROWS < t0_ms + 24 * HOUR_MS
