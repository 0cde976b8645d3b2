"""Create, read, update, delete of tenants, users, tokens and devices over the API and the CLI;
device token issue and rotation; paging."""

import re

import pytest

from plateau_helpers import USER_PASSWORD, assert_error, describe, parse_time, uniq

TENANT_FIELDS = {"id", "name", "display_name", "prefecture", "industry", "created"}
USER_FIELDS = {"id", "name", "display_name", "role", "disabled", "created"}
DEVICE_FIELDS = {"id", "name", "type", "vendor", "product", "firmware", "location", "attributes", "token_prefix",
                 "created", "updated", "last_seen"}


@pytest.fixture(scope="module")
def tenant(server):
    return server.tenant_with_admin("crud")


def strip_volatile(obj):
    return {k: v for k, v in obj.items() if k not in ("last_seen", "last_used")}


# ---- CLI ----

def test_cli_tenant_create_prints_the_name_and_refuses_a_duplicate(server):
    name = server.create_tenant()  # asserts exit 0 and stdout == name
    cp = server.cli("tenant", "create", name, "--data", server.data)
    assert cp.returncode != 0, "a second tenant with the same name"
    r = server.api("GET", f"/api/v1/tenants/{name}", token=server.admin_token)
    assert r.status_code == 200 and r.json()["name"] == name


def test_cli_token_and_device_create_print_only_the_token(server, tenant):
    name, _ = tenant
    token = server.create_token(name, "viewer")  # asserts stdout is exactly one plt_ token
    me = server.me(token).json()
    assert (me["role"], me["tenant"], me["kind"]) == ("viewer", name, "token")
    dev_name = uniq("cli-dev")
    dtoken = server.create_device_cli(dev_name, name)  # asserts stdout is exactly one pld_ token
    me = server.me(dtoken)
    assert me.status_code == 200, describe(me)
    assert me.json()["kind"] == "device"
    assert me.json()["name"] == dev_name
    assert me.json()["tenant"] == name


def test_cli_user_create_can_log_in(server, tenant):
    name, ta = tenant
    user = uniq("cli-user")
    server.create_user_cli(user, name, "operator", password=USER_PASSWORD)
    listed = [u for u in server.list_all("/api/v1/users", ta) if u["name"] == user]
    assert len(listed) == 1 and listed[0]["role"] == "operator"
    session = server.login(user, USER_PASSWORD)
    me = server.me(session).json()
    assert (me["name"], me["role"], me["tenant"], me["kind"]) == (user, "operator", name, "user")


# ---- tenants ----

def test_tenant_crud_by_admin(server):
    admin = server.admin_token
    name = uniq("spring")
    body = {"name": name, "display_name": "ཆུ་དྭངས། 天然矿泉水 Spring Water", "prefecture": "Lhasa",
            "industry": "beverages"}
    r = server.api("POST", "/api/v1/tenants", token=admin, json=body)
    assert r.status_code == 201, describe(r)
    t = r.json()
    assert TENANT_FIELDS <= set(t), t
    assert {k: t[k] for k in body} == body
    parse_time(t["created"])

    got = server.api("GET", f"/api/v1/tenants/{name}", token=admin)
    assert got.status_code == 200 and got.json() == t
    assert [x["name"] for x in server.list_all("/api/v1/tenants", admin)].count(name) == 1

    assert_error(server.api("POST", "/api/v1/tenants", token=admin, json={"name": name}), 409, "already_exists")

    r = server.api("PATCH", f"/api/v1/tenants/{name}", token=admin, json={"industry": "water"})
    assert r.status_code == 200, describe(r)
    assert r.json()["industry"] == "water"
    assert r.json()["display_name"] == body["display_name"], "PATCH changed a field it was not given"
    assert server.api("GET", f"/api/v1/tenants/{name}", token=admin).json()["industry"] == "water"

    # Deleting a tenant deletes its tokens and devices.
    ta = server.create_token(name, "tenant-admin")
    dev = server.api("POST", "/api/v1/devices", token=ta, json={"name": "filler"})
    assert dev.status_code == 201, describe(dev)
    dtoken = dev.json()["token"]
    r = server.api("DELETE", f"/api/v1/tenants/{name}", token=admin)
    assert r.status_code == 204, describe(r)
    assert_error(server.api("GET", f"/api/v1/tenants/{name}", token=admin), 404, "not_found")
    assert name not in [x["name"] for x in server.list_all("/api/v1/tenants", admin)]
    assert_error(server.me(ta), 401)
    assert_error(server.me(dtoken), 401)
    assert_error(server.api("DELETE", f"/api/v1/tenants/{name}", token=admin), 404, "not_found")


def test_non_admin_sees_only_its_own_tenant(server, tenant):
    name, ta = tenant
    items = server.list_all("/api/v1/tenants", ta)
    assert [t["name"] for t in items] == [name]


# ---- users ----

def test_user_crud_by_tenant_admin(server, tenant):
    tname, ta = tenant
    name = uniq("tenzin")
    r = server.api("POST", "/api/v1/users", token=ta,
                   json={"name": name, "password": USER_PASSWORD, "role": "operator", "display_name": "Tenzin"})
    assert r.status_code == 201, describe(r)
    u = r.json()
    assert USER_FIELDS <= set(u), u
    assert (u["name"], u["role"], u["display_name"], u["disabled"]) == (name, "operator", "Tenzin", False)
    assert "password" not in r.text and "hash" not in r.text and USER_PASSWORD not in r.text
    uid = u["id"]

    got = server.api("GET", f"/api/v1/users/{uid}", token=ta)
    assert got.status_code == 200 and got.json() == u
    assert [x["id"] for x in server.list_all("/api/v1/users", ta)].count(uid) == 1
    assert_error(server.api("POST", "/api/v1/users", token=ta,
                            json={"name": name, "password": USER_PASSWORD, "role": "viewer"}), 409, "already_exists")

    r = server.api("PATCH", f"/api/v1/users/{uid}", token=ta, json={"display_name": "Tenzin D.", "role": "viewer"})
    assert r.status_code == 200, describe(r)
    assert (r.json()["display_name"], r.json()["role"]) == ("Tenzin D.", "viewer")
    assert server.api("GET", f"/api/v1/users/{uid}", token=ta).json()["role"] == "viewer"

    session = server.login(name, USER_PASSWORD)
    me = server.me(session).json()
    assert (me["name"], me["role"], me["tenant"], me["kind"]) == (name, "viewer", tname, "user")
    own = server.api("POST", "/api/v1/tokens", token=session, json={"name": "laptop"})
    assert own.status_code == 201, describe(own)
    own_token = own.json()["token"]
    assert own.json()["role"] == "viewer"

    # Disabling the user stops its session and tokens; enabling brings the token back.
    r = server.api("PATCH", f"/api/v1/users/{uid}", token=ta, json={"disabled": True})
    assert r.status_code == 200 and r.json()["disabled"] is True, describe(r)
    assert_error(server.me(session), 401)
    assert_error(server.me(own_token), 401)
    assert_error(server.login_raw(name, USER_PASSWORD), 401)
    r = server.api("PATCH", f"/api/v1/users/{uid}", token=ta, json={"disabled": False})
    assert r.status_code == 200 and r.json()["disabled"] is False, describe(r)
    assert server.me(own_token).status_code == 200

    # Deleting the user revokes its tokens.
    assert server.api("DELETE", f"/api/v1/users/{uid}", token=ta).status_code == 204
    assert_error(server.api("GET", f"/api/v1/users/{uid}", token=ta), 404, "not_found")
    assert uid not in [x["id"] for x in server.list_all("/api/v1/users", ta)]
    assert_error(server.me(own_token), 401)
    assert_error(server.api("DELETE", f"/api/v1/users/{uid}", token=ta), 404, "not_found")


def test_password_change_takes_effect(server, tenant):
    _, ta = tenant
    name = uniq("pw")
    u = server.api("POST", "/api/v1/users", token=ta, json={"name": name, "password": "first-password-1",
                                                            "role": "viewer"}).json()
    server.secrets.add("second-password-2")
    r = server.api("PATCH", f"/api/v1/users/{u['id']}", token=ta, json={"password": "second-password-2"})
    assert r.status_code == 200, describe(r)
    assert "second-password-2" not in r.text
    assert_error(server.login_raw(name, "first-password-1"), 401)
    assert server.login_raw(name, "second-password-2").status_code == 200


# ---- tokens ----

def test_token_create_list_revoke(server, tenant):
    tname, ta = tenant
    r = server.api("POST", "/api/v1/tokens", token=ta, json={"name": "grafana", "role": "viewer", "expires_in": "30d"})
    assert r.status_code == 201, describe(r)
    t = r.json()
    assert (t["name"], t["role"]) == ("grafana", "viewer")
    days = (parse_time(t["expires"]) - parse_time(t["created"])).total_seconds() / 86400
    assert 29.9 < days < 30.1, f"expires_in 30d gave {days} days"
    me = server.me(t["token"]).json()
    assert (me["role"], me["tenant"], me["kind"]) == ("viewer", tname, "token")
    assert t["id"] in [x["id"] for x in server.list_all("/api/v1/tokens", ta)]
    assert server.api("DELETE", f"/api/v1/tokens/{t['id']}", token=ta).status_code == 204
    assert_error(server.me(t["token"]), 401)


def test_operator_lists_only_its_own_tokens(server, tenant):
    _, ta = tenant
    name = uniq("op")
    r = server.api("POST", "/api/v1/users", token=ta, json={"name": name, "password": USER_PASSWORD, "role": "operator"})
    assert r.status_code == 201, describe(r)
    op = server.login(name, USER_PASSWORD)
    mine = server.api("POST", "/api/v1/tokens", token=op, json={"name": "op-own"})
    assert mine.status_code == 201, describe(mine)
    mine = mine.json()
    other = server.api("POST", "/api/v1/tokens", token=ta, json={"name": "ta-own"}).json()
    ids = [x["id"] for x in server.list_all("/api/v1/tokens", op)]
    assert mine["id"] in ids, "an operator does not see its own token"
    assert other["id"] not in ids, "an operator sees another holder's token"
    assert_error(server.api("DELETE", f"/api/v1/tokens/{other['id']}", token=op), (403, 404))
    assert server.me(other["token"]).status_code == 200
    # ... and the tenant-admin sees both.
    ids = [x["id"] for x in server.list_all("/api/v1/tokens", ta)]
    assert mine["id"] in ids and other["id"] in ids


# ---- devices ----

def test_device_crud_and_token_rotation(server, tenant):
    tname, ta = tenant
    body = {"name": "臭氧发生器-1 ozone", "type": "ozone-generator", "vendor": "Acme", "product": "OZ-200",
            "firmware": "2.1.7", "location": "line 1", "attributes": {"line": 1, "max_ppm": 0.4, "tags": ["a"]}}
    r = server.api("POST", "/api/v1/devices", token=ta, json=body)
    assert r.status_code == 201, describe(r)
    d = r.json()
    assert DEVICE_FIELDS <= set(d), d
    assert {k: d[k] for k in body} == body
    token = d["token"]
    assert token.startswith("pld_") and token.startswith(d["token_prefix"])
    did = d["id"]

    got = server.api("GET", f"/api/v1/devices/{did}", token=ta)
    assert got.status_code == 200, describe(got)
    got = got.json()
    assert "token" not in got, "the device token is shown only at creation"
    assert {k: got[k] for k in body} == body
    assert got["token_prefix"] == d["token_prefix"]
    assert [x["id"] for x in server.list_all("/api/v1/devices", ta)].count(did) == 1

    me = server.me(token)
    assert me.status_code == 200, describe(me)
    assert (me.json()["kind"], me.json()["name"], me.json()["tenant"]) == ("device", body["name"], tname)

    assert_error(server.api("POST", "/api/v1/devices", token=ta, json={"name": body["name"]}), 409, "already_exists")

    r = server.api("PATCH", f"/api/v1/devices/{did}", token=ta, json={"location": "line 2", "firmware": "2.2.0"})
    assert r.status_code == 200, describe(r)
    p = r.json()
    assert (p["location"], p["firmware"], p["name"], p["vendor"]) == ("line 2", "2.2.0", body["name"], "Acme")
    assert parse_time(p["updated"]) >= parse_time(p["created"])
    assert server.api("GET", f"/api/v1/devices/{did}", token=ta).json()["location"] == "line 2"

    # Rotation: the new token works, the old one stops at once.
    r = server.api("POST", f"/api/v1/devices/{did}/token", token=ta)
    assert r.status_code == 200, describe(r)
    new = r.json()
    assert new["token"].startswith("pld_") and new["token"] != token
    assert new["token"].startswith(new["token_prefix"])
    assert_error(server.me(token), 401)
    assert server.me(new["token"]).status_code == 200
    assert server.api("GET", f"/api/v1/devices/{did}", token=ta).json()["token_prefix"] == new["token_prefix"]

    assert server.api("DELETE", f"/api/v1/devices/{did}", token=ta).status_code == 204
    assert_error(server.api("GET", f"/api/v1/devices/{did}", token=ta), 404, "not_found")
    assert did not in [x["id"] for x in server.list_all("/api/v1/devices", ta)]
    assert_error(server.me(new["token"]), 401)
    assert_error(server.api("DELETE", f"/api/v1/devices/{did}", token=ta), 404, "not_found")


def test_same_device_name_in_two_tenants(server, tenant):
    _, ta = tenant
    _, tb = server.tenant_with_admin("other")
    assert server.api("POST", "/api/v1/devices", token=ta, json={"name": "compressor"}).status_code == 201
    assert server.api("POST", "/api/v1/devices", token=tb, json={"name": "compressor"}).status_code == 201


def test_paging_over_25_devices_sees_each_once(server):
    _, ta = server.tenant_with_admin("paging")
    created = set()
    for i in range(25):
        r = server.api("POST", "/api/v1/devices", token=ta, json={"name": f"sensor-{i:02d}"})
        assert r.status_code == 201, describe(r)
        created.add(r.json()["id"])

    seen, pages, params = [], 0, {"limit": 7}
    while True:
        r = server.api("GET", "/api/v1/devices", token=ta, params=params)
        assert r.status_code == 200, describe(r)
        body = r.json()
        pages += 1
        assert len(body["items"]) <= 7
        seen += [d["id"] for d in body["items"]]
        if "next" not in body or not body["next"]:
            assert "next" not in body, "next must be absent on the last page"
            break
        assert pages < 10, "paging does not end"
        params = {"limit": 7, "after": body["next"]}
    assert sorted(seen) == sorted(created), "every device exactly once"
    assert pages == 4, f"25 items at 7 a page is 4 pages, got {pages}"

    # The default page (100) holds all 25, without next.
    body = server.api("GET", "/api/v1/devices", token=ta).json()
    assert len(body["items"]) == 25 and "next" not in body
    # limit=25 exactly: one page; a following page, if offered, is empty.
    body = server.api("GET", "/api/v1/devices", token=ta, params={"limit": 25}).json()
    assert len(body["items"]) == 25
    if body.get("next"):
        rest = server.api("GET", "/api/v1/devices", token=ta, params={"limit": 25, "after": body["next"]}).json()
        assert rest["items"] == [] and "next" not in rest


def test_paging_is_stable_while_items_are_added(server):
    _, ta = server.tenant_with_admin("paging2")
    for i in range(6):
        assert server.api("POST", "/api/v1/devices", token=ta, json={"name": f"d{i}"}).status_code == 201
    first = server.api("GET", "/api/v1/devices", token=ta, params={"limit": 3}).json()
    assert server.api("POST", "/api/v1/devices", token=ta, json={"name": "late"}).status_code == 201
    rest = server.list_all("/api/v1/devices", ta, params={"after": first["next"]}, limit=3)
    names = [d["name"] for d in first["items"]] + [d["name"] for d in rest]
    assert len(names) == len(set(names)) == 7, names
