"""Helpers for Plateau's black-box integration tests.

They find the `plateau` binary, pick free ports, run the CLI, start and stop `plateau serve` on a
temporary data directory, speak its HTTP API, and check its log for sanitizer reports and leaked
secrets. The pytest fixtures that use them live in conftest.py; test modules import the plain
helpers from here (this directory is on sys.path because it has no __init__.py).

Everything here knows only the documented contract (docs/api.md and the CLI contract in
tests/integration/README.md), never the daemon's internals.
"""

import datetime as _dt
import itertools
import json as _json
import os
import re
import select
import signal
import socket
import sqlite3
import subprocess
import time
import uuid
from pathlib import Path

import requests

REPO = Path(__file__).resolve().parents[2]
ADMIN_PASSWORD = "correct-horse-battery-9"
USER_PASSWORD = "tenzin-bearing-42"
READY_TIMEOUT_S = 20.0  # the daemon runs under AddressSanitizer: slow to start
STOP_TIMEOUT_S = 10.0  # "clean exit within a few seconds", with ASan's exit-time leak check
HTTP_TIMEOUT_S = 30.0

# What a sanitizer prints when it finds something. LeakSanitizer also makes the exit code non-zero.
SANITIZER_PATTERNS = ("ERROR: AddressSanitizer", "runtime error:", "ERROR: LeakSanitizer",
                      "WARNING: ThreadSanitizer")

# docs/api.md: the error code that goes with each status.
ERROR_CODES = {
    400: "invalid_argument",
    401: "unauthenticated",
    403: "permission_denied",
    404: "not_found",
    405: "method_not_allowed",
    409: "already_exists",
    411: "length_required",
    413: "payload_too_large",
    415: "unsupported_media_type",
    429: "resource_exhausted",
    431: "request_header_fields_too_large",
    500: "internal",
    503: "unavailable",
}

_name_counter = itertools.count(1)
_ports_given = set()


def uniq(prefix="t"):
    """A fresh name that is valid as a tenant, user and device name: [a-z0-9-]."""
    return f"{prefix}-{next(_name_counter)}-{uuid.uuid4().hex[:6]}"


def plateau_binary():
    """(path, reason): the daemon under test, or None and why not.

    PLATEAU_BIN wins; otherwise the sanitized build, then the release build."""
    explicit = os.environ.get("PLATEAU_BIN")
    if explicit:
        if os.path.isfile(explicit) and os.access(explicit, os.X_OK):
            return os.path.abspath(explicit), ""  # the daemon runs in its own data directory
        return None, f"PLATEAU_BIN={explicit} is not an executable file"
    for candidate in (REPO / "build-san" / "plateau", REPO / "build" / "plateau"):
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate), ""
    return None, "no plateau binary: set PLATEAU_BIN or run `make build-san` (or `make build`)"


def has_ipv6_loopback():
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


def free_port(host="127.0.0.1", udp_too=False):
    """A port nobody listens on now (bind to port 0, read it, close). With udp_too, the same
    number is also free for UDP (the Handle listener takes both). Never hands a port out twice
    in one test run, so two servers of this run cannot race for it."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    for _ in range(100):
        with socket.socket(family, socket.SOCK_STREAM) as s:
            s.bind((host, 0))
            port = s.getsockname()[1]
        if port in _ports_given:
            continue
        if udp_too:
            try:
                with socket.socket(family, socket.SOCK_DGRAM) as u:
                    u.bind((host, port))
            except OSError:
                continue
        _ports_given.add(port)
        return port
    raise RuntimeError("no free port found")


def hostport(host, port):
    """HOST:PORT as the daemon's flags and URLs want it, with IPv6 literals in brackets."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def port_is_open(host, port, timeout=0.5):
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        try:
            s.connect((host, port))
            return True
        except OSError:
            return False


def clean_env(extra=None):
    """The environment for the daemon and the CLI: ours without any PLATEAU_* variable (so a
    developer's settings cannot leak into a test), plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PLATEAU_")}
    env.setdefault("UBSAN_OPTIONS", "print_stacktrace=1")
    env.update(extra or {})
    return env


def run_cli(binary, *args, env=None, cwd=None, timeout=60, input=None):
    """Runs `plateau ARGS...` and returns the CompletedProcess (text, stdout and stderr captured)."""
    return subprocess.run([binary, *map(str, args)], env=clean_env(env), cwd=cwd, input=input,
                          capture_output=True, text=True, errors="replace", timeout=timeout)


def parse_time(value):
    """An RFC 3339 UTC timestamp from a response ("2026-11-29T06:05:34.123Z") as a datetime."""
    assert isinstance(value, str) and value.endswith("Z"), f"not an RFC 3339 UTC time: {value!r}"
    return _dt.datetime.fromisoformat(value[:-1] + "+00:00")


def format_time(when):
    return when.astimezone(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def describe(resp):
    req = resp.request
    return f"{req.method} {req.url} -> {resp.status_code} {resp.text[:600]!r}"


def assert_error(resp, status, code=None):
    """The response is an error of the given status (an int or a collection of accepted ones)
    with the documented body {"error": {"code", "message"}}; code defaults to the table's."""
    accepted = (status,) if isinstance(status, int) else tuple(status)
    assert resp.status_code in accepted, f"expected {accepted}: {describe(resp)}"
    ctype = resp.headers.get("Content-Type", "")
    assert ctype.startswith("application/json"), f"error without a JSON Content-Type ({ctype!r}): {describe(resp)}"
    try:
        body = resp.json()
    except ValueError:
        raise AssertionError(f"error body is not JSON: {describe(resp)}")
    assert isinstance(body, dict) and isinstance(body.get("error"), dict), f"no error object: {describe(resp)}"
    err = body["error"]
    assert isinstance(err.get("code"), str) and err["code"], f"error without a code: {describe(resp)}"
    assert isinstance(err.get("message"), str) and err["message"], f"error without a message: {describe(resp)}"
    expected_code = code if code is not None else ERROR_CODES.get(resp.status_code)
    if expected_code is not None:
        assert err["code"] == expected_code, f"expected code {expected_code!r}: {describe(resp)}"
    return err


def assert_status(resp, status):
    accepted = (status,) if isinstance(status, int) else tuple(status)
    assert resp.status_code in accepted, f"expected {accepted}: {describe(resp)}"
    return resp.json() if resp.content and resp.headers.get("Content-Type", "").startswith("application/json") else None


def raw_http(host, port, first, rest=b"", read_timeout=15.0):
    """Sends `first`, then `rest` unless the server has begun to answer, on a fresh TCP connection,
    and reads until the server closes it (or the timeout). Returns (status or None, headers with
    lower-case names, body bytes). Stopping the upload once a response arrives matters: a server
    that answers 413/431 early and closes would otherwise make our kernel see a reset and drop
    the answer before we read it."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    data = b""
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.settimeout(read_timeout)
        s.connect((host, port))
        try:
            s.sendall(first)
            view = memoryview(rest)
            while view:
                readable, writable, _ = select.select([s], [s], [], 5)
                if readable or not writable:
                    break
                n = s.send(view[:16384])
                view = view[n:]
        except (BrokenPipeError, ConnectionResetError, socket.timeout):
            pass
        deadline = time.monotonic() + read_timeout
        while time.monotonic() < deadline:
            try:
                chunk = s.recv(65536)
            except (ConnectionResetError, socket.timeout):
                break
            if not chunk:
                break
            data += chunk
    if not data.startswith(b"HTTP/"):
        return None, {}, data
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    if "chunked" in headers.get("transfer-encoding", "").lower():
        body = _dechunk(body)
    return status, headers, body


def _dechunk(data):
    out = b""
    while data:
        size_line, _, data = data.partition(b"\r\n")
        size = int(size_line.split(b";")[0] or b"0", 16)
        if size == 0:
            break
        out += data[:size]
        data = data[size + 2:]
    return out


class Plateau:
    """One data directory and the `plateau serve` process running on it (at most one at a time).

    Attributes: data (the data dir), host, http_port, mqtt_port, handle_port, admin_password,
    admin_token (set by the fixtures: an admin API token made with the CLI), proc, secrets
    (passwords and tokens that must never appear in the log)."""

    def __init__(self, binary, workdir, host="127.0.0.1", extra_args=()):
        self.bin = binary
        self.workdir = Path(workdir)
        self.data = self.workdir / "data"
        self.data.mkdir(parents=True, exist_ok=True)
        self.host = host
        self.extra_args = list(extra_args)
        self.admin_password = ADMIN_PASSWORD
        self.admin_token = None
        self.proc = None
        self.http_port = self.mqtt_port = self.handle_port = None
        self.runs = []  # [{"log": Path, "rc": int|None, "killed": bool}]
        self.secrets = set()
        self.http = requests.Session()
        self.http.trust_env = False  # no proxies from the environment for 127.0.0.1/[::1]

    # ---- CLI ----
    def cli(self, *args, env=None, timeout=60, input=None, cwd=None):
        """`plateau ARGS...` → CompletedProcess. Does not add --data: pass it where the contract does."""
        return run_cli(self.bin, *args, env=env, timeout=timeout, input=input, cwd=cwd or self.workdir)

    def _cli_ok(self, *args, env=None):
        cp = self.cli(*args, env=env)
        assert cp.returncode == 0, f"plateau {' '.join(map(str, args))} exited {cp.returncode}: {cp.stdout}{cp.stderr}"
        return cp

    def init(self, password=None):
        password = password or self.admin_password
        self.secrets.add(password)
        return self._cli_ok("init", "--data", self.data, env={"PLATEAU_ADMIN_PASSWORD": password})

    def create_tenant(self, name=None):
        name = name or uniq("t")
        cp = self._cli_ok("tenant", "create", name, "--data", self.data)
        assert cp.stdout.strip() == name, f"tenant create printed {cp.stdout!r}, expected the name {name!r}"
        return name

    def create_token(self, tenant, role):
        cp = self._cli_ok("token", "create", "--data", self.data, "--tenant", tenant, "--role", role)
        token = cp.stdout.strip()
        assert re.fullmatch(r"plt_[A-Za-z0-9_-]+", token), f"token create printed {cp.stdout!r}, not only a plt_ token"
        self.secrets.add(token)
        return token

    def create_device_cli(self, name, tenant):
        cp = self._cli_ok("device", "create", name, "--data", self.data, "--tenant", tenant)
        token = cp.stdout.strip()
        assert re.fullmatch(r"pld_[A-Za-z0-9_-]+", token), f"device create printed {cp.stdout!r}, not only a pld_ token"
        self.secrets.add(token)
        return token

    def create_user_cli(self, name, tenant, role, password=USER_PASSWORD):
        self.secrets.add(password)
        return self._cli_ok("user", "create", name, "--data", self.data, "--tenant", tenant, "--role", role,
                            env={"PLATEAU_USER_PASSWORD": password})

    def tenant_with_admin(self, prefix="t"):
        """A new tenant (CLI) and a tenant-admin API token for it (CLI)."""
        name = self.create_tenant(uniq(prefix))
        return name, self.create_token(name, "tenant-admin")

    def audit_verify(self):
        return self.cli("audit", "verify", "--data", self.data)

    def db(self):
        """A connection to DIR/meta.db (SQLite in WAL mode: fine while the server runs)."""
        return sqlite3.connect(str(self.data / "meta.db"), timeout=10)

    # ---- the server process ----
    def default_serve_args(self):
        self.http_port = free_port(self.host)
        self.mqtt_port = free_port(self.host)
        self.handle_port = free_port(self.host, udp_too=True)
        return ["serve", "--data", str(self.data),
                "--http", hostport(self.host, self.http_port),
                "--mqtt", hostport(self.host, self.mqtt_port),
                "--handle", hostport(self.host, self.handle_port)] + self.extra_args

    def start(self, args=None, env=None, wait=True):
        """Starts `plateau serve`. With args=None: on fresh free ports of self.host (retried when
        a port was taken meanwhile). With explicit args the caller sets self.http_port to the
        port the server should answer on."""
        assert self.proc is None, "server already running"
        for attempt in range(3):
            argv = self.default_serve_args() if args is None else list(args)
            log = self.workdir / f"serve-{len(self.runs) + 1}.stderr.log"
            out = self.workdir / f"serve-{len(self.runs) + 1}.stdout.log"
            with open(log, "wb") as err_f, open(out, "wb") as out_f:
                self.proc = subprocess.Popen([self.bin, *argv], env=clean_env(env), cwd=self.workdir,
                                             stdin=subprocess.DEVNULL, stdout=out_f, stderr=err_f)
            self.runs.append({"log": log, "rc": None, "killed": False})
            if not wait:
                return self
            try:
                self.wait_ready()
                return self
            except RuntimeError as exc:
                text = log.read_text(errors="replace").lower()
                if args is None and attempt < 2 and ("in use" in text or "eaddrinuse" in text):
                    continue  # somebody took a port between our probe and the bind
                raise AssertionError(str(exc))
        raise AssertionError("could not start the server")

    def wait_ready(self, timeout=READY_TIMEOUT_S):
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            rc = self.proc.poll()
            if rc is not None:
                self.runs[-1]["rc"] = rc
                self.proc = None
                raise RuntimeError(f"plateau serve exited {rc} before it was ready:\n{self.log_tail()}")
            try:
                r = self.http.get(self.url("/healthz"), timeout=2)
                if r.status_code == 200:
                    return
                last = f"status {r.status_code}"
            except requests.RequestException as exc:
                last = repr(exc)
            time.sleep(0.1)
        self.kill9()
        raise RuntimeError(f"GET /healthz not 200 within {timeout}s ({last}):\n{self.log_tail()}")

    def stop(self, sig=signal.SIGTERM, timeout=STOP_TIMEOUT_S):
        """Sends sig and waits; returns the exit code. Kills it (and fails) if it hangs."""
        proc = self.proc
        assert proc is not None, "server not running"
        proc.send_signal(sig)
        try:
            rc = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            self.runs[-1]["killed"] = True
            self.proc = None
            raise AssertionError(f"plateau serve did not exit within {timeout}s of signal {sig}:\n{self.log_tail()}")
        self.runs[-1]["rc"] = rc
        self.proc = None
        return rc

    def kill9(self):
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.runs[-1]["killed"] = True
            self.proc = None

    def restart(self):
        """Stops cleanly (asserting exit 0) and starts again on the same data dir and ports' host."""
        rc = self.stop()
        assert rc == 0, f"exit code {rc} on SIGTERM:\n{self.log_tail()}"
        return self.start()

    def log_text(self, run=-1):
        if not self.runs:
            return ""
        return self.runs[run]["log"].read_text(errors="replace")

    def log_tail(self, n=40):
        return "\n".join(self.log_text().splitlines()[-n:])

    def log_problems(self):
        """Sanitizer reports and leaked secrets in every log of this data dir, and non-zero exits."""
        problems = []
        for i, run in enumerate(self.runs, 1):
            text = run["log"].read_text(errors="replace")
            for pat in SANITIZER_PATTERNS:
                if pat in text:
                    at = text.index(pat)
                    problems.append(f"run {i}: sanitizer report {pat!r}:\n{text[max(0, at - 200):at + 3000]}")
            for secret in self.secrets:
                if secret and secret in text:
                    problems.append(f"run {i}: a secret reached the log: {secret[:6]}...")
            if not run["killed"] and run["rc"] not in (None, 0):
                problems.append(f"run {i}: exit code {run['rc']}")
        return problems

    def close(self):
        """Fixture teardown: SIGTERM, expect exit 0 and a clean log."""
        problems = []
        if self.proc is not None:
            try:
                rc = self.stop()
                if rc != 0:
                    problems.append(f"exit code {rc} on SIGTERM at teardown")
            except AssertionError as exc:
                problems.append(str(exc))
        self.http.close()
        problems += self.log_problems()
        return problems

    # ---- HTTP ----
    def url(self, path):
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.http_port}{path}"

    def api(self, method, path, token=None, json=None, data=None, headers=None, params=None,
            timeout=HTTP_TIMEOUT_S):
        """One request. json= is encoded with Content-Type application/json; data= (bytes) is sent
        as is, with Content-Type application/json unless headers say otherwise (a header set to
        None is left out)."""
        h = {}
        if token is not None:
            h["Authorization"] = f"Bearer {token}"
        body = None
        if json is not None:
            body = _json.dumps(json).encode()
            h["Content-Type"] = "application/json"
        elif data is not None:
            body = data.encode() if isinstance(data, str) else data  # bytes, or an iterator: chunked
            h["Content-Type"] = "application/json"
        h.update(headers or {})
        resp = self.http.request(method, self.url(path), headers=h, data=body, params=params, timeout=timeout)
        self._harvest_secrets(resp)
        return resp

    def _harvest_secrets(self, resp):
        if not resp.headers.get("Content-Type", "").startswith("application/json"):
            return
        try:
            body = resp.json()
        except ValueError:
            return
        if isinstance(body, dict) and isinstance(body.get("token"), str):
            self.secrets.add(body["token"])

    def login_raw(self, username, password):
        self.secrets.add(password)
        return self.api("POST", "/api/v1/login", json={"username": username, "password": password})

    def login(self, username, password):
        """Logs in and returns the session token."""
        r = self.login_raw(username, password)
        assert r.status_code == 200, f"login as {username}: {describe(r)}"
        return r.json()["token"]

    def me(self, token):
        return self.api("GET", "/api/v1/me", token=token)

    def list_all(self, path, token, params=None, limit=None):
        """Follows `next` through every page; returns the items."""
        items, params = [], dict(params or {})
        if limit:
            params["limit"] = limit
        for _ in range(10000):
            r = self.api("GET", path, token=token, params=params)
            assert r.status_code == 200, describe(r)
            body = r.json()
            assert isinstance(body.get("items"), list), f"no items list: {describe(r)}"
            items += body["items"]
            if not body.get("next"):
                return items
            params["after"] = body["next"]
        raise AssertionError(f"{path}: paging never ended")

    def tenant_id(self, name):
        r = self.api("GET", f"/api/v1/tenants/{name}", token=self.admin_token)
        assert r.status_code == 200, describe(r)
        return r.json()["id"]
