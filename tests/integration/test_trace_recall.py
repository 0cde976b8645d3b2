"""Lineage and recall over a generated supply chain (issue 7): springs -> water lots -> bottling
-> cases -> pallets -> shipments -> shops, with one contaminated lot; the recall of that lot finds
exactly the affected cases and shops. Tenant isolation and sharing: a tenant sees its own events
and those shared with it, the regulator sees all (audited), and a trace says where it stopped."""

import json
import types
import urllib.parse

import pytest

from plateau_helpers import assert_error, describe

CP = "4012345"
TZ = "+08:00"


def lgtin(item, lot):
    return f"urn:epc:class:lgtin:{CP}.{item}.{lot}"


def sscc(n):
    return f"urn:epc:id:sscc:{CP}.{n:010d}"


def gln(n):
    return f"urn:epc:id:sgln:{CP}.{n:05d}.0"


def dl_gln(n):  # what the repository reports: the canonical Digital Link
    body = f"{CP}{n:05d}"
    s = sum(int(d) * (3 if i % 2 == 0 else 1) for i, d in enumerate(reversed(body)))
    return f"https://id.gs1.org/414/{body}{(10 - s % 10) % 10}"


def ev(kind, day, **kw):
    e = {"type": kind, "eventTime": f"2026-04-{day:02d}T08:00:00{TZ}", "eventTimeZoneOffset": TZ}
    e.update(kw)
    return e


def document(events):
    return {"@context": ["https://ref.gs1.org/standards/epcis/2.0.0/epcis-context.jsonld"],
            "type": "EPCISDocument", "schemaVersion": "2.0", "creationDate": "2026-04-30T00:00:00Z",
            "epcisBody": {"eventList": events}}


def capture(server, token, events):
    r = server.api("POST", "/epcis/capture", token=token, data=json.dumps(document(events)),
                   headers={"Content-Type": "application/ld+json"})
    assert r.status_code == 202 and r.json()["success"], describe(r)
    return r.json()


def supply_chain(share_with=None):
    """The maker's events, the distributor's events, and what the recall of lot W2 must find."""
    springs = [lgtin("000001", "SPRING-A"), lgtin("000001", "SPRING-B")]
    maker, dist = [], []
    water = {i: lgtin("000002", f"W{i}") for i in range(1, 5)}
    bottles = {i: lgtin("000003", f"B{i}") for i in range(1, 5)}
    for i in range(1, 5):
        maker.append(ev("TransformationEvent", i, bizStep="commissioning",
                        inputQuantityList=[{"epcClass": springs[i % 2], "quantity": 5000, "uom": "LTR"}],
                        outputQuantityList=[{"epcClass": water[i], "quantity": 5000, "uom": "LTR"}],
                        readPoint={"id": gln(10)}))
        maker.append(ev("TransformationEvent", i, bizStep="https://plateau.example/steps/bottling",
                        inputQuantityList=[{"epcClass": water[i], "quantity": 5000, "uom": "LTR"}],
                        outputQuantityList=[{"epcClass": bottles[i], "quantity": 10000}],
                        readPoint={"id": gln(11)}))
    # cases: three per lot, plus case 99 mixing lots 1 and 2
    cases, case_lots = {}, {}
    n = 1
    for i in range(1, 5):
        for _ in range(3):
            cases[n] = sscc(n)
            case_lots[n] = {i}
            maker.append(ev("AggregationEvent", 5, action="ADD", bizStep="packing", parentID=cases[n],
                            childQuantityList=[{"epcClass": bottles[i], "quantity": 24}], readPoint={"id": gln(12)}))
            n += 1
    cases[99] = sscc(99)
    case_lots[99] = {1, 2}
    maker.append(ev("AggregationEvent", 5, action="ADD", bizStep="packing", parentID=cases[99],
                    childQuantityList=[{"epcClass": bottles[1], "quantity": 12},
                                       {"epcClass": bottles[2], "quantity": 12}], readPoint={"id": gln(12)}))
    # pallets: P1 = cases 1-4 (lot 1 and one of lot 2), P2 = 5,6,7,99, P3 = 8-12
    pallets = {1: [1, 2, 3, 4], 2: [5, 6, 7, 99], 3: [8, 9, 10, 11, 12]}
    pal = {p: sscc(1000 + p) for p in pallets}
    for p, members in pallets.items():
        maker.append(ev("AggregationEvent", 6, action="ADD", bizStep="packing", parentID=pal[p],
                        childEPCs=[cases[c] for c in members], readPoint={"id": gln(13)}))
    # shipments (the distributor's): pallet p goes to shop p
    shops = {1: 501, 2: 502, 3: 503}
    for p in pallets:
        shipment = f"urn:epc:id:sscc:{CP}.{9000 + p:010d}"
        dist.append(ev("TransactionEvent", 7, action="ADD", bizStep="shipping", parentID=shipment,
                       epcList=[pal[p]], bizTransactionList=[{"type": "desadv", "bizTransaction": f"urn:x:desadv:{p}"}],
                       readPoint={"id": gln(14)}))
        dist.append(ev("ObjectEvent", 8, action="OBSERVE", bizStep="receiving", disposition="in_progress",
                       epcList=[pal[p]], bizLocation={"id": gln(shops[p])}))
        dist.append(ev("AggregationEvent", 9, action="DELETE", bizStep="unpacking", parentID=pal[p],
                       childEPCs=[cases[c] for c in pallets[p]], bizLocation={"id": gln(shops[p])},
                       disposition="sellable_accessible"))
    if share_with:
        for e in dist:
            e["plateau:shareWith"] = [share_with]
    affected_cases = {c for c, lots in case_lots.items() if 2 in lots}
    shop_of_case = {c: shops[p] for p, members in pallets.items() for c in members}
    return types.SimpleNamespace(maker=maker, dist=dist, water=water, bottles=bottles, cases=cases, pallets=pal,
                                 affected=affected_cases, shops={dl_gln(shop_of_case[c]) for c in affected_cases},
                                 springs=springs)


def norm_sscc(urn):
    cp, sr = urn.split(":")[-1].split(".")
    body = sr[0] + cp + sr[1:]
    s = sum(int(d) * (3 if i % 2 == 0 else 1) for i, d in enumerate(reversed(body)))
    return f"https://id.gs1.org/00/{body}{(10 - s % 10) % 10}"


@pytest.fixture(scope="module")
def world(server):
    w = types.SimpleNamespace()
    w.maker, w.tm = server.tenant_with_admin("maker")
    w.dist, w.td = server.tenant_with_admin("dist")
    w.other, w.to = server.tenant_with_admin("other")
    w.regulator = server.create_token("region", "regulator")
    w.chain = supply_chain(share_with=w.maker)
    capture(server, w.tm, w.chain.maker)
    capture(server, w.td, w.chain.dist)
    return w


def recall(server, token, epc, **params):
    return server.api("GET", f"/api/v1/trace/{urllib.parse.quote(epc, safe='')}/recall", token=token, params=params)


def test_recall_finds_exactly_the_affected_cases_and_shops(server, world):
    r = recall(server, world.tm, world.chain.water[2])
    assert r.status_code == 200, describe(r)
    body = r.json()
    assert body["complete"], body["stopped"]
    got = {a["epc"]: a for a in body["affected"]}
    case_ids = {norm_sscc(world.chain.cases[c]) for c in world.chain.cases}
    found_cases = {e for e in got if e in case_ids}
    assert found_cases == {norm_sscc(world.chain.cases[c]) for c in world.chain.affected}
    assert {got[e]["location"] for e in found_cases} == world.chain.shops
    assert all(got[e]["disposition"] == "https://ref.gs1.org/cbv/Disp-sellable_accessible" for e in found_cases)
    # the pallets and shipments holding them are listed too; other lots are not
    assert norm_sscc(world.chain.pallets[1]) in got and norm_sscc(world.chain.pallets[2]) in got
    assert norm_sscc(world.chain.pallets[3]) not in got
    assert not any("W1" in e or "W3" in e or "B3" in e for e in got)
    # CSV
    r = recall(server, world.tm, world.chain.water[2], format="csv")
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("text/csv")
    lines = r.text.strip().splitlines()
    assert lines[0] == "epc,depth,location,disposition,last_seen"
    assert len(lines) - 1 == len(got)


def test_trace_up_finds_the_spring(server, world):
    case = world.chain.cases[4]  # lot 2
    r = server.api("GET", f"/api/v1/trace/{urllib.parse.quote(case, safe='')}", token=world.tm,
                   params={"direction": "up", "depth": 5})
    assert r.status_code == 200, describe(r)
    epcs = {n["epc"] for n in r.json()["nodes"]}
    assert "https://id.gs1.org/01/04012345000023/10/W2" in epcs
    assert "https://id.gs1.org/01/04012345000016/10/SPRING-A" in epcs
    assert "https://id.gs1.org/01/04012345000023/10/W1" not in epcs
    # depth bounds the walk and says so
    r = server.api("GET", f"/api/v1/trace/{urllib.parse.quote(case, safe='')}", token=world.tm,
                   params={"direction": "up", "depth": 1})
    assert r.status_code == 200 and not r.json()["complete"]
    assert r.json()["stopped"][0]["reason"] == "depth"


def test_isolation_sharing_and_regulator(server, world):
    lot = world.chain.water[2]
    # the distributor does not see the maker's lot
    assert_error(recall(server, world.td, lot), 404)
    assert_error(recall(server, world.to, lot), 404)
    # the distributor's own view of a pallet stops where the maker's unshared events are
    pal = world.chain.pallets[2]
    r = server.api("GET", f"/api/v1/trace/{urllib.parse.quote(pal, safe='')}", token=world.td)
    assert r.status_code == 200, describe(r)
    assert not r.json()["complete"]
    assert any(s["reason"] == "events not visible to you" for s in r.json()["stopped"])
    # shared events are visible to the maker, not to a third tenant
    q = server.api("GET", "/epcis/events", token=world.tm, params={"MATCH_anyEPC": pal})
    assert q.status_code == 200
    assert len(q.json()["epcisBody"]["queryResults"]["resultsBody"]["eventList"]) == 4  # 1 own + 3 shared
    q = server.api("GET", "/epcis/events", token=world.to, params={"MATCH_anyEPC": pal})
    assert q.json()["epcisBody"]["queryResults"]["resultsBody"]["eventList"] == []
    # the regulator sees all, and the read is audited
    r = recall(server, world.regulator, lot)
    assert r.status_code == 200 and r.json()["complete"], describe(r)
    audit = server.api("GET", "/api/v1/audit", token=server.admin_token, params={"action": "trace.read"})
    assert audit.status_code == 200, describe(audit)
    assert any(a.get("action") == "trace.read" for a in audit.json()["items"])
    # the regulator changes nothing
    r = server.api("POST", "/epcis/capture", token=world.regulator, data=json.dumps(document([])),
                   headers={"Content-Type": "application/json"})
    assert r.status_code in (400, 403)
    # sharing with an unknown tenant is an error naming it
    bad = dict(world.chain.dist[0], **{"plateau:shareWith": ["no-such-tenant"]})
    r = server.api("POST", "/epcis/capture", token=world.td, data=json.dumps(document([bad])),
                   headers={"Content-Type": "application/json"})
    assert_error(r, 400)
    assert "no-such-tenant" in r.json()["error"]["message"]


@pytest.mark.parametrize("path, params", [
    ("/api/v1/trace/x", {"direction": "sideways"}),
    ("/api/v1/trace/x", {"depth": "0"}),
    ("/api/v1/trace/x", {"depth": "21"}),
    ("/api/v1/trace/x", {"depth": "two"}),
    ("/api/v1/trace/x/recall", {"format": "xml"}),
    ("/api/v1/trace/urn:epc:idpat:sgtin:4012345.000003.*", {}),
])
def test_trace_bad_input(server, world, path, params):
    assert_error(server.api("GET", path, token=world.tm, params=params), 400)


def test_trace_unknown_and_unauthenticated(server, world):
    assert_error(server.api("GET", "/api/v1/trace/urn:epc:id:sscc:4012345.0000000777", token=world.tm), 404)
    assert_error(server.api("GET", "/api/v1/trace/x"), 401)
