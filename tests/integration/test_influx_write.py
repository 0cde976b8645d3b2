"""InfluxDB 1.x compatible writing (docs/influx-compat.md, "Writing (/write)"): POST /write with
line protocol read back exactly through the native /api/v1/query, every precision, gzip, every
way of passing the token, InfluxDB's status codes, bodies and headers, all-or-nothing batches
that name the bad line, databases per tenant (B's "telegraf" is not A's), roles, device telemetry
in the default database, GET|HEAD /ping, and the Debian `influx` CLI writing with INSERT.

Each test writes measurements or tag values of its own, so tests do not see each other's data.
Reading another database than the default one needs the InfluxQL /query endpoint; those checks
are skipped, saying so, while /query answers 404."""

import base64
import gzip
import json
import shutil
import subprocess
import time
import types

import pytest

from plateau_helpers import describe, raw_http, uniq

NS_PER_S = 1_000_000_000
HOUR_NS = 3600 * NS_PER_S
INFLUX_VERSION = "1.8.10"


# ---- helpers ----

def base_ns(hours_ago=30):
    """A whole second some hours in the past: inside the engine's window, clear of other tests."""
    return (int(time.time()) - hours_ago * 3600) * NS_PER_S


def rfc3339(ns):
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ns // NS_PER_S)) + f".{ns % NS_PER_S:09d}Z"


def write(p, body, token=None, db="plateau", params=None, headers=None, auth="bearer"):
    """POST /write; the token goes where `auth` says: bearer, token, token-user, basic, up, p."""
    q = {} if db is None else {"db": db}
    q.update(params or {})
    h = {}
    if token is not None:
        if auth == "bearer":
            h["Authorization"] = f"Bearer {token}"
        elif auth == "token":
            h["Authorization"] = f"Token {token}"
        elif auth == "token-user":
            h["Authorization"] = f"Token someone:{token}"
        elif auth == "basic":
            h["Authorization"] = "Basic " + base64.b64encode(f"grafana:{token}".encode()).decode()
        elif auth == "up":
            q.update({"u": "telegraf", "p": token})
        elif auth == "p":
            q["p"] = token
    h.update(headers or {})
    data = body.encode() if isinstance(body, str) else body
    return p.http.post(p.url("/write"), params=q, data=data, headers=h, timeout=60)


def assert_influx_headers(r):
    assert r.headers.get("X-Influxdb-Version") == INFLUX_VERSION, describe(r)
    assert r.headers.get("X-Influxdb-Build") == "OSS", describe(r)
    assert r.headers.get("Request-Id"), describe(r)


def assert_written(r):
    assert r.status_code == 204, describe(r)
    assert r.content == b"", describe(r)
    assert_influx_headers(r)


def influx_error(r, status, message=None, contains=None):
    """InfluxDB's error shape: {"error": "..."}, repeated in X-Influxdb-Error."""
    assert r.status_code == status, describe(r)
    assert r.headers.get("Content-Type", "").startswith("application/json"), describe(r)
    body = r.json()
    assert isinstance(body, dict) and set(body) == {"error"} and isinstance(body["error"], str), describe(r)
    assert_influx_headers(r)
    assert r.headers.get("X-Influxdb-Error"), describe(r)
    if message is not None:
        assert body["error"] == message, describe(r)
    if contains is not None:
        assert contains in body["error"], describe(r)
    return body["error"]


def read(p, token, measurement, field, tags=None, start_ns=None, end_ns=None):
    """Raw points [(ns, value)] of one series of the default database, via /api/v1/query."""
    params = [("measurement", measurement), ("field", field), ("epoch", "ns"),
              ("start", rfc3339(start_ns if start_ns is not None else base_ns(24 * 400))),
              ("end", rfc3339(end_ns if end_ns is not None else (int(time.time()) + 3600) * NS_PER_S))]
    params += [(f"tag.{k}", v) for k, v in (tags or {}).items()]
    r = p.api("GET", "/api/v1/query", token=token, params=params)
    assert r.status_code == 200, describe(r)
    series = r.json()["series"]
    assert len(series) <= 1, series
    if not series:
        return []
    return [tuple(v) for v in series[0]["values"]]


def series_of(p, token, measurement):
    r = p.api("GET", "/api/v1/series", token=token, params={"measurement": measurement})
    assert r.status_code == 200, describe(r)
    return r.json()["items"]


def influxql(p, token, q, db=None):
    """GET /query (the InfluxQL endpoint); skips the test while it does not exist."""
    params = {"q": q}
    if db:
        params["db"] = db
    r = p.http.get(p.url("/query"), params=params, headers={"Authorization": f"Bearer {token}"}, timeout=60)
    if r.status_code in (404, 405) and "results" not in r.text:
        pytest.skip("GET /query (InfluxQL) is not served yet: this check runs once it exists")
    return r


def create_database(p, token, tenant, name):
    """CREATE DATABASE through /query when it exists; until then the row is made in meta.db
    directly (what CREATE DATABASE does), so that /write's database mapping can be tested."""
    r = p.http.post(p.url("/query"), params={"q": f'CREATE DATABASE "{name}"'},
                    headers={"Authorization": f"Bearer {token}"}, timeout=60)
    if r.status_code == 200 and "results" in r.text:
        return
    with p.db() as conn:
        tid = conn.execute("SELECT id FROM tenants WHERE name = ?", (tenant,)).fetchone()[0]
        conn.execute("INSERT INTO databases (tenant_id, name, created_ms) VALUES (?, ?, ?)",
                     (tid, name, int(time.time() * 1000)))


@pytest.fixture(scope="module")
def w(server):
    ns = types.SimpleNamespace()
    ns.a, ns.ta = server.tenant_with_admin("ifa")
    ns.b, ns.tb = server.tenant_with_admin("ifb")
    ns.op = server.create_token(ns.a, "operator")
    ns.viewer = server.create_token(ns.a, "viewer")
    ns.b_op = server.create_token(ns.b, "operator")
    ns.regulator = server.create_token("region", "regulator")
    return ns


# ---- /ping ----

def test_ping_get_head_and_verbose(server):
    for method in ("GET", "HEAD"):
        r = server.http.request(method, server.url("/ping"), timeout=30)
        assert r.status_code == 204, describe(r)
        assert r.content == b""
        assert_influx_headers(r)
    r = server.http.get(server.url("/ping"), params={"verbose": "true"}, timeout=30)
    assert r.status_code == 200, describe(r)
    assert r.json() == {"version": INFLUX_VERSION}
    assert_influx_headers(r)


# ---- writing and reading back ----

def test_every_type_and_escape_reads_back_exactly(server, w):
    m = uniq("types")
    t0 = base_ns()
    body = "\n".join([
        f'{m},site=lhasa f=21.5,i=-42i,u=42u,b=true,s="ok, \\"quoted\\" \\\\ end",big=9223372036854775807i {t0}',
        f"{m},site=lhasa f=-1.7976931348623157e308,i=-9223372036854775808i,b=F,s=\"\" {t0 + 1}",
        f"{m},site=lhasa f=1e-3,b=TRUE,s=\"ལྷ་ས 拉萨\" {t0 + 2}",
        f"{m},site=lhasa f=.5,b=f {t0 + 3}",
    ])
    assert_written(write(server, body, w.op))
    series = series_of(server, w.op, m)
    assert len(series) == 1
    assert series[0]["tags"] == {"site": "lhasa"}
    assert series[0]["fields"] == {"f": "float", "i": "int", "u": "int", "b": "bool", "s": "string", "big": "int"}
    tags = {"site": "lhasa"}
    assert read(server, w.op, m, "f", tags) == [(t0, 21.5), (t0 + 1, -1.7976931348623157e308), (t0 + 2, 0.001),
                                                  (t0 + 3, 0.5)]
    assert read(server, w.op, m, "i", tags) == [(t0, -42), (t0 + 1, -9223372036854775808)]
    assert read(server, w.op, m, "u", tags) == [(t0, 42)]
    assert read(server, w.op, m, "big", tags) == [(t0, 9223372036854775807)]
    assert read(server, w.op, m, "b", tags) == [(t0, True), (t0 + 1, False), (t0 + 2, True), (t0 + 3, False)]
    assert read(server, w.op, m, "s", tags) == [(t0, 'ok, "quoted" \\ end'), (t0 + 1, ""), (t0 + 2, "ལྷ་ས 拉萨")]


def test_escaped_names(server, w):
    m = uniq("esc")
    t0 = base_ns()
    body = f"{m}\\ x\\,y,tag\\ key\\,1\\=k=va\\ lue\\,2\\=v,plain=c\\\\d fi\\ eld\\=\\,=1 {t0}\n"
    assert_written(write(server, body, w.op))
    series = series_of(server, w.op, f"{m} x,y")
    assert len(series) == 1, series
    assert series[0]["tags"] == {"tag key,1=k": "va lue,2=v", "plain": "c\\\\d"}  # \\ stays two backslashes
    assert series[0]["fields"] == {"fi eld=,": "float"}


def test_precisions_scale_timestamps(server, w):
    m = uniq("prec")
    secs = int(time.time()) - 30 * 3600
    secs -= secs % 3600  # a whole hour, exact in every unit
    units = {"n": 1, "ns": 1, "u": 1000, "us": 1000, "ms": 10 ** 6, "s": 10 ** 9, "m": 60 * 10 ** 9,
             "h": 3600 * 10 ** 9}
    for name, unit in units.items():
        ts = secs * NS_PER_S // unit
        assert_written(write(server, f"{m},p={name} v=1 {ts}", w.op, params={"precision": name}))
        assert read(server, w.op, m, "v", {"p": name}) == [(secs * NS_PER_S, 1.0)], name
    # Without a timestamp: the server's time, truncated to the precision.
    before = time.time_ns()
    assert_written(write(server, f"{m},p=now-s v=1\n{m},p=now-ns v=1", w.op, params={"precision": "s"}))
    after = time.time_ns()
    (ts, _), = read(server, w.op, m, "v", {"p": "now-s"})
    assert ts % NS_PER_S == 0 and before - NS_PER_S <= ts <= after
    # A timestamp that overflows once scaled is refused.
    influx_error(write(server, f"{m},p=x v=1 9223372037", w.op, params={"precision": "s"}), 400,
                 f"unable to parse '{m},p=x v=1 9223372037': time outside range -9223372036854775806 - "
                 "9223372036854775806 (line 1)")
    influx_error(write(server, f"{m} v=1 1", w.op, params={"precision": "d"}), 400,
                 'invalid precision "d": use n, u, ms, s, m or h')


def test_comments_blank_lines_crlf_and_leading_space(server, w):
    m = uniq("crlf")
    t0 = base_ns()
    body = f"# written by a script\r\n\r\n {m},k=1 v=1 {t0}\r\n  # indented comment\n{m},k=1 v=2 {t0 + 1}  \t\r\n"
    assert_written(write(server, body, w.op))
    assert read(server, w.op, m, "v", {"k": "1"}) == [(t0, 1.0), (t0 + 1, 2.0)]
    assert_written(write(server, "", w.op))  # an empty body writes nothing and is fine
    assert_written(write(server, "# nothing but a comment\n", w.op))


def test_gzip_bodies(server, w):
    m = uniq("gz")
    t0 = base_ns()
    one = gzip.compress(f"{m},k=1 v=1 {t0}\n".encode())
    assert_written(write(server, one, w.op, headers={"Content-Encoding": "gzip"}))
    # A stream of several gzip members is read whole, as InfluxDB does.
    two = gzip.compress(f"{m},k=2 v=2 {t0}\n".encode()) + gzip.compress(f"{m},k=2 v=3 {t0 + 1}\n".encode())
    assert_written(write(server, two, w.op, headers={"Content-Encoding": "gzip"}))
    assert read(server, w.op, m, "v", {"k": "1"}) == [(t0, 1.0)]
    assert read(server, w.op, m, "v", {"k": "2"}) == [(t0, 2.0), (t0 + 1, 3.0)]
    influx_error(write(server, b"not gzip at all", w.op, headers={"Content-Encoding": "gzip"}), 400,
                 "gzip: invalid header")
    influx_error(write(server, one[:15], w.op, headers={"Content-Encoding": "gzip"}), 400, "unexpected EOF")
    influx_error(write(server, f"{m} v=1".encode(), w.op, headers={"Content-Encoding": "br"}), 415,
                 contains="Content-Encoding")
    # A bad line inside a gzip body is named like any other.
    bad = gzip.compress(f"{m},k=3 v=1 {t0}\n{m},k=3 v=oops {t0}\n".encode())
    influx_error(write(server, bad, w.op, headers={"Content-Encoding": "gzip"}), 400,
                 f"unable to parse '{m},k=3 v=oops {t0}': invalid boolean (line 2)")
    assert read(server, w.op, m, "v", {"k": "3"}) == []


def raw_write(p, token, body, chunked=False):
    """POST /write on a raw connection (a server refusing a body early may reset the upload)."""
    head = (f"POST /write?db=plateau HTTP/1.1\r\nHost: {p.host}\r\nAuthorization: Bearer {token}\r\n"
            "Connection: close\r\n")
    if chunked:
        chunks = [body[i:i + 16384] for i in range(0, len(body), 16384)]
        payload = b"".join(f"{len(ch):x}\r\n".encode() + ch + b"\r\n" for ch in chunks) + b"0\r\n\r\n"
        head += "Transfer-Encoding: chunked\r\n\r\n"
    else:
        payload = body
        head += f"Content-Length: {len(body)}\r\n\r\n"
    return raw_http(p.host, p.http_port, head.encode(), payload)


def test_gzip_and_body_limits(plateau_factory):
    p = plateau_factory.new(extra_args=["--http-max-body-bytes", "65536"])
    tenant, admin = p.tenant_with_admin("ifz")
    m = uniq("lim")
    t0 = base_ns()
    # Up to 4 x http_max_body_bytes inflated is fine ...
    lines = "".join(f"{m},k=1 v={i} {t0 + i}\n" for i in range(5000))
    assert 65536 < len(lines) < 4 * 65536
    body = gzip.compress(lines.encode())
    assert len(body) < 65536
    assert_written(write(p, body, admin, headers={"Content-Encoding": "gzip"}))
    assert len(read(p, admin, m, "v", {"k": "1"})) == 5000
    # ... more is 413, and nothing is written.
    bomb = gzip.compress(f"{m},k=2 v=1 {t0}\n".encode() + b"# padding\n" * 30000)
    assert len(bomb) < 65536
    influx_error(write(p, bomb, admin, headers={"Content-Encoding": "gzip"}), 413, "Request Entity Too Large")
    assert read(p, admin, m, "v", {"k": "2"}) == []
    # A plain body over the limit: 413 in InfluxDB's shape, whether announced or chunked.
    big = f"{m},k=3 v=1 {t0}\n".encode() * 4000
    assert len(big) > 65536
    for chunked in (False, True):
        status, headers, resp = raw_write(p, admin, big, chunked=chunked)
        assert status == 413, (chunked, status, resp[:300])
        assert json.loads(resp) == {"error": "Request Entity Too Large"}
        assert headers.get("x-influxdb-version") == INFLUX_VERSION
    assert read(p, admin, m, "v", {"k": "3"}) == []
    assert p.api("GET", "/healthz").status_code == 200


def test_large_batch(server, w):
    m = uniq("batch")
    t0 = base_ns()
    lines = "".join(f"{m},host=h{i % 10} load={i}.5,n={i}i {t0 + (i // 10) * NS_PER_S}\n" for i in range(5000))
    assert_written(write(server, lines, w.op))
    got = read(server, w.op, m, "n", {"host": "h7"})
    assert got == [(t0 + (i // 10) * NS_PER_S, i) for i in range(7, 5000, 10)]


# ---- authentication and roles ----

@pytest.mark.parametrize("auth", ["bearer", "token", "token-user", "basic", "up", "p"])
def test_every_way_to_pass_the_token(server, w, auth):
    m = uniq("auth")
    t0 = base_ns()
    assert_written(write(server, f"{m},via={auth} v=1 {t0}", w.op, auth=auth))
    assert read(server, w.op, m, "v", {"via": auth}) == [(t0, 1.0)]
    assert w.op not in server.log_text()  # the token in the query string never reaches the log


def test_missing_and_bad_credentials(server, w):
    m = uniq("noauth")
    r = write(server, f"{m} v=1", None)
    influx_error(r, 401, "unable to parse authentication credentials")
    assert r.headers.get("Www-Authenticate") == 'Basic realm="InfluxDB"'
    influx_error(write(server, f"{m} v=1", "plt_not-a-real-token"), 401, "authorization failed")
    influx_error(write(server, f"{m} v=1", "plt_not-a-real-token", auth="basic"), 401, "authorization failed")
    influx_error(write(server, f"{m} v=1", "plt_not-a-real-token", auth="up"), 401, "authorization failed")
    influx_error(write(server, f"{m} v=1", None, headers={"Authorization": "Basic !!!"}), 401,
                 "unable to parse authentication credentials")
    influx_error(write(server, f"{m} v=1", None, headers={"Authorization": "Digest abc"}), 401,
                 "unable to parse authentication credentials")
    # A revoked token stops working at once.
    r = server.api("POST", "/api/v1/tokens", token=w.ta, json={"name": uniq("rev"), "role": "operator"})
    assert r.status_code == 201, describe(r)
    tok, tok_id = r.json()["token"], r.json()["id"]
    assert_written(write(server, f"{m},k=1 v=1 {base_ns()}", tok))
    assert server.api("DELETE", f"/api/v1/tokens/{tok_id}", token=w.ta).status_code == 204
    influx_error(write(server, f"{m},k=1 v=1 {base_ns()}", tok), 401, "authorization failed")


def test_roles(server, w):
    m = uniq("roles")
    t0 = base_ns()
    assert_written(write(server, f"{m},who=tenant-admin v=1 {t0}", w.ta))
    assert_written(write(server, f"{m},who=operator v=1 {t0}", w.op))
    assert_written(write(server, f"{m},who=admin v=1 {t0}", server.admin_token))  # into its own tenant
    err = influx_error(write(server, f"{m},who=viewer v=1 {t0}", w.viewer), 403)
    assert err.startswith('"token:') and err.endswith('" user is not authorized to write to database "plateau"'), err
    influx_error(write(server, f"{m},who=regulator v=1 {t0}", w.regulator), 403, contains="not authorized to write")
    assert read(server, w.op, m, "v", {"who": "viewer"}) == []
    # The admin's point went to the admin's tenant, not to A.
    assert read(server, w.op, m, "v", {"who": "admin"}) == []
    assert read(server, server.admin_token, m, "v", {"who": "admin"}) == [(t0, 1.0)]


# ---- errors ----

def test_bad_line_writes_nothing_and_names_the_line(server, w):
    m = uniq("bad")
    t0 = base_ns()
    body = f"{m},k=1 v=1 {t0}\n\n# a comment\n{m},k=1 v=2 {t0 + 1}\n{m},k=1 v=\"unterminated {t0 + 2}\n"
    influx_error(write(server, body, w.op), 400,
                 f"unable to parse '{m},k=1 v=\"unterminated {t0 + 2}': unbalanced quotes (line 5)")
    assert read(server, w.op, m, "v", {"k": "1"}) == []
    cases = {
        f"{m}": "missing fields",
        f"{m},k v=1": "missing tag value",
        f"{m},k=1 v=": "missing field value",
        f"{m},k=1 v=truth": "invalid boolean",
        f"{m},k=1 v=1.2.3": "invalid number",
        f"{m},k=1 v=NaN": "invalid number",
        f"{m},k=1 v=1e999": "invalid float",
        f"{m},k=1 v=1 12abc": "bad timestamp",
        f"{m},k=1 2": "invalid field format",
        f"{m},k=1,k=2 v=1": "duplicate tags",
        f"{m},k=1 v=9223372036854775808i": "unable to parse integer 9223372036854775808: strconv.ParseInt: parsing "
                                           "\"9223372036854775808\": value out of range",
    }
    for line, reason in cases.items():
        influx_error(write(server, line, w.op), 400, f"unable to parse '{line}': {reason} (line 1)")


def test_field_type_conflict_writes_nothing(server, w):
    m = uniq("conflict")
    t0 = base_ns()
    assert_written(write(server, f"{m},k=1 temp=21.5 {t0}", w.op))
    body = f"{m},k=2 temp=1 {t0}\n{m},k=1 temp=22i {t0 + 1}\n"
    influx_error(write(server, body, w.op), 400,
                 f'partial write: field type conflict: input field "temp" on measurement "{m}" is type integer, '
                 "already exists as type float dropped=2")
    assert read(server, w.op, m, "temp", {"k": "1"}) == [(t0, 21.5)]
    assert read(server, w.op, m, "temp", {"k": "2"}) == []  # the good line was not written either
    # Within one body too.
    influx_error(write(server, f"{m},k=3 x=1 {t0}\n{m},k=3 x=\"s\" {t0 + 1}", w.op), 400,
                 f'partial write: field type conflict: input field "x" on measurement "{m}" is type string, '
                 "already exists as type float dropped=2")


def test_database_and_parameter_errors(server, w):
    m = uniq("dberr")
    influx_error(write(server, f"{m} v=1", w.op, db=None), 400, "database is required")
    influx_error(write(server, f"{m} v=1", w.op, db="nope"), 404, 'database not found: "nope"')
    influx_error(write(server, f"{m} v=1", w.op, params={"rp": "two_weeks"}), 500,
                 "retention policy not found: two_weeks")
    assert_written(write(server, f"{m},k=1 v=1 {base_ns()}", w.op, params={"rp": "autogen", "consistency": "all"}))
    assert_written(write(server, f"{m},k=1 v=1 {base_ns()}", w.op, params={"rp": ""}))
    # GET is not how one writes.
    r = server.http.get(server.url("/write"), params={"db": "plateau"}, timeout=30)
    assert r.status_code == 405, describe(r)


# ---- databases and tenants ----

def test_databases_are_per_tenant(server, w):
    m = uniq("iso")
    t0 = base_ns()
    create_database(server, w.ta, w.a, "telegraf")
    create_database(server, w.tb, w.b, "telegraf")
    create_database(server, w.ta, w.a, "only-a")
    # A writes a float into its "telegraf"; the same series in B's "telegraf" may be an integer,
    # because it is another database: B's "telegraf" is not A's.
    assert_written(write(server, f"{m},k=1 v=1.5 {t0}", w.op, db="telegraf"))
    assert_written(write(server, f"{m},k=1 v=7i {t0}", w.b_op, db="telegraf"))
    # In A's own "telegraf" the type is fixed now ...
    influx_error(write(server, f"{m},k=1 v=2i {t0 + 1}", w.op, db="telegraf"), 400, contains="field type conflict")
    # ... and A's default database is another namespace again.
    assert_written(write(server, f"{m},k=1 v=3i {t0}", w.op))
    assert read(server, w.op, m, "v", {"k": "1"}) == [(t0, 3)]
    # B cannot reach a database only A has, and sees none of A's data in its own default database.
    influx_error(write(server, f"{m},k=1 v=1 {t0}", w.b_op, db="only-a"), 404, 'database not found: "only-a"')
    assert read(server, w.b_op, m, "v", {"k": "1"}) == []
    assert series_of(server, w.b_op, m) == []
    # Through InfluxQL (once /query exists): each tenant sees its own databases and data.
    r = influxql(server, w.b_op, "SHOW DATABASES")
    assert r.status_code == 200, describe(r)
    names = [row[0] for res in r.json()["results"] for s in res.get("series", []) for row in s["values"]]
    assert "telegraf" in names and "only-a" not in names
    r = influxql(server, w.op, f'SELECT v FROM "{m}"', db="telegraf")
    assert r.status_code == 200, describe(r)
    vals = [row[1] for res in r.json()["results"] for s in res.get("series", []) for row in s["values"]]
    assert vals == [1.5]
    r = influxql(server, w.b_op, f'SELECT v FROM "{m}"', db="telegraf")
    vals = [row[1] for res in r.json()["results"] for s in res.get("series", []) for row in s["values"]]
    assert vals == [7]


def test_device_telemetry_in_the_default_database(server, w):
    name = uniq("pump")
    r = server.api("POST", "/api/v1/devices", token=w.ta, json={"name": name})
    assert r.status_code == 201, describe(r)
    dev_id, dev_token = r.json()["id"], r.json()["token"]
    server.secrets.add(dev_token)
    t0 = base_ns()
    # Any writer: measurement "device" with the one tag device=<a device of the tenant>.
    assert_written(write(server, f"device,device={name} temperature=21.5,running=true {t0}", w.op))
    latest = server.api("GET", f"/api/v1/devices/{dev_id}/latest", token=w.op)
    assert latest.status_code == 200, describe(latest)
    assert latest.json()["values"]["temperature"]["value"] == 21.5
    influx_error(write(server, f"device,device={uniq('ghost')} temperature=1 {t0}", w.op), 400,
                 contains="no device named")
    influx_error(write(server, f"device,device={name},line=2 temperature=1 {t0}", w.op), 400,
                 contains='measurement "device" holds device telemetry')
    # A device token writes its own telemetry, and nothing else.
    assert_written(write(server, f"device,device={name} temperature=22.5 {t0 + NS_PER_S}", dev_token, auth="basic"))
    assert read(server, w.op, "device", "temperature", {"device": name}) == [(t0, 21.5), (t0 + NS_PER_S, 22.5)]
    other = uniq("valve")
    assert server.api("POST", "/api/v1/devices", token=w.ta, json={"name": other}).status_code == 201
    influx_error(write(server, f"device,device={other} temperature=1 {t0}", dev_token), 403,
                 contains="a device token writes only its own telemetry")
    influx_error(write(server, f"env,site=x temperature=1 {t0}", dev_token), 403,
                 contains="a device token writes only its own telemetry")
    create_database(server, w.ta, w.a, "devices-elsewhere")
    influx_error(write(server, f"device,device={name} temperature=1 {t0}", dev_token, db="devices-elsewhere"), 403,
                 contains="not authorized to write")
    # In another database "device" is just a measurement name.
    assert_written(write(server, f"device,device=anything,line=1 temperature=1 {t0}", w.op, db="devices-elsewhere"))


def test_deleted_tenant_databases_are_swept(plateau_factory):
    """The maintenance sweep (once a minute) deletes the time series of a database whose tenant
    is gone -- here deleted with the CLI, which cannot reach the running server's engine (the
    API deletes them at once); the server log says so."""
    p = plateau_factory.new()
    tenant, admin = p.tenant_with_admin("ifdel")
    create_database(p, admin, tenant, "telegraf")
    assert_written(write(p, f"gone,k=1 v=1 {base_ns()}", admin, db="telegraf"))
    with p.db() as conn:
        db_id = conn.execute("SELECT d.id FROM databases d JOIN tenants t ON t.id = d.tenant_id WHERE t.name = ?",
                             (tenant,)).fetchone()[0]
    p._cli_ok("tenant", "delete", tenant, "--data", p.data)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if f"deleted time series of removed database={db_id} " in p.log_text():
            return
        time.sleep(1)
    pytest.fail(f"the sweep did not delete database {db_id}'s series within 90 s:\n{p.log_tail()}")


# ---- the influx CLI ----

def influx_cli(p, token, *args):
    exe = shutil.which("influx")
    if not exe:
        pytest.skip("the influx CLI (Debian influxdb-client) is not installed")
    cmd = [exe, "-host", p.host, "-port", str(p.http_port), "-username", "cli", "-password", token, *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60)


def test_influx_cli_inserts(server, w):
    m = uniq("cli")
    t0 = base_ns()
    cp = influx_cli(server, w.op, "-database", "plateau", "-execute", f"INSERT {m},src=cli v=42 {t0}")
    assert cp.returncode == 0 and "ERR" not in cp.stdout + cp.stderr, cp
    assert read(server, w.op, m, "v", {"src": "cli"}) == [(t0, 42.0)]
    cp = influx_cli(server, w.op, "-database", "plateau", "-precision", "s", "-execute",
                    f"INSERT {m},src=cli-s v=43 {t0 // NS_PER_S}")
    assert "ERR" not in cp.stdout + cp.stderr, cp
    assert read(server, w.op, m, "v", {"src": "cli-s"}) == [(t0, 43.0)]
    # Its errors come back as InfluxDB's.
    cp = influx_cli(server, w.op, "-database", "nope", "-execute", f"INSERT {m} v=1")
    assert 'database not found: \\"nope\\"' in cp.stdout + cp.stderr or 'database not found: "nope"' in cp.stdout + cp.stderr, cp
    cp = influx_cli(server, "plt_wrong", "-database", "plateau", "-execute", f"INSERT {m} v=1")
    assert "authorization failed" in cp.stdout + cp.stderr, cp


def test_influx_cli_show_databases_and_select(server, w):
    influxql(server, w.op, "SHOW DATABASES")  # skips until /query exists
    m = uniq("clisel")
    t0 = base_ns()
    assert_written(write(server, f"{m},src=cli v=5 {t0}", w.op))
    cp = influx_cli(server, w.op, "-execute", "SHOW DATABASES")
    assert cp.returncode == 0 and "plateau" in cp.stdout, cp
    cp = influx_cli(server, w.op, "-database", "plateau", "-format", "json", "-execute", f'SELECT v FROM "{m}"')
    assert cp.returncode == 0, cp
    out = json.loads(cp.stdout)
    vals = [row[1] for res in out["results"] for s in res.get("series", []) for row in s["values"]]
    assert vals == [5]
