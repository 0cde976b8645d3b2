"""Tenant isolation: tenant A can neither see nor touch anything of tenant B (404, never 403, and
B's objects unchanged); `?tenant=` is honoured only for the cross-tenant roles; the regulator reads
B but changes nothing, and its reads are audited."""

import types

import pytest

from plateau_helpers import assert_error, describe, uniq

PASSWORD = "isolation-pass-1"


@pytest.fixture(scope="module")
def world(server):
    w = types.SimpleNamespace()
    w.a, w.ta = server.tenant_with_admin("iso-a")
    w.b, w.tb = server.tenant_with_admin("iso-b")
    w.a_operator = server.create_token(w.a, "operator")
    w.a_viewer = server.create_token(w.a, "viewer")
    w.regulator = server.create_token("region", "regulator")

    r = server.api("POST", "/api/v1/devices", token=w.tb, json={"name": "pump-1", "location": "B hall",
                                                                "attributes": {"secret": "b-only"}})
    assert r.status_code == 201, describe(r)
    w.b_device, w.b_device_token = r.json()["id"], r.json()["token"]
    r = server.api("POST", "/api/v1/users", token=w.tb,
                   json={"name": uniq("b-user"), "password": PASSWORD, "role": "viewer", "display_name": "B user"})
    assert r.status_code == 201, describe(r)
    w.b_user, w.b_user_name = r.json()["id"], r.json()["name"]
    r = server.api("POST", "/api/v1/tokens", token=w.tb, json={"name": "b-erp", "role": "operator"})
    assert r.status_code == 201, describe(r)
    w.b_token_id, w.b_token = r.json()["id"], r.json()["token"]

    # A has objects of its own, one with the same name as B's device.
    r = server.api("POST", "/api/v1/devices", token=w.ta, json={"name": "pump-1"})
    assert r.status_code == 201, describe(r)
    w.a_device = r.json()["id"]
    w.b_ids = {w.b_device, w.b_user, w.b_token_id}
    return w


def snapshot_b(server, w):
    """B's objects as B sees them, minus fields that reads themselves may change."""
    dev = server.api("GET", f"/api/v1/devices/{w.b_device}", token=w.tb)
    user = server.api("GET", f"/api/v1/users/{w.b_user}", token=w.tb)
    assert dev.status_code == 200, f"B's device is gone: {describe(dev)}"
    assert user.status_code == 200, f"B's user is gone: {describe(user)}"
    tokens = [t for t in server.list_all("/api/v1/tokens", w.tb) if t["id"] == w.b_token_id]
    assert len(tokens) == 1
    strip = lambda o: {k: v for k, v in o.items() if k not in ("last_seen", "last_used")}
    return {"device": strip(dev.json()), "user": strip(user.json()), "token": strip(tokens[0]),
            "device_token_works": server.me(w.b_device_token).status_code,
            "token_works": server.me(w.b_token).status_code}


def test_b_snapshot_is_sane(server, world):
    snap = snapshot_b(server, world)
    assert snap["device_token_works"] == 200 and snap["token_works"] == 200


ACCESS_CASES = [
    ("GET", "/api/v1/devices/{dev}", None),
    ("PATCH", "/api/v1/devices/{dev}", {"location": "stolen"}),
    ("DELETE", "/api/v1/devices/{dev}", None),
    ("POST", "/api/v1/devices/{dev}/token", None),
    ("GET", "/api/v1/users/{user}", None),
    ("PATCH", "/api/v1/users/{user}", {"display_name": "stolen", "disabled": True}),
    ("DELETE", "/api/v1/users/{user}", None),
    ("DELETE", "/api/v1/tokens/{token}", None),
    ("GET", "/api/v1/tenants/{b}", None),
]


@pytest.mark.parametrize("role", ["tenant-admin", "operator"])
@pytest.mark.parametrize("method,path,body", ACCESS_CASES, ids=[f"{m} {p}" for m, p, _ in ACCESS_CASES])
def test_other_tenants_objects_are_404_and_unchanged(server, world, role, method, path, body):
    token = world.ta if role == "tenant-admin" else world.a_operator
    before = snapshot_b(server, world)
    url = path.format(dev=world.b_device, user=world.b_user, token=world.b_token_id, b=world.b)
    r = server.api(method, url, token=token, json=body)
    if role == "operator" and "/users" in path:
        assert_error(r, (403, 404))  # an operator may not touch users at all
    else:
        assert_error(r, 404, "not_found")
    assert snapshot_b(server, world) == before


LISTS = ["/api/v1/devices", "/api/v1/users", "/api/v1/tokens", "/api/v1/tenants", "/api/v1/audit"]


@pytest.mark.parametrize("path", LISTS)
def test_lists_of_a_never_contain_b(server, world, path):
    for token in (world.ta, world.a_operator, world.a_viewer):
        r = server.api("GET", path, token=token, params={"limit": 1000})
        if r.status_code == 403:
            continue  # the role may not read this list at all
        assert r.status_code == 200, describe(r)
        assert_no_b(world, r)


def assert_no_b(w, resp):
    text = resp.text
    assert w.b not in text, f"tenant B's name in A's response: {describe(resp)}"
    assert w.b_user_name not in text and "b-only" not in text and "B hall" not in text, describe(resp)
    body = resp.json()
    items = body.get("items", [body]) if isinstance(body, dict) else []
    for item in items:
        if "tenant" in item:
            assert item["tenant"] != w.b, describe(resp)


@pytest.mark.parametrize("role", ["tenant-admin", "operator", "viewer"])
@pytest.mark.parametrize("path", LISTS + ["/api/v1/devices/{dev}", "/api/v1/users/{user}"])
def test_tenant_param_is_ignored_or_refused_for_tenant_roles(server, world, role, path):
    token = {"tenant-admin": world.ta, "operator": world.a_operator, "viewer": world.a_viewer}[role]
    r = server.api("GET", path.format(dev=world.b_device, user=world.b_user), token=token, params={"tenant": world.b})
    assert r.status_code in (200, 403, 404), describe(r)
    if r.status_code == 200:
        assert_no_b(world, r)
    else:
        assert_error(r, (403, 404))


def test_tenant_param_cannot_write_into_b(server, world):
    before = snapshot_b(server, world)
    name = uniq("planted")
    r = server.api("POST", "/api/v1/devices", token=world.ta, params={"tenant": world.b}, json={"name": name})
    assert r.status_code in (201, 403), describe(r)
    b_names = [d["name"] for d in server.list_all("/api/v1/devices", world.tb)]
    assert name not in b_names, "tenant-admin of A created a device in B with ?tenant="
    if r.status_code == 201:
        assert name in [d["name"] for d in server.list_all("/api/v1/devices", world.ta)]
    for method, path, body in ACCESS_CASES:
        url = path.format(dev=world.b_device, user=world.b_user, token=world.b_token_id, b=world.b)
        r = server.api(method, url, token=world.ta, params={"tenant": world.b}, json=body)
        assert_error(r, (403, 404))
    assert snapshot_b(server, world) == before


def test_a_audit_never_shows_b_records(server, world):
    # B has done things (created a device, a user, a token); A's audit view must not show them.
    items = server.list_all("/api/v1/audit", world.ta, limit=1000)
    assert items, "A's own actions should be in its audit log"
    for rec in items:
        assert rec["tenant"] not in (world.b, server.tenant_id(world.b)), rec


def test_admin_acts_on_b_with_tenant_param(server, world):
    name = uniq("by-admin")
    r = server.api("POST", "/api/v1/devices", token=server.admin_token, params={"tenant": world.b},
                   json={"name": name})
    assert r.status_code == 201, describe(r)
    assert name in [d["name"] for d in server.list_all("/api/v1/devices", world.tb)]
    assert name not in [d["name"] for d in server.list_all("/api/v1/devices", world.ta)]
    r = server.api("DELETE", f"/api/v1/devices/{r.json()['id']}", token=server.admin_token, params={"tenant": world.b})
    assert r.status_code == 204, describe(r)


def test_regulator_reads_b(server, world):
    reg = world.regulator
    q = {"tenant": world.b}
    r = server.api("GET", "/api/v1/devices", token=reg, params=q)
    assert r.status_code == 200, describe(r)
    assert world.b_device in [d["id"] for d in r.json()["items"]]
    assert world.a_device not in [d["id"] for d in r.json()["items"]], "?tenant=B must show only B"
    r = server.api("GET", f"/api/v1/devices/{world.b_device}", token=reg, params=q)
    assert r.status_code == 200 and r.json()["location"] == "B hall", describe(r)
    r = server.api("GET", "/api/v1/users", token=reg, params=q)
    assert r.status_code == 200 and world.b_user in [u["id"] for u in r.json()["items"]], describe(r)
    r = server.api("GET", f"/api/v1/tenants/{world.b}", token=reg)
    assert r.status_code == 200 and r.json()["name"] == world.b, describe(r)
    assert_error(server.api("GET", "/api/v1/devices", token=reg, params={"tenant": uniq("no-such")}), 404)


REGULATOR_WRITES = [
    ("POST", "/api/v1/devices", {"name": "reg-planted"}),
    ("PATCH", "/api/v1/devices/{dev}", {"location": "moved by regulator"}),
    ("DELETE", "/api/v1/devices/{dev}", None),
    ("POST", "/api/v1/devices/{dev}/token", None),
    ("POST", "/api/v1/users", {"name": "reg-planted", "password": PASSWORD, "role": "viewer"}),
    ("PATCH", "/api/v1/users/{user}", {"disabled": True}),
    ("DELETE", "/api/v1/users/{user}", None),
    ("DELETE", "/api/v1/tokens/{token}", None),
    ("PATCH", "/api/v1/tenants/{b}", {"industry": "changed"}),
    ("DELETE", "/api/v1/tenants/{b}", None),
    ("POST", "/api/v1/tenants", {"name": "reg-planted"}),
]


@pytest.mark.parametrize("method,path,body", REGULATOR_WRITES, ids=[f"{m} {p}" for m, p, _ in REGULATOR_WRITES])
def test_regulator_cannot_change_b(server, world, method, path, body):
    before = snapshot_b(server, world)
    tenant_before = server.api("GET", f"/api/v1/tenants/{world.b}", token=server.admin_token).json()
    url = path.format(dev=world.b_device, user=world.b_user, token=world.b_token_id, b=world.b)
    r = server.api(method, url, token=world.regulator, params={"tenant": world.b}, json=body)
    if "/tokens/" in path:
        assert_error(r, (403, 404))  # the regulator may not even list B's tokens: not found is fine
    else:
        assert_error(r, 403, "permission_denied")
    assert snapshot_b(server, world) == before
    assert server.api("GET", f"/api/v1/tenants/{world.b}", token=server.admin_token).json() == tenant_before
    assert "reg-planted" not in [d["name"] for d in server.list_all("/api/v1/devices", world.tb)]
    assert "reg-planted" not in [u["name"] for u in server.list_all("/api/v1/users", world.tb)]
    assert_error(server.api("GET", "/api/v1/tenants/reg-planted", token=server.admin_token), 404)


def test_regulator_reads_and_refusals_are_audited(server, world):
    reg = world.regulator
    prefix = server.me(reg).json()["token_prefix"]
    assert server.api("GET", "/api/v1/devices", token=reg, params={"tenant": world.b}).status_code == 200
    assert_error(server.api("DELETE", f"/api/v1/devices/{world.b_device}", token=reg, params={"tenant": world.b}),
                 403)
    b_id = server.tenant_id(world.b)
    items = server.list_all("/api/v1/audit", server.admin_token, params={"tenant": world.b}, limit=1000)
    by_reg = [i for i in items if prefix in i["actor"]]
    reads = [i for i in by_reg if i["action"].endswith(".read") and i["result"] == "ok"]
    assert reads, f"no *.read record by the regulator ({prefix}) on B: {by_reg}"
    assert all(i["tenant"] in (world.b, b_id) for i in reads)
    assert any("device" in i["action"] for i in reads), reads
    # The refusal may be filed under the regulator's own tenant: look across all tenants.
    everything = server.list_all("/api/v1/audit", server.admin_token, limit=1000)
    denied = [i for i in everything if prefix in i["actor"] and i["result"] == "denied" and "device" in i["action"]]
    assert denied, f"the regulator's refused DELETE is not in the audit log: {[i for i in everything if prefix in i['actor']]}"
