"""EPCIS master data (issue 7): vocabulary elements captured in a document's header
(epcisHeader.epcisMasterData) with their attributes and children; WD_readPoint and
WD_bizLocation follow that hierarchy (direct and indirect descendants, URN and Digital Link
forms as one, cycles harmless); attributes merge across documents; GET /api/v1/masterdata;
a tenant's hierarchy never widens another tenant's query; a malformed header is rejected."""

import json

import pytest

from plateau_helpers import assert_error, describe
from test_trace_epcis import capture, doc, events_of, obj

LOC = "urn:epcglobal:epcis:vtype:BusinessLocation"
RP = "urn:epcglobal:epcis:vtype:ReadPoint"
NAME = "urn:epcglobal:cbv:mda#name"
SITE = "urn:epc:id:sgln:4012345.00000.0"        # the factory
HALL = "urn:epc:id:sgln:4012345.00001.0"        # a hall in it
LINE = "urn:epc:id:sgln:4012345.00001.1"        # a bottling line in the hall
STORE = "urn:epc:id:sgln:4012345.00009.0"       # a warehouse elsewhere
LINE_DL = "https://id.gs1.org/414/4012345000016/254/1"


def with_master_data(d, vocabularies):
    d["epcisHeader"] = {"epcisMasterData": {"vocabularyList": vocabularies}}
    return d


def hierarchy_doc(*events):
    return with_master_data(doc(*events), [
        {"type": LOC, "vocabularyElementList": [
            {"id": SITE, "attributes": [{"id": NAME, "attribute": "Spring water plant"}], "children": [HALL]},
            {"id": HALL, "attributes": [{"id": NAME, "attribute": "Hall 1"}], "children": [LINE_DL]},
            {"id": LINE, "attributes": [{"id": NAME, "attribute": "Line 1"},
                                         {"id": "urn:epcglobal:cbv:mda#sst", "attribute": "201"}]},
            {"id": STORE, "attributes": [{"id": NAME, "attribute": "Warehouse"}]},
        ]},
        {"type": RP, "vocabularyElementList": [{"id": HALL, "children": [LINE]}]},
    ])


def ids(resp):
    return sorted(e["epcList"][0] for e in events_of(resp))


@pytest.fixture(scope="module")
def maker(server):
    name, tok = server.tenant_with_admin("md")
    events = [obj([f"urn:epc:id:sgtin:4012345.011111.{i}"], bizLocation={"id": loc}, readPoint={"id": loc})
              for i, loc in enumerate([SITE, HALL, LINE, STORE])]
    r = capture(server, tok, hierarchy_doc(*events))
    assert r.status_code == 202, describe(r)
    return name, tok


def test_wd_biz_location_takes_descendants(server, maker):
    _, tok = maker
    q = lambda v: server.api("GET", "/epcis/events", token=tok, params={"WD_bizLocation": v})
    assert ids(q(SITE)) == [f"urn:epc:id:sgtin:4012345.011111.{i}" for i in range(3)]
    assert ids(q(HALL)) == [f"urn:epc:id:sgtin:4012345.011111.{i}" for i in (1, 2)]
    assert ids(q(LINE)) == ["urn:epc:id:sgtin:4012345.011111.2"]
    assert ids(q(LINE_DL)) == ["urn:epc:id:sgtin:4012345.011111.2"]  # the same location as a Digital Link
    assert ids(q(STORE + "|" + HALL)) == [f"urn:epc:id:sgtin:4012345.011111.{i}" for i in (1, 2, 3)]
    # EQ_ takes only the location itself
    eq = server.api("GET", "/epcis/events", token=tok, params={"EQ_bizLocation": SITE})
    assert ids(eq) == ["urn:epc:id:sgtin:4012345.011111.0"]


def test_wd_read_point(server, maker):
    _, tok = maker
    r = server.api("GET", "/epcis/events", token=tok, params={"WD_readPoint": HALL})
    assert ids(r) == [f"urn:epc:id:sgtin:4012345.011111.{i}" for i in (1, 2)]


def test_cycle_in_hierarchy_ends(server):
    _, tok = server.tenant_with_admin("mdcycle")
    a, b = "urn:epc:id:sgln:4012345.00100.0", "urn:epc:id:sgln:4012345.00101.0"
    d = with_master_data(doc(obj(["urn:epc:id:sgtin:4012345.011111.50"], bizLocation={"id": b})),
                         [{"type": LOC, "vocabularyElementList": [{"id": a, "children": [b]},
                                                                  {"id": b, "children": [a]}]}])
    assert capture(server, tok, d).status_code == 202
    r = server.api("GET", "/epcis/events", token=tok, params={"WD_bizLocation": a})
    assert ids(r) == ["urn:epc:id:sgtin:4012345.011111.50"]


def test_master_data_listing_and_merge(server, maker):
    _, tok = maker
    r = server.api("GET", "/api/v1/masterdata", token=tok, params={"type": LOC, "id": LINE})
    assert r.status_code == 200, describe(r)
    [line] = r.json()["items"]
    assert line["id"] == LINE_DL
    assert {a["id"]: a["attribute"] for a in line["attributes"]} == {NAME: "Line 1", "urn:epcglobal:cbv:mda#sst": "201"}
    # a later document renames the line and adds a child: the other attribute stays
    d = with_master_data(doc(), [{"type": LOC, "vocabularyElementList": [
        {"id": LINE_DL, "attributes": [{"id": NAME, "attribute": "Line 1 (ozone)"}],
         "children": ["urn:epc:id:sgln:4012345.00001.2"]}]}])
    assert capture(server, tok, d).status_code == 202
    [line] = server.api("GET", "/api/v1/masterdata", token=tok, params={"id": LINE}).json()["items"]
    assert {a["id"]: a["attribute"] for a in line["attributes"]} == {NAME: "Line 1 (ozone)",
                                                                      "urn:epcglobal:cbv:mda#sst": "201"}
    assert line["children"] == ["https://id.gs1.org/414/4012345000016/254/2"]
    # paging: one element a page, every element once
    seen, after = [], None
    for _ in range(20):
        params = {"type": LOC, "limit": 1}
        if after:
            params["after"] = after
        body = server.api("GET", "/api/v1/masterdata", token=tok, params=params).json()
        seen += [i["id"] for i in body["items"]]
        after = body.get("next")
        if not after:
            break
    assert len(seen) == len(set(seen)) == 4


def test_hierarchy_is_per_tenant(server, maker):
    """Another tenant's master data does not widen this tenant's WD_ query, nor can it be read."""
    _, tok = maker
    _, other = server.tenant_with_admin("mdother")
    spot = "urn:epc:id:sgln:4012345.00200.0"
    d = with_master_data(doc(obj(["urn:epc:id:sgtin:4012345.011111.99"], bizLocation={"id": spot})),
                         [{"type": LOC, "vocabularyElementList": [{"id": STORE, "children": [spot]}]}])
    assert capture(server, other, d).status_code == 202
    r = server.api("GET", "/epcis/events", token=tok, params={"WD_bizLocation": STORE})
    assert ids(r) == ["urn:epc:id:sgtin:4012345.011111.3"]
    r = server.api("GET", "/api/v1/masterdata", token=other, params={"id": LINE})
    assert r.status_code == 200 and r.json()["items"] == []
    r = server.api("GET", "/epcis/events", token=other, params={"WD_bizLocation": STORE})
    assert ids(r) == ["urn:epc:id:sgtin:4012345.011111.99"]


@pytest.mark.parametrize("header, needle", [
    ({"epcisMasterData": {"vocabularyList": {}}}, "vocabularyList"),
    ({"epcisMasterData": {"vocabularyList": [{"vocabularyElementList": []}]}}, "type"),
    ({"epcisMasterData": {"vocabularyList": [{"type": LOC, "vocabularyElementList": [{"attributes": []}]}]}}, "id"),
    ({"epcisMasterData": {"vocabularyList": [{"type": LOC, "vocabularyElementList": [{"id": SITE, "children": "x"}]}]}},
     "children"),
    ({"epcisMasterData": {"vocabularyList": [{"type": LOC, "vocabularyElementList": [{"id": SITE, "attributes": [{}]}]}]}},
     "attributes"),
    ("header", "epcisHeader"),
])
def test_bad_master_data_rejected_and_changes_nothing(server, header, needle):
    _, tok = server.tenant_with_admin("mdbad")
    d = doc(obj(["urn:epc:id:sgtin:4012345.011111.7"]))
    d["epcisHeader"] = header
    r = capture(server, tok, d)
    assert_error(r, 400)
    assert needle in r.json()["error"]["message"]
    assert events_of(server.api("GET", "/epcis/events", token=tok)) == []
    assert server.api("GET", "/api/v1/masterdata", token=tok).json()["items"] == []


def test_master_data_limit(server):
    _, tok = server.tenant_with_admin("mdlimit")
    els = [{"id": f"urn:epc:id:sgln:4012345.{i:05d}.0"} for i in range(10001)]
    r = capture(server, tok, with_master_data(doc(), [{"type": LOC, "vocabularyElementList": els}]))
    assert_error(r, 400)
    assert "10000" in r.json()["error"]["message"]


def test_masterdata_bad_params(server, maker):
    _, tok = maker
    for params in ({"limit": "0"}, {"limit": "x"}, {"after": "nospace"}, {"id": "bad\x01id"}):
        assert_error(server.api("GET", "/api/v1/masterdata", token=tok, params=params), 400)
    assert_error(server.api("GET", "/api/v1/masterdata"), 401)
    assert_error(server.api("GET", "/epcis/events", token=tok, params={"WD_bizLocation": ""}), 400)


def test_hasattr_and_eq_attr(server):
    """HASATTR_ / EQ_ATTR_ on readPoint and bizLocation read the asker's master data; attribute
    names match in full or by their last part (sst = urn:epcglobal:cbv:mda#sst)."""
    _, tok = server.tenant_with_admin("mdattr")
    _, other = server.tenant_with_admin("mdattrx")
    a, b, c = (f"urn:epc:id:sgln:4012345.00300.{i}" for i in range(3))
    events = [obj([f"urn:epc:id:sgtin:4012345.011111.{300 + i}"], bizLocation={"id": loc}, readPoint={"id": loc})
              for i, loc in enumerate([a, b, c])]
    d = with_master_data(doc(*events), [{"type": LOC, "vocabularyElementList": [
        {"id": a, "attributes": [{"id": "urn:epcglobal:cbv:mda#sst", "attribute": 201},
                                 {"id": NAME, "attribute": "Cold store"}]},
        {"id": b, "attributes": [{"id": "urn:epcglobal:cbv:mda#sst", "attribute": "202"}]},
        {"id": c}]}])
    assert capture(server, tok, d).status_code == 202
    q = lambda t, p: sorted(e["bizLocation"]["id"] for e in events_of(
        server.api("GET", "/epcis/events", token=t, params=p)))
    assert q(tok, {"HASATTR_bizLocation": "sst"}) == [a, b]
    assert q(tok, {"HASATTR_bizLocation": NAME}) == [a]
    assert q(tok, {"HASATTR_readPoint": "urn:epcglobal:cbv:mda#name|nothing"}) == [a]
    assert q(tok, {"EQ_ATTR_bizLocation_sst": "201"}) == [a]          # a number in the master data
    assert q(tok, {"EQ_ATTR_bizLocation_sst": "201|202"}) == [a, b]
    assert q(tok, {"EQ_ATTR_readPoint_name": "Cold store"}) == [a]
    assert q(tok, {"EQ_ATTR_bizLocation_sst": "203"}) == []
    assert q(tok, {"HASATTR_bizLocation": "colour"}) == []
    # another tenant's events at the same places do not match through this tenant's master data
    assert capture(server, other, doc(obj(["urn:epc:id:sgtin:4012345.011111.399"], bizLocation={"id": a}))).status_code == 202
    assert q(other, {"HASATTR_bizLocation": "sst"}) == []
    for bad in ({"EQ_ATTR_bizLocation_": "x"}, {"EQ_ATTR_bizLocation_s-t": "x"}, {"HASATTR_bizLocation": ""},
                {"HASATTR_epcClass": "x"}, {"EQ_ATTR_readPointx_sst": "1"}):
        assert_error(server.api("GET", "/epcis/events", token=tok, params=bad), 400)
