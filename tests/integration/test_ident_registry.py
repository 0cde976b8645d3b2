"""Identifier registry over HTTP: prefixes and delegation, ownership between tenants, typed
values and reserved types, restricted values, templates, the Handle REST API's shapes and
status/response-code pairs, bulk registration with its report, statistics, audit, CLI import,
and bad input on every path."""

import json
import time

import pytest

from ident_helpers import make_prefix, put_handle, text_value, url_value
from plateau_helpers import assert_error, uniq


@pytest.fixture(scope="module")
def reg(server):
    a, a_tok = server.tenant_with_admin("water")
    b, b_tok = server.tenant_with_admin("cement")
    pa = make_prefix(server, "88.118.21", a)
    pb = make_prefix(server, "88.118.22", b)
    return {"a": a, "a_tok": a_tok, "b": b, "b_tok": b_tok, "pa": pa, "pb": pb}


def test_put_get_shapes(server, reg):
    h = f"{reg['pa']}/bottle-1"
    r = put_handle(server, reg["a_tok"], h, [
        url_value(1, "https://water.example.com/lot/1"),
        text_value(2, "EMAIL", "quality@water.example.com"),
        {"index": 100, "type": "HS_ADMIN", "data": {"format": "admin", "value": {"handle": f"0.NA/{reg['pa']}", "index": 200, "permissions": "011111111111"}}},
        text_value(3, "DESC", "Spring water 500 ml", ttl=3600),
    ], expect=201)
    assert r.json() == {"responseCode": 1, "handle": h}
    r = server.api("GET", f"/api/handles/{h}")
    assert r.status_code == 200
    body = r.json()
    assert body["responseCode"] == 1 and body["handle"] == h
    by_index = {v["index"]: v for v in body["values"]}
    assert by_index[1]["type"] == "URL"
    assert by_index[1]["data"] == {"format": "string", "value": "https://water.example.com/lot/1"}
    assert by_index[3]["ttl"] == 3600 and by_index[1]["ttl"] == 86400
    assert by_index[100]["data"]["format"] == "admin"
    assert by_index[100]["data"]["value"] == {"handle": f"0.NA/{reg['pa']}", "index": 200, "permissions": "011111111111"}
    for v in body["values"]:
        assert v["timestamp"].endswith("Z")
    # Replacing: 200, and the values are the new ones.
    r = put_handle(server, reg["a_tok"], h, [url_value(1, "https://water.example.com/lot/1b")], expect=200)
    assert server.api("GET", f"/api/handles/{h}").json()["values"][0]["data"]["value"].endswith("1b")
    # overwrite=false on an existing handle: 409 / 101.
    r = server.api("PUT", f"/api/handles/{h}", token=reg["a_tok"], json={"values": []}, params={"overwrite": "false"})
    assert r.status_code == 409 and r.json()["responseCode"] == 101
    assert_error(r, 409)
    # Case-insensitive handle names.
    assert server.api("GET", f"/api/handles/{h.upper()}").status_code == 200


def test_filters_and_codes(server, reg):
    h = f"{reg['pa']}/filters"
    put_handle(server, reg["a_tok"], h, [
        url_value(1, "https://e.example.com/"), url_value(2, "https://e.example.com/ja", type="URL.ja"),
        text_value(3, "EMAIL", "a@e.example.com"), text_value(4, "DESC", "d"),
    ])
    def idx(params):
        r = server.api("GET", f"/api/handles/{h}", params=params)
        return r.status_code, sorted(v["index"] for v in r.json().get("values", []))
    assert idx({"type": "URL"}) == (200, [1])
    assert idx({"type": "URL."}) == (200, [1, 2])
    assert idx([("type", "EMAIL"), ("type", "DESC")]) == (200, [3, 4])
    assert idx([("index", "1"), ("index", "4")]) == (200, [1, 4])
    assert idx([("index", "3"), ("type", "URL")]) == (200, [1, 3])
    # No value matches: 400 / 200, as the pairs of Handle.net.
    r = server.api("GET", f"/api/handles/{h}", params={"type": "NOPE"})
    assert r.status_code == 400 and r.json()["responseCode"] == 200
    # Not found: 404 / 100; invalid handle: 400 / 102.
    r = server.api("GET", f"/api/handles/{reg['pa']}/nope")
    assert r.status_code == 404 and r.json()["responseCode"] == 100
    assert_error(r, 404)
    r = server.api("GET", "/api/handles/0bad..prefix/x")
    assert r.status_code == 400 and r.json()["responseCode"] == 102
    r = server.api("GET", f"/api/handles/{h}", params={"index": "x"})
    assert r.status_code == 400


def test_restricted_values(server, reg):
    h = f"{reg['pa']}/restricted"
    put_handle(server, reg["a_tok"], h, [url_value(1, "https://p.example.com/"),
                                         text_value(2, "SUPPLIER_PRICE", "4.20 CNY", restricted=True)])
    anon = server.api("GET", f"/api/handles/{h}").json()
    assert [v["index"] for v in anon["values"]] == [1]
    owner = server.api("GET", f"/api/handles/{h}", token=reg["a_tok"]).json()
    assert sorted(v["index"] for v in owner["values"]) == [1, 2]
    assert [v for v in owner["values"] if v["index"] == 2][0]["restricted"] is True
    other = server.api("GET", f"/api/handles/{h}", token=reg["b_tok"]).json()
    assert [v["index"] for v in other["values"]] == [1]
    po = server.api("GET", f"/api/handles/{h}", token=reg["a_tok"], params={"publicOnly": "true"}).json()
    assert [v["index"] for v in po["values"]] == [1]
    # A bad token on a read is refused, not silently anonymous.
    r = server.api("GET", f"/api/handles/{h}", token="plt_" + "x" * 43)
    assert r.status_code == 401


def test_ownership(server, reg):
    # B cannot write under A's prefix, nor delete A's identifiers.
    r = server.api("PUT", f"/api/handles/{reg['pa']}/intruder", token=reg["b_tok"], json={"values": []})
    assert r.status_code == 403 and r.json()["responseCode"] == 400
    assert_error(r, 403)
    put_handle(server, reg["a_tok"], f"{reg['pa']}/mine", [url_value(1, "https://a.example.com/")])
    r = server.api("DELETE", f"/api/handles/{reg['pa']}/mine", token=reg["b_tok"])
    assert r.status_code == 404
    assert server.api("GET", f"/api/handles/{reg['pa']}/mine").status_code == 200
    # A prefix not held by this node.
    r = server.api("PUT", "/api/handles/99.99/x", token=reg["a_tok"], json={"values": []})
    assert r.status_code == 404
    # No token: 401 / 402; a viewer: 403.
    r = server.api("PUT", f"/api/handles/{reg['pa']}/anon", json={"values": []})
    assert r.status_code == 401 and r.json()["responseCode"] == 402
    viewer = server.create_token(reg["a"], "viewer")
    r = server.api("PUT", f"/api/handles/{reg['pa']}/v", token=viewer, json={"values": []})
    assert r.status_code == 403
    # The owner deletes: 200 / 1, then 404 / 100.
    r = server.api("DELETE", f"/api/handles/{reg['pa']}/mine", token=reg["a_tok"])
    assert r.status_code == 200 and r.json() == {"responseCode": 1, "handle": f"{reg['pa']}/mine"}
    r = server.api("DELETE", f"/api/handles/{reg['pa']}/mine", token=reg["a_tok"])
    assert r.status_code == 404 and r.json()["responseCode"] == 100


def test_prefix_api_and_delegation(server, reg):
    # A tenant-admin delegates under its own prefix, not at the top, not under another's.
    r = server.api("POST", "/api/v1/ident/prefixes", token=reg["a_tok"], json={"prefix": f"{reg['pa']}.3"})
    assert r.status_code == 201, r.text
    assert r.json()["prefix"] == f"{reg['pa']}.3" and r.json()["tenant"] == reg["a"]
    assert_error(server.api("POST", "/api/v1/ident/prefixes", token=reg["a_tok"], json={"prefix": "77.1"}), 403)
    assert_error(server.api("POST", "/api/v1/ident/prefixes", token=reg["a_tok"], json={"prefix": f"{reg['pb']}.1"}), 403)
    assert_error(server.api("POST", "/api/v1/ident/prefixes", token=reg["a_tok"], json={"prefix": "bad..p"}), 400)
    assert_error(server.api("POST", "/api/v1/ident/prefixes", token=reg["a_tok"], json={"prefix": f"{reg['pa']}.3"}), 409)
    assert_error(server.api("POST", "/api/v1/ident/prefixes", token=reg["a_tok"], json={"prefix": "77.2", "tenant": reg["b"]}), 403)
    # The admin allocates anywhere, to any tenant.
    r = server.api("POST", "/api/v1/ident/prefixes", token=server.admin_token, json={"prefix": "88.118.23", "tenant": reg["b"]})
    assert r.status_code == 201 and r.json()["tenant"] == reg["b"]
    mine = server.list_all("/api/v1/ident/prefixes", reg["a_tok"])
    assert {p["prefix"] for p in mine} == {reg["pa"], f"{reg['pa']}.3"}
    everyone = server.list_all("/api/v1/ident/prefixes", server.admin_token)
    assert {"88.118.23", reg["pb"]} <= {p["prefix"] for p in everyone}
    # Identifiers under the delegated prefix.
    put_handle(server, reg["a_tok"], f"{reg['pa']}.3/x", [url_value(1, "https://a.example.com/x")], expect=201)
    # A prefix with identifiers cannot be deleted; an empty one can.
    assert_error(server.api("DELETE", f"/api/v1/ident/prefixes/{reg['pa']}.3", token=reg["a_tok"]), 409)
    server.api("DELETE", f"/api/handles/{reg['pa']}.3/x", token=reg["a_tok"])
    assert server.api("DELETE", f"/api/v1/ident/prefixes/{reg['pa']}.3", token=reg["a_tok"]).status_code == 204
    # The CLI: prefix create for a tenant, list, refusal of a taken one.
    cp = server.cli("prefix", "create", "88.118.24", "--tenant", reg["a"], "--data", server.data)
    assert cp.returncode == 0 and cp.stdout.strip() == "88.118.24"
    cp = server.cli("prefix", "create", "88.118.24", "--tenant", reg["b"], "--data", server.data)
    assert cp.returncode == 1 and "already" in cp.stderr
    cp = server.cli("prefix", "list", "--data", server.data, "--tenant", reg["a"])
    assert "88.118.24" in cp.stdout and reg["pb"] not in cp.stdout


def test_reserved_types_and_bad_values(server, reg):
    h = f"{reg['pa']}/bad"
    bad = [
        [url_value(1, "no scheme here")],
        [text_value(1, "EMAIL", "nobody")],
        [{"index": 1, "type": "HS_ADMIN", "data": "x"}],
        [text_value(1, "HS_ALIAS", "not-a-handle")],
        [text_value(1, "A", "x"), text_value(1, "B", "y")],
        [text_value(0, "A", "x")],
        [text_value(1, "A", "x", ttl=-5)],
        [{"index": 1, "type": "A", "data": {"format": "nope", "value": "x"}}],
        [{"index": 1, "type": "A", "data": {"format": "base64", "value": "%%%"}}],
        [{"index": 1, "type": "A", "data": "x", "unknown": 1}],
        [text_value(1, "GS1", "/01/09506000134353")],
        [text_value(1, "gs1:pip", "not a url")],
        [text_value(1, "gs1:pip", json.dumps({"href": "https://x.example.com/\r\nSet-Cookie: a=b"}))],
        [text_value(1, "gs1:pip", json.dumps({"title": "no href"}))],
    ]
    for values in bad:
        r = server.api("PUT", f"/api/handles/{h}", token=reg["a_tok"], json={"values": values})
        assert r.status_code == 400, (values, r.text)
        assert r.json()["responseCode"] == 202
        assert_error(r, 400)
    for raw, ctype in [(b"{", "application/json"), (b"[]", "application/json"), (b'{"values": 5}', "application/json"),
                       (b'{"values": []}', "text/plain")]:
        r = server.api("PUT", f"/api/handles/{h}", token=reg["a_tok"], data=raw, headers={"Content-Type": ctype})
        assert r.status_code in (400, 415), r.text
    assert server.api("GET", f"/api/handles/{h}").status_code == 404
    # Binary and alias values round-trip.
    put_handle(server, reg["a_tok"], h, [{"index": 1, "type": "BLOB", "data": {"format": "base64", "value": "AAECAwQ="}},
                                         text_value(2, "HS_ALIAS", f"{reg['pa']}/bottle-1")])
    vals = {v["index"]: v for v in server.api("GET", f"/api/handles/{h}").json()["values"]}
    assert vals[1]["data"] == {"format": "base64", "value": "AAECAwQ="}
    assert vals[2]["data"]["value"] == f"{reg['pa']}/bottle-1"


def test_templates(server, reg):
    tpl = {"fields": [{"name": "name", "required": True}, {"name": "GTIN", "required": True, "format": "gtin"},
                      {"name": "producer", "required": True}, {"name": "batch"},
                      {"name": "production_date", "format": "date"}]}
    r = server.api("PUT", "/api/v1/ident/templates/product", token=reg["a_tok"], json=tpl)
    assert r.status_code == 200, r.text
    assert server.api("GET", "/api/v1/ident/templates/product", token=reg["a_tok"]).json()["fields"][1]["format"] == "gtin"
    assert_error(server.api("GET", "/api/v1/ident/templates/product", token=reg["b_tok"]), 404)
    assert_error(server.api("PUT", "/api/v1/ident/templates/x", token=reg["a_tok"], json={"fields": [{"name": "a", "format": "colour"}]}), 400)
    good = [text_value(1, "name", "Spring water"), text_value(2, "GTIN", "09506000134352"),
            text_value(3, "producer", "Lhasa Spring Co."), text_value(4, "production_date", "2026-11-29")]
    r = server.api("PUT", f"/api/handles/{reg['pa']}/t1", token=reg["a_tok"], json={"values": good, "template": "product"})
    assert r.status_code == 201, r.text
    missing = good[:2]
    r = server.api("PUT", f"/api/handles/{reg['pa']}/t2", token=reg["a_tok"], json={"values": missing, "template": "product"})
    assert r.status_code == 400 and "producer" in r.json()["message"]
    wrong = [good[0], text_value(2, "GTIN", "09506000134353"), good[2]]
    r = server.api("PUT", f"/api/handles/{reg['pa']}/t3", token=reg["a_tok"], json={"values": wrong, "template": "product"})
    assert r.status_code == 400 and "GTIN" in r.json()["message"]
    r = server.api("PUT", f"/api/handles/{reg['pa']}/t4", token=reg["a_tok"], json={"values": good, "template": "nosuch"})
    assert r.status_code == 400


def test_bulk_csv_report_and_stats(server, reg):
    prefix = make_prefix(server, "88.118.25", reg["a"])
    n = 20000
    lines = ["handle,name,GTIN,producer,URL"]
    for i in range(n):
        lines.append(f"{prefix}/SN{i:07d},Spring water 500 ml,09506000134352,Lhasa Spring,https://w.example.com/{i}")
    lines.append(f"{reg['pb']}/stolen,a,09506000134352,b,https://x.example.com/")   # another tenant's prefix
    lines.append(f"{prefix}/SN0000001,dup,09506000134352,b,https://x.example.com/")  # duplicate
    lines.append(f"{prefix}/badgtin,a,09506000134353,b,https://x.example.com/")     # template: GTIN
    lines.append(f"{prefix}/short,a")                                                # columns
    server.api("PUT", "/api/v1/ident/templates/product", token=reg["a_tok"],
               json={"fields": [{"name": "GTIN", "required": True, "format": "gtin"}]})
    t0 = time.monotonic()
    r = server.api("POST", "/api/v1/ident/bulk", token=reg["a_tok"], data="\n".join(lines).encode(),
                   headers={"Content-Type": "text/csv"}, params={"template": "product"}, timeout=300)
    elapsed = time.monotonic() - t0
    assert r.status_code == 200, r.text
    rep = r.json()
    assert rep["rows"] == n + 4 and rep["accepted"] == n and rep["rejected"] == 4
    rows = {e["row"]: e for e in rep["errors"]}
    assert set(rows) == {n + 1, n + 2, n + 3, n + 4}
    assert "another tenant" in rows[n + 1]["error"]
    assert "exists" in rows[n + 2]["error"]
    assert "GTIN" in rows[n + 3]["error"]
    print(f"bulk over HTTP (sanitized daemon): {n} rows in {elapsed:.2f}s")
    got = server.api("GET", f"/api/handles/{prefix}/SN0012345").json()
    assert {v["type"] for v in got["values"]} == {"name", "GTIN", "producer", "URL"}
    # JSON lines, with a malformed line reported.
    body = "\n".join([json.dumps({"handle": f"{prefix}/j1", "fields": {"GTIN": "09506000134352"}}), "{not json",
                      json.dumps({"handle": f"{prefix}/j2", "values": [text_value(1, "GTIN", "09506000134352")]})])
    r = server.api("POST", "/api/v1/ident/bulk", token=reg["a_tok"], data=body.encode(),
                   headers={"Content-Type": "application/x-ndjson"}, params={"template": "product"})
    assert r.json()["accepted"] == 2 and r.json()["rejected"] == 1
    assert_error(server.api("POST", "/api/v1/ident/bulk", token=reg["a_tok"], data=b"x", headers={"Content-Type": "text/plain"}), 415)
    # Statistics per prefix and day; the listing of identifiers.
    server.api("GET", f"/api/handles/{prefix}/SN0000005")
    server.api("GET", f"/api/handles/{prefix}/absent")
    st = server.api("GET", "/api/v1/ident/stats", token=reg["a_tok"]).json()
    row = [i for i in st["items"] if i["prefix"] == prefix][0]
    assert row["registrations"] == n + 2 and row["resolutions"] >= 2 and row["not_found"] >= 1
    assert len(row["date"]) == 10
    assert all(i["prefix"] != reg["pb"] for i in st["items"])
    page = server.api("GET", "/api/v1/ident/handles", token=reg["a_tok"], params={"prefix": prefix, "limit": 10}).json()
    assert len(page["items"]) == 10 and "next" in page
    # A regulator sees the regional statistics.
    reg_tok = server.create_token("region", "regulator")
    allst = server.api("GET", "/api/v1/ident/stats", token=reg_tok).json()
    assert any(i["prefix"] == prefix for i in allst["items"])


def test_cli_import_with_progress(server, reg, tmp_path):
    prefix = make_prefix(server, "88.118.26", reg["a"])
    f = tmp_path / "run.csv"
    rows = ["handle,DESC,URL"] + [f"{prefix}/C{i:05d},\"Case {i}, 24 bottles\",https://w.example.com/c/{i}" for i in range(5000)]
    rows.append(f"{prefix}/C00001,dup,https://w.example.com/")
    f.write_text("\n".join(rows) + "\n")
    cp = server.cli("ident", "import", f, "--data", server.data, "--tenant", reg["a"], timeout=300)
    assert cp.returncode == 1, cp.stderr  # one row was rejected
    assert "rows 5001 accepted 5000 rejected 1" in cp.stdout
    assert "row 5001" in cp.stderr and "exists" in cp.stderr
    v = server.api("GET", f"/api/handles/{prefix}/C00042").json()["values"]
    assert {x["type"]: x["data"]["value"] for x in v}["DESC"] == "Case 42, 24 bottles"
    jl = tmp_path / "run.jsonl"
    jl.write_text(json.dumps({"handle": f"{prefix}/J1", "values": [url_value(1, "https://w.example.com/j")]}) + "\n")
    cp = server.cli("ident", "import", jl, "--data", server.data, "--tenant", reg["a"])
    assert cp.returncode == 0 and "accepted 1" in cp.stdout
    cp = server.cli("ident", "import", jl, "--data", server.data, "--tenant", "no-such-tenant")
    assert cp.returncode != 0


def test_audit_records(server, reg):
    put_handle(server, reg["a_tok"], f"{reg['pa']}/audited", [url_value(1, "https://a.example.com/")])
    server.api("PUT", f"/api/handles/{reg['pa']}/x", token=reg["b_tok"], json={"values": []})
    items = server.list_all("/api/v1/audit", server.admin_token, params={"action": "ident."})
    actions = {(i["action"], i["result"]) for i in items}
    assert ("ident.create", "ok") in actions
    assert ("ident.create", "error") in actions
    assert ("ident.bulk", "ok") in actions
    assert server.audit_verify().returncode == 0


def test_labels(server, reg):
    prefix = make_prefix(server, "88.118.27", reg["a"])
    put_handle(server, reg["a_tok"], f"{prefix}/L1", [text_value(1, "GS1", "/01/09506000134352/10/LBL1")])
    put_handle(server, reg["a_tok"], f"{prefix}/L2", [url_value(1, "https://w.example.com/l2")])
    r = server.api("GET", "/api/v1/ident/qr", token=reg["a_tok"], params={"data": "https://x.example.com/01/09506000134352", "format": "png"})
    assert r.status_code == 200 and r.headers["Content-Type"] == "image/png" and r.content[:8] == b"\x89PNG\r\n\x1a\n"
    r = server.api("GET", "/api/v1/ident/qr", token=reg["a_tok"], params={"data": "x", "format": "svg"})
    assert r.headers["Content-Type"] == "image/svg+xml" and b"<svg" in r.content
    assert_error(server.api("GET", "/api/v1/ident/qr", token=reg["a_tok"], params={"data": "x" * 5000}), 400)
    assert_error(server.api("GET", "/api/v1/ident/qr", token=reg["a_tok"], params={"data": "x", "format": "gif"}), 400)
    assert_error(server.api("GET", "/api/v1/ident/qr"), 401)
    r = server.api("GET", "/api/v1/ident/labels", token=reg["a_tok"], params={"prefix": prefix})
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("text/html")
    assert b"(01)09506000134352(10)LBL1" in r.content and f"{prefix}/L2".encode() in r.content
    assert r.content.count(b"<svg") == 2
    r = server.api("GET", "/api/v1/ident/labels", token=reg["a_tok"], params={"prefix": prefix, "format": "svg", "columns": "3"})
    assert r.status_code == 200 and r.content.startswith(b"<?xml")
    assert_error(server.api("GET", "/api/v1/ident/labels", token=reg["b_tok"], params={"prefix": prefix}), 404)


def test_browser_redirect(server, reg):
    h = f"{reg['pa']}/redirect"
    put_handle(server, reg["a_tok"], h, [text_value(1, "DESC", "x"), url_value(2, "https://w.example.com/landing")])
    r = server.http.get(server.url(f"/api/handles/{h}"), headers={"Accept": "text/html"}, allow_redirects=False)
    assert r.status_code == 302 and r.headers["Location"] == "https://w.example.com/landing"
    r = server.http.get(server.url(f"/api/handles/{h}"), headers={"Accept": "application/json"}, allow_redirects=False)
    assert r.status_code == 200


def test_bulk_in_background_with_progress(server, reg):
    prefix = make_prefix(server, "88.118.28", reg["a"])
    n = 100000
    body = "handle,DESC\n" + "".join(f"{prefix}/P{i:06d},Bottle {i}\n" for i in range(n)) + f"{reg['pb']}/x,stolen\n"
    r = server.api("POST", "/api/v1/ident/bulk", token=reg["a_tok"], data=body.encode(),
                   headers={"Content-Type": "text/csv"}, params={"async": "true"})
    assert r.status_code == 202, r.text
    job = r.json()
    assert job["state"] == "running" and r.headers["Location"] == f"/api/v1/ident/bulk/{job['id']}"
    seen = []
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        st = server.api("GET", f"/api/v1/ident/bulk/{job['id']}", token=reg["a_tok"]).json()
        seen.append((st["state"], st["rows"], st["bytes_done"]))
        if st["state"] != "running":
            break
        time.sleep(0.05)
    assert st["state"] == "done", st
    assert st["rows"] == n + 1 and st["accepted"] == n and st["rejected"] == 1
    assert st["bytes_done"] == st["bytes_total"] == len(body.encode())
    assert "another tenant" in st["errors"][0]["error"]
    # Progress moved forward while it ran (the counters never go back).
    rows = [s[1] for s in seen]
    assert rows == sorted(rows)
    assert server.api("GET", f"/api/handles/{prefix}/P099999").status_code == 200
    # Another tenant does not see the job; an unknown job is 404.
    assert_error(server.api("GET", f"/api/v1/ident/bulk/{job['id']}", token=reg["b_tok"]), 404)
    assert_error(server.api("GET", "/api/v1/ident/bulk/999999", token=reg["a_tok"]), 404)
    # A JSON document naming its template, in the background too.
    server.api("PUT", "/api/v1/ident/templates/serial", token=reg["a_tok"],
               json={"fields": [{"name": "GTIN", "required": True, "format": "gtin"}]})
    doc = {"template": "serial", "rows": [{"handle": f"{prefix}/J1", "fields": {"GTIN": "09506000134352"}},
                                          {"handle": f"{prefix}/J2", "fields": {"DESC": "no GTIN"}}]}
    r = server.api("POST", "/api/v1/ident/bulk", token=reg["a_tok"], json=doc, params={"async": "1"})
    assert r.status_code == 202
    for _ in range(200):
        st = server.api("GET", r.headers["Location"], token=reg["a_tok"]).json()
        if st["state"] != "running":
            break
        time.sleep(0.05)
    assert st["state"] == "done" and st["accepted"] == 1 and st["rejected"] == 1
    assert "GTIN" in st["errors"][0]["error"]
