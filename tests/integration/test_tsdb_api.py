"""The native telemetry API (docs/api.md, "Telemetry"): POST /api/v1/telemetry, GET /api/v1/series,
GET /api/v1/query (raw, aggregates, fill, percentiles, CSV), GET /api/v1/devices/{id}/latest and
DELETE /api/v1/series — exact values back, type conflicts, bad input changes nothing, tenant
isolation, roles, a clean restart, and IPv6.

Every test writes its own devices or measurements at times of its own, so tests do not see each
other's data. Expected aggregates are computed here in Python from the points written."""

import csv
import datetime as _dt
import io
import json
import math
import statistics
import time
import types

import pytest

from plateau_helpers import assert_error, describe, uniq
from tsdb_helpers import (HOUR_MS, MINUTE_MS, NS_PER_MS, base_ms, by_field, create_device, ms_to_rfc3339,
                          ns_to_rfc3339, points, query, query_raw, range_params, rfc3339_to_ns, write)


@pytest.fixture(scope="module")
def w(server):
    ns = types.SimpleNamespace()
    ns.a, ns.ta = server.tenant_with_admin("tsa")
    ns.b, ns.tb = server.tenant_with_admin("tsb")
    ns.op = server.create_token(ns.a, "operator")
    ns.viewer = server.create_token(ns.a, "viewer")
    ns.b_op = server.create_token(ns.b, "operator")
    ns.regulator = server.create_token("region", "regulator")
    ns.base = base_ms()
    return ns


def new_device(server, w, prefix="dev", token=None):
    name = uniq(prefix)
    dev_id, dev_token = create_device(server, token or w.ta, name)
    return types.SimpleNamespace(name=name, id=dev_id, token=dev_token)


def read_field(server, token, params, field):
    body = query(server, token, {**params, "field": field})
    assert len(body["series"]) == 1, body
    return points(body["series"][0])


# ---- writing and reading back ----

def test_write_device_form_and_read_back_exactly(server, w):
    d = new_device(server, w)
    t0 = w.base
    body = [
        {"device": d.name, "ts": t0, "values": {"temperature": 21, "running": True, "state": "ok",
                                                "count": {"int": 9007199254740993}}},
        {"device": d.name, "ts": t0 + 1000, "values": {"temperature": 21.5, "running": False,
                                                       "state": "stopped, \"manual\"",
                                                       "count": {"int": -9223372036854775808}}},
        {"device": d.name, "ts": t0 + 2000, "values": {"temperature": 0.1, "count": {"int": 9223372036854775807}}},
        {"device": d.name, "ts": t0 + 3000, "values": {"temperature": -1.7976931348623157e308,
                                                       "state": "ལྷ་ས 拉萨\ttab\u0001\n\\"}},
    ]
    assert write(server, w.op, body) == {"rows": 4, "points": 12}
    got = by_field(query(server, w.op, {"device": d.name, **range_params(t0, t0 + HOUR_MS)}))
    assert sorted(got) == ["count", "running", "state", "temperature"]
    for s in got.values():
        assert s["measurement"] == "device" and s["tags"] == {"device": d.name}
    assert {f: s["type"] for f, s in got.items()} == {"temperature": "float", "running": "bool",
                                                       "state": "string", "count": "int"}
    ns = lambda ms: ms * NS_PER_MS  # noqa: E731
    assert points(got["temperature"]) == [(ns(t0), 21.0), (ns(t0 + 1000), 21.5), (ns(t0 + 2000), 0.1),
                                          (ns(t0 + 3000), -1.7976931348623157e308)]
    assert points(got["running"]) == [(ns(t0), True), (ns(t0 + 1000), False)]
    assert points(got["state"]) == [(ns(t0), "ok"), (ns(t0 + 1000), "stopped, \"manual\""),
                                    (ns(t0 + 3000), "ལྷ་ས 拉萨\ttab\u0001\n\\")]
    assert points(got["count"]) == [(ns(t0), 9007199254740993), (ns(t0 + 1000), -9223372036854775808),
                                    (ns(t0 + 2000), 9223372036854775807)]
    # A float field prints as a float even when it holds a whole number.
    r = query_raw(server, w.op, {"device": d.name, "field": "temperature", **range_params(t0, t0 + 1)})
    assert '21.0]' in r.text, r.text


def test_raw_order_and_limit(server, w):
    d = new_device(server, w)
    t0 = w.base
    write(server, w.op, [{"device": d.name, "ts": t0 + i * 1000, "values": {"v": float(i)}} for i in range(10)])
    rng = range_params(t0, t0 + HOUR_MS)
    asc = read_field(server, w.op, {"device": d.name, **rng}, "v")
    assert [v for _, v in asc] == [float(i) for i in range(10)]
    desc = read_field(server, w.op, {"device": d.name, "order": "desc", **rng}, "v")
    assert [v for _, v in desc] == [float(i) for i in reversed(range(10))]
    assert [v for _, v in read_field(server, w.op, {"device": d.name, "limit": 3, **rng}, "v")] == [0.0, 1.0, 2.0]
    assert [v for _, v in read_field(server, w.op, {"device": d.name, "limit": 3, "order": "desc", **rng}, "v")] \
        == [9.0, 8.0, 7.0]
    # start is inclusive, end exclusive
    part = read_field(server, w.op, {"device": d.name, **range_params(t0 + 2000, t0 + 5000)}, "v")
    assert [v for _, v in part] == [2.0, 3.0, 4.0]


def test_time_forms_ts_time_and_server_time(server, w):
    d = new_device(server, w)
    exact_ns = w.base * NS_PER_MS + 123_456_789
    # One second later, written in another zone (+08:00) with nanoseconds.
    later_ns = exact_ns + 1_000_000_000
    secs, frac = divmod(later_ns, 1_000_000_000)
    zone = _dt.timezone(_dt.timedelta(hours=8))
    local = _dt.datetime.fromtimestamp(secs, zone).strftime("%Y-%m-%dT%H:%M:%S") + f".{frac:09d}+08:00"
    write(server, w.op, [
        {"device": d.name, "time": ns_to_rfc3339(exact_ns), "values": {"a": 1.0}},
        {"device": d.name, "time": local, "values": {"a": 2.0}},
        {"device": d.name, "ts": w.base + 5000, "values": {"a": 3.0}},
    ])
    params = {"device": d.name, "field": "a", **range_params(w.base, w.base + HOUR_MS)}
    s = query(server, w.op, {**params, "epoch": "ns"})["series"][0]
    assert s["values"] == [[exact_ns, 1.0], [later_ns, 2.0], [(w.base + 5000) * NS_PER_MS, 3.0]]
    s = query(server, w.op, {**params, "epoch": "ms"})["series"][0]
    assert [t for t, _ in s["values"]] == [exact_ns // NS_PER_MS, later_ns // NS_PER_MS, w.base + 5000]
    s = query(server, w.op, params)["series"][0]
    assert s["values"][0][0] == ns_to_rfc3339(exact_ns)
    # Times with offsets in the query string, percent-encoded or not (a raw + arrives as a space).
    start_local = local.replace(f".{frac:09d}", "")  # the whole second of `later`
    for raw in (start_local.replace("+", "%2B"), start_local):
        r = server.http.get(server.url(f"/api/v1/query?device={d.name}&field=a&epoch=ns&start={raw}"),
                            headers={"Authorization": f"Bearer {w.op}"})
        assert r.status_code == 200, describe(r)
        assert [t for t, _ in r.json()["series"][0]["values"]] == [later_ns, (w.base + 5000) * NS_PER_MS]

    before = time.time_ns()
    write(server, w.op, {"device": d.name, "values": {"b": 1.0}})
    after = time.time_ns()
    got = read_field(server, w.op, {"device": d.name}, "b")  # default range: the last hour
    assert len(got) == 1 and before - 1_000_000_000 <= got[0][0] <= after + 1_000_000_000, (before, got, after)


def test_generic_form_with_tags(server, w):
    m = uniq("env")
    t0 = w.base
    res = write(server, w.op, [
        {"measurement": m, "tags": {"site": "north", "line": "1"}, "ts": t0, "values": {"temp": 1.5, "ok": True}},
        {"measurement": m, "tags": {"line": "1", "site": "north"}, "ts": t0 + 1, "values": {"temp": 2.5}},
        {"measurement": m, "tags": {"site": "south"}, "ts": t0, "values": {"temp": 9.0}},
    ])
    assert res == {"rows": 3, "points": 4}
    body = query(server, w.op, [("measurement", m), ("tag.site", "north"), ("field", "temp"),
                                *range_params(t0, t0 + HOUR_MS).items()])
    assert len(body["series"]) == 1
    s = body["series"][0]
    assert s["measurement"] == m and s["tags"] == {"line": "1", "site": "north"} and s["field"] == "temp"
    assert [v for _, v in points(s)] == [1.5, 2.5]
    both = query(server, w.op, {"measurement": m, "field": "temp", **range_params(t0, t0 + HOUR_MS)})
    assert sorted(s["tags"]["site"] for s in both["series"]) == ["north", "south"]
    # Repeated tag conditions are AND-ed.
    none = query(server, w.op, [("measurement", m), ("tag.site", "north"), ("tag.line", "2"),
                                *range_params(t0, t0 + HOUR_MS).items()])
    assert none["series"] == []
    # An empty value selects series without that tag.
    no_line = query(server, w.op, [("measurement", m), ("tag.line", ""), *range_params(t0, t0 + HOUR_MS).items()])
    assert [s["tags"] for s in no_line["series"]] == [{"site": "south"}]


def test_measurement_device_in_generic_form_is_device_telemetry(server, w):
    d = new_device(server, w)
    write(server, w.op, {"measurement": "device", "tags": {"device": d.name}, "ts": w.base, "values": {"x": 4.0}})
    assert read_field(server, w.op, {"device": d.name, **range_params(w.base, w.base + 1000)}, "x") == \
        [(w.base * NS_PER_MS, 4.0)]
    r = server.api("POST", "/api/v1/telemetry", token=w.op,
                   json={"measurement": "device", "tags": {"device": "no-such-device"}, "values": {"x": 1.0}})
    assert_error(r, 404)


def test_fields_can_be_listed_comma_separated_or_repeated(server, w):
    d = new_device(server, w)
    write(server, w.op, {"device": d.name, "ts": w.base, "values": {"a": 1.0, "b": 2.0, "c": 3.0}})
    rng = range_params(w.base, w.base + 1000)
    one = query(server, w.op, {"device": d.name, "field": "a,c", **rng})
    two = query(server, w.op, [("device", d.name), ("field", "a"), ("field", "c"), *rng.items()])
    assert [s["field"] for s in one["series"]] == ["a", "c"] == [s["field"] for s in two["series"]]


def test_write_updates_last_seen_and_large_string_limit(server, w):
    d = new_device(server, w)
    r = server.api("GET", f"/api/v1/devices/{d.id}", token=w.ta)
    assert r.json()["last_seen"] is None
    big = "x" * 65536
    write(server, w.op, {"device": d.name, "ts": w.base, "values": {"note": big}})
    r = server.api("GET", f"/api/v1/devices/{d.id}", token=w.ta)
    assert r.json()["last_seen"] is not None, describe(r)
    assert read_field(server, w.op, {"device": d.name, **range_params(w.base, w.base + 1)}, "note")[0][1] == big


def test_same_timestamp_replaces(server, w):
    d = new_device(server, w)
    write(server, w.op, {"device": d.name, "ts": w.base, "values": {"v": 1.0}})
    write(server, w.op, {"device": d.name, "ts": w.base, "values": {"v": 2.0}})
    assert read_field(server, w.op, {"device": d.name, **range_params(w.base, w.base + 1)}, "v") == \
        [(w.base * NS_PER_MS, 2.0)]


# ---- aggregates ----

# 10-minute buckets of one hour: two of them empty.
FILL_DATA = {0: [1.0, 2.0, 3.0], 1: [4.0, 10.0], 2: [], 3: [], 4: [13.0], 5: [8.0, 9.0, 11.0]}


@pytest.fixture(scope="module")
def fill_dev(server, w):
    d = new_device(server, w, "fill")
    rows = []
    for k, vals in FILL_DATA.items():
        for j, v in enumerate(vals):
            rows.append({"device": d.name, "ts": w.base + k * 10 * MINUTE_MS + j * 2 * MINUTE_MS + 30_000,
                         "values": {"t": v}})
    write(server, w.op, rows)
    d.points = [(r["ts"], r["values"]["t"]) for r in rows]
    return d


def nearest_rank(values, p):
    """InfluxDB's PERCENTILE(): the value at 1-based rank floor(n * p / 100 + 0.5) of the sorted values."""
    s = sorted(values)
    k = math.floor(len(s) * p / 100 + 0.5)
    return s[k - 1] if k >= 1 else None


def expected_buckets(pts, start, end, every, offset=0):
    """{bucket start ms: [values]} of the non-empty buckets, as GROUP BY time(every, offset)."""
    out = {}
    for ts, v in pts:
        if start <= ts < end:
            b = (ts - offset) // every * every + offset
            out.setdefault(b, []).append(v)
    return out


AGGS = {
    "count": len, "sum": sum, "mean": statistics.fmean, "min": min, "max": max,
    "spread": lambda v: max(v) - min(v), "stddev": statistics.stdev,
}


def test_aggregates_every_30m(server, w, fill_dev):
    names = ["count", "sum", "mean", "min", "max", "first", "last", "spread", "stddev"]
    body = query(server, w.op, {"device": fill_dev.name, "field": "t", "agg": ",".join(names), "every": "30m",
                                "fill": "none", **range_params(w.base, w.base + HOUR_MS)})
    s = body["series"][0]
    assert s["columns"] == ["time"] + names and s["type"] == "float"
    exp = expected_buckets(fill_dev.points, w.base, w.base + HOUR_MS, 30 * MINUTE_MS)
    assert [rfc3339_to_ns(row[0]) // NS_PER_MS for row in s["values"]] == sorted(exp)
    for row in s["values"]:
        vals = exp[rfc3339_to_ns(row[0]) // NS_PER_MS]
        got = dict(zip(names, row[1:]))
        assert got["count"] == len(vals) and isinstance(got["count"], int)
        assert got["first"] == vals[0] and got["last"] == vals[-1]
        for name in ("sum", "mean", "min", "max", "spread", "stddev"):
            assert got[name] == pytest.approx(AGGS[name](vals)), (name, row, vals)


def test_aggregate_with_offset(server, w, fill_dev):
    body = query(server, w.op, {"device": fill_dev.name, "field": "t", "agg": "count,sum", "every": "1h",
                                "offset": "15m", "fill": "none", **range_params(w.base, w.base + HOUR_MS)})
    exp = expected_buckets(fill_dev.points, w.base, w.base + HOUR_MS, HOUR_MS, 15 * MINUTE_MS)
    got = {rfc3339_to_ns(t) // NS_PER_MS: (c, s) for t, c, s in body["series"][0]["values"]}
    assert got == {b: (len(v), pytest.approx(sum(v))) for b, v in exp.items()}


FILL_CASES = {
    "none": [(0, 2.0, 3.0), (1, 7.0, 10.0), (4, 13.0, 13.0), (5, 28 / 3, 11.0)],
    "null": [(0, 2.0, 3.0), (1, 7.0, 10.0), (2, None, None), (3, None, None), (4, 13.0, 13.0), (5, 28 / 3, 11.0)],
    "previous": [(0, 2.0, 3.0), (1, 7.0, 10.0), (2, 7.0, 10.0), (3, 7.0, 10.0), (4, 13.0, 13.0),
                 (5, 28 / 3, 11.0)],
    "linear": [(0, 2.0, 3.0), (1, 7.0, 10.0), (2, 9.0, 11.0), (3, 11.0, 12.0), (4, 13.0, 13.0), (5, 28 / 3, 11.0)],
    "-1.5": [(0, 2.0, 3.0), (1, 7.0, 10.0), (2, -1.5, -1.5), (3, -1.5, -1.5), (4, 13.0, 13.0), (5, 28 / 3, 11.0)],
}


@pytest.mark.parametrize("fill", list(FILL_CASES))
def test_fill(server, w, fill_dev, fill):
    body = query(server, w.op, {"device": fill_dev.name, "field": "t", "agg": "mean,max", "every": "10m",
                                "fill": fill, **range_params(w.base, w.base + HOUR_MS)})
    rows = body["series"][0]["values"]
    expected = [[ms_to_rfc3339(w.base + k * 10 * MINUTE_MS), mean, mx] for k, mean, mx in FILL_CASES[fill]]
    assert len(rows) == len(expected), rows
    for got, exp in zip(rows, expected):
        assert got[0] == exp[0]
        for g, e in zip(got[1:], exp[1:]):
            assert (g is None and e is None) or g == pytest.approx(e), (fill, rows)


def test_default_fill_is_null_and_one_bucket_without_every(server, w, fill_dev):
    body = query(server, w.op, {"device": fill_dev.name, "field": "t", "agg": "count,mean",
                                **range_params(w.base, w.base + HOUR_MS)})
    vals = [v for _, v in fill_dev.points]
    assert body["series"][0]["values"] == [[ms_to_rfc3339(w.base), len(vals), pytest.approx(statistics.fmean(vals))]]
    nulls = query(server, w.op, {"device": fill_dev.name, "field": "t", "agg": "mean", "every": "10m",
                                 **range_params(w.base + 20 * MINUTE_MS, w.base + 40 * MINUTE_MS)})
    assert [row[1] for row in nulls["series"][0]["values"]] == [None, None]


def test_percentiles_median_stddev(server, w):
    d = new_device(server, w)
    vals = [float((i * 37) % 101) / 4 for i in range(21)]  # 21 distinct values, odd count
    write(server, w.op, [{"device": d.name, "ts": w.base + i * 1000, "values": {"v": v}} for i, v in enumerate(vals)])
    names = ["median", "p50", "p95", "p99", "p10", "p100", "stddev", "count"]
    body = query(server, w.op, {"device": d.name, "field": "v", "agg": ",".join(names), "fill": "none",
                                **range_params(w.base, w.base + HOUR_MS)})
    s = body["series"][0]
    assert s["columns"] == ["time"] + names
    got = dict(zip(names, s["values"][0][1:]))
    assert got["median"] == statistics.median(vals)
    for p in (50, 95, 99, 10, 100):
        assert got[f"p{p}"] == nearest_rank(vals, p), (p, got)
    assert got["stddev"] == pytest.approx(statistics.stdev(vals))
    assert got["count"] == 21


def test_aggregates_of_bool_int_and_string_fields(server, w):
    d = new_device(server, w)
    write(server, w.op, [
        {"device": d.name, "ts": w.base + i, "values": {"on": b, "n": {"int": n}, "state": s}}
        for i, (b, n, s) in enumerate([(True, 1, "a"), (False, 2, "b"), (True, 3, "c"), (True, 10, "d")])])
    rng = range_params(w.base, w.base + HOUR_MS)
    on = query(server, w.op, {"device": d.name, "field": "on", "agg": "count,sum,mean", **rng})["series"][0]
    assert on["values"][0][1:] == [4, 3.0, 0.75]
    n = query(server, w.op, {"device": d.name, "field": "n", "agg": "sum,min,max", **rng})["series"][0]
    assert n["values"][0][1:] == [16.0, 1.0, 10.0]
    st = query(server, w.op, {"device": d.name, "field": "state", "agg": "count", **rng})["series"][0]
    assert st["values"][0][1:] == [4] and st["type"] == "string"
    # A string field named with a numeric aggregate is refused; unnamed, it is left out.
    assert_error(query_raw(server, w.op, {"device": d.name, "field": "state", "agg": "mean", **rng}), 400)
    body = query(server, w.op, {"device": d.name, "agg": "mean", **rng})
    assert sorted(s["field"] for s in body["series"]) == ["n", "on"]


# ---- CSV ----

def parse_csv(r):
    assert r.status_code == 200, describe(r)
    assert r.headers["Content-Type"] == "text/csv; charset=utf-8", r.headers
    raw = r.content
    assert raw.startswith(b"\xef\xbb\xbf"), raw[:20]
    assert b"\r\n" in raw and b"\n" not in raw.replace(b"\r\n", b"").replace(b'line1\nline2', b""), raw
    return list(csv.reader(io.StringIO(raw.decode("utf-8-sig"), newline="")))


def test_csv_export_raw(server, w):
    name = uniq('csv,dev "x"')  # a device name with a comma and quotes
    create_device(server, w.ta, name)
    strings = ["line1\nline2", "a,b", 'say "hi"', "=1+1", "ལྷ་ས", "-3", "plain"]
    t0 = w.base
    rows = [{"device": name, "ts": t0 + i, "values": {"s": s, "f": 0.1 * (i + 1)}} for i, s in enumerate(strings)]
    write(server, w.op, rows)
    params = {"device": name, **range_params(t0, t0 + HOUR_MS)}
    for r in (query_raw(server, w.op, {**params, "format": "csv"}),
              server.api("GET", "/api/v1/query", token=w.op, params=params, headers={"Accept": "text/csv"})):
        table = parse_csv(r)
        assert table[0] == ["measurement", "tags", "field", "time", "value"]
        body = table[1:]
        assert len(body) == 2 * len(strings), table
        assert len(body) == 2 * len(strings)
        tags = name.replace("\\", "\\\\").replace(",", "\\,").replace("=", "\\=")
        assert {row[1] for row in body} == {f"device={tags}"} and {row[0] for row in body} == {"device"}
        f_rows = [row for row in body if row[2] == "f"]
        s_rows = [row for row in body if row[2] == "s"]
        assert [float(row[4]) for row in f_rows] == [0.1 * (i + 1) for i in range(len(strings))]
        assert [rfc3339_to_ns(row[3]) for row in s_rows] == [(t0 + i) * NS_PER_MS for i in range(len(strings))]
        # Text that a spreadsheet would run as a formula is guarded with an apostrophe.
        guarded = [("'" + s if s[0] in "=+-@" else s) for s in strings]
        assert [row[4] for row in s_rows] == guarded


def test_csv_export_aggregates_with_nulls_and_epoch(server, w, fill_dev):
    r = query_raw(server, w.op, {"device": fill_dev.name, "field": "t", "agg": "count,mean", "every": "10m",
                                 "format": "csv", "epoch": "ms", **range_params(w.base, w.base + HOUR_MS)})
    table = parse_csv(r)
    assert table[0] == ["measurement", "tags", "field", "time", "count", "mean"]
    assert [row[3] for row in table[1:]] == [str(w.base + k * 10 * MINUTE_MS) for k in range(6)]
    assert [row[4:] for row in table[1:]][2:4] == [["", ""], ["", ""]]
    assert table[1][4] == "3" and float(table[1][5]) == 2.0


def test_format_json_wins_over_accept(server, w):
    r = server.api("GET", "/api/v1/query", token=w.op, params={"measurement": uniq("none"), "format": "json"},
                   headers={"Accept": "text/csv"})
    assert r.status_code == 200 and r.json() == {"series": []}, describe(r)


def test_csv_empty_result_is_just_the_header(server, w):
    r = query_raw(server, w.op, {"measurement": uniq("nothing"), "format": "csv"})
    assert parse_csv(r) == [["measurement", "tags", "field", "time", "value"]]


# ---- series search ----

@pytest.fixture(scope="module")
def env(server, w):
    m = uniq("search")
    t0 = w.base
    write(server, w.op, [
        {"measurement": m, "tags": {"site": "north", "line": "1"}, "ts": t0, "values": {"temp": 1.0, "ok": True}},
        {"measurement": m, "tags": {"site": "north", "line": "1"}, "ts": t0 + 5000, "values": {"temp": 2.0}},
        {"measurement": m, "tags": {"site": "south", "line": "2"}, "ts": t0, "values": {"temp": 3.0}},
        {"measurement": m, "tags": {"site": "north-east", "line": "3"}, "ts": t0, "values": {"hum": 40.0}},
    ])
    return types.SimpleNamespace(m=m, t0=t0)


def search(server, token, params):
    r = server.api("GET", "/api/v1/series", token=token, params=params)
    assert r.status_code == 200, describe(r)
    return r.json()


def test_series_search(server, w, env):
    items = search(server, w.viewer, {"measurement": env.m})["items"]
    assert len(items) == 3
    north = [i for i in items if i["tags"] == {"line": "1", "site": "north"}]
    assert len(north) == 1
    n = north[0]
    assert isinstance(n["id"], int) and n["measurement"] == env.m
    assert n["fields"] == {"temp": "float", "ok": "bool"}
    assert rfc3339_to_ns(n["first"]) == env.t0 * NS_PER_MS and rfc3339_to_ns(n["last"]) == (env.t0 + 5000) * NS_PER_MS
    sites = lambda params: sorted(i["tags"]["site"] for i in search(server, w.viewer, params)["items"])  # noqa: E731
    assert sites({"measurement": env.m, "tag.site": "north"}) == ["north"]
    assert sites({"measurement": env.m, "tag_regex.site": "^north"}) == ["north", "north-east"]
    assert sites({"measurement": env.m, "tag_regex.site": "east$|^south$"}) == ["north-east", "south"]
    assert sites({"measurement": env.m, "field": "hum"}) == ["north-east"]
    assert sites({"measurement": env.m, "field": "nope"}) == []
    assert sites({"tag.site": "south", "measurement": env.m, "tag.line": "2"}) == ["south"]


def test_series_paging(server, w, env):
    seen, params = [], {"measurement": env.m, "limit": 1}
    for _ in range(10):
        page = search(server, w.viewer, params)
        assert len(page["items"]) <= 1
        seen += [i["id"] for i in page["items"]]
        if "next" not in page:
            break
        params["after"] = page["next"]
    assert len(seen) == 3 and len(set(seen)) == 3 and seen == sorted(seen)


def test_series_search_by_device(server, w):
    d = new_device(server, w)
    write(server, w.op, {"device": d.name, "ts": w.base, "values": {"x": 1.0}})
    items = search(server, w.viewer, {"device": d.name})["items"]
    assert [(i["measurement"], i["tags"], i["fields"]) for i in items] == [("device", {"device": d.name},
                                                                           {"x": "float"})]


def test_query_series_limit(server, w):
    m = uniq("many")
    write(server, w.op, [{"measurement": m, "tags": {"k": str(i)}, "ts": w.base, "values": {"v": 1.0}}
                         for i in range(1001)])
    r = query_raw(server, w.op, {"measurement": m, **range_params(w.base, w.base + 1000)})
    err = assert_error(r, 400)
    assert "1000 series" in err["message"]
    ok = query(server, w.op, {"measurement": m, "tag_regex.k": "^[0-9]$", **range_params(w.base, w.base + 1000)})
    assert len(ok["series"]) == 10
    assert len(server.list_all("/api/v1/series", w.viewer, params={"measurement": m}, limit=1000)) == 1001


# ---- latest ----

def test_latest(server, w):
    d = new_device(server, w)
    write(server, w.op, [{"device": d.name, "ts": w.base, "values": {"a": 1.0, "s": "first", "n": {"int": 5}}},
                         {"device": d.name, "ts": w.base + 1000, "values": {"a": 2.5, "on": False}}])
    r = server.api("GET", f"/api/v1/devices/{d.id}/latest", token=w.viewer)
    assert r.status_code == 200, describe(r)
    t = lambda ms: ms_to_rfc3339(ms)  # noqa: E731
    assert r.json() == {"device": d.name, "values": {
        "a": {"time": t(w.base + 1000), "value": 2.5}, "s": {"time": t(w.base), "value": "first"},
        "n": {"time": t(w.base), "value": 5}, "on": {"time": t(w.base + 1000), "value": False}}}
    empty = new_device(server, w)
    r = server.api("GET", f"/api/v1/devices/{empty.id}/latest", token=w.viewer)
    assert r.status_code == 200 and r.json() == {"device": empty.name, "values": {}}, describe(r)
    assert_error(server.api("GET", "/api/v1/devices/999999999/latest", token=w.viewer), 404)
    assert_error(server.api("GET", "/api/v1/devices/abc/latest", token=w.viewer), 404)


# ---- delete ----

def audit_actions(server, token, action_prefix):
    return server.list_all("/api/v1/audit", token, params={"action": action_prefix})


def test_delete_range_and_whole_series(server, w):
    d1, d2 = new_device(server, w), new_device(server, w)
    t0 = w.base
    for d in (d1, d2):
        write(server, w.op, [{"device": d.name, "ts": t0 + i * MINUTE_MS, "values": {"v": float(i), "u": 1.0}}
                             for i in range(10)])
    rng = range_params(t0, t0 + HOUR_MS)
    r = server.api("DELETE", "/api/v1/series", token=w.op,
                   params={"device": d1.name, **range_params(t0 + 3 * MINUTE_MS, t0 + 6 * MINUTE_MS)})
    assert r.status_code == 200, describe(r)
    assert r.json()["deleted"] > 0
    assert [v for _, v in read_field(server, w.op, {"device": d1.name, **rng}, "v")] == \
        [0.0, 1.0, 2.0, 6.0, 7.0, 8.0, 9.0]
    assert len(read_field(server, w.op, {"device": d1.name, **rng}, "u")) == 7
    assert len(read_field(server, w.op, {"device": d2.name, **rng}, "v")) == 10

    r = server.api("DELETE", "/api/v1/series", token=w.ta, params={"device": d1.name})
    assert r.status_code == 200, describe(r)
    assert r.json()["deleted"] >= 7
    body = query(server, w.op, {"device": d1.name, **rng})
    assert all(s["values"] == [] for s in body["series"]), body
    assert len(read_field(server, w.op, {"device": d2.name, **rng}, "v")) == 10

    recs = [a for a in audit_actions(server, w.ta, "series.") if d1.name in a["detail"]]
    assert len(recs) == 2 and all(a["action"] == "series.delete" and a["result"] == "ok" for a in recs), recs


def test_delete_by_measurement_and_tag(server, w):
    m = uniq("deltag")
    write(server, w.op, [{"measurement": m, "tags": {"site": s}, "ts": w.base, "values": {"v": 1.0}}
                         for s in ("north", "south")])
    r = server.api("DELETE", "/api/v1/series", token=w.op, params={"measurement": m, "tag.site": "north"})
    assert r.status_code == 200 and r.json()["deleted"] == 1, describe(r)
    left = query(server, w.op, {"measurement": m, **range_params(w.base, w.base + 1)})
    assert [(s["tags"], len(s["values"])) for s in left["series"] if s["values"]] == [({"site": "south"}, 1)]


@pytest.mark.parametrize("params", [{}, {"tag.site": "north"}, {"measurement": "x", "field": "v"},
                                    {"device": "x", "start": "yesterday"}, {"device": "x", "start": "now",
                                                                            "end": "-1h"}],
                         ids=["nothing", "tags-only", "field", "bad-time", "reversed"])
def test_delete_needs_a_valid_selection(server, w, params):
    assert_error(server.api("DELETE", "/api/v1/series", token=w.op, params=params), 400)


# ---- conflicts and bad input ----

def test_type_conflict_is_409_and_writes_nothing(server, w):
    d = new_device(server, w)
    write(server, w.op, {"device": d.name, "ts": w.base, "values": {"x": 1.5}})
    r = server.api("POST", "/api/v1/telemetry", token=w.op, json=[
        {"device": d.name, "ts": w.base + 1, "values": {"y": 1.0}},
        {"device": d.name, "ts": w.base + 2, "values": {"x": "a string now"}}])
    err = assert_error(r, 409)
    assert err["message"].startswith("item 1:") and "x" in err["message"], err
    body = query(server, w.op, {"device": d.name, **range_params(w.base, w.base + HOUR_MS)})
    assert [(s["field"], len(s["values"])) for s in body["series"] if s["values"]] == [("x", 1)]
    r = server.api("POST", "/api/v1/telemetry", token=w.op, json=[
        {"device": d.name, "ts": w.base + 3, "values": {"z": 1.0}},
        {"device": d.name, "ts": w.base + 4, "values": {"z": True}}])
    assert_error(r, 409)
    assert all(s["field"] != "z" or not s["values"] for s in query(server, w.op, {
        "device": d.name, **range_params(w.base, w.base + HOUR_MS)})["series"])


@pytest.fixture(scope="module")
def bad_dev(server, w):
    return new_device(server, w, "bad")


def good(name, **extra):
    return {"device": name, "ts": 1_700_000_000_000, "values": {"v": 1.0}, **extra}


def bad_bodies(n):
    g = good(n)
    return {
        "unknown-field": [g, {**good(n), "colour": "red"}],
        "values-array": [g, {"device": n, "values": [1, 2]}],
        "value-array": [g, {"device": n, "values": {"x": [1]}}],
        "value-null": [g, {"device": n, "values": {"x": None}}],
        "values-empty": [g, {"device": n, "values": {}}],
        "values-missing": [g, {"device": n}],
        "ts-string": [g, {"device": n, "ts": "1700000000000", "values": {"v": 1.0}}],
        "ts-real": [g, {"device": n, "ts": 1.5, "values": {"v": 1.0}}],
        "ts-out-of-range": [g, {"device": n, "ts": 10 ** 16, "values": {"v": 1.0}}],
        "ts-and-time": [g, {"device": n, "ts": 1, "time": "2026-01-01T00:00:00Z", "values": {"v": 1.0}}],
        "time-bad-month": [g, {"device": n, "time": "2026-13-01T00:00:00Z", "values": {"v": 1.0}}],
        "time-feb-30": [g, {"device": n, "time": "2026-02-30T00:00:00Z", "values": {"v": 1.0}}],
        "time-no-zone": [g, {"device": n, "time": "2026-01-01T00:00:00", "values": {"v": 1.0}}],
        "time-words": [g, {"device": n, "time": "yesterday", "values": {"v": 1.0}}],
        "time-number": [g, {"device": n, "time": 5, "values": {"v": 1.0}}],
        "device-number": [g, {"device": 5, "values": {"v": 1.0}}],
        "device-and-measurement": [g, {"device": n, "measurement": "m", "values": {"v": 1.0}}],
        "neither": [g, {"values": {"v": 1.0}}],
        "tags-with-device": [g, {"device": n, "tags": {"a": "b"}, "values": {"v": 1.0}}],
        "tag-number": [g, {"measurement": "m", "tags": {"a": 1}, "values": {"v": 1.0}}],
        "tag-empty": [g, {"measurement": "m", "tags": {"a": ""}, "values": {"v": 1.0}}],
        "tag-too-long": [g, {"measurement": "m", "tags": {"a": "x" * 257}, "values": {"v": 1.0}}],
        "measurement-empty": [g, {"measurement": "", "values": {"v": 1.0}}],
        "measurement-device-extra-tag": [g, {"measurement": "device", "tags": {"device": n, "x": "y"},
                                             "values": {"v": 1.0}}],
        "int-real": [g, {"device": n, "values": {"i": {"int": 1.5}}}],
        "int-string": [g, {"device": n, "values": {"i": {"int": "5"}}}],
        "int-extra": [g, {"device": n, "values": {"i": {"int": 1, "x": 2}}}],
        "field-name-too-long": [g, {"device": n, "values": {"f" * 257: 1.0}}],
        "string-too-long": [g, {"device": n, "values": {"s": "x" * 65537}}],
        "too-many-fields": [g, {"device": n, "values": {f"f{i}": 1.0 for i in range(65)}}],
        "item-not-object": [g, 5],
        "empty-array": [],
        "top-level-string": "hello",
        "too-many-items": [g] * 10001,
    }


BAD_NAMES = list(bad_bodies("x"))


@pytest.mark.parametrize("case", BAD_NAMES)
def test_bad_bodies_are_400_and_write_nothing(server, w, bad_dev, case):
    body = bad_bodies(bad_dev.name)[case]
    r = server.api("POST", "/api/v1/telemetry", token=w.op, json=body)
    err = assert_error(r, 400)
    if isinstance(body, list) and len(body) == 2:
        assert err["message"].startswith("item 1:"), err
    assert query(server, w.op, {"device": bad_dev.name, "start": "2023-01-01T00:00:00Z", "end": "now"})["series"] \
        == [], "a refused write stored something"


@pytest.mark.parametrize("raw", [b'{"device": "x", "values": {"v": 1}', b"", b"\xff\xfe{}", b"[1,]", b"nul"],
                         ids=["truncated", "empty", "bad-utf8", "trailing-comma", "garbage"])
def test_malformed_json_is_400(server, w, raw):
    assert_error(server.api("POST", "/api/v1/telemetry", token=w.op, data=raw), 400)


def test_wrong_content_type_is_415(server, w, bad_dev):
    r = server.api("POST", "/api/v1/telemetry", token=w.op, data=json.dumps(good(bad_dev.name)),
                   headers={"Content-Type": "text/plain"})
    assert_error(r, 415)


def test_point_older_than_the_out_of_order_window_is_400_and_writes_nothing(server, w):
    # The daemon's default window (tsdb_ooo_window) is 7 days.
    d = new_device(server, w)
    late = w.base - 8 * 24 * HOUR_MS
    write(server, w.op, {"device": d.name, "ts": w.base, "values": {"v": 1.0}})
    r = server.api("POST", "/api/v1/telemetry", token=w.op, json=[
        {"device": d.name, "ts": w.base + 1, "values": {"v": 2.0}},
        {"device": d.name, "ts": late, "values": {"v": 3.0}}])
    err = assert_error(r, 400)
    assert err["message"].startswith("item 1:"), err
    assert [v for _, v in read_field(server, w.op, {"device": d.name, **range_params(late, w.base + HOUR_MS)},
                                     "v")] == [1.0]
    # Within the window, late points are accepted (back-filling a day).
    write(server, w.op, {"device": d.name, "ts": w.base - 24 * HOUR_MS, "values": {"v": 4.0}})
    assert [v for _, v in read_field(server, w.op, {"device": d.name, **range_params(late, w.base + HOUR_MS)},
                                     "v")] == [4.0, 1.0]


def test_unknown_device_is_404_naming_it(server, w):
    err = assert_error(server.api("POST", "/api/v1/telemetry", token=w.op, json=good("no-such-pump")), 404)
    assert "no-such-pump" in err["message"]


BAD_QUERIES = {
    "agg-unknown": {"agg": "avg"},
    "agg-p101": {"agg": "p101"},
    "agg-p-alone": {"agg": "p"},
    "agg-twice": {"agg": "mean,mean"},
    "agg-empty-item": {"agg": "mean,,max"},
    "every-zero": {"agg": "mean", "every": "0s"},
    "every-words": {"agg": "mean", "every": "often"},
    "every-without-agg": {"every": "1m"},
    "offset-without-every": {"agg": "mean", "offset": "5m"},
    "fill-unknown": {"agg": "mean", "fill": "sideways"},
    "fill-nan": {"agg": "mean", "fill": "nan"},
    "too-many-buckets": {"agg": "mean", "every": "1ms", "start": "-1h"},
    "limit-with-agg": {"agg": "mean", "limit": "5"},
    "start-words": {"start": "yesterday"},
    "end-bad-date": {"end": "2026-02-30T00:00:00Z"},
    "start-after-end": {"start": "now", "end": "-1h"},
    "order-up": {"order": "up"},
    "limit-zero": {"limit": "0"},
    "limit-words": {"limit": "many"},
    "format-xml": {"format": "xml"},
    "epoch-days": {"epoch": "days"},
    "unknown-param": {"colour": "red"},
    "regex-bad": {"tag_regex.site": "(unclosed"},
    "regex-backref": {"tag_regex.site": "(a)\\1"},
    "regex-too-long": {"tag_regex.site": "a" * 257},
    "field-empty": {"field": "a,,b"},
    "device-and-measurement": {"device": "x", "measurement": "env"},
    "measurement-twice": [("measurement", "a"), ("measurement", "b")],
}


@pytest.mark.parametrize("case", list(BAD_QUERIES))
def test_bad_query_parameters_are_400(server, w, case):
    params = BAD_QUERIES[case]
    if isinstance(params, dict):
        params = {"measurement": "anything", **params} if "device" not in params else params
    err = assert_error(query_raw(server, w.op, params), 400)
    assert err["message"]


@pytest.mark.parametrize("params", [{"tag_regex.site": "("}, {"colour": "red"}, {"device": ""}])
def test_bad_series_search_is_400(server, w, params):
    assert_error(server.api("GET", "/api/v1/series", token=w.viewer, params=params), 400)


# ---- tenant isolation ----

@pytest.fixture(scope="module")
def iso(server, w):
    """A has data for pump-1 and measurement plant; B has its own, empty pump-1."""
    i = types.SimpleNamespace()
    i.m = uniq("plant")
    i.a_dev = new_device(server, w, "pump")
    i.b_dev_id, i.b_dev_token = create_device(server, w.tb, i.a_dev.name)  # same name in B
    write(server, w.op, [{"device": i.a_dev.name, "ts": w.base + k, "values": {"secret": 42.0}} for k in range(5)])
    write(server, w.op, {"measurement": i.m, "tags": {"site": "a"}, "ts": w.base, "values": {"v": 7.0}})
    i.rng = range_params(w.base, w.base + HOUR_MS)
    return i


def a_untouched(server, w, i):
    got = read_field(server, w.op, {"device": i.a_dev.name, **i.rng}, "secret")
    assert got == [((w.base + k) * NS_PER_MS, 42.0) for k in range(5)]
    assert read_field(server, w.op, {"measurement": i.m, **i.rng}, "v") == [(w.base * NS_PER_MS, 7.0)]


def test_other_tenant_cannot_read_or_search(server, w, iso):
    a_groups = {i["id"] for params in ({"device": iso.a_dev.name}, {"measurement": iso.m})
                for i in search(server, w.viewer, params)["items"]}
    assert len(a_groups) == 2
    for token in (w.tb, w.b_op):
        for params in ({"device": iso.a_dev.name}, {"measurement": iso.m}, {"measurement": "device"}, {}):
            body = query(server, token, {**params, **iso.rng})
            assert all(s["measurement"] != iso.m for s in body["series"]), body
            assert all(v != 42.0 for s in body["series"] for _, v in s["values"]), body
        for params in ({"measurement": iso.m}, {"measurement": "device"}, {}):
            assert not a_groups & {i["id"] for i in search(server, token, params)["items"]}
        assert_error(server.api("GET", f"/api/v1/devices/{iso.a_dev.id}/latest", token=token), 404)
        r = query_raw(server, token, {"measurement": iso.m, "format": "csv", **iso.rng})
        assert len(parse_csv(r)) == 1
    # ?tenant= is for the cross-tenant roles only
    assert_error(query_raw(server, w.tb, {"device": iso.a_dev.name, "tenant": w.a, **iso.rng}), 403)


def test_other_tenant_cannot_delete(server, w, iso):
    for params in ({"device": iso.a_dev.name}, {"measurement": iso.m}, {"measurement": "device"}):
        r = server.api("DELETE", "/api/v1/series", token=w.tb, params=params)
        assert r.status_code == 200 and r.json() == {"deleted": 0}, describe(r)
    a_untouched(server, w, iso)


def test_other_tenants_device_token_cannot_write_as_a_device(server, w, iso):
    # B's pump-1 writes into B's own pump-1, never A's.
    write(server, iso.b_dev_token, {"ts": w.base + 100, "values": {"secret": -1.0}})
    write(server, iso.b_dev_token, {"device": iso.a_dev.name, "ts": w.base + 101, "values": {"secret": -2.0}})
    a_untouched(server, w, iso)
    assert [v for _, v in read_field(server, w.tb, {"device": iso.a_dev.name, **iso.rng}, "secret")] == [-1.0, -2.0]
    # A device name that exists only in A: refused (not its own device).
    assert_error(server.api("POST", "/api/v1/telemetry", token=iso.b_dev_token,
                            json={"device": "pump-only-in-a", "values": {"x": 1.0}}), 403)
    # B's operator cannot write for A's devices that B does not have.
    other = new_device(server, w, "aonly")
    assert_error(server.api("POST", "/api/v1/telemetry", token=w.b_op, json=good(other.name)), 404)
    assert query(server, w.op, {"device": other.name, "start": "2023-01-01T00:00:00Z"})["series"] == []


def test_regulator_reads_with_tenant_and_is_audited(server, w, iso):
    got = query(server, w.regulator, {"device": iso.a_dev.name, "tenant": w.a, "field": "secret", **iso.rng})
    assert len(got["series"][0]["values"]) == 5
    recs = server.list_all("/api/v1/audit", server.admin_token, params={"action": "telemetry.read"})
    assert any(r["actor"].startswith("token:") and r["target"] == f"tenant:{w.a}" for r in recs), recs
    assert_error(server.api("POST", "/api/v1/telemetry", token=w.regulator, params={"tenant": w.a},
                            json=good(iso.a_dev.name)), 403)


# ---- roles ----

def test_roles(server, w):
    d = new_device(server, w)
    other = new_device(server, w)
    # viewer reads, never writes or deletes
    assert_error(server.api("POST", "/api/v1/telemetry", token=w.viewer, json=good(d.name)), 403)
    assert_error(server.api("DELETE", "/api/v1/series", token=w.viewer, params={"device": d.name}), 403)
    query(server, w.viewer, {"device": d.name})
    # a device writes its own data (device omitted or named), not another's
    write(server, d.token, {"ts": w.base, "values": {"v": 1.0}})
    write(server, d.token, {"device": d.name, "ts": w.base + 1, "values": {"v": 2.0}})
    assert_error(server.api("POST", "/api/v1/telemetry", token=d.token, json=good(other.name)), 403)
    assert_error(server.api("POST", "/api/v1/telemetry", token=d.token,
                            json=[{"ts": w.base + 2, "values": {"v": 3.0}}, good(other.name)]), 403)
    assert_error(server.api("POST", "/api/v1/telemetry", token=d.token,
                            json={"measurement": "env", "values": {"v": 3.0}}), 403)
    # ... and neither reads nor deletes
    assert_error(server.api("DELETE", "/api/v1/series", token=d.token, params={"device": d.name}), 403)
    assert_error(query_raw(server, d.token, {"device": d.name}), 403)
    assert_error(server.api("GET", "/api/v1/series", token=d.token), 403)
    assert [v for _, v in read_field(server, w.op, {"device": d.name, **range_params(w.base, w.base + 10)}, "v")] \
        == [1.0, 2.0]
    assert query(server, w.op, {"device": other.name, "start": "2023-01-01T00:00:00Z"})["series"] == []
    denied = [a for a in audit_actions(server, w.ta, "series.delete") if a["result"] == "denied"]
    assert any(a["actor"] == f"device:{d.name}" for a in denied), denied
    # no token at all
    assert_error(server.api("GET", "/api/v1/query", params={"device": d.name}), 401)


# ---- merged reads: out-of-order data over stored chunks ----

def write_interleaved(p, token, name, t0):
    """Four fields of four types; stored as chunks by a restart, then written again between the
    stored rows, so reads merge chunks with the head. Returns {field: [(ms, value)]}."""
    def rows(offset, scale):
        return [{"device": name, "ts": t0 + i * 1000 + offset,
                 "values": {"f": i * scale + 0.5, "s": f"s{i}-{offset}", "n": {"int": i * 1000 + offset},
                            "b": (i + offset) % 2 == 0}} for i in range(30)]
    first, second = rows(0, 1.0), rows(500, 2.0)
    write(p, token, first)
    p.restart()
    write(p, token, second)
    expected = {"f": [], "s": [], "n": [], "b": []}
    for r in sorted(first + second, key=lambda r: r["ts"]):
        for f, v in r["values"].items():
            expected[f].append((r["ts"], v["int"] if isinstance(v, dict) else v))
    return expected


def test_query_of_fields_of_every_type_over_merged_data(fresh_server):
    p = fresh_server
    tenant, ta = p.tenant_with_admin("merge")
    name = uniq("merge")
    create_device(p, ta, name)
    t0 = base_ms()
    expected = write_interleaved(p, ta, name, t0)
    body = query(p, ta, {"device": name, "epoch": "ms", **range_params(t0, t0 + HOUR_MS)})
    got = {s["field"]: [tuple(v) for v in s["values"]] for s in body["series"]}
    assert got == expected
    csv_rows = parse_csv(query_raw(p, ta, {"device": name, "format": "csv", "epoch": "ms",
                                           **range_params(t0, t0 + HOUR_MS)}))
    assert len(csv_rows) == 1 + sum(len(v) for v in expected.values())


def test_latest_over_merged_data(fresh_server):
    p = fresh_server
    tenant, ta = p.tenant_with_admin("latest")
    name = uniq("merge")
    dev_id, _ = create_device(p, ta, name)
    t0 = base_ms()
    expected = write_interleaved(p, ta, name, t0)
    r = p.api("GET", f"/api/v1/devices/{dev_id}/latest", token=ta)
    assert r.status_code == 200, describe(r)
    assert r.json()["values"] == {f: {"time": ms_to_rfc3339(v[-1][0]), "value": v[-1][1]} for f, v in expected.items()}


def test_range_delete_inside_a_stored_chunk_counts_its_points(fresh_server):
    p = fresh_server
    tenant, ta = p.tenant_with_admin("delcount")
    name = uniq("dc")
    create_device(p, ta, name)
    t0 = base_ms()
    write(p, ta, [{"device": name, "ts": t0 + i * 1000, "values": {"v": float(i)}} for i in range(60)])
    p.restart()
    r = p.api("DELETE", "/api/v1/series", token=ta, params={"device": name, **range_params(t0 + 10_000, t0 + 20_000)})
    assert r.status_code == 200, describe(r)
    assert len(read_field(p, ta, {"device": name, **range_params(t0, t0 + HOUR_MS)}, "v")) == 50
    assert r.json()["deleted"] == 10


def test_range_delete_does_not_resurrect_replaced_values(fresh_server):
    p = fresh_server
    tenant, ta = p.tenant_with_admin("resurrect")
    name = uniq("rs")
    create_device(p, ta, name)
    t0 = base_ms()
    write(p, ta, [{"device": name, "ts": t0 + i * 1000, "values": {"v": float(i)}} for i in range(60)])
    p.restart()
    write(p, ta, {"device": name, "ts": t0 + 50_000, "values": {"v": 500.0}})
    p.restart()
    r = p.api("DELETE", "/api/v1/series", token=ta, params={"device": name, **range_params(t0 + 10_000, t0 + 20_000)})
    assert r.status_code == 200, describe(r)
    got = dict(read_field(p, ta, {"device": name, **range_params(t0, t0 + HOUR_MS)}, "v"))
    assert got[(t0 + 50_000) * NS_PER_MS] == 500.0


# ---- restart and IPv6 ----

def test_data_survives_a_clean_restart(server, w):
    d = new_device(server, w)
    rows = [{"device": d.name, "ts": w.base + i * 1000, "values": {"f": i / 3, "n": {"int": i * 10 ** 15},
                                                                   "s": f"r{i}", "b": i % 2 == 0}}
            for i in range(50)]
    write(server, w.op, rows)
    # A deleted range stays deleted.
    r = server.api("DELETE", "/api/v1/series", token=w.op,
                   params={"device": d.name, **range_params(w.base + 10_000, w.base + 20_000)})
    assert r.status_code == 200, describe(r)
    rng = range_params(w.base, w.base + HOUR_MS)
    before = query(server, w.op, {"device": d.name, "epoch": "ns", **rng})
    server.restart()
    after = query(server, w.op, {"device": d.name, "epoch": "ns", **rng})
    assert after == before
    f = by_field(after)
    kept = [i for i in range(50) if not 10 <= i < 20]
    assert [t for t, _ in f["f"]["values"]] == [(w.base + i * 1000) * NS_PER_MS for i in kept]
    assert [v for _, v in f["f"]["values"]] == [i / 3 for i in kept]
    assert [v for _, v in f["n"]["values"]] == [i * 10 ** 15 for i in kept]
    assert [v for _, v in f["s"]["values"]] == [f"r{i}" for i in kept]
    assert [v for _, v in f["b"]["values"]] == [i % 2 == 0 for i in kept]


def test_ipv6(server6):
    tenant, ta = server6.tenant_with_admin("ts6")
    name = uniq("v6")
    create_device(server6, ta, name)
    t0 = base_ms()
    assert write(server6, ta, [{"device": name, "ts": t0 + i, "values": {"v": i + 0.5}} for i in range(3)]) == \
        {"rows": 3, "points": 3}
    got = query(server6, ta, {"device": name, "field": "v", **range_params(t0, t0 + 1000)})
    assert [v for _, v in points(got["series"][0])] == [0.5, 1.5, 2.5]
    r = query_raw(server6, ta, {"device": name, "format": "csv", **range_params(t0, t0 + 1000)})
    assert len(parse_csv(r)) == 4
