"""GS1 Digital Link resolution on the HTTP listener, with the records of GS1's resolver test data
(PLATEAU_TESTDATA/digital-link/resolver-ce/tests) loaded as identifiers: 307 to the default link
or the asked link type in the reader's language, 300 when it cannot choose, linksets for
linkType=all and Accept: application/linkset+json, 404 without a record, 400 for bad syntax,
qualifier walk-up, /.well-known/gs1resolver, and the same record over the Handle protocol."""

import json
import os
from pathlib import Path

import pytest

from ident_helpers import make_prefix, put_handle, resolve_udp, text_value
from plateau_helpers import REPO, assert_error

TESTDATA = Path(os.environ.get("PLATEAU_TESTDATA") or REPO.parent / "shared" / "testdata") / "digital-link"


def records():
    d = TESTDATA / "resolver-ce" / "tests"
    if not d.is_dir():
        pytest.skip(f"no resolver test data at {d}")
    out = []
    for f in sorted(d.glob("*.json")):
        doc = json.loads(f.read_text())
        out += doc if isinstance(doc, list) else [doc]
    return out


def to_values(rec):
    # A record keyed by a qualifier template ({"21": "{serialnumber}"}: any serial) maps
    # "/01/.../21/{serialnumber}".
    anchor = rec["anchor"] + "".join(f"/{ai}/{v}" for q in rec.get("qualifiers") or [] for ai, v in q.items())
    values = [text_value(1, "GS1", anchor), text_value(2, "DESC", rec.get("itemDescription", ""))]
    if rec.get("defaultLinktype"):
        values.append(text_value(3, "GS1_DEFAULT_LINKTYPE", rec["defaultLinktype"]))
    for i, link in enumerate(rec["links"]):
        data = {k: link[k] for k in ("href", "title", "type", "hreflang", "context") if k in link}
        values.append(text_value(10 + i, link["linktype"], json.dumps(data, ensure_ascii=False)))
    return values


@pytest.fixture(scope="module")
def dl(server):
    tenant, tok = server.tenant_with_admin("dalgiardino")
    make_prefix(server, "88.118.41", tenant)
    recs = records()
    for n, rec in enumerate(recs):
        put_handle(server, tok, f"88.118.41/rec-{n}", to_values(rec))
    return {"recs": recs, "tok": tok}


def get(server, path, **headers):
    return server.http.get(server.url(path), headers=headers, allow_redirects=False)


def test_default_link(server, dl):
    r = get(server, "/01/09506000134352")
    assert r.status_code == 307
    assert r.headers["Location"] == "https://dalgiardino.com/about/?test_lt=gs1:sustainabilityInfo&test_lang=en"
    assert 'rel="linkset"' in r.headers["Link"]
    r = get(server, "/01/09506000134352", **{"Accept-Language": "es-ES,es;q=0.9"})
    assert r.status_code == 307 and "test_lang=es" in r.headers["Location"]
    # A GTIN-13 in the path is the same item.
    assert get(server, "/01/9506000134352").status_code == 307
    # Qualifiers the record does not have walk up to the GTIN's record.
    r = get(server, "/01/09506000134352/10/LOT9/21/S1")
    assert r.status_code == 307 and "sustainabilityInfo" in r.headers["Location"]


def test_link_type(server, dl):
    r = get(server, "/01/09506000134352?linkType=gs1:recipeInfo", **{"Accept-Language": "ja"})
    assert r.status_code == 307 and "test_lang=ja" in r.headers["Location"] and "recipeInfo" in r.headers["Location"]
    r = get(server, "/01/09506000134352?linkType=https://gs1.org/voc/pip", **{"Accept-Language": "vi"})
    assert r.status_code == 307 and "test_lt=gs1:pip&test_lang=vi" in r.headers["Location"]
    # Several pip links and no language to choose by: 300 with the candidates.
    r = get(server, "/01/09506000134352?linkType=gs1:pip")
    assert r.status_code == 300
    assert r.headers["Content-Type"].startswith("application/linkset+json")
    links = r.json()["linkset"][0]["https://gs1.org/voc/pip"]
    assert len(links) == 5 and all("href" in l for l in links)
    # A link type the record lacks: the default link.
    r = get(server, "/01/09506000134352?linkType=gs1:epil")
    assert r.status_code == 307 and "sustainabilityInfo" in r.headers["Location"]


def test_linkset(server, dl):
    for r in (get(server, "/01/09506000134352?linkType=all"),
              get(server, "/01/09506000134352", Accept="application/linkset+json")):
        assert r.status_code == 200 and r.headers["Content-Type"].startswith("application/linkset+json")
        ls = r.json()["linkset"][0]
        assert ls["anchor"].endswith("/01/09506000134352")
        assert ls["itemDescription"].startswith("Dal Giardino Risotto")
        assert len(ls["https://gs1.org/voc/hasRetailers"]) == 4
        assert len(ls["https://gs1.org/voc/pip"]) == 5
        ja = [l for l in ls["https://gs1.org/voc/recipeInfo"] if l["hreflang"] == ["ja"]][0]
        assert ja["title"] == "\u30ad\u30ce\u30b3\u3068\u7815\u3044\u305f\u30d0\u30bf\u30fc\u30ca\u30c3\u30c4\u5165\u308a\u306e\u30ea\u30be\u30c3\u30c8"
        assert ls["https://gs1.org/voc/defaultLink"][0]["href"].endswith("test_lang=en")


def test_other_keys_and_errors(server, dl):
    r = get(server, "/8004/0950600013430000001")
    assert r.status_code == 307 and r.headers["Location"].endswith("0950600013430000001.html")
    r = get(server, "/01/09506000134376")
    assert r.status_code == 307 and r.headers["Location"] == "https://dalgiardino.com/medicinal-compound/pil.html"
    # No record: 404; bad syntax: 400 with a reason.
    assert_error(get(server, "/01/09506000134383"), 404)
    for bad in ("/01/09506000134353", "/01/0950600013435", "/01/09506000134352/21/S/10/L",
                "/01/09506000134352?17=261399", "/00/106141412345678909", "/414/9506000134369/21/X"):
        r = get(server, bad)
        assert_error(r, 400)
        assert "Digital Link" in r.json()["error"]["message"]
    assert_error(get(server, "/99/123"), 404)  # not a primary key: no such endpoint


def test_qualifier_templates(server, dl):
    """The records keyed by /21/{serialnumber} and /10/{lotnumber} answer every serial and lot,
    their links filled in with it; the GTIN's own record answers the rest."""
    r = get(server, "/01/09506000134376/21/SER%2B42")
    assert r.status_code == 307
    assert r.headers["Location"] == "https://dalgiardino.com/medicinal-compound/pil.html?serial=SER%2B42"
    r = get(server, "/01/09506000134376/10/LOT7?linkType=gs1:certificationInfo", **{"Accept-Language": "en"})
    assert r.status_code == 300  # three certificates in English
    hrefs = sorted(l["href"] for l in r.json()["linkset"][0]["https://gs1.org/voc/certificationInfo"])
    assert hrefs[0] == "https://dalgiardino.com/medicinal-compound/certificate_1?lot=LOT7"
    # A lot and a serial: no record has both, so the walk up the path stops at the lot's template.
    r = get(server, "/01/09506000134376/10/LOT7/21/S1")
    assert r.status_code == 307 and r.headers["Location"].endswith("lot=LOT7")
    r = get(server, "/01/09506000134376")
    assert r.status_code == 307 and r.headers["Location"] == "https://dalgiardino.com/medicinal-compound/pil.html"


def test_well_known(server, dl):
    r = get(server, "/.well-known/gs1resolver")
    assert r.status_code == 200
    body = r.json()
    assert body["resolverRoot"] == server.url("").rstrip("/")
    assert {"namespace": "https://gs1.org/voc/", "prefix": "gs1:"} in body["supportedLinkType"]
    assert body["supportsLanguageVariants"] is True


def test_one_label_both_worlds(server, dl):
    """The GS1 record is an identifier: the Handle protocol and REST API return it too."""
    r = resolve_udp(server, "88.118.41/rec-0")
    assert r.rc == 1
    types = {v["type"] for v in r.values}
    assert {"GS1", "DESC", "gs1:pip"} <= types
    j = server.api("GET", "/api/handles/88.118.41/rec-0", params={"type": "GS1"}).json()
    assert j["values"][0]["data"]["value"] == dl["recs"][0]["anchor"]
    # Taking a GS1 key that another identifier maps is refused.
    r = server.api("PUT", "/api/handles/88.118.41/dup", token=dl["tok"],
                   json={"values": [text_value(1, "GS1", dl["recs"][0]["anchor"])]})
    assert r.status_code == 409


def test_traceability_link_leads_to_the_product_page(server, dl):
    """Every record answers gs1:traceability: the owner's link, or this node's product page."""
    r = get(server, "/01/09506000134352?linkType=gs1:traceability")
    assert r.status_code == 307, r.text
    loc = r.headers["Location"]
    assert "/trace?epc=" in loc and "%2F01%2F09506000134352" in loc, loc
    page = server.http.get(loc, headers={"Accept-Language": "bo"}, allow_redirects=False)
    assert page.status_code in (200, 404) and page.headers["Content-Type"].startswith("text/html"), page.text[:200]
    ls = get(server, "/01/09506000134352?linkType=all").json()["linkset"][0]
    assert ls["https://gs1.org/voc/traceability"][0]["href"] == loc
