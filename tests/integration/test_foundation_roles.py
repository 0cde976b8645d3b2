"""The role table of docs/api.md as a matrix: every role against every endpoint of the foundation,
and who may grant which role. A refused request must change nothing.

Admin and regulator act on the test tenant T through `?tenant=T`; the tenant roles act on their
own tenant T; the device role uses a device token of T."""

import types

import pytest

from plateau_helpers import USER_PASSWORD, assert_error, describe, uniq

ROLES = ["admin", "regulator", "tenant-admin", "operator", "viewer", "device"]
USER_ROLES = ROLES[:-1]
CROSS = {"admin", "regulator"}


@pytest.fixture(scope="module")
def rt(server):
    ns = types.SimpleNamespace()
    ns.tenant = server.create_tenant(uniq("roles"))
    ns.tokens = {
        "admin": server.admin_token,
        "regulator": server.create_token("region", "regulator"),
        "tenant-admin": server.create_token(ns.tenant, "tenant-admin"),
        "operator": server.create_token(ns.tenant, "operator"),
        "viewer": server.create_token(ns.tenant, "viewer"),
        "device": server.create_device_cli(uniq("role-dev"), ns.tenant),
    }
    ns.ta = ns.tokens["tenant-admin"]
    return ns


# ---- objects each case works on, made by the tenant-admin, and checks that they are unchanged ----

def make_device(server, rt):
    r = server.api("POST", "/api/v1/devices", token=rt.ta, json={"name": uniq("rd"), "location": "orig"})
    assert r.status_code == 201, describe(r)
    return {"dev": r.json()["id"], "dev_token": r.json()["token"]}


def make_user(server, rt):
    r = server.api("POST", "/api/v1/users", token=rt.ta,
                   json={"name": uniq("ru"), "password": USER_PASSWORD, "role": "viewer", "display_name": "orig"})
    assert r.status_code == 201, describe(r)
    return {"user": r.json()["id"]}


def make_token(server, rt):
    r = server.api("POST", "/api/v1/tokens", token=rt.ta, json={"name": "victim", "role": "viewer"})
    assert r.status_code == 201, describe(r)
    return {"token": r.json()["id"], "token_secret": r.json()["token"]}


def make_tenant(server, rt, role):
    # An admin really deletes: give it a throwaway tenant. Others try their own (readable) one.
    return {"del_tenant": server.create_tenant(uniq("doomed")) if role in CROSS else rt.tenant}


def device_unchanged(server, rt, ctx):
    r = server.api("GET", f"/api/v1/devices/{ctx['dev']}", token=rt.ta)
    assert r.status_code == 200 and r.json()["location"] == "orig", describe(r)
    assert server.me(ctx["dev_token"]).status_code == 200, "the device token stopped working"


def user_unchanged(server, rt, ctx):
    r = server.api("GET", f"/api/v1/users/{ctx['user']}", token=rt.ta)
    assert r.status_code == 200 and r.json()["display_name"] == "orig" and r.json()["disabled"] is False, describe(r)


def token_unchanged(server, rt, ctx):
    assert server.me(ctx["token_secret"]).status_code == 200


def tenant_unchanged(server, rt, ctx):
    name = ctx.get("del_tenant", rt.tenant)
    r = server.api("GET", f"/api/v1/tenants/{name}", token=server.admin_token)
    assert r.status_code == 200, describe(r)
    assert r.json()["industry"] != ctx["new_name"], "a refused PATCH changed the tenant"


def no_new(kind):
    def check(server, rt, ctx):
        names = [x["name"] for x in server.list_all(f"/api/v1/{kind}", rt.ta if kind != "tenants" else server.admin_token)]
        assert ctx["new_name"] not in names, f"a refused POST /api/v1/{kind} created {ctx['new_name']}"
    return check


ALL = set(USER_ROLES)
WRITERS = {"admin", "tenant-admin", "operator"}
MANAGERS = {"admin", "tenant-admin"}
READERS_USERS = {"admin", "regulator", "tenant-admin"}

# name: (method, path, body(ctx), setup, allowed roles, success status, scoped, check, roles not decided by the docs)
CASES = {
    "tenants.list": ("GET", "/api/v1/tenants", None, None, ALL, 200, False, None, set()),
    "tenants.get": ("GET", "/api/v1/tenants/{tenant}", None, None, ALL, 200, False, None, set()),
    "tenants.create": ("POST", "/api/v1/tenants", lambda c: {"name": c["new_name"]}, None, {"admin"}, 201, False,
                       no_new("tenants"), set()),
    "tenants.update": ("PATCH", "/api/v1/tenants/{tenant}", lambda c: {"industry": c["new_name"]}, None, {"admin"}, 200,
                       False, tenant_unchanged, set()),
    "tenants.delete": ("DELETE", "/api/v1/tenants/{del_tenant}", None, "tenant", {"admin"}, 204, False,
                       tenant_unchanged, set()),
    "users.list": ("GET", "/api/v1/users", None, None, READERS_USERS, 200, True, None, set()),
    "users.get": ("GET", "/api/v1/users/{user}", None, make_user, READERS_USERS, 200, True, None, set()),
    "users.create": ("POST", "/api/v1/users",
                     lambda c: {"name": c["new_name"], "password": USER_PASSWORD, "role": "viewer"}, None, MANAGERS,
                     201, True, no_new("users"), set()),
    "users.update": ("PATCH", "/api/v1/users/{user}", lambda c: {"display_name": "changed"}, make_user, MANAGERS, 200,
                     True, user_unchanged, set()),
    "users.delete": ("DELETE", "/api/v1/users/{user}", None, make_user, MANAGERS, 204, True, user_unchanged, set()),
    "tokens.list": ("GET", "/api/v1/tokens", None, None, {"admin", "tenant-admin", "operator", "viewer"}, 200, True,
                    None, {"regulator"}),
    # The matrix runs on CLI tokens, which belong to no user: of those only managers may mint
    # tokens (a user-less token could not see or revoke what it made). Signed-in users of every
    # role make their own: test_every_user_role_manages_its_own_tokens.
    "tokens.create_own": ("POST", "/api/v1/tokens", lambda c: {"name": "own"}, None, {"admin", "tenant-admin"}, 201,
                          False, None, set()),
    "tokens.revoke_others": ("DELETE", "/api/v1/tokens/{token}", None, make_token, MANAGERS, 204, True,
                             token_unchanged, set()),
    "devices.list": ("GET", "/api/v1/devices", None, None, ALL, 200, True, None, set()),
    "devices.get": ("GET", "/api/v1/devices/{dev}", None, make_device, ALL, 200, True, None, set()),
    "devices.create": ("POST", "/api/v1/devices", lambda c: {"name": c["new_name"]}, None, WRITERS, 201, True,
                       no_new("devices"), set()),
    "devices.update": ("PATCH", "/api/v1/devices/{dev}", lambda c: {"location": "changed"}, make_device, WRITERS, 200,
                       True, device_unchanged, set()),
    "devices.delete": ("DELETE", "/api/v1/devices/{dev}", None, make_device, WRITERS, 204, True, device_unchanged,
                       set()),
    "devices.token": ("POST", "/api/v1/devices/{dev}/token", None, make_device, WRITERS, 200, True, device_unchanged,
                      set()),
    "audit.read": ("GET", "/api/v1/audit", None, None, READERS_USERS, 200, True, None, set()),
}

PARAMS = [(case, role) for case, spec in CASES.items() for role in ROLES if role not in spec[8]]


@pytest.mark.parametrize("case,role", PARAMS, ids=[f"{c}-{r}" for c, r in PARAMS])
def test_role_matrix(server, rt, case, role):
    method, path, body, setup, allowed, ok_status, scoped, check, _ = CASES[case]
    ctx = {"tenant": rt.tenant, "new_name": uniq("new")}
    if setup == "tenant":
        ctx.update(make_tenant(server, rt, role))
    elif setup:
        ctx.update(setup(server, rt))
    params = {"tenant": rt.tenant} if scoped and role in CROSS else None
    r = server.api(method, path.format(**ctx), token=rt.tokens[role], json=body(ctx) if body else None,
                   params=params)
    if role in allowed:
        assert r.status_code == ok_status, f"{role} should be allowed {case}: {describe(r)}"
        return
    if role == "device":
        assert_error(r, (401, 403))
    elif case == "tokens.revoke_others":
        assert_error(r, (403, 404))  # not theirs: refused, or not even visible
    else:
        assert_error(r, 403, "permission_denied")
    if check:
        check(server, rt, ctx)


@pytest.fixture(scope="module")
def sessions(server, rt):
    """A logged-in user of every user role (admin and regulator in "region", the others in T)."""
    out = {}
    for role in USER_ROLES:
        name = uniq(f"s-{role}")
        server.create_user_cli(name, "region" if role in CROSS else rt.tenant, role, password=USER_PASSWORD)
        out[role] = server.login(name, USER_PASSWORD)
    return out


@pytest.mark.parametrize("role", USER_ROLES)
def test_every_user_role_manages_its_own_tokens(server, rt, sessions, role):
    session = sessions[role]
    r = server.api("POST", "/api/v1/tokens", token=session, json={"name": "mine"})
    assert r.status_code == 201, describe(r)
    created = r.json()
    assert created["role"] == role, "a token's role defaults to its creator's"
    assert server.me(created["token"]).json()["role"] == role
    if role != "regulator":  # the table gives the regulator no token listing; its own is not specified
        ids = [t["id"] for t in server.list_all("/api/v1/tokens", session)]
        assert created["id"] in ids, f"the {role}'s own new token is not in its list"
    r = server.api("DELETE", f"/api/v1/tokens/{created['id']}", token=session)
    assert r.status_code == 204, describe(r)
    assert_error(server.me(created["token"]), 401)


# (granter, what, role granted, allowed)
GRANTS = [
    ("tenant-admin", "tokens", "admin", False),
    ("tenant-admin", "tokens", "regulator", False),
    ("tenant-admin", "tokens", "tenant-admin", True),
    ("tenant-admin", "tokens", "operator", True),
    ("tenant-admin", "tokens", "viewer", True),
    ("operator", "tokens", "tenant-admin", False),
    ("operator", "tokens", "admin", False),
    ("operator", "tokens", "viewer", True),
    ("viewer", "tokens", "operator", False),
    ("regulator", "tokens", "admin", False),
    ("admin", "tokens", "regulator", True),
    ("tenant-admin", "users", "admin", False),
    ("tenant-admin", "users", "regulator", False),
    ("tenant-admin", "users", "tenant-admin", True),
    ("tenant-admin", "users", "operator", True),
    ("tenant-admin", "users", "viewer", True),
    ("admin", "users", "regulator", True),
    ("admin", "users", "admin", True),
]


@pytest.mark.parametrize("granter,what,role,allowed", GRANTS, ids=[f"{g}-{w}-{r}" for g, w, r, _ in GRANTS])
def test_roles_granted_at_or_below_own(server, rt, sessions, granter, what, role, allowed):
    # Tokens are minted by signed-in users (user-less CLI tokens may not, unless managers).
    token = sessions[granter] if what == "tokens" else rt.tokens[granter]
    name = uniq("grant")
    body = {"name": name, "role": role}
    if what == "users":
        body["password"] = USER_PASSWORD
    r = server.api("POST", f"/api/v1/{what}", token=token, json=body)
    if allowed:
        assert r.status_code == 201, describe(r)
        assert r.json()["role"] == role
        if what == "tokens":
            assert server.me(r.json()["token"]).json()["role"] == role
        return
    assert_error(r, 403, "permission_denied")
    lister = server.admin_token if granter in CROSS else rt.ta
    names = [x["name"] for x in server.list_all(f"/api/v1/{what}", lister)]
    assert name not in names, f"refused grant of {role} still created {name}"


@pytest.mark.parametrize("what", ["users", "tokens"])
def test_device_is_not_a_grantable_role(server, rt, what):
    body = {"name": uniq("dev-role"), "role": "device"}
    if what == "users":
        body["password"] = USER_PASSWORD
    assert_error(server.api("POST", f"/api/v1/{what}", token=server.admin_token, json=body), (400, 403))


def test_tenant_admin_cannot_promote_a_user_to_admin(server, rt):
    uid = make_user(server, rt)["user"]
    for role in ("admin", "regulator"):
        assert_error(server.api("PATCH", f"/api/v1/users/{uid}", token=rt.ta, json={"role": role}), 403,
                     "permission_denied")
    assert server.api("GET", f"/api/v1/users/{uid}", token=rt.ta).json()["role"] == "viewer"
    r = server.api("PATCH", f"/api/v1/users/{uid}", token=rt.ta, json={"role": "operator"})
    assert r.status_code == 200 and r.json()["role"] == "operator", describe(r)
