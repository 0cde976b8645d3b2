"""Health, version and help; the response conventions every endpoint shares (X-Request-Id, JSON
errors for unknown paths, 405 with Allow)."""

import re
import time

import pytest

from plateau_helpers import assert_error, run_cli

HELP_COMMANDS = [
    (),
    ("init",),
    ("serve",),
    ("tenant",),
    ("tenant", "create"),
    ("token",),
    ("token", "create"),
    ("device",),
    ("device", "create"),
    ("user",),
    ("user", "create"),
    ("audit",),
    ("audit", "verify"),
]


def test_healthz_answers_without_authentication(server):
    r = server.api("GET", "/healthz")
    assert r.status_code == 200, r.text
    assert r.headers.get("Content-Type", "").startswith("application/json")
    body = r.json()
    assert body["status"] == "ok"
    assert re.fullmatch(r"\d+\.\d+\.\d+\S*", body["version"]), body


def test_version_flag_prints_the_version_healthz_reports(server):
    cp = server.cli("--version")
    assert cp.returncode == 0, cp.stderr
    version = server.api("GET", "/healthz").json()["version"]
    assert version in cp.stdout, f"--version printed {cp.stdout!r}, /healthz says {version}"


@pytest.mark.parametrize("cmd", HELP_COMMANDS, ids=lambda c: " ".join(c) or "plateau")
def test_help_exits_0_with_usage_on_stdout_and_does_nothing(plateau_bin, tmp_path, cmd):
    # Run in an empty directory: --help must not create a data dir, bind a port or change anything.
    cp = run_cli(plateau_bin, *cmd, "--help", cwd=tmp_path, timeout=30)
    assert cp.returncode == 0, f"exit {cp.returncode}: {cp.stdout}{cp.stderr}"
    assert "usage" in cp.stdout.lower(), f"no usage on stdout: {cp.stdout!r}"
    for word in cmd:
        assert word in cp.stdout, f"help of {' '.join(cmd)} does not mention {word!r}: {cp.stdout!r}"
    assert list(tmp_path.iterdir()) == [], f"--help left files behind: {list(tmp_path.iterdir())}"


def test_serve_help_lists_the_listener_options(plateau_bin, tmp_path):
    cp = run_cli(plateau_bin, "serve", "--help", cwd=tmp_path, timeout=30)
    assert cp.returncode == 0
    for flag in ("--data", "--http", "--mqtt", "--handle", "--config"):
        assert flag in cp.stdout, f"serve --help does not mention {flag}"


def test_unknown_command_fails(plateau_bin, tmp_path):
    cp = run_cli(plateau_bin, "frobnicate", cwd=tmp_path, timeout=30)
    assert cp.returncode != 0
    assert "frobnicate" in cp.stderr, f"the error should name the unknown command: {cp.stderr!r}"


def test_every_response_carries_a_distinct_request_id(server):
    responses = [
        server.api("GET", "/healthz"),
        server.api("GET", "/api/v1/me"),  # 401
        server.api("GET", "/api/v1/me", token=server.admin_token),  # 200
        server.api("GET", "/api/v1/no-such-thing", token=server.admin_token),  # 404
        server.api("DELETE", "/healthz"),  # 405
        server.api("POST", "/api/v1/tenants", token=server.admin_token, data=b"{"),  # 400
    ]
    ids = [r.headers.get("X-Request-Id") for r in responses]
    for r, rid in zip(responses, ids):
        assert rid, f"no X-Request-Id on {r.request.method} {r.request.url} ({r.status_code})"
    assert len(set(ids)) == len(ids), f"request ids repeat: {ids}"


def test_request_id_appears_in_the_log(server):
    r = server.api("GET", "/api/v1/no-such-thing", token=server.admin_token)
    rid = r.headers.get("X-Request-Id")
    assert rid
    deadline = time.monotonic() + 5
    while rid not in server.log_text() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert rid in server.log_text(), f"request id {rid} not in the server's log"


@pytest.mark.parametrize("path", ["/api/v1/no-such-thing", "/api/v1/devices/1/no-such-thing", "/api/v2/tenants",
                                  "/api/v1/tenantsX"])
def test_unknown_api_path_is_404_with_json_error(server, path):
    assert_error(server.api("GET", path, token=server.admin_token), 404, "not_found")


def test_unknown_path_outside_the_api_is_404(server):
    r = server.api("GET", "/no-such-page-" + "x" * 10)
    assert r.status_code == 404, r.text


@pytest.fixture(scope="module")
def device_id(server):
    tenant, token = server.tenant_with_admin()
    r = server.api("POST", "/api/v1/devices", token=token, json={"name": "pump-405"})
    assert r.status_code == 201, r.text
    return r.json()["id"], token


@pytest.mark.parametrize("method,path,allowed", [
    ("DELETE", "/healthz", {"GET"}),
    ("PUT", "/api/v1/tenants", {"GET", "POST"}),
    ("PATCH", "/api/v1/tokens", {"GET", "POST"}),
    ("POST", "/api/v1/me", {"GET"}),
    ("GET", "/api/v1/login", {"POST"}),
    ("PUT", "/api/v1/devices/{id}", {"GET", "PATCH", "DELETE"}),
    ("GET", "/api/v1/devices/{id}/token", {"POST"}),
])
def test_wrong_method_is_405_with_allow(server, device_id, method, path, allowed):
    dev, token = device_id
    r = server.api(method, path.format(id=dev), token=token)
    assert_error(r, 405, "method_not_allowed")
    allow = {m.strip().upper() for m in r.headers.get("Allow", "").split(",") if m.strip()}
    assert allowed <= allow, f"Allow: {r.headers.get('Allow')!r}, expected at least {sorted(allowed)}"
    assert method not in allow
