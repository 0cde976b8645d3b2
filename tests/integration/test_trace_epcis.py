"""EPCIS 2.0 capture and query (issue 7): every example document of the standard is captured and
read back with the same events; capture jobs, error behaviour, limits; the standard query
parameters; named queries; bad input on every endpoint."""

import json
import os
import pathlib
import urllib.parse

import pytest
import requests

from plateau_helpers import assert_error, describe, uniq

TESTDATA = pathlib.Path(os.environ.get("PLATEAU_TESTDATA",
                                       pathlib.Path(__file__).resolve().parents[2] / ".." / "shared" / "testdata"))
EXAMPLES = sorted((TESTDATA / "epcis" / "JSON").rglob("*.jsonld"))
# The one example that names "eventID" twice in one object: ambiguous JSON, rejected by name.
DUPLICATE_KEY = "AssociationEvent-h.jsonld"

URN_DL = {  # a URN and its Digital Link form name the same thing
    "urn:epc:id:sgtin:0614141.107346.2017": "https://id.gs1.org/01/10614141073464/21/2017",
}


def capture(server, token, doc, behaviour=None, ctype="application/ld+json"):
    headers = {"Content-Type": ctype}
    if behaviour:
        headers["GS1-Capture-Error-Behaviour"] = behaviour
    data = doc if isinstance(doc, (bytes, str)) else json.dumps(doc)
    return server.api("POST", "/epcis/capture", token=token, data=data, headers=headers)


def doc(*events):
    return {"@context": ["https://ref.gs1.org/standards/epcis/2.0.0/epcis-context.jsonld"],
            "type": "EPCISDocument", "schemaVersion": "2.0", "creationDate": "2026-01-01T00:00:00Z",
            "epcisBody": {"eventList": list(events)}}


def obj(epcs, t="2026-03-01T08:00:00+08:00", **kw):
    e = {"type": "ObjectEvent", "eventTime": t, "eventTimeZoneOffset": "+08:00", "action": "OBSERVE",
         "epcList": epcs}
    e.update(kw)
    return e


def events_of(resp):
    assert resp.status_code == 200, describe(resp)
    body = resp.json()
    assert body["type"] == "EPCISQueryDocument"
    return body["epcisBody"]["queryResults"]["resultsBody"]["eventList"]


def normalise(ev):
    ev = dict(ev)
    ev.pop("recordTime", None)
    ev.pop("@context", None)
    return ev


@pytest.fixture(scope="module")
def tenant(server):
    return server.tenant_with_admin("epcis")


def test_every_example_round_trips(server, plateau_factory):
    assert len(EXAMPLES) >= 40, f"no EPCIS examples under {TESTDATA}"
    for path in EXAMPLES:
        name, tok = server.tenant_with_admin("ex")  # one tenant per document: exact read-back
        raw = path.read_bytes()
        r = capture(server, tok, raw)
        if path.name == DUPLICATE_KEY:
            assert_error(r, 400)
            assert "duplicate" in r.json()["error"]["message"], describe(r)
            continue
        assert r.status_code == 202, f"{path.name}: {describe(r)}"
        assert r.headers["Location"].startswith("/epcis/capture/")
        job = server.api("GET", r.headers["Location"], token=tok).json()
        assert job["success"] and not job["running"], job
        src = json.loads(raw)
        if src["type"] == "EPCISQueryDocument":
            sent = src["epcisBody"]["queryResults"]["resultsBody"]["eventList"]
        else:
            sent = src["epcisBody"]["eventList"]
        assert job["captured"] + job["duplicates"] == len(sent)
        got = events_of(server.api("GET", "/epcis/events", token=tok, params={"perPage": 1000}))
        assert len(got) == job["captured"], path.name
        by_id = {e["eventID"]: normalise(e) for e in got}
        for e in sent:
            e = normalise(e)
            if "eventID" in e:
                assert by_id.get(e["eventID"]) == e, f"{path.name}: {e['eventID']} differs"
            else:  # the repository computed the id: the rest must be identical
                matches = [g for g in by_id.values() if {k: v for k, v in g.items() if k != "eventID"} == e]
                assert matches, f"{path.name}: event without eventID not found"
                assert matches[0]["eventID"].startswith("ni:///sha-256;")
            # and each event is found by its id, and all its fields are there, field by field
        for eid, e in by_id.items():
            # Every event by its id in the path, '/' (ni:///...) percent-encoded, and by EQ_eventID.
            one = server.api("GET", "/epcis/events/" + urllib.parse.quote(eid, safe=""), token=tok)
            assert one.status_code == 200, describe(one)
            one = one.json()
            found = events_of(server.api("GET", "/epcis/events", token=tok, params={"EQ_eventID": eid}))
            assert len(found) == 1, eid
            assert normalise(found[0]) == normalise(one), eid
            for k, v in e.items():
                assert one[k] == v, f"{path.name}: field {k}"


def test_capture_limits_options_and_behaviour(server, tenant):
    _, tok = tenant
    r = server.api("OPTIONS", "/epcis/capture", token=tok)
    assert r.status_code == 204, describe(r)
    assert int(r.headers["GS1-EPCIS-Capture-Limit"]) >= 1000
    assert int(r.headers["GS1-EPCIS-Capture-File-Size-Limit"]) > 0
    bad = {"type": "ObjectEvent", "eventTime": "2026-03-01T08:00:00Z", "eventTimeZoneOffset": "+00:00",
           "action": "MOVE"}
    good = obj(["urn:epc:id:sgtin:0614141.107346.9001"])
    r = capture(server, tok, doc(good, bad))
    assert_error(r, 400)
    assert "event 1" in r.json()["error"]["message"] and "ADD, OBSERVE or DELETE" in r.json()["error"]["message"]
    assert r.json()["problems"][0]["event"] == 1
    q = events_of(server.api("GET", "/epcis/events", token=tok,
                             params={"MATCH_epc": "urn:epc:id:sgtin:0614141.107346.9001"}))
    assert q == [], "rollback captured something"
    r = capture(server, tok, doc(good, bad), behaviour="proceed")
    assert r.status_code == 202, describe(r)
    job = r.json()
    assert job["captured"] == 1 and job["rejected"] == 1 and not job["success"]
    assert job["errors"][0]["event"] == 1
    # the same event again is deduplicated
    r = capture(server, tok, doc(good))
    assert r.status_code == 202 and r.json()["duplicates"] == 1 and r.json()["captured"] == 0
    assert_error(capture(server, tok, doc(good), behaviour="sometimes"), 400)
    # over the event limit: 413 naming the limit
    limit = int(server.api("OPTIONS", "/epcis/capture", token=tok).headers["GS1-EPCIS-Capture-Limit"])
    many = doc(*[obj([f"urn:epc:id:sgtin:0614141.107346.{i}"]) for i in range(limit + 1)])
    r = capture(server, tok, many)
    assert_error(r, 413)
    assert "limit" in r.json()["error"]["message"]
    # over the size limit: the server answers 413 as soon as it sees Content-Length and closes
    # the connection, so a client still sending may see the reset before it reads the answer.
    size = int(r.headers.get("GS1-EPCIS-Capture-File-Size-Limit", 8388608))
    try:
        r = capture(server, tok, b"{" + b" " * (size + 10) + b"}")
        assert_error(r, 413)
    except requests.exceptions.ConnectionError:
        pass
    assert server.api("GET", "/healthz").status_code == 200


@pytest.mark.parametrize("body, words", [
    (b"{not json", "JSON"),
    (b"[]", "object"),
    (b'{"type":"EPCISDocument"}', "schemaVersion"),
    (b'{"type":"Nothing"}', "EPCISDocument"),
    (b'{"type":"EPCISDocument","schemaVersion":"2.0","creationDate":"2026-01-01T00:00:00Z","epcisBody":{}}',
     "eventList"),
    (b"[" * 200 + b"]" * 200, ""),
    (b'{"type":"EPCISDocument","schemaVersion":"2.0","creationDate":"2026-01-01T00:00:00Z",'
     b'"epcisBody":{"eventList":[{"type":"ObjectEvent","action":"ADD","eventTime":"2026-01-01T00:00:00Z",'
     b'"eventTimeZoneOffset":"+00:00","epcList":[7]}]}}', "epcList"),
])
def test_capture_bad_documents(server, tenant, body, words):
    _, tok = tenant
    r = capture(server, tok, body)
    assert_error(r, 400)
    assert words in r.json()["error"]["message"], describe(r)


def test_capture_needs_json_and_auth(server, tenant):
    _, tok = tenant
    r = server.api("POST", "/epcis/capture", token=tok, data=json.dumps(doc()), headers={"Content-Type": "text/plain"})
    assert_error(r, 415)
    assert_error(server.api("POST", "/epcis/capture", data=json.dumps(doc())), 401)
    viewer = server.create_token(tenant[0], "viewer")
    assert_error(capture(server, viewer, doc()), 403)
    assert_error(server.api("GET", "/epcis/capture/999999", token=tok), 404)
    assert_error(server.api("GET", "/epcis/capture/abc", token=tok), 404)


def test_query_parameters(server):
    _, tok = server.tenant_with_admin("q")
    a = "urn:epc:id:sgtin:0614141.107346.1"
    b = URN_DL["urn:epc:id:sgtin:0614141.107346.2017"]
    evs = [
        obj([a], t="2026-03-01T08:00:00+08:00", bizStep="shipping", disposition="in_transit",
            readPoint={"id": "urn:epc:id:sgln:0614141.00777.0"}),
        obj([b], t="2026-03-02T08:00:00+08:00", bizStep="urn:epcglobal:cbv:bizstep:receiving", action="ADD",
            bizLocation={"id": "urn:epc:id:sgln:0614141.00888.0"}),
        {"type": "AggregationEvent", "eventTime": "2026-03-03T08:00:00+08:00", "eventTimeZoneOffset": "+08:00",
         "action": "ADD", "parentID": "urn:epc:id:sscc:0614141.1234567890", "childEPCs": [a],
         "bizStep": "packing"},
        {"type": "TransformationEvent", "eventTime": "2026-03-04T08:00:00+08:00", "eventTimeZoneOffset": "+08:00",
         "inputQuantityList": [{"epcClass": "urn:epc:class:lgtin:4012345.012345.W1", "quantity": 100, "uom": "LTR"}],
         "outputEPCList": ["urn:epc:id:sgtin:0614141.107346.77"], "bizStep": "https://example.com/steps/blend"},
    ]
    r = capture(server, tok, doc(*evs))
    assert r.status_code == 202 and r.json()["captured"] == 4, describe(r)

    def q(**params):
        return events_of(server.api("GET", "/epcis/events", token=tok, params=params))

    assert len(q()) == 4
    assert [e["type"] for e in q(eventType="AggregationEvent|TransformationEvent")] == ["AggregationEvent",
                                                                                          "TransformationEvent"]
    assert len(q(GE_eventTime="2026-03-02T00:00:00Z", LT_eventTime="2026-03-03T00:00:00Z")) == 1
    assert len(q(EQ_action="ADD")) == 2
    assert len(q(EQ_bizStep="receiving")) == 1  # the URN form matches the short name
    assert len(q(EQ_bizStep="https://ref.gs1.org/cbv/BizStep-shipping|packing")) == 2
    assert len(q(EQ_disposition="in_transit")) == 1
    assert len(q(EQ_readPoint="urn:epc:id:sgln:0614141.00777.0")) == 1
    assert len(q(WD_bizLocation="urn:epc:id:sgln:0614141.00888.0")) == 1
    # URN <-> Digital Link forms of one EPC are one identifier
    assert len(q(MATCH_epc="urn:epc:id:sgtin:0614141.107346.2017")) == 1
    assert len(q(MATCH_epc=a)) == 2  # epcList and childEPCs
    assert len(q(MATCH_anyEPC=a)) == 2
    assert len(q(MATCH_parentID="urn:epc:id:sscc:0614141.1234567890")) == 1
    assert len(q(MATCH_outputEPC="urn:epc:id:sgtin:0614141.107346.77")) == 1
    assert len(q(MATCH_inputEPCClass="urn:epc:class:lgtin:4012345.012345.W1")) == 1
    assert len(q(MATCH_epc="urn:epc:idpat:sgtin:0614141.107346.*")) == 3  # a twice, b
    assert len(q(MATCH_anyEPC="urn:epc:idpat:sgtin:0614141.107346.*")) == 4
    eid = q(EQ_bizStep="packing")[0]["eventID"]
    assert len(q(EQ_eventID=eid)) == 1
    times = [e["eventTime"] for e in q(orderBy="eventTime", orderDirection="DESC")]
    assert times == sorted(times, reverse=True)
    # paging through nextPageToken
    seen, params = [], {"perPage": 1}
    for _ in range(10):
        r = server.api("GET", "/epcis/events", token=tok, params=params)
        seen += events_of(r)
        if "GS1-Next-Page-Token" not in r.headers:
            break
        assert 'rel="next"' in r.headers["Link"]
        params = {"perPage": 1, "nextPageToken": r.headers["GS1-Next-Page-Token"]}
    assert len(seen) == 4 and len({e["eventID"] for e in seen}) == 4
    assert len(q(eventCountLimit=2)) == 2
    # the other resources
    ep = urllib.parse.quote(a, safe="")
    assert len(events_of(server.api("GET", f"/epcis/epcs/{ep}/events", token=tok))) == 2
    r = server.api("GET", "/epcis/eventTypes", token=tok)
    assert r.status_code == 200 and "TransformationEvent" in r.json()["member"]
    assert len(events_of(server.api("GET", "/epcis/eventTypes/ObjectEvent/events", token=tok))) == 2
    steps = server.api("GET", "/epcis/bizSteps", token=tok).json()["member"]
    assert "https://ref.gs1.org/cbv/BizStep-receiving" in steps and "https://example.com/steps/blend" in steps
    assert server.api("GET", "/epcis/bizLocations", token=tok).json()["member"] == [
        "https://id.gs1.org/414/0614141008889"]
    assert len(server.api("GET", "/epcis/readPoints", token=tok).json()["member"]) == 1
    assert server.api("GET", "/epcis/dispositions", token=tok).json()["member"] == [
        "https://ref.gs1.org/cbv/Disp-in_transit"]
    assert b in server.api("GET", "/epcis/epcs", token=tok).json()["member"]


@pytest.mark.parametrize("params, words", [
    ({"eventType": "PizzaEvent"}, "eventType"),
    ({"GE_eventTime": "yesterday"}, "GE_eventTime"),
    ({"EQ_action": "MOVE"}, "EQ_action"),
    ({"EQ_bizStep": "brewing"}, "EQ_bizStep"),
    ({"orderBy": "colour"}, "orderBy"),
    ({"orderDirection": "UP"}, "orderDirection"),
    ({"perPage": "0"}, "perPage"),
    ({"perPage": "x"}, "perPage"),
    ({"eventCountLimit": "-1"}, "eventCountLimit"),
    ({"nextPageToken": "garbage"}, "nextPageToken"),
    ({"MATCH_epc": ""}, "MATCH_epc"),
    ({"MATCH_epc": "a||b"}, "MATCH_epc"),
    ({"colour": "red"}, "colour"),
])
def test_query_bad_parameters(server, tenant, params, words):
    _, tok = tenant
    r = server.api("GET", "/epcis/events", token=tok, params=params)
    assert_error(r, 400)
    assert words in r.json()["error"]["message"], describe(r)


def test_named_queries(server):
    _, tok = server.tenant_with_admin("nq")
    capture(server, tok, doc(obj(["urn:epc:id:sgtin:0614141.107346.5"], bizStep="shipping"),
                             obj(["urn:epc:id:sgtin:0614141.107346.6"], bizStep="receiving")))
    body = {"name": "shipped", "query": {"EQ_bizStep": ["shipping"], "eventType": "ObjectEvent"}}
    r = server.api("POST", "/epcis/queries", token=tok, json=body)
    assert r.status_code == 201, describe(r)
    assert r.headers["Location"] == "/epcis/queries/shipped"
    assert_error(server.api("POST", "/epcis/queries", token=tok, json=body), 409)
    assert server.api("GET", "/epcis/queries/shipped", token=tok).json()["query"]["EQ_bizStep"] == ["shipping"]
    assert [q["name"] for q in server.api("GET", "/epcis/queries", token=tok).json()["member"]] == ["shipped"]
    got = events_of(server.api("GET", "/epcis/queries/shipped/events", token=tok))
    assert len(got) == 1 and got[0]["epcList"] == ["urn:epc:id:sgtin:0614141.107346.5"]
    for bad in [{"name": "x y", "query": {}}, {"name": "ok", "query": {"colour": "red"}},
                {"name": "ok", "query": {"EQ_bizStep": 5.5}}, {"name": "ok"}, {"query": {}}]:
        assert_error(server.api("POST", "/epcis/queries", token=tok, json=bad), 400)
    assert_error(server.api("GET", "/epcis/queries/nothing", token=tok), 404)
    assert_error(server.api("GET", "/epcis/queries/nothing/events", token=tok), 404)
    assert server.api("DELETE", "/epcis/queries/shipped", token=tok).status_code == 204
    assert_error(server.api("DELETE", "/epcis/queries/shipped", token=tok), 404)


def test_device_credentials_capture_only(server):
    """A device (a packing-line scanner) may capture its tenant's events; it may not read them,
    nor manage named queries and subscriptions; viewers may read but not capture."""
    name, tok = server.tenant_with_admin("epcdev")
    dev = server.create_device_cli("scanner-1", name)
    viewer = server.create_token(name, "viewer")
    r = capture(server, dev, doc(obj(["urn:epc:id:sgtin:4012345.011111.700"])))
    assert r.status_code == 202 and r.json()["captured"] == 1, describe(r)
    assert_error(server.api("GET", "/epcis/events", token=dev), 403)
    assert_error(server.api("POST", "/epcis/queries", token=dev,
                            json={"name": "q1", "query": {"EQ_action": ["OBSERVE"]}}), 403)
    assert server.api("POST", "/epcis/queries", token=tok,
                      json={"name": "q1", "query": {"EQ_action": ["OBSERVE"]}}).status_code == 201
    assert_error(server.api("DELETE", "/epcis/queries/q1", token=dev), 403)
    assert_error(server.api("POST", "/epcis/queries/q1/subscriptions", token=dev,
                            json={"dest": "http://127.0.0.1:9/hook"}), 403)
    assert len(events_of(server.api("GET", "/epcis/events", token=viewer))) == 1
    assert_error(capture(server, viewer, doc(obj(["urn:epc:id:sgtin:4012345.011111.701"]))), 403)
