"""The consumer's product page (/trace/{epc}: public HTML in Chinese, Tibetan or English, public
events only, a clear recall warning) and the join of trace events with equipment readings
(/api/v1/trace/{epc} "equipment": summarised readings of the devices that made a batch)."""

import json
import time
import urllib.parse

import pytest

from plateau_helpers import assert_error, describe

LOT = "urn:epc:class:lgtin:4012345.000003.LOT-7"
LOT_DL = "https://id.gs1.org/01/04012345000030/10/LOT-7"
SECRET = "internal-note-do-not-show"


def document(events):
    return {"type": "EPCISDocument", "schemaVersion": "2.0", "creationDate": "2026-04-30T00:00:00Z",
            "epcisBody": {"eventList": events}}


def capture(server, token, events):
    r = server.api("POST", "/epcis/capture", token=token, data=json.dumps(document(events)),
                   headers={"Content-Type": "application/json"})
    assert r.status_code == 202 and r.json()["success"], describe(r)


def when(ms):
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms / 1000)) + ".000Z"


@pytest.fixture(scope="module")
def maker(server):
    name, tok = server.tenant_with_admin("page")
    now = int(time.time() * 1000) // 1000 * 1000
    made = now - 600_000
    r = server.api("POST", "/api/v1/devices", token=tok, json={"name": "filler-1"})
    assert r.status_code == 201, describe(r)
    # the filler's readings while the lot ran (line protocol into the tenant's default database)
    lines = "\n".join(f"device,device=filler-1 ozone={0.3 + i * 0.01},temp={4 + i % 2}i {(made - 1_800_000 + i * 60_000) * 1_000_000}"
                      for i in range(30))
    r = server.http.post(server.url("/write"), params={"db": "plateau"}, data=lines,
                         headers={"Authorization": f"Bearer {tok}"}, timeout=30)
    assert r.status_code == 204, describe(r)
    r = server.api("POST", "/api/v1/devices", token=tok, json={"name": "capper-1", "location": "urn:epc:id:sgln:4012345.00011.0"})
    assert r.status_code == 201, describe(r)
    base = {"eventTimeZoneOffset": "+00:00", "plateau:public": True}
    capture(server, tok, [
        dict(base, type="ObjectEvent", action="ADD", bizStep="commissioning", eventTime=when(made),
             quantityList=[{"epcClass": LOT, "quantity": 10000}], readPoint={"id": "urn:epc:id:sgln:4012345.00011.0"},
             **{"plateau:product": "Spring water 500 ml", "plateau:producer": "Dolkar Spring Water Co.",
                "plateau:origin": "Nyenchen Tanglha spring", "plateau:devices": ["filler-1"],
                "plateau:timeSpan": {"start": when(made - 1_800_000), "end": when(made)}}),
        dict(base, type="ObjectEvent", action="OBSERVE", bizStep="inspecting", disposition="conformant",
             eventTime=when(made + 60_000), quantityList=[{"epcClass": LOT}]),
        {"type": "ObjectEvent", "action": "OBSERVE", "bizStep": "storing", "eventTime": when(made + 120_000),
         "eventTimeZoneOffset": "+00:00", "quantityList": [{"epcClass": LOT}], "example:note": SECRET},
    ])
    return name, tok, made


def page(server, epc, lang=None):
    h = {"Accept-Language": lang} if lang else {}
    return server.http.get(server.url("/trace/" + urllib.parse.quote(epc, safe="")), headers=h, timeout=30)


def test_page_in_three_languages(server, maker):
    for lang, words in [("en-GB,en;q=0.9", ["Product story", "Spring water 500 ml", "Dolkar Spring Water Co.",
                                             "Nyenchen Tanglha spring", "passed", "Inspections"]),
                        ("zh-CN,zh;q=0.9", ["产品溯源", "合格", "生产商"]),
                        ("bo", ["ཐོན་རྫས་ཀྱི་རྗེས་འདེད།", "ཚད་ལྡན།"])]:
        r = page(server, LOT, lang)
        assert r.status_code == 200, describe(r)
        assert r.headers["Content-Type"].startswith("text/html")
        text = r.content.decode()
        for w in words:
            assert w in text, (lang, w)
        assert SECRET not in text and "storing" not in text  # the unshared event stays private
        assert 'class="recall"' not in text  # no warning before the recall
        assert len(r.content) < 16_000
    # a serialised bottle of the lot, in Digital Link form, reaches the same story
    r = server.http.get(server.url("/trace"), params={"epc": LOT_DL + "/21/0001"}, headers={"Accept-Language": "en"},
                        timeout=30)
    assert r.status_code == 200 and "Spring water 500 ml" in r.text


def test_page_recall_warning(server, maker):
    _, tok, made = maker
    capture(server, tok, [{"type": "ObjectEvent", "action": "OBSERVE", "bizStep": "holding", "disposition": "recalled",
                           "eventTime": when(made + 300_000), "eventTimeZoneOffset": "+00:00",
                           "quantityList": [{"epcClass": LOT}], "plateau:public": True}])
    r = page(server, LOT, "en")
    assert r.status_code == 200 and 'class="recall"' in r.text and "has been recalled" in r.text
    r = page(server, LOT, "zh")
    assert "召回" in r.text


def test_page_unknown_and_bad(server, maker):
    r = page(server, "urn:epc:class:lgtin:4012345.000003.NOPE", "en")
    assert r.status_code == 404 and "No public trace information" in r.text
    r = page(server, "urn:epc:idpat:sgtin:4012345.000003.*")
    assert r.status_code == 400
    assert server.http.get(server.url("/trace"), timeout=30).status_code == 400


def test_equipment_readings_in_the_trace(server, maker):
    _, tok, made = maker
    r = server.api("GET", "/api/v1/trace/" + urllib.parse.quote(LOT, safe=""), token=tok, params={"direction": "up"})
    assert r.status_code == 200, describe(r)
    eq = r.json()["equipment"]
    assert len(eq) == 1, eq
    devices = {d["device"]: d for d in eq[0]["devices"]}
    assert set(devices) == {"filler-1", "capper-1"}  # named explicitly, and through the readPoint
    ozone = devices["filler-1"]["fields"]["ozone"]
    assert ozone["count"] == 30
    assert ozone["min"] == pytest.approx(0.3) and ozone["max"] == pytest.approx(0.59)
    assert devices["filler-1"]["fields"]["temp"]["count"] == 30
    assert devices["capper-1"]["fields"] == {}


def test_page_names_places_from_master_data(server):
    """The journey shows a location's master-data name rather than its identifier, when the
    owner's master data names it; another enterprise's names are never used."""
    _, tok = server.tenant_with_admin("pagemd")
    _, other = server.tenant_with_admin("pagemdx")
    lot = "urn:epc:class:lgtin:4012345.000003.LOT-MD"
    hall, shop = "urn:epc:id:sgln:4012345.00021.0", "urn:epc:id:sgln:4012345.00022.0"
    vocab = lambda els: {"epcisMasterData": {"vocabularyList": [
        {"type": "urn:epcglobal:epcis:vtype:BusinessLocation", "vocabularyElementList": els}]}}
    d = document([{"type": "ObjectEvent", "action": "ADD", "bizStep": "commissioning",
                   "eventTime": "2026-04-01T08:00:00Z", "eventTimeZoneOffset": "+00:00",
                   "quantityList": [{"epcClass": lot}], "bizLocation": {"id": hall}, "plateau:public": True},
                  {"type": "ObjectEvent", "action": "OBSERVE", "bizStep": "retail_selling",
                   "eventTime": "2026-04-02T08:00:00Z", "eventTimeZoneOffset": "+00:00",
                   "quantityList": [{"epcClass": lot}], "bizLocation": {"id": shop}, "plateau:public": True}])
    d["epcisHeader"] = vocab([{"id": hall, "attributes": [{"id": "urn:epcglobal:cbv:mda#name",
                                                            "attribute": "Bottling hall <Lhasa>"}]}])
    r = server.api("POST", "/epcis/capture", token=tok, data=json.dumps(d), headers={"Content-Type": "application/json"})
    assert r.status_code == 202, describe(r)
    d2 = document([])
    d2["epcisHeader"] = vocab([{"id": shop, "attributes": [{"id": "urn:epcglobal:cbv:mda#name",
                                                            "attribute": "Someone else's name"}]}])
    r = server.api("POST", "/epcis/capture", token=other, data=json.dumps(d2), headers={"Content-Type": "application/json"})
    assert r.status_code == 202, describe(r)
    text = page(server, lot, "en").text
    assert "Bottling hall &lt;Lhasa&gt;" in text          # named, and escaped
    assert "Someone else" not in text                      # not the other tenant's master data
    assert "https://id.gs1.org/414/4012345000221/254/0" in text or "sgln:4012345.00022.0" in text
