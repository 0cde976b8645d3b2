"""The daemon as a process: one server per data directory, clean exit on SIGTERM and SIGINT,
IPv6, configuration from file, environment and flags (in that order of precedence), crash safety
(kill -9 and restart), and `plateau init`."""

import re
import signal
import socket

import pytest

from plateau_helpers import (ADMIN_PASSWORD, assert_error, describe, free_port, hostport, port_is_open, run_cli,
                             uniq)


def listener_args(host="127.0.0.1"):
    return ["--mqtt", hostport(host, free_port(host)), "--handle", hostport(host, free_port(host, udp_too=True))]


def test_second_serve_on_the_same_data_dir_is_refused(fresh_server):
    s = fresh_server
    cp = s.cli("serve", "--data", s.data, "--http", hostport(s.host, free_port()), *listener_args(), timeout=30)
    assert cp.returncode != 0, "a second server started on the same data directory"
    assert "already" in (cp.stdout + cp.stderr).lower(), f"the refusal should say so: {cp.stderr!r}"
    assert s.api("GET", "/healthz").status_code == 200, "the first server was disturbed"
    assert s.me(s.admin_token).status_code == 200


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_signal_gives_a_clean_exit(fresh_server, sig):
    s = fresh_server
    assert s.me(s.admin_token).status_code == 200
    # An idle keep-alive connection and a half-sent request must not hold the shutdown up.
    idle = socket.create_connection((s.host, s.http_port))
    half = socket.create_connection((s.host, s.http_port))
    half.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
    try:
        assert s.stop(sig) == 0, s.log_tail()
    finally:
        idle.close()
        half.close()
    assert not port_is_open(s.host, s.http_port), "still listening after exit"
    # The data dir is released: a new server starts on it and the data is there.
    s.start()
    assert s.me(s.admin_token).status_code == 200


def test_ipv6_loopback_smoke(server6):
    s = server6
    assert s.url("/").startswith("http://[::1]:")
    r = s.api("GET", "/healthz")
    assert r.status_code == 200 and r.json()["status"] == "ok"
    session = s.login("admin", ADMIN_PASSWORD)
    me = s.me(session).json()
    assert (me["name"], me["role"], me["kind"]) == ("admin", "admin", "user")

    tenant = uniq("v6")
    r = s.api("POST", "/api/v1/tenants", token=session, json={"name": tenant, "industry": "cement"})
    assert r.status_code == 201, describe(r)
    r = s.api("POST", "/api/v1/users", token=session, params={"tenant": tenant},
              json={"name": uniq("v6-admin"), "password": "v6-password-1", "role": "tenant-admin"})
    assert r.status_code == 201, describe(r)
    r = s.api("POST", "/api/v1/tokens", token=session, json={"name": "v6", "role": "admin"})
    assert r.status_code == 201, describe(r)
    api_token = r.json()["token"]
    r = s.api("POST", "/api/v1/devices", token=api_token, params={"tenant": tenant},
              json={"name": "kiln-1", "vendor": "Acme"})
    assert r.status_code == 201, describe(r)
    dev = r.json()
    assert s.me(dev["token"]).status_code == 200
    r = s.api("POST", f"/api/v1/devices/{dev['id']}/token", token=api_token, params={"tenant": tenant})
    assert r.status_code == 200, describe(r)
    assert_error(s.me(dev["token"]), 401)
    r = s.api("PATCH", f"/api/v1/devices/{dev['id']}", token=api_token, params={"tenant": tenant},
              json={"firmware": "1.1"})
    assert r.status_code == 200 and r.json()["firmware"] == "1.1", describe(r)
    assert s.api("DELETE", f"/api/v1/devices/{dev['id']}", token=api_token, params={"tenant": tenant}).status_code == 204
    assert s.api("POST", "/api/v1/logout", token=session).status_code == 204
    assert_error(s.me(session), 401)

    with s.db() as db:
        remotes = [r[0] for r in db.execute("SELECT remote FROM audit WHERE source = 'api'")]
    assert remotes and all("::1" in r for r in remotes), f"the audit log should show the IPv6 client: {remotes[:5]}"


def test_config_file_is_honoured(plateau_factory):
    s = plateau_factory.new(start=False)
    port = free_port()
    conf = s.workdir / "plateau.ini"
    conf.write_text(f"# test configuration\n[http]\nlisten = 127.0.0.1:{port}\n\n"
                    f"[mqtt]\nlisten = 127.0.0.1:{free_port()}\n\n"
                    f"[handle]\nlisten = 127.0.0.1:{free_port(udp_too=True)}\n")
    s.http_port = port
    s.start(args=["serve", "--data", str(s.data), "--config", str(conf)])
    assert s.me(s.admin_token).status_code == 200


def test_bad_config_file_is_refused(plateau_factory):
    s = plateau_factory.new(start=False)
    conf = s.workdir / "bad.ini"
    conf.write_text("[http]\nlisten = 127.0.0.1:1\nno_such_option = 3\n")
    cp = s.cli("serve", "--data", s.data, "--config", conf, timeout=30)
    assert cp.returncode != 0
    assert "no_such_option" in cp.stderr, cp.stderr


def test_environment_is_honoured(plateau_factory):
    s = plateau_factory.new(start=False)
    s.http_port = free_port()
    s.start(args=["serve", "--data", str(s.data), *listener_args()],
            env={"PLATEAU_HTTP_LISTEN": f"127.0.0.1:{s.http_port}"})
    assert s.me(s.admin_token).status_code == 200


def test_flags_override_environment(plateau_factory):
    s = plateau_factory.new(start=False)
    env_port, flag_port = free_port(), free_port()
    s.http_port = flag_port
    s.start(args=["serve", "--data", str(s.data), "--http", f"127.0.0.1:{flag_port}", *listener_args()],
            env={"PLATEAU_HTTP_LISTEN": f"127.0.0.1:{env_port}"})
    assert s.api("GET", "/healthz").status_code == 200
    assert not port_is_open("127.0.0.1", env_port), "the environment's listener was opened despite the flag"


def test_environment_overrides_config_file(plateau_factory):
    s = plateau_factory.new(start=False)
    file_port, env_port = free_port(), free_port()
    conf = s.workdir / "plateau.ini"
    conf.write_text(f"[http]\nlisten = 127.0.0.1:{file_port}\n")
    s.http_port = env_port
    s.start(args=["serve", "--data", str(s.data), "--config", str(conf), *listener_args()],
            env={"PLATEAU_HTTP_LISTEN": f"127.0.0.1:{env_port}"})
    assert s.api("GET", "/healthz").status_code == 200
    assert not port_is_open("127.0.0.1", file_port), "the file's listener was opened despite the environment"


def test_kill9_then_restart_keeps_acknowledged_writes(fresh_server):
    s = fresh_server
    tenant, ta = s.tenant_with_admin("crash")
    acked = {}
    for i in range(20):
        r = s.api("POST", "/api/v1/devices", token=ta, json={"name": f"bottler-{i}", "location": f"line {i % 2}"})
        assert r.status_code == 201, describe(r)
        acked[r.json()["id"]] = (r.json()["name"], r.json()["token"])
    s.kill9()  # right after the last 201
    s.start()
    devices = {d["id"]: d["name"] for d in s.list_all("/api/v1/devices", ta)}
    for did, (name, token) in acked.items():
        assert devices.get(did) == name, f"device {name} (id {did}) acknowledged with 201 is gone after kill -9"
    last_id = max(acked)
    assert s.me(acked[last_id][1]).status_code == 200, "the last device's token does not work after the crash"
    cp = s.audit_verify()
    assert cp.returncode == 0, f"audit chain broken by a crash: {cp.stdout}{cp.stderr}"


def test_cli_changes_while_serving_are_seen_and_kept(fresh_server):
    """The CLI writes meta.db while the server runs (SQLite WAL): the server must see those rows at
    once, and neither process may lose the other's writes."""
    s = fresh_server
    for _ in range(3):  # the server has read the database on several pooled connections
        assert s.me(s.admin_token).status_code == 200
    tenant, ta = s.tenant_with_admin("live")
    me = s.me(ta)
    assert me.status_code == 200, f"a token made by the CLI while serving is not accepted: {describe(me)}"
    r = s.api("POST", "/api/v1/devices", token=ta, json={"name": "boiler"})
    assert r.status_code == 201, describe(r)
    viewer = s.create_token(tenant, "viewer")
    assert s.me(viewer).status_code == 200
    assert s.me(s.admin_token).status_code == 200  # the server writes (token use) after the CLI did
    assert s.stop() == 0
    with s.db() as db:
        tenants = [r[0] for r in db.execute("SELECT name FROM tenants")]
        prefixes = [r[0] for r in db.execute("SELECT prefix FROM tokens")]
        devices = [r[0] for r in db.execute("SELECT name FROM devices")]
    assert tenant in tenants, "a tenant created by the CLI while serving is gone after the server stopped"
    assert ta[:12] in prefixes and viewer[:12] in prefixes, \
        "tokens created by the CLI while serving are gone after the server stopped"
    assert "boiler" in devices
    s.start()
    assert s.me(ta).status_code == 200 and s.me(viewer).status_code == 200


def test_restart_on_the_same_port_right_after_stop(fresh_server):
    s = fresh_server
    for _ in range(5):  # connections the server closes leave TIME_WAIT on its port
        assert s.api("GET", "/healthz", headers={"Connection": "close"}).status_code == 200
    args = ["serve", "--data", str(s.data), "--http", hostport(s.host, s.http_port), *listener_args()]
    assert s.stop() == 0
    s.start(args=args)
    assert s.me(s.admin_token).status_code == 200


def test_init_without_password_env_generates_and_prints_one(plateau_factory):
    s = plateau_factory.new(init=False, start=False)
    cp = s.cli("init", "--data", s.data)
    assert cp.returncode == 0, cp.stderr
    candidates = [w for w in re.split(r"\s+", cp.stdout) if len(w) >= 12 and "/" not in w]
    assert candidates, f"no generated password in the output of init: {cp.stdout!r}"
    s.start()
    for word in candidates[:5]:
        r = s.api("POST", "/api/v1/login", json={"username": "admin", "password": word})
        if r.status_code == 200:
            s.secrets.add(word)
            break
    else:
        pytest.fail(f"none of the words printed by init logs in as admin: {cp.stdout!r}")
    assert s.me(r.json()["token"]).json()["role"] == "admin"


def test_version_runs_without_data_dir(plateau_bin, tmp_path):
    cp = run_cli(plateau_bin, "--version", cwd=tmp_path)
    assert cp.returncode == 0 and re.search(r"\d+\.\d+\.\d+", cp.stdout), cp.stdout
