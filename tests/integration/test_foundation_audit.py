"""The audit log: changes (and refused attempts) through the API and the CLI are recorded, listed
newest first with filters and paging, scoped by tenant; `plateau audit verify` passes on an
intact log and names the first broken record after an edit or a deletion in meta.db."""

import datetime as dt
import re
import stat
import types

import pytest

from plateau_helpers import assert_error, describe, format_time, parse_time, uniq

AUDIT_FIELDS = {"seq", "time", "actor", "tenant", "action", "target", "result", "detail", "source"}
DB_COLUMNS = {"seq", "ts_ms", "actor", "tenant_id", "action", "target", "result", "detail", "source", "remote",
              "prev_hash", "hash"}


def names_device(target, device_id, device_name):
    """Whether an audit target names the device, by id or by name (docs/api.md leaves the form open,
    e.g. "device:12" or "device:labeller")."""
    target = target or ""
    return device_name in target or re.search(rf"device[:/]{device_id}(?![0-9])", target) is not None


@pytest.fixture(scope="module")
def story(server):
    """A tenant where a tenant-admin creates, changes, rotates and deletes a device, and a viewer
    is refused creating one."""
    s = types.SimpleNamespace()
    s.tenant, s.ta = server.tenant_with_admin("audit")
    s.tenant_id = server.tenant_id(s.tenant)
    s.viewer = server.create_token(s.tenant, "viewer")
    s.ta_prefix = server.me(s.ta).json()["token_prefix"]
    s.viewer_prefix = server.me(s.viewer).json()["token_prefix"]
    s.dev_name = uniq("labeller")
    r = server.api("POST", "/api/v1/devices", token=s.ta, json={"name": s.dev_name})
    assert r.status_code == 201, describe(r)
    s.dev = r.json()["id"]
    assert server.api("PATCH", f"/api/v1/devices/{s.dev}", token=s.ta, json={"firmware": "3.0"}).status_code == 200
    assert server.api("POST", f"/api/v1/devices/{s.dev}/token", token=s.ta).status_code == 200
    assert server.api("DELETE", f"/api/v1/devices/{s.dev}", token=s.ta).status_code == 204
    s.refused_name = uniq("refused")
    assert_error(server.api("POST", "/api/v1/devices", token=s.viewer, json={"name": s.refused_name}), 403)
    return s


def in_tenant(rec, s):
    return rec["tenant"] in (s.tenant, s.tenant_id)


def test_records_have_the_documented_fields(server, story):
    items = server.api("GET", "/api/v1/audit", token=server.admin_token).json()["items"]
    assert items
    for rec in items:
        assert AUDIT_FIELDS <= set(rec), rec
        parse_time(rec["time"])
        assert rec["source"] in ("api", "cli")
        assert rec["result"] in ("ok", "denied", "error")


def test_changes_are_listed_newest_first(server, story):
    items = server.list_all("/api/v1/audit", story.ta, limit=1000)
    seqs = [i["seq"] for i in items]
    assert seqs == sorted(seqs, reverse=True) and len(set(seqs)) == len(seqs), "not newest first / repeated"
    times = [parse_time(i["time"]) for i in items]
    assert times == sorted(times, reverse=True)

    dev_recs = [i for i in items if i["action"].startswith("device.") and names_device(i["target"], story.dev, story.dev_name)]
    oldest_first = [i["action"] for i in reversed(dev_recs)]
    assert len(dev_recs) >= 4, f"create, update, token rotation and delete of device {story.dev}: {oldest_first}"
    assert "create" in oldest_first[0] and "delete" in oldest_first[-1], oldest_first
    assert any("token" in a for a in oldest_first[1:-1]), oldest_first
    for rec in dev_recs:
        assert story.ta_prefix in rec["actor"], rec
        assert (rec["result"], rec["source"]) == ("ok", "api"), rec
        assert in_tenant(rec, story), rec


def test_refused_attempt_is_recorded(server, story):
    items = server.list_all("/api/v1/audit", server.admin_token, limit=1000)
    refused = [i for i in items if story.viewer_prefix in i["actor"]]
    assert refused, "the viewer's refused POST /api/v1/devices is not in the audit log"
    assert refused[0]["result"] == "denied", refused[0]
    assert "device" in refused[0]["action"], refused[0]


def test_filters(server, story):
    admin = server.admin_token
    q = {"tenant": story.tenant}
    dev_only = server.list_all("/api/v1/audit", admin, params={**q, "action": "device."}, limit=1000)
    assert dev_only and all(i["action"].startswith("device.") for i in dev_only)
    create = [i for i in dev_only if names_device(i["target"], story.dev, story.dev_name) and "create" in i["action"]][-1]

    by_actor = server.list_all("/api/v1/audit", admin, params={**q, "actor": create["actor"]}, limit=1000)
    assert by_actor and all(i["actor"] == create["actor"] for i in by_actor)
    assert create["seq"] in [i["seq"] for i in by_actor]

    t = parse_time(create["time"])
    ms = dt.timedelta(milliseconds=1)
    since = server.list_all("/api/v1/audit", admin, params={**q, "since": format_time(t - ms)}, limit=1000)
    assert create["seq"] in [i["seq"] for i in since]
    assert all(parse_time(i["time"]) >= t - ms for i in since)
    until = server.list_all("/api/v1/audit", admin, params={**q, "until": format_time(t + ms)}, limit=1000)
    assert create["seq"] in [i["seq"] for i in until]
    assert all(parse_time(i["time"]) <= t + ms for i in until)
    assert len(until) < len(server.list_all("/api/v1/audit", admin, params=q, limit=1000)), "until filtered nothing"

    future = format_time(dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=365))
    r = server.api("GET", "/api/v1/audit", token=admin, params={"since": future})
    assert r.status_code == 200 and r.json()["items"] == [] and "next" not in r.json(), describe(r)
    r = server.api("GET", "/api/v1/audit", token=admin, params={"action": "no-such-action."})
    assert r.status_code == 200 and r.json()["items"] == [], describe(r)


def test_paging_matches_the_full_list(server, story):
    full = [i["seq"] for i in server.list_all("/api/v1/audit", story.ta, limit=1000)]
    paged = [i["seq"] for i in server.list_all("/api/v1/audit", story.ta, limit=3)]
    assert paged == full


def test_tenant_admin_sees_only_its_tenant(server, story):
    server.tenant_with_admin("audit-other")  # something happens elsewhere
    items = server.list_all("/api/v1/audit", story.ta, limit=1000)
    assert items and all(in_tenant(i, story) for i in items), [i for i in items if not in_tenant(i, story)][:3]


@pytest.mark.parametrize("role", ["operator", "viewer"])
def test_operator_and_viewer_cannot_read_the_audit_log(server, story, role):
    token = server.create_token(story.tenant, role)
    assert_error(server.api("GET", "/api/v1/audit", token=token), 403, "permission_denied")


def test_admin_reads_of_another_tenant_are_audited(server, story):
    admin_prefix = server.me(server.admin_token).json()["token_prefix"]
    assert server.api("GET", "/api/v1/devices", token=server.admin_token, params={"tenant": story.tenant}).status_code == 200
    items = server.list_all("/api/v1/audit", server.admin_token, params={"tenant": story.tenant}, limit=1000)
    reads = [i for i in items if admin_prefix in i["actor"] and i["action"].endswith(".read")]
    assert any("device" in i["action"] for i in reads), f"no device *.read record by the admin: {items[:5]}"


def test_cli_actions_are_audited_with_source_cli(server):
    name = server.create_tenant(uniq("cli-audit"))
    server.create_token(name, "operator")
    items = server.list_all("/api/v1/audit", server.admin_token, limit=1000)
    tenant_create = [i for i in items if i["action"] == "tenant.create" and name in i["target"]]
    assert tenant_create, f"no tenant.create record for {name}"
    assert (tenant_create[0]["source"], tenant_create[0]["result"]) == ("cli", "ok"), tenant_create[0]
    token_create = [i for i in items if i["action"].startswith("token.") and i["source"] == "cli"
                    and i["tenant"] in (name, server.tenant_id(name))]
    assert token_create, "no token record with source cli for `plateau token create`"
    with server.db() as db:
        rows = db.execute("SELECT action, source FROM audit WHERE target LIKE ?", (f"%{name}%",)).fetchall()
    assert ("tenant.create", "cli") in rows, rows


def test_api_records_carry_the_remote_address(server, story):
    with server.db() as db:
        rows = db.execute("SELECT remote FROM audit WHERE source = 'api' AND tenant_id = ?",
                          (story.tenant_id,)).fetchall()
    assert rows and all("127.0.0.1" in r[0] for r in rows), rows[:5]


def test_database_layout(server):
    with server.db() as db:
        cols = {row[1] for row in db.execute("PRAGMA table_info(audit)")}
    assert DB_COLUMNS <= cols, f"missing columns: {DB_COLUMNS - cols}"
    key = server.data / "audit.key"
    assert key.is_file()
    assert stat.S_IMODE(key.stat().st_mode) & 0o077 == 0, f"audit.key mode {oct(key.stat().st_mode)}: readable by others"


def test_verify_passes_on_the_live_log(server, story):
    with server.db() as db:
        before = db.execute("SELECT count(*) FROM audit").fetchone()[0]
    cp = server.audit_verify()
    with server.db() as db:
        after = db.execute("SELECT count(*) FROM audit").fetchone()[0]
    assert cp.returncode == 0, cp.stdout + cp.stderr
    m = re.search(r"audit log intact: (\d+) records", cp.stdout)
    assert m, cp.stdout
    assert before <= int(m.group(1)) <= after, (m.group(1), before, after)


# ---- tampering (servers of their own: the chain stays broken) ----

def drop_audit_triggers(db):
    """An append-only trigger does not stop someone with the file; drop any before tampering."""
    for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'trigger' AND tbl_name = 'audit'").fetchall():
        db.execute(f'DROP TRIGGER "{name}"')


def make_history(s):
    _, ta = s.tenant_with_admin("tamper")
    for i in range(4):
        r = s.api("POST", "/api/v1/devices", token=ta, json={"name": f"line-{i}"})
        assert r.status_code == 201, describe(r)
    with s.db() as db:
        seqs = [r[0] for r in db.execute("SELECT seq FROM audit ORDER BY seq")]
    assert len(seqs) >= 5 and seqs == list(range(seqs[0], seqs[0] + len(seqs))), seqs
    cp = s.audit_verify()
    assert cp.returncode == 0 and f"audit log intact: {len(seqs)} records" in cp.stdout, cp.stdout + cp.stderr
    return seqs


def assert_verify_names(s, seq):
    cp = s.audit_verify()
    out = cp.stdout + cp.stderr
    assert cp.returncode == 1, f"verify exit {cp.returncode} on a tampered log: {out}"
    assert re.search(rf"record {seq}(?![0-9])", out), f"verify should name record {seq}: {out!r}"


@pytest.mark.parametrize("column,value", [("detail", "nothing to see"), ("result", "ok"), ("actor", "user:nobody"),
                                          ("ts_ms", 0), ("action", "tenant.read")])
def test_verify_names_an_edited_record(fresh_server, column, value):
    s = fresh_server
    seqs = make_history(s)
    k = seqs[len(seqs) // 2]
    with s.db() as db:
        drop_audit_triggers(db)
        original = db.execute(f"SELECT {column} FROM audit WHERE seq = ?", (k,)).fetchone()[0]
        if original == value:
            value = f"{value}-x" if isinstance(value, str) else 1
        db.execute(f"UPDATE audit SET {column} = ? WHERE seq = ?", (value, k))
    assert_verify_names(s, k)
    with s.db() as db:  # put it back: the chain verifies again
        db.execute(f"UPDATE audit SET {column} = ? WHERE seq = ?", (original, k))
    cp = s.audit_verify()
    assert cp.returncode == 0, cp.stdout + cp.stderr


def test_verify_names_a_deleted_record_with_the_server_stopped(fresh_server):
    s = fresh_server
    seqs = make_history(s)
    assert s.stop() == 0
    k = seqs[len(seqs) // 2]
    with s.db() as db:
        drop_audit_triggers(db)
        db.execute("DELETE FROM audit WHERE seq = ?", (k,))
    assert_verify_names(s, k)


def test_verify_names_swapped_records(fresh_server):
    """Swapping two records' contents (each row internally consistent) breaks the chain too."""
    s = fresh_server
    seqs = make_history(s)
    k = seqs[len(seqs) // 2]
    with s.db() as db:
        drop_audit_triggers(db)
        a = db.execute("SELECT detail, target FROM audit WHERE seq = ?", (k,)).fetchone()
        b = db.execute("SELECT detail, target FROM audit WHERE seq = ?", (k + 1,)).fetchone()
        if a == b:
            pytest.skip("two identical neighbouring records")
        db.execute("UPDATE audit SET detail = ?, target = ? WHERE seq = ?", (*b, k))
        db.execute("UPDATE audit SET detail = ?, target = ? WHERE seq = ?", (*a, k + 1))
    assert_verify_names(s, k)
