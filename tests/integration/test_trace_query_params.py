"""EPCIS 2.0 query parameters on fields without an index of their own: quantities, persistent
dispositions, transformation ids, error declarations, business transactions, sources and
destinations, sensor data, maxEventCount, and extension fields (top level, ilmd, inner, error
declaration, sensor and location extensions). Hand-written events with a case for every parameter
(each case's expected set is exact, so it checks both what matches and what must not), the
standard's example documents checked against a small reference implementation in Python, bad
values, named queries and subscriptions."""

import datetime
import http.server
import json
import os
import pathlib
import queue
import threading

import pytest

from plateau_helpers import assert_error, describe

TESTDATA = pathlib.Path(os.environ.get("PLATEAU_TESTDATA",
                                       pathlib.Path(__file__).resolve().parents[2] / ".." / "shared" / "testdata"))
EXAMPLES = sorted((TESTDATA / "epcis" / "JSON").rglob("*.jsonld"))
DUPLICATE_KEY = "AssociationEvent-h.jsonld"  # rejected: names "eventID" twice in one object

CONTEXT = ["https://ref.gs1.org/standards/epcis/2.0.0/epcis-context.jsonld",
           {"ex": "https://ns.example.com/epcis/"}]


def uuid(n):
    return f"urn:uuid:a0000000-0000-4000-8000-{n:012d}"


def event(name, t, **kw):
    e = {"type": "ObjectEvent", "eventID": uuid(NAMES.index(name) + 1), "eventTime": t,
         "eventTimeZoneOffset": "+08:00", "action": "OBSERVE",
         "epcList": [f"urn:epc:id:sgtin:0614141.107346.{NAMES.index(name) + 100}"]}
    e.update(kw)
    return e


NAMES = ["S1", "S2", "Q1", "Q2", "E1", "E2", "X1", "P"]
ALL = frozenset(NAMES)
CORRECTIVE = ["urn:uuid:c0000000-0000-4000-8000-000000000001", "urn:uuid:c0000000-0000-4000-8000-000000000002",
              "urn:uuid:c0000000-0000-4000-8000-000000000003"]
CHEMICAL = "https://identifiers.org/inchikey:CZMRCDWAGMRECN-UGDNZRGBSA-N"
MICROBE = "https://www.ncbi.nlm.nih.gov/taxonomy/1126011"

EVENTS = [
    event("S1", "2026-03-01T08:00:00+08:00", sensorElementList=[{
        "sensorMetadata": {"time": "2026-03-01T10:00:00+08:00", "startTime": "2026-03-01T09:00:00+08:00",
                           "endTime": "2026-03-01T10:00:00+08:00", "deviceID": "urn:epc:id:giai:4000001.111",
                           "dataProcessingMethod": "https://example.com/dpm/mean",
                           "bizRules": "https://example.com/rules/cold-chain",
                           "ex:calibrated": "2026-01-15T00:00:00Z"},
        "sensorReport": [
            {"type": "gs1:Temperature", "value": 4.5, "uom": "CEL", "minValue": 2.0, "maxValue": 7.5,
             "meanValue": 4.4, "sDev": 0.3, "percRank": 50, "percValue": 4.5, "ex:probe": "P-1"},
            {"type": "Temperature", "value": 40.1, "uom": "FAH"},
            {"type": "RelativeHumidity", "value": 65, "uom": "P1", "booleanValue": False},
        ],
        "ex:zone": "chiller"}]),
    event("S2", "2026-03-02T08:00:00+08:00", sensorElementList=[
        {"sensorMetadata": {"time": "2026-03-02T02:00:00Z"},
         "sensorReport": [{"type": "https://gs1.org/voc/Temperature", "value": 9, "uom": "CEL", "minValue": 8.5,
                           "maxValue": 12, "meanValue": 9.7, "sDev": 1.2, "percRank": 95, "percValue": 11.5,
                           "deviceID": "https://id.gs1.org/8004/4000001333",
                           "dataProcessingMethod": "https://example.com/dpm/max", "time": "2026-03-02T02:05:00Z",
                           "stringValue": "door open", "booleanValue": True, "hexBinaryValue": "0A1B",
                           "uriValue": "https://example.com/alarms/door", "microorganism": MICROBE,
                           "chemicalSubstance": CHEMICAL, "ex:alarm": {"ex:level": 3}}]},
        {"sensorReport": [{"type": "ex:Vibration", "stringValue": "ok"}]}]),
    event("Q1", "2026-03-03T08:00:00+08:00",
          quantityList=[{"epcClass": "urn:epc:class:lgtin:4012345.012345.998877", "quantity": 200.5, "uom": "KGM"},
                        {"epcClass": "urn:epc:idpat:sgtin:4012345.098765.*", "quantity": 10}],
          bizTransactionList=[{"type": "po", "bizTransaction": "urn:epcglobal:cbv:bt:0614141073467:PO-1"},
                              {"type": "urn:epcglobal:cbv:btt:desadv",
                               "bizTransaction": "urn:epcglobal:cbv:bt:0614141073467:ASN-1"}],
          sourceList=[{"type": "owning_party", "source": "urn:epc:id:pgln:0614141.00001"}],
          destinationList=[{"type": "https://ref.gs1.org/cbv/SDT-location",
                            "destination": "https://id.gs1.org/414/0614141007776"}],
          persistentDisposition={"set": ["completeness_verified"],
                                 "unset": ["urn:epcglobal:cbv:disp:completeness_inferred"]},
          **{"ex:batchSize": 500, "ex:grade": "A", "ex:packedAt": "2026-03-03T07:00:00+08:00", "ex:organic": True,
             "ex:tags": ["cold", "fragile"], "ex:lab": {"ex:site": {"ex:plant": "Lhasa-1"}, "ex:max": 8.5},
             "ex:countText": "20"}),
    event("Q2", "2026-03-04T08:00:00+08:00", action="ADD", bizStep="commissioning",
          quantityList=[{"epcClass": "urn:epc:class:lgtin:4012345.012345.LOT2", "quantity": 5, "uom": "KGM"}],
          bizTransactionList=[{"type": "https://ref.gs1.org/cbv/BTT-po",
                               "bizTransaction": "urn:epcglobal:cbv:bt:0614141073467:PO-2"}],
          sourceList=[{"type": "urn:epcglobal:cbv:sdt:possessing_party", "source": "urn:epc:id:pgln:0614141.00002"}],
          destinationList=[{"type": "owning_party", "destination": "urn:epc:id:pgln:0614141.00001"}],
          ilmd={"ex:bestBefore": "2026-09-01T00:00:00Z", "ex:lot": "L7", "ex:weight": 12.5,
                "ex:origin": {"ex:country": "CN", "ex:farm": {"ex:altitude": 3650}}},
          **{"ex:batchSize": 20, "ex:grade": "B", "ex:packedAt": "2026-03-04T07:00:00Z", "ex:organic": False}),
    event("E1", "2026-03-05T08:00:00+08:00",
          errorDeclaration={"declarationTime": "2026-03-05T10:00:00+08:00", "reason": "incorrect_data",
                            "correctiveEventIDs": [CORRECTIVE[0]], "ex:by": "qa-team",
                            "ex:detail": {"ex:code": 42}}),
    event("E2", "2026-03-06T08:00:00+08:00",
          errorDeclaration={"declarationTime": "2026-03-06T00:00:00Z", "reason": "urn:epcglobal:cbv:er:did_not_occur",
                            "correctiveEventIDs": CORRECTIVE[1:]},
          **{"ex:lot": "L8", "ex:plant": "Shigatse-2"}),
    {"type": "TransformationEvent", "eventID": uuid(7), "eventTime": "2026-03-07T08:00:00+08:00",
     "eventTimeZoneOffset": "+08:00", "transformationID": "urn:epc:id:gdti:0614141.12345.400",
     "inputQuantityList": [{"epcClass": "urn:epc:class:lgtin:4012345.012345.W1", "quantity": 1000, "uom": "LTR"}],
     "outputQuantityList": [{"epcClass": "urn:epc:class:lgtin:4012345.012345.OUT", "quantity": 200.5}],
     "ilmd": {"ex:farm": "F9"},
     "readPoint": {"id": "urn:epc:id:sgln:0614141.00777.0", "ex:dock": "D4", "ex:gate": {"ex:lane": 2}},
     "bizLocation": {"id": "urn:epc:id:sgln:0614141.00888.0", "ex:hall": "H1"}},
    event("P", "2026-03-08T08:00:00+08:00"),
]
BY_ID = {uuid(i + 1): n for i, n in enumerate(NAMES)}

# (parameters, the events that match); every other event must not match.
CASES = [
    # quantities: any quantity element, or one in the unit the name gives
    ({"EQ_quantity": "200.5"}, {"Q1", "X1"}),
    ({"EQ_quantity": "5|1000"}, {"Q2", "X1"}),
    ({"EQ_quantity": "200.50"}, {"Q1", "X1"}),
    ({"GT_quantity": "200.5"}, {"X1"}),
    ({"GE_quantity": "200.5"}, {"Q1", "X1"}),
    ({"LT_quantity": "10"}, {"Q2"}),
    ({"LE_quantity": "10"}, {"Q1", "Q2"}),
    ({"EQ_quantity_KGM": "200.5"}, {"Q1"}),
    ({"EQ_quantity_KGM": "5"}, {"Q2"}),
    ({"EQ_quantity_KGM": "10"}, set()),  # that 10 has no unit
    ({"GE_quantity_KGM": "6"}, {"Q1"}),
    ({"GT_quantity_KGM": "5"}, {"Q1"}),
    ({"LE_quantity_KGM": "5"}, {"Q2"}),
    ({"LT_quantity_LTR": "1000.5"}, {"X1"}),
    ({"EQ_quantity_GRM": "5000"}, {"Q2"}),  # 5 KGM
    ({"GE_quantity_TNE": "0.2"}, {"Q1"}),  # 200.5 KGM
    ({"EQ_quantity_MLT": "1000000"}, {"X1"}),  # 1000 LTR
    ({"LT_quantity_LTR": "1000"}, set()),
    ({"GT_quantity_LTR": "999"}, {"X1"}),
    ({"GT_quantity_LTR": "1000"}, set()),
    # persistent disposition, transformation id
    ({"EQ_persistentDisposition_set": "completeness_verified"}, {"Q1"}),
    ({"EQ_persistentDisposition_set": "https://ref.gs1.org/cbv/Disp-completeness_verified"}, {"Q1"}),
    ({"EQ_persistentDisposition_unset": "completeness_inferred"}, {"Q1"}),
    ({"EQ_persistentDisposition_set": "completeness_inferred|damaged"}, set()),
    ({"EQ_transformationID": "urn:epc:id:gdti:0614141.12345.400"}, {"X1"}),
    ({"EQ_transformationID": "urn:epc:id:gdti:0614141.12345.401"}, set()),
    # error declarations
    ({"EXISTS_errorDeclaration": ""}, {"E1", "E2"}),
    ({"EXISTS_errorDeclaration": "true"}, {"E1", "E2"}),
    ({"EXISTS_errorDeclaration": "false"}, ALL),  # false: as if not given
    ({"GE_errorDeclaration_Time": "2026-03-05T02:00:00Z"}, {"E1", "E2"}),
    ({"GE_errorDeclaration_Time": "2026-03-05T02:00:00.001Z"}, {"E2"}),
    ({"LT_errorDeclaration_Time": "2026-03-05T02:00:00.001Z"}, {"E1"}),
    ({"LT_errorDeclaration_Time": "2026-03-05T02:00:00Z"}, set()),
    ({"GE_errorDeclarationTime": "2026-03-05T12:00:00+08:00"}, {"E2"}),  # the OpenAPI spelling
    ({"EQ_errorReason": "did_not_occur"}, {"E2"}),
    ({"EQ_errorReason": "incorrect_data"}, {"E1"}),
    ({"EQ_errorReason": "https://ref.gs1.org/cbv/ER-incorrect_data|urn:epcglobal:cbv:er:did_not_occur"},
     {"E1", "E2"}),
    ({"EQ_correctiveEventID": CORRECTIVE[2]}, {"E2"}),
    ({"EQ_correctiveEventID": CORRECTIVE[0] + "|urn:uuid:nothing"}, {"E1"}),
    # business transactions, sources, destinations: the type in any of its forms
    ({"EQ_bizTransaction_po": "urn:epcglobal:cbv:bt:0614141073467:PO-1"}, {"Q1"}),
    ({"EQ_bizTransaction_po": "urn:epcglobal:cbv:bt:0614141073467:PO-1|urn:epcglobal:cbv:bt:0614141073467:PO-2"},
     {"Q1", "Q2"}),
    ({"EQ_bizTransaction_desadv": "urn:epcglobal:cbv:bt:0614141073467:ASN-1"}, {"Q1"}),
    ({"EQ_bizTransaction_desadv": "urn:epcglobal:cbv:bt:0614141073467:PO-1"}, set()),  # PO-1 is a po
    ({"EQ_bizTransaction_urn:epcglobal:cbv:btt:po": "urn:epcglobal:cbv:bt:0614141073467:PO-2"}, {"Q2"}),
    ({"EQ_bizTransaction_https://ref.gs1.org/cbv/BTT-desadv": "urn:epcglobal:cbv:bt:0614141073467:ASN-1"}, {"Q1"}),
    ({"EQ_bizTransaction_https://ref.gs1.org/cbv/BTT-desadv": "urn:epcglobal:cbv:bt:0614141073467:PO-1"}, set()),
    ({"EQ_source_owning_party": "urn:epc:id:pgln:0614141.00001"}, {"Q1"}),
    ({"EQ_source_possessing_party": "urn:epc:id:pgln:0614141.00002"}, {"Q2"}),
    ({"EQ_source_owning_party": "urn:epc:id:pgln:0614141.00002"}, set()),
    ({"EQ_destination_location": "urn:epc:id:sgln:0614141.00777.0"}, {"Q1"}),  # stored as Digital Link
    ({"EQ_destination_location": "https://id.gs1.org/414/0614141007776"}, {"Q1"}),
    ({"EQ_destination_owning_party": "urn:epc:id:pgln:0614141.00001"}, {"Q2"}),
    ({"EQ_destination_location": "urn:epc:id:pgln:0614141.00001"}, set()),
    # sensors
    ({"EXISTS_sensorElementList": ""}, {"S1", "S2"}),
    ({"GE_time": "2026-03-01T02:00:00Z"}, {"S1", "S2"}),
    ({"GE_time": "2026-03-02T02:01:00Z"}, {"S2"}),  # the report's own time
    ({"LT_time": "2026-03-02T00:00:00Z"}, {"S1"}),
    ({"GE_startTime": "2026-03-01T01:00:00Z"}, {"S1"}),
    ({"GE_startTime": "2026-03-01T01:00:00.001Z"}, set()),
    ({"LT_startTime": "2026-03-01T01:00:00Z"}, set()),
    ({"LT_startTime": "2026-03-01T01:00:00.001Z"}, {"S1"}),
    ({"LT_endTime": "2026-03-01T02:00:00.001Z"}, {"S1"}),
    ({"LT_endTime": "2026-03-01T02:00:00Z"}, set()),
    ({"GE_endTime": "2026-03-01T02:00:00Z"}, {"S1"}),
    ({"GE_endTime": "2026-03-01T02:00:00.001Z"}, set()),
    ({"EQ_type": "Temperature"}, {"S1", "S2"}),
    ({"EQ_type": "https://gs1.org/voc/Temperature"}, {"S1", "S2"}),
    ({"EQ_type": "gs1:RelativeHumidity"}, {"S1"}),
    ({"EQ_type": "ex:Vibration"}, {"S2"}),
    ({"EQ_type": "Mass"}, set()),
    ({"EQ_deviceID": "urn:epc:id:giai:4000001.111"}, {"S1"}),
    ({"EQ_deviceID": "urn:epc:id:giai:4000001.333"}, {"S2"}),  # in the report, as Digital Link
    ({"EQ_deviceID": "urn:epc:id:giai:4000001.222"}, set()),
    ({"EQ_dataProcessingMethod": "https://example.com/dpm/max"}, {"S2"}),
    ({"EQ_dataProcessingMethod": "https://example.com/dpm/mean"}, {"S1"}),
    ({"EQ_bizRules": "https://example.com/rules/cold-chain"}, {"S1"}),
    ({"EQ_microorganism": MICROBE}, {"S2"}),
    ({"EQ_chemicalSubstance": CHEMICAL}, {"S2"}),
    ({"EQ_chemicalSubstance": MICROBE}, set()),
    ({"EQ_stringValue": "door open"}, {"S2"}),
    ({"EQ_stringValue": "closed"}, set()),
    ({"EQ_booleanValue": "true"}, {"S2"}),
    ({"EQ_booleanValue": "false"}, {"S1"}),
    ({"EQ_hexBinaryValue": "0A1B"}, {"S2"}),
    ({"EQ_uriValue": "https://example.com/alarms/door"}, {"S2"}),
    ({"EQ_uriValue": "https://example.com/alarms/window"}, set()),
    ({"GT_percRank": "50"}, {"S2"}),
    ({"GE_percRank": "50"}, {"S1", "S2"}),
    ({"LT_percRank": "95"}, {"S1"}),
    ({"LE_percRank": "95"}, {"S1", "S2"}),
    ({"EQ_value_CEL": "4.5"}, {"S1"}),
    ({"EQ_value_CEL": "9|4.5"}, {"S1", "S2"}),
    ({"EQ_value_FAH": "4.5"}, set()),  # 4.5 is in CEL
    ({"EQ_value_FAH": "40.1"}, {"S1"}),
    ({"GE_value_CEL": "5"}, {"S2"}),
    ({"GE_value_CEL": "9"}, {"S2"}),
    ({"GT_value_CEL": "9"}, set()),
    ({"GT_value_CEL": "8.9"}, {"S2"}),
    ({"LT_value_CEL": "5"}, {"S1"}),
    ({"LE_value_CEL": "4.5"}, {"S1"}),
    ({"GE_value_CEL": "40"}, set()),  # S1's 40.1 is in FAH: value and unit of one report
    ({"GT_value_FAH": "40"}, {"S1", "S2"}),  # 40 FAH is 4.4 CEL: S2 has 9 CEL
    # units of one dimension convert (GS1 conformance test TCR-53 asks GE_value_KEL to find CEL)
    ({"GE_value_KEL": "277"}, {"S1", "S2"}),  # 4.5 CEL = 277.65 KEL, 9 CEL = 282.15 KEL
    ({"GE_value_KEL": "280"}, {"S2"}),
    ({"EQ_value_KEL": "277.65"}, {"S1"}),
    ({"EQ_value_KEL": "282.15|1"}, {"S2"}),
    ({"LT_maxValue_FAH": "46"}, {"S1"}),  # the maxValue 7.5 CEL of S1 is 45.5 FAH
    ({"LT_value_FAH": "40"}, set()),
    ({"LT_value_FAH": "41"}, {"S1"}),
    ({"GE_value_P1": "65"}, {"S1"}),
    ({"GE_minValue_CEL": "8"}, {"S2"}),
    ({"LT_minValue_CEL": "8"}, {"S1"}),
    ({"GT_maxValue_CEL": "10"}, {"S2"}),
    ({"LE_maxValue_CEL": "7.5"}, {"S1"}),
    ({"GE_meanValue_CEL": "9.7"}, {"S2"}),
    ({"LT_meanValue_CEL": "5"}, {"S1"}),
    ({"GT_sDev_CEL": "1"}, {"S2"}),
    ({"LE_sDev_CEL": "0.3"}, {"S1"}),
    ({"GE_percValue_CEL": "11.5"}, {"S2"}),
    ({"LT_percValue_CEL": "5"}, {"S1"}),
    # Each sensor parameter holds on its own (the standard's per-parameter wording): S1 has a
    # humidity report and, in another report, a value of at least 4 CEL.
    ({"EQ_type": "RelativeHumidity", "GE_value_CEL": "4"}, {"S1"}),
    ({"EQ_type": "RelativeHumidity", "GE_value_CEL": "5"}, set()),
    # extension fields at the top level, as named in the captured JSON
    ({"EQ_ex:grade": "A"}, {"Q1"}),
    ({"EQ_ex:grade": "A|B"}, {"Q1", "Q2"}),
    ({"EQ_ex:grade": "C"}, set()),
    ({"EQ_ex:batchSize": "500"}, {"Q1"}),
    ({"GT_ex:batchSize": "100"}, {"Q1"}),
    ({"GE_ex:batchSize": "20"}, {"Q1", "Q2"}),
    ({"LE_ex:batchSize": "20"}, {"Q2"}),
    ({"LT_ex:batchSize": "20"}, set()),
    ({"LT_ex:batchSize": "21"}, {"Q2"}),
    ({"EQ_ex:countText": "20.0"}, {"Q1"}),  # a string holding a number counts as that number
    ({"GT_ex:countText": "19"}, {"Q1"}),
    ({"GT_ex:packedAt": "2026-03-03T00:00:00Z"}, {"Q2"}),
    ({"LT_ex:packedAt": "2026-03-03T00:00:00Z"}, {"Q1"}),
    ({"EQ_ex:packedAt": "2026-03-02T23:00:00Z"}, {"Q1"}),  # the same instant, written otherwise
    ({"EQ_ex:organic": "true"}, {"Q1"}),
    ({"EQ_ex:organic": "false"}, {"Q2"}),
    ({"EQ_ex:tags": "fragile"}, {"Q1"}),  # an element of a list
    ({"EXISTS_ex:lab": ""}, {"Q1"}),
    ({"EXISTS_ex:plant": ""}, {"E2"}),  # Q1's is nested: only the INNER_ forms reach it
    ({"EXISTS_INNER_ex:plant": ""}, {"Q1"}),  # and E2's is at the top
    ({"EQ_INNER_ex:plant": "Lhasa-1"}, {"Q1"}),
    ({"GT_INNER_ex:max": "8"}, {"Q1"}),
    ({"LT_INNER_ex:max": "8"}, set()),
    ({"LT_INNER_ex:max": "9"}, {"Q1"}),
    # ilmd
    ({"EQ_ILMD_ex:lot": "L7"}, {"Q2"}),
    ({"EQ_ex:lot": "L7"}, set()),  # that one is in ilmd
    ({"EQ_ex:lot": "L8"}, {"E2"}),
    ({"GT_ILMD_ex:weight": "12"}, {"Q2"}),
    ({"LT_ILMD_ex:weight": "12"}, set()),
    ({"LT_ILMD_ex:weight": "13"}, {"Q2"}),
    ({"GE_ILMD_ex:bestBefore": "2026-08-01T00:00:00Z"}, {"Q2"}),
    ({"LE_ILMD_ex:bestBefore": "2026-08-01T00:00:00Z"}, set()),
    ({"LE_ILMD_ex:bestBefore": "2026-09-01T08:00:00+08:00"}, {"Q2"}),
    ({"EXISTS_ILMD_ex:origin": ""}, {"Q2"}),
    ({"EQ_INNER_ILMD_ex:country": "CN"}, {"Q2"}),
    ({"GE_INNER_ILMD_ex:altitude": "3000"}, {"Q2"}),
    ({"EXISTS_INNER_ILMD_ex:farm": ""}, {"Q2"}),  # X1's is at the top of its ilmd
    ({"EXISTS_ILMD_ex:farm": ""}, {"X1"}),
    # error declaration extensions
    ({"EQ_ERROR_DECLARATION_ex:by": "qa-team"}, {"E1"}),
    ({"EXISTS_ERROR_DECLARATION_ex:by": ""}, {"E1"}),
    ({"EQ_INNER_ERROR_DECLARATION_ex:code": "42"}, {"E1"}),
    ({"GT_INNER_ERROR_DECLARATION_ex:code": "42"}, set()),
    ({"GT_INNER_ERROR_DECLARATION_ex:code": "41.5"}, {"E1"}),
    # sensor extensions
    ({"EQ_SENSORELEMENT_ex:zone": "chiller"}, {"S1"}),
    ({"EQ_SENSORMETADATA_ex:calibrated": "2026-01-15T08:00:00+08:00"}, {"S1"}),
    ({"EQ_SENSORREPORT_ex:probe": "P-1"}, {"S1"}),
    ({"EXISTS_SENSORREPORT_ex:alarm": ""}, {"S2"}),
    ({"EQ_INNER_SENSORREPORT_ex:level": "3"}, {"S2"}),
    ({"GE_INNER_SENSORREPORT_ex:level": "4"}, set()),
    ({"GE_INNER_SENSORREPORT_ex:level": "3"}, {"S2"}),
    # readPoint and bizLocation extensions
    ({"EQ_readPoint_ex:dock": "D4"}, {"X1"}),
    ({"EQ_INNER_readPoint_ex:lane": "2"}, {"X1"}),
    ({"EQ_bizLocation_ex:hall": "H1"}, {"X1"}),
    ({"EQ_bizLocation_ex:hall": "H2|D4"}, set()),  # D4 is the readPoint's dock
    # with the indexed parameters
    ({"EQ_bizStep": "commissioning", "EQ_ex:grade": "B"}, {"Q2"}),
    ({"EQ_bizStep": "commissioning", "EQ_ex:grade": "A"}, set()),
    ({"eventType": "TransformationEvent", "GE_quantity": "200"}, {"X1"}),
]


def doc(*events, context=CONTEXT):
    return {"@context": context, "type": "EPCISDocument", "schemaVersion": "2.0",
            "creationDate": "2026-01-01T00:00:00Z", "epcisBody": {"eventList": list(events)}}


def capture(server, tok, body):
    data = body if isinstance(body, bytes) else json.dumps(body)
    r = server.api("POST", "/epcis/capture", token=tok, data=data, headers={"Content-Type": "application/ld+json"})
    assert r.status_code == 202, describe(r)
    return r.json()


def events_of(resp):
    assert resp.status_code == 200, describe(resp)
    return resp.json()["epcisBody"]["queryResults"]["resultsBody"]["eventList"]


def query(server, tok, params, path="/epcis/events"):
    return events_of(server.api("GET", path, token=tok, params=dict(params, perPage=1000)))


@pytest.fixture(scope="module")
def hand(server):
    _, tok = server.tenant_with_admin("qp")
    job = capture(server, tok, doc(*EVENTS))
    assert job["captured"] == len(EVENTS), job
    return tok


@pytest.mark.parametrize("params, expected", CASES, ids=[" ".join(f"{k}={v}" for k, v in c[0].items())[:80]
                                                        for c in CASES])
def test_parameter(server, hand, params, expected):
    got = [BY_ID.get(e["eventID"], e["eventID"]) for e in query(server, hand, params)]
    assert len(got) == len(set(got)), f"an event twice: {got}"
    assert set(got) == set(expected), f"{params}: got {sorted(got)}, expected {sorted(expected)}"


def test_every_parameter_has_a_match_and_a_miss():
    """The cases above are worth something only when each parameter both finds an event and
    leaves one out."""
    matched, missed = set(), set()
    for params, expected in CASES:
        for k in params:
            if expected:
                matched.add(k)
            if expected != ALL:
                missed.add(k)
    names = {k for params, _ in CASES for k in params}
    assert not names - matched, f"never matches: {sorted(names - matched)}"
    assert not names - missed, f"never excludes: {sorted(names - missed)}"


# ---- the standard's examples against a reference implementation ----

EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)


def ms(text):
    """RFC 3339 to milliseconds, or None."""
    if not isinstance(text, str) or len(text) < 20 or text[4] != "-" or text[10] not in "T ":
        return None
    try:
        t = datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    if t.tzinfo is None:
        return None
    return (t - EPOCH) // datetime.timedelta(milliseconds=1)


def number(v):
    if isinstance(v, bool):
        return None
    if isinstance(v, (int, float)):
        return float(v)
    if isinstance(v, str):
        try:
            x = json.loads(v)
        except ValueError:
            return None
        return float(x) if isinstance(x, (int, float)) and not isinstance(x, bool) else None
    return None


def cbv_forms(prefix_urn, prefix_uri, name):
    return {name, prefix_urn + name, prefix_uri + name}


def objects(ev, scope):
    def obj(x):
        return [x] if isinstance(x, dict) else []
    sensors = [s for s in ev.get("sensorElementList", []) if isinstance(s, dict)]
    if scope == "event":
        return [ev]
    if scope in ("ilmd", "errorDeclaration", "persistentDisposition", "readPoint", "bizLocation"):
        return obj(ev.get(scope))
    if scope == "quantity":
        return [q for k in ("quantityList", "childQuantityList", "inputQuantityList", "outputQuantityList")
                for q in ev.get(k, []) if isinstance(q, dict)]
    if scope in ("bizTransactionList", "sourceList", "destinationList"):
        return [x for x in ev.get(scope, []) if isinstance(x, dict)]
    if scope == "sensorElement":
        return sensors
    if scope == "sensorMetadata":
        return [m for s in sensors for m in obj(s.get("sensorMetadata"))]
    if scope == "sensorReport":
        return [r for s in sensors for r in s.get("sensorReport", []) if isinstance(r, dict)]
    if scope == "sensorAny":
        return objects(ev, "sensorMetadata") + objects(ev, "sensorReport")
    raise AssertionError(scope)


def inner_members(obj, key):
    """Values of `key` anywhere inside obj's extension members."""
    out = []

    def walk(v):
        if isinstance(v, dict):
            for k, x in v.items():
                if k == key:
                    out.append(x)
                walk(x)
        elif isinstance(v, list):
            for x in v:
                walk(x)
    for k, v in obj.items():
        if ":" in k:
            walk(v)
    return out


def ref_match(ev, scope, key, test, inner=False, with_=None):
    for o in objects(ev, scope):
        if with_ and o.get(with_[0]) not in with_[1]:
            continue
        values = inner_members(o, key) if inner else ([o[key]] if key in o else [])
        for v in values:
            for x in (v if isinstance(v, list) else [v]):
                if test(x):
                    return True
    return False


def is_eq_strs(*strs):
    return lambda x: isinstance(x, str) and x in strs


def is_num(pred):
    return lambda x: number(x) is not None and pred(number(x))


def is_time(pred):
    return lambda x: ms(x) is not None and pred(ms(x))


BTT = ("urn:epcglobal:cbv:btt:", "https://ref.gs1.org/cbv/BTT-")
SDT = ("urn:epcglobal:cbv:sdt:", "https://ref.gs1.org/cbv/SDT-")
T0 = ms("2019-04-02T13:00:00Z")

# (parameters, the reference predicate over one event)
EXAMPLE_CASES = [
    ({"EQ_type": "Temperature"},
     lambda e: ref_match(e, "sensorReport", "type", is_eq_strs("Temperature", "gs1:Temperature",
                                                                "https://gs1.org/voc/Temperature"))),
    ({"GE_value_CEL": "20"}, lambda e: ref_match(e, "sensorReport", "value", is_num(lambda v: v >= 20),
                                                 with_=("uom", {"CEL"}))),
    ({"LT_value_KMH": "170"}, lambda e: ref_match(e, "sensorReport", "value", is_num(lambda v: v < 170),
                                                  with_=("uom", {"KMH"}))),
    ({"GE_time": "2019-04-02T13:00:00Z"}, lambda e: ref_match(e, "sensorAny", "time", is_time(lambda t: t >= T0))),
    ({"EQ_deviceID": "urn:epc:id:giai:4000001.111"},
     lambda e: ref_match(e, "sensorAny", "deviceID", is_eq_strs("urn:epc:id:giai:4000001.111",
                                                                "https://id.gs1.org/8004/4000001111"))),
    ({"EXISTS_sensorElementList": ""}, lambda e: "sensorElementList" in e),
    ({"EXISTS_errorDeclaration": ""}, lambda e: "errorDeclaration" in e),
    ({"EQ_errorReason": "incorrect_data"},
     lambda e: ref_match(e, "errorDeclaration", "reason", is_eq_strs(*cbv_forms("urn:epcglobal:cbv:er:",
                                                                                 "https://ref.gs1.org/cbv/ER-",
                                                                                 "incorrect_data")))),
    ({"EQ_bizTransaction_po": "urn:epc:id:gdti:0614141.00001.1618034"},
     lambda e: ref_match(e, "bizTransactionList", "bizTransaction",
                         is_eq_strs("urn:epc:id:gdti:0614141.00001.1618034"),
                         with_=("type", cbv_forms(*BTT, "po")))),
    ({"EQ_source_location": "urn:epc:id:sgln:4012345.00225.0"},
     lambda e: ref_match(e, "sourceList", "source", is_eq_strs("urn:epc:id:sgln:4012345.00225.0",
                                                                "https://id.gs1.org/414/4012345002256"),
                         with_=("type", cbv_forms(*SDT, "location")))),
    ({"GT_quantity": "100"}, lambda e: ref_match(e, "quantity", "quantity", is_num(lambda v: v > 100))),
    ({"EQ_quantity_KGM": "200"}, lambda e: ref_match(e, "quantity", "quantity", is_num(lambda v: v == 200),
                                                     with_=("uom", {"KGM"}))),
    ({"EQ_persistentDisposition_set": "completeness_verified"},
     lambda e: ref_match(e, "persistentDisposition", "set",
                         is_eq_strs(*cbv_forms("urn:epcglobal:cbv:disp:", "https://ref.gs1.org/cbv/Disp-",
                                               "completeness_verified")))),
    ({"EQ_transformationID": "urn:epc:id:gdti:0614141.12345.400"},
     lambda e: e.get("transformationID") == "urn:epc:id:gdti:0614141.12345.400"),
    ({"GT_ext1:int": "5"}, lambda e: ref_match(e, "event", "ext1:int", is_num(lambda v: v > 5))),
    ({"EQ_ext1:string": "string"}, lambda e: ref_match(e, "event", "ext1:string", is_eq_strs("string"))),
    ({"EXISTS_ILMD_cbvmda:lotNumber": ""}, lambda e: ref_match(e, "ilmd", "cbvmda:lotNumber", lambda x: True)),
    ({"EQ_INNER_ext2:string": "stringInObject"},
     lambda e: ref_match(e, "event", "ext2:string", is_eq_strs("stringInObject"), inner=True)),
    ({"EQ_SENSORELEMENT_ext1:string": "string"},
     lambda e: ref_match(e, "sensorElement", "ext1:string", is_eq_strs("string"))),
    ({"EXISTS_SENSORMETADATA_ext1:someFurtherMetadata": ""},
     lambda e: ref_match(e, "sensorMetadata", "ext1:someFurtherMetadata", lambda x: True)),
    ({"LT_ILMD_ext1:time": "2014-01-01T00:00:00Z"},
     lambda e: ref_match(e, "ilmd", "ext1:time", is_time(lambda t: t < ms("2014-01-01T00:00:00Z")))),
]


@pytest.fixture(scope="module")
def examples(server):
    assert len(EXAMPLES) >= 40, f"no EPCIS examples under {TESTDATA}"
    _, tok = server.tenant_with_admin("qpex")
    for path in EXAMPLES:
        if path.name == DUPLICATE_KEY:
            continue
        capture(server, tok, path.read_bytes())
    stored = query(server, tok, {})
    assert len(stored) >= 40  # 56 events, some of them in two files (deduplicated by eventID)
    return tok, stored


@pytest.mark.parametrize("params, predicate", EXAMPLE_CASES, ids=[next(iter(c[0])) for c in EXAMPLE_CASES])
def test_examples_against_reference(server, examples, params, predicate):
    tok, stored = examples
    expected = {e["eventID"] for e in stored if predicate(e)}
    assert expected, f"{params}: the examples have no matching event: the case tests nothing"
    assert len(expected) < len(stored), f"{params}: every example matches: the case tests nothing"
    got = [e["eventID"] for e in query(server, tok, params)]
    assert sorted(got) == sorted(expected), f"{params}: extra {set(got) - expected}, missing {expected - set(got)}"


# ---- maxEventCount ----

def test_max_event_count(server, hand):
    r = server.api("GET", "/epcis/events", token=hand, params={"EXISTS_sensorElementList": "", "maxEventCount": 2})
    assert len(events_of(r)) == 2
    # more matches than allowed: the REST binding's 413 QueryTooLargeException, on every page
    for params in [{"maxEventCount": 1}, {"maxEventCount": 1, "perPage": 1},
                   {"EXISTS_sensorElementList": "", "maxEventCount": 1}, {"maxEventCount": 0}]:
        r = server.api("GET", "/epcis/events", token=hand, params=dict(params, EXISTS_sensorElementList=""))
        err = assert_error(r, 413)
        assert "maxEventCount" in err["message"], describe(r)
        assert r.json()["type"] == "epcisException:QueryTooLargeException"
    r = server.api("GET", "/epcis/events", token=hand, params={"maxEventCount": 8})
    assert len(events_of(r)) == 8
    assert_error(server.api("GET", "/epcis/events", token=hand, params={"maxEventCount": 7}), 413)
    for bad in [{"maxEventCount": "-1"}, {"maxEventCount": "many"}, {"maxEventCount": ""},
                {"maxEventCount": 5, "eventCountLimit": 2}, {"eventCountLimit": 2, "maxEventCount": 5}]:
        r = server.api("GET", "/epcis/events", token=hand, params=bad)
        err = assert_error(r, 400)
        assert "maxEventCount" in err["message"], describe(r)


# ---- bad values ----

@pytest.mark.parametrize("params, words", [
    ({"GE_quantity": "abc"}, "GE_quantity"),
    ({"GE_quantity": "1e999"}, "GE_quantity"),
    ({"GE_quantity": "0x10"}, "GE_quantity"),
    ({"GE_quantity": "nan"}, "GE_quantity"),
    ({"GE_quantity": ""}, "GE_quantity"),
    ({"GE_quantity": "5 "}, "GE_quantity"),
    ({"EQ_quantity": "1||2"}, "EQ_quantity"),
    ({"EQ_quantity": "1|two"}, "EQ_quantity"),
    ({"EQ_quantity_KGM": "x"}, "EQ_quantity_KGM"),
    ({"GE_value_cel": "1"}, "GE_value_cel"),
    ({"GE_value_CELSIUS": "1"}, "GE_value_CELSIUS"),
    ({"GE_value_": "1"}, "GE_value_"),
    ({"EQ_minValue_CEL": "1"}, "EQ_minValue_CEL"),  # not a parameter of the standard
    ({"EXISTS_value_CEL": "1"}, "EXISTS_value_CEL"),
    ({"GT_percRank": "high"}, "GT_percRank"),
    ({"GE_time": "yesterday"}, "GE_time"),
    ({"LT_errorDeclaration_Time": "2026-13-01T00:00:00Z"}, "LT_errorDeclaration_Time"),
    ({"GE_startTime": "2026-03-01"}, "GE_startTime"),
    ({"EQ_errorReason": "oops"}, "EQ_errorReason"),
    ({"EQ_type": "Temprature"}, "EQ_type"),
    ({"EQ_persistentDisposition_set": "fresh"}, "EQ_persistentDisposition_set"),
    ({"EQ_persistentDisposition_unset": ""}, "EQ_persistentDisposition_unset"),
    ({"EQ_bizTransaction_purchase": "urn:x:1"}, "EQ_bizTransaction_purchase"),
    ({"EQ_source_": "urn:x:1"}, "EQ_source_"),
    ({"EQ_destination_owner": "urn:x:1"}, "EQ_destination_owner"),
    ({"GT_bizTransaction_po": "urn:x:1"}, "GT_bizTransaction_po"),
    ({"EQ_booleanValue": "yes"}, "EQ_booleanValue"),
    ({"EXISTS_errorDeclaration": "maybe"}, "EXISTS_errorDeclaration"),
    ({"GT_ex:batchSize": "big"}, "GT_ex:batchSize"),
    ({"EQ_ex:": "x"}, "EQ_ex:"),
    ({"EQ_Ex:grade": "x"}, "EQ_Ex:grade"),
    ({"EQ_ex:gr-ade": "x"}, "EQ_ex:gr-ade"),
    ({"EQ_ex:grade": ""}, "EQ_ex:grade"),
    ({"EXISTS_readPoint_ex:dock": ""}, "EXISTS_readPoint_ex:dock"),
    ({"HASATTR_ex:colour": "red"}, "master data"),
    ({"EQ_ATTR_urn:epcglobal:cbv:mda:site_name": "x"}, "master data"),
    ({"EQ_deviceID": "urn:x:\x01"}, "EQ_deviceID"),
])
def test_bad_values(server, hand, params, words):
    r = server.api("GET", "/epcis/events", token=hand, params=params)
    err = assert_error(r, 400)
    assert words in err["message"], describe(r)


def test_limits(server, hand):
    many = {f"EQ_ex:f{i}": "x" for i in range(33)}
    err = assert_error(server.api("GET", "/epcis/events", token=hand, params=many), 400)
    assert "too many" in err["message"]
    err = assert_error(server.api("GET", "/epcis/events", token=hand,
                                  params={"EQ_stringValue": "|".join(str(i) for i in range(101))}), 400)
    assert "EQ_stringValue" in err["message"]
    # 32 conditions of 100 values each: more than one SQL statement takes: the REST binding's
    # QueryTooComplexException (as a named query: the URL would be too long)
    body = {"name": "huge", "query": {f"EQ_ex:f{i}": [f"v{k}" for k in range(100)] for i in range(32)}}
    r = server.api("POST", "/epcis/queries", token=hand, json=body)
    assert r.status_code == 201, describe(r)
    r = server.api("GET", "/epcis/queries/huge/events", token=hand)
    assert_error(r, 413)
    assert r.json()["type"] == "epcisException:QueryTooComplexException"
    assert server.api("DELETE", "/epcis/queries/huge", token=hand).status_code == 204
    assert server.api("GET", "/healthz").status_code == 200


# ---- named queries and subscriptions ----

def test_named_queries_take_the_new_parameters(server, hand):
    queries = {
        "cold": ({"EQ_type": ["Temperature"], "GE_value_CEL": 8.5, "EXISTS_sensorElementList": None}, {"S2"}),
        "kgm": ({"EQ_quantity_KGM": [200.5, 5], "EQ_ex:organic": True}, {"Q1"}),
        "late": ({"GE_errorDeclaration_Time": "2026-03-05T12:00:00+08:00", "EQ_errorReason": ["did_not_occur"]},
                 {"E2"}),
        "flag": ({"EQ_booleanValue": False, "EXISTS_errorDeclaration": False}, {"S1"}),
        "inner": ({"GT_INNER_ILMD_ex:altitude": 3000.5}, {"Q2"}),
    }
    for name, (params, expected) in queries.items():
        r = server.api("POST", "/epcis/queries", token=hand, json={"name": name, "query": params})
        assert r.status_code == 201, describe(r)
        got = {BY_ID[e["eventID"]] for e in events_of(server.api("GET", f"/epcis/queries/{name}/events", token=hand))}
        assert got == expected, f"{name}: {got}"
    r = server.api("POST", "/epcis/queries", token=hand, json={"name": "toomany", "query": {"maxEventCount": 1,
                                                                                            "EQ_type": "Temperature"}})
    assert r.status_code == 201, describe(r)
    assert_error(server.api("GET", "/epcis/queries/toomany/events", token=hand), 413)
    for bad in [{"GE_value_CEL": "warm"}, {"GE_value_CEL": [1, 2]}, {"EQ_type": ["Temprature"]},
                {"EQ_booleanValue": "maybe"}, {"EQ_quantity": [{"a": 1}]}, {"GT_ex:x": True},
                {"maxEventCount": 3, "eventCountLimit": 3}]:
        r = server.api("POST", "/epcis/queries", token=hand, json={"name": "bad", "query": bad})
        assert_error(r, 400)
    assert server.api("GET", "/epcis/queries/bad", token=hand).status_code == 404


class Hook:
    def __init__(self):
        self.got = queue.Queue()
        hook = self

        class H(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                hook.got.put(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *a):
                pass

        self.srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.url = f"http://127.0.0.1:{self.srv.server_address[1]}/hook"
        threading.Thread(target=self.srv.serve_forever, daemon=True).start()

    def close(self):
        self.srv.shutdown()


def reading(serial, celsius, t="2026-04-01T08:00:00Z"):
    return {"type": "ObjectEvent", "eventTime": t, "eventTimeZoneOffset": "+00:00", "action": "OBSERVE",
            "epcList": [f"urn:epc:id:sgtin:0614141.107346.{serial}"],
            "sensorElementList": [{"sensorReport": [{"type": "Temperature", "value": celsius, "uom": "CEL"}]}]}


def test_subscription_with_sensor_parameters(server):
    _, tok = server.tenant_with_admin("qpsub")
    hook = Hook()
    try:
        r = server.api("POST", "/epcis/queries", token=tok,
                       json={"name": "warm", "query": {"GT_value_CEL": 8, "EQ_type": ["Temperature"]}})
        assert r.status_code == 201, describe(r)
        r = server.api("POST", "/epcis/queries/warm/subscriptions", token=tok, json={"dest": hook.url})
        assert r.status_code == 201, describe(r)
        capture(server, tok, doc(reading(1, 4.0), reading(2, 9.5), reading(3, 8.0), reading(4, 12)))
        body = hook.got.get(timeout=30)
        got = [e["epcList"][0].rsplit(".", 1)[1] for e in body["epcisBody"]["queryResults"]["resultsBody"]["eventList"]]
        assert got == ["2", "4"]
        # maxEventCount: a batch larger than it is not delivered (QueryTooLargeException)
        r = server.api("POST", "/epcis/queries", token=tok,
                       json={"name": "few", "query": {"GT_value_CEL": 8, "maxEventCount": 1}})
        assert r.status_code == 201, describe(r)
        r = server.api("POST", "/epcis/queries/few/subscriptions", token=tok, json={"dest": hook.url + "/few"})
        assert r.status_code == 201, describe(r)
        capture(server, tok, doc(reading(5, 20), reading(6, 21)))
        body = hook.got.get(timeout=30)  # "warm" gets both
        assert body["epcisBody"]["queryResults"]["queryName"] == "warm"
        with pytest.raises(queue.Empty):
            hook.got.get(timeout=2)
        capture(server, tok, doc(reading(7, 30)))
        names = sorted(hook.got.get(timeout=30)["epcisBody"]["queryResults"]["queryName"] for _ in range(2))
        assert names == ["few", "warm"]
    finally:
        hook.close()
