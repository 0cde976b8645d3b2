"""Login, sessions, API tokens (creation, listing, revocation, expiry), device tokens, and the
login rate limit. Logins cost an Argon2id verification each, so the tests log in sparingly and use
CLI-made API tokens elsewhere."""

import datetime as dt
import time

import pytest

from plateau_helpers import ADMIN_PASSWORD, assert_error, describe, parse_time, uniq


@pytest.fixture(scope="module")
def tenant(server):
    """(name, tenant-admin token) of a tenant of this module."""
    return server.tenant_with_admin("auth")


def test_login_returns_a_session_that_me_describes(server):
    r = server.login_raw("admin", ADMIN_PASSWORD)
    assert r.status_code == 200, describe(r)
    body = r.json()
    token = body["token"]
    assert token.startswith("pls_")
    assert parse_time(body["expires"]) > dt.datetime.now(dt.timezone.utc)
    assert body["user"]["name"] == "admin"
    assert body["user"]["role"] == "admin"
    assert "password" not in r.text and ADMIN_PASSWORD not in r.text, "login response shows a password (hash)"

    me = server.me(token)
    assert me.status_code == 200, describe(me)
    me = me.json()
    assert me["name"] == "admin"
    assert me["role"] == "admin"
    assert me["tenant"] == "region"
    assert me["kind"] == "user"
    assert token.startswith(me["token_prefix"]) and me["token_prefix"] != token


def test_logout_revokes_the_session(server):
    token = server.login("admin", ADMIN_PASSWORD)
    assert server.me(token).status_code == 200
    r = server.api("POST", "/api/v1/logout", token=token)
    assert r.status_code == 204, describe(r)
    assert_error(server.me(token), 401, "unauthenticated")
    assert_error(server.api("POST", "/api/v1/logout", token=token), 401)
    # The admin's other credentials are unaffected.
    assert server.me(server.admin_token).status_code == 200


def test_wrong_password_and_unknown_user_get_the_same_401(server):
    wrong = server.login_raw("admin", "not-the-password-1")
    unknown = server.login_raw(uniq("nobody"), "not-the-password-1")
    assert_error(wrong, 401, "unauthenticated")
    assert_error(unknown, 401, "unauthenticated")
    assert wrong.json() == unknown.json(), "the answers differ, so they reveal which user names exist"
    assert "token" not in wrong.json()


@pytest.mark.parametrize("authorization", [
    None,
    "Bearer",
    "Bearer ",
    "Bearer plt_" + "A" * 43,
    "Bearer pls_" + "A" * 43,
    "Bearer pld_" + "A" * 43,
    "Bearer not-a-plateau-token",
    "Basic YWRtaW46Y29ycmVjdC1ob3JzZS1iYXR0ZXJ5LTk=",
    "Bearer " + "x" * 5000,
], ids=["none", "bearer-only", "bearer-empty", "unknown-plt", "unknown-pls", "unknown-pld", "garbage", "basic",
        "huge"])
def test_missing_or_unknown_credentials_are_401(server, authorization):
    headers = {"Authorization": authorization} if authorization is not None else {}
    assert_error(server.api("GET", "/api/v1/me", headers=headers), 401, "unauthenticated")
    assert_error(server.api("GET", "/api/v1/devices", headers=headers), 401, "unauthenticated")


def test_api_token_is_shown_once_and_listed_by_prefix(server, tenant):
    name, ta = tenant
    r = server.api("POST", "/api/v1/tokens", token=ta, json={"name": "erp-upload"})
    assert r.status_code == 201, describe(r)
    created = r.json()
    token = created["token"]
    assert token.startswith("plt_")
    assert created["name"] == "erp-upload"
    assert created["role"] == "tenant-admin", "role defaults to the caller's"
    assert token.startswith(created["prefix"]) and created["prefix"] != token
    assert not created.get("revoked")

    listing = server.api("GET", "/api/v1/tokens", token=ta)
    assert listing.status_code == 200, describe(listing)
    assert token not in listing.text, "the list shows the token itself"
    mine = [t for t in listing.json()["items"] if t["id"] == created["id"]]
    assert len(mine) == 1
    assert mine[0]["prefix"] == created["prefix"]
    assert "token" not in mine[0]
    for field in ("id", "name", "prefix", "role", "created", "expires", "last_used", "revoked"):
        assert field in mine[0], f"token list item lacks {field!r}: {mine[0]}"

    me = server.me(token)
    assert me.status_code == 200, describe(me)
    assert me.json()["kind"] == "token"
    assert me.json()["role"] == "tenant-admin"
    assert me.json()["tenant"] == name
    assert me.json()["token_prefix"] == created["prefix"]


def test_revoked_token_is_401_and_stays_listed(server, tenant):
    _, ta = tenant
    created = server.api("POST", "/api/v1/tokens", token=ta, json={"name": "to-revoke"}).json()
    assert server.me(created["token"]).status_code == 200
    r = server.api("DELETE", f"/api/v1/tokens/{created['id']}", token=ta)
    assert r.status_code == 204, describe(r)
    assert_error(server.me(created["token"]), 401, "unauthenticated")
    listed = [t for t in server.list_all("/api/v1/tokens", ta) if t["id"] == created["id"]]
    assert len(listed) == 1, "a revoked token stays listed"
    assert listed[0]["revoked"] not in (None, False, "", 0), listed[0]


def test_expired_token_is_401(server, tenant):
    _, ta = tenant
    r = server.api("POST", "/api/v1/tokens", token=ta, json={"name": "short-lived", "expires_in": "2s"})
    assert r.status_code == 201, describe(r)
    created = r.json()
    lifetime = (parse_time(created["expires"]) - parse_time(created["created"])).total_seconds()
    assert 1.0 <= lifetime <= 3.0, f"expires_in 2s gave a lifetime of {lifetime}s"
    assert server.me(created["token"]).status_code == 200
    time.sleep(3.2)
    assert_error(server.me(created["token"]), 401, "unauthenticated")


@pytest.mark.parametrize("method,path,body", [
    ("GET", "/api/v1/devices", None),
    ("POST", "/api/v1/devices", {"name": "rogue"}),
    ("GET", "/api/v1/devices/{id}", None),
    ("PATCH", "/api/v1/devices/{id}", {"location": "elsewhere"}),
    ("POST", "/api/v1/devices/{id}/token", None),
    ("GET", "/api/v1/users", None),
    ("POST", "/api/v1/users", {"name": "rogue", "password": "rogue-password", "role": "viewer"}),
    ("GET", "/api/v1/tokens", None),
    ("POST", "/api/v1/tokens", {"name": "rogue"}),
    ("GET", "/api/v1/tenants", None),
    ("GET", "/api/v1/audit", None),
])
def test_device_token_cannot_call_user_apis(server, tenant, method, path, body):
    _, ta = tenant
    dev = server.api("POST", "/api/v1/devices", token=ta, json={"name": uniq("dev")})
    assert dev.status_code == 201, describe(dev)
    dev = dev.json()
    r = server.api(method, path.format(id=dev["id"]), token=dev["token"], json=body)
    assert_error(r, (401, 403))
    after = server.api("GET", f"/api/v1/devices/{dev['id']}", token=ta).json()
    assert after["location"] == dev.get("location") and after["token_prefix"] == dev["token_prefix"]
    assert server.me(dev["token"]).status_code == 200, "the device token itself still works"


def test_login_rate_limit_429_after_10_failures(fresh_server):
    s = fresh_server
    for i in range(10):
        assert_error(s.login_raw("admin", f"wrong-password-{i}"), 401, "unauthenticated")
    assert_error(s.login_raw("admin", "wrong-password-10"), 429, "resource_exhausted")
    # For the rest of the window, even the right password is refused from this address ...
    assert_error(s.login_raw("admin", ADMIN_PASSWORD), 429, "resource_exhausted")
    # ... but the limit is on logins: tokens keep working.
    assert s.me(s.admin_token).status_code == 200
    assert s.api("GET", "/healthz").status_code == 200
