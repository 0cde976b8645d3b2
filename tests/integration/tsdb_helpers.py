"""Helpers for the time-series API tests (test_tsdb_api.py, test_tsdb_crash.py): exact RFC 3339
times with nanoseconds, writing telemetry, running queries and reading their answers back.

Only the documented contract (docs/api.md, "Telemetry") is assumed here."""

import datetime as _dt
import re
import time

from plateau_helpers import describe

NS_PER_MS = 1_000_000
NS_PER_S = 1_000_000_000
MINUTE_MS = 60_000
HOUR_MS = 3_600_000

_RFC3339 = re.compile(r"^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?Z$")
_EPOCH = _dt.datetime(1970, 1, 1, tzinfo=_dt.timezone.utc)


def rfc3339_to_ns(text):
    """Exact nanoseconds since the epoch of a UTC RFC 3339 time as the server prints it."""
    m = _RFC3339.match(text)
    assert m, f"not an RFC 3339 UTC time: {text!r}"
    y, mo, d, h, mi, s = (int(g) for g in m.groups()[:6])
    frac = (m.group(7) or "").ljust(9, "0")
    secs = int((_dt.datetime(y, mo, d, h, mi, s, tzinfo=_dt.timezone.utc) - _EPOCH).total_seconds())
    return secs * NS_PER_S + int(frac or 0)


def ns_to_rfc3339(ns):
    """RFC 3339 UTC with 0, 3, 6 or 9 fractional digits (as few as the value needs)."""
    secs, frac = divmod(ns, NS_PER_S)
    base = (_EPOCH + _dt.timedelta(seconds=secs)).strftime("%Y-%m-%dT%H:%M:%S")
    if frac == 0:
        return base + "Z"
    if frac % 1_000_000 == 0:
        return f"{base}.{frac // 1_000_000:03d}Z"
    if frac % 1_000 == 0:
        return f"{base}.{frac // 1_000:06d}Z"
    return f"{base}.{frac:09d}Z"


def ms_to_rfc3339(ms):
    return ns_to_rfc3339(ms * NS_PER_MS)


def hour_floor_ms(ms):
    return ms - ms % HOUR_MS


def base_ms(hours_ago=48):
    """A whole hour some time in the past: buckets of every=10m, 1h... start on it."""
    return hour_floor_ms(int(time.time() * 1000)) - hours_ago * HOUR_MS


def create_device(p, token, name):
    r = p.api("POST", "/api/v1/devices", token=token, json={"name": name})
    assert r.status_code == 201, describe(r)
    body = r.json()
    p.secrets.add(body["token"])
    return body["id"], body["token"]


def write(p, token, body, status=200, params=None):
    """POST /api/v1/telemetry; asserts the status and returns the parsed body."""
    r = p.api("POST", "/api/v1/telemetry", token=token, json=body, params=params)
    assert r.status_code == status, describe(r)
    return r.json() if r.content else None


def query_raw(p, token, params):
    """GET /api/v1/query -> the Response (params: dict or list of pairs)."""
    return p.api("GET", "/api/v1/query", token=token, params=params)


def query(p, token, params):
    r = query_raw(p, token, params)
    assert r.status_code == 200, describe(r)
    assert r.headers.get("Content-Type", "").startswith("application/json"), describe(r)
    body = r.json()
    assert isinstance(body.get("series"), list), describe(r)
    return body


def by_field(body):
    """{field: series} of a query answer that selects one group."""
    out = {}
    for s in body["series"]:
        assert s["field"] not in out, f"field {s['field']} twice: {body}"
        out[s["field"]] = s
    return out


def points(series):
    """[(ns, value), ...] of a raw series answered with RFC 3339 times."""
    assert series["columns"] == ["time", "value"], series
    return [(rfc3339_to_ns(t), v) for t, v in series["values"]]


def range_params(start_ms, end_ms):
    return {"start": ms_to_rfc3339(start_ms), "end": ms_to_rfc3339(end_ms)}
