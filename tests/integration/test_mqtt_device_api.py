"""The MQTT device API (ThingsBoard's conventions, docs/mqtt.md): telemetry into the time-series
engine (read back with GET /api/v1/query), client attributes, attribute requests, shared
attribute updates pushed when changed through the API, server-side RPC through
POST /api/v1/devices/{id}/rpc, client-side RPC, the gateway API with audited creation of
sub-devices, device online state, live device streams for the tenant's applications, and
acknowledged telemetry surviving kill -9."""

import json
import re
import struct
import threading
import time

import pytest

from mqtt_helpers import (DISCONNECT, PUBACK, PUBLISH, Paho, Raw, ack_reason, disconnect_reason, mosquitto_pub,
                          parse_publish, query_points, start_mqtt_server, tenant_device, wait_for)
from plateau_helpers import assert_error, assert_status, uniq


@pytest.fixture(scope="module")
def srv(_module_factory):
    return start_mqtt_server(_module_factory, extra=["--mqtt-gateway-devices-max", "12"])


@pytest.fixture(scope="module")
def tenant(srv):
    name = srv.create_tenant()
    return {"name": name, "admin": srv.create_token(name, "tenant-admin")}


def device(srv, tenant, name=None, dtype=None):
    name = name or uniq("dev")
    args = ["device", "create", name, "--data", srv.data, "--tenant", tenant["name"]]
    if dtype:
        args += ["--type", dtype]
    cp = srv.cli(*args)
    assert cp.returncode == 0, cp.stderr
    token = cp.stdout.strip()
    srv.secrets.add(token)
    return name, token


def device_id(srv, tenant, name):
    items = srv.list_all("/api/v1/devices", tenant["admin"])
    return next(d["id"] for d in items if d["name"] == name)


def test_telemetry_forms_land_in_the_engine(srv, tenant):
    name, token = device(srv, tenant)
    c = Paho(srv.mqtt_port, username=token)
    assert c.connect() == 0
    ts = int(time.time() * 1000) - 60000
    c.publish("v1/devices/me/telemetry", json.dumps({"temperature": 21.5, "running": True, "state": "ok"}), qos=1)
    c.publish("v1/devices/me/telemetry", json.dumps({"ts": ts, "values": {"pressure": 3.25}}), qos=1)
    c.publish("v1/devices/me/telemetry",
              json.dumps([{"ts": ts + 1, "values": {"pressure": 3.5}}, {"count": {"int": 90071992547409931}}]), qos=1)
    c.close()
    pts = query_points(srv, tenant["admin"], name)
    assert [v for _, v in pts["temperature"]] == [21.5]
    assert [v for _, v in pts["running"]] == [True]
    assert [v for _, v in pts["state"]] == ["ok"]
    assert pts["pressure"] == [(ts, 3.25), (ts + 1, 3.5)]
    assert [v for _, v in pts["count"]] == [90071992547409931]


def test_telemetry_with_mosquitto_pub_qos0_is_stored_too(srv, tenant):
    name, token = device(srv, tenant)
    for i in range(5):
        cp = mosquitto_pub(srv.mqtt_port, "v1/devices/me/telemetry", json.dumps({"n": i}), "-u", token, "-q", "0")
        assert cp.returncode == 0, cp.stderr
    wait_for(lambda: len(query_points(srv, tenant["admin"], name).get("n", [])) == 5, what="5 points")


def test_bad_telemetry_is_refused_with_a_reason(srv, tenant):
    name, token = device(srv, tenant)
    # 5.0: PUBACK with 0x99 Payload format invalid, the connection stays.
    r = Raw(srv.mqtt_port)
    assert r.connect(version=5, client_id="bad5", username=token) == 0
    r.publish("v1/devices/me/telemetry", "{not json", qos=1, pid=1)
    _, _, body = r.expect(PUBACK)
    assert ack_reason(body) == 0x99
    r.publish("v1/devices/me/telemetry", json.dumps({"x": None}), qos=1, pid=2)
    assert ack_reason(r.expect(PUBACK)[2]) == 0x99
    r.publish("v1/devices/me/telemetry", json.dumps({"x": 1}), qos=1, pid=3)
    assert ack_reason(r.expect(PUBACK)[2]) == 0
    # A type conflict (x is a float now) is refused alone.
    r.publish("v1/devices/me/telemetry", json.dumps({"x": "text"}), qos=1, pid=4)
    assert ack_reason(r.expect(PUBACK)[2]) == 0x99
    r.close()
    # 3.1.1 cannot refuse: the connection is closed and nothing is acknowledged.
    r = Raw(srv.mqtt_port)
    assert r.connect(client_id="bad3", username=token) == 0
    r.publish("v1/devices/me/telemetry", "[]", qos=1, pid=9)
    assert r.closed()
    assert not any(p[0] == PUBACK for p in r.seen)
    assert [v for _, v in query_points(srv, tenant["admin"], name)["x"]] == [1.0]


def test_device_may_use_only_its_own_topics(srv, tenant):
    name, token = device(srv, tenant)
    r = Raw(srv.mqtt_port)
    assert r.connect(version=5, client_id="own5", username=token) == 0
    r.publish("v1/devices/other/telemetry", "{}", qos=1, pid=1)
    assert ack_reason(r.expect(PUBACK)[2]) == 0x87
    r.publish("factory/anything", "{}", qos=1, pid=2)
    assert ack_reason(r.expect(PUBACK)[2]) == 0x87
    assert r.subscribe(3, [("v1/devices/+/telemetry", 1), ("#", 0), ("v1/devices/me/rpc/request/+", 1),
                           ("$SYS/#", 0)]) == [0x87, 0x87, 1, 0x87]
    r.close()
    r = Raw(srv.mqtt_port)
    r.connect(client_id="own3", username=token)
    assert r.subscribe(1, [("v1/devices/x/attributes", 1), ("v1/devices/me/attributes", 1)]) == [0x80, 1]
    r.close()


def test_live_device_stream_for_the_tenants_applications(srv, tenant):
    name, token = device(srv, tenant)
    viewer = srv.create_token(tenant["name"], "viewer")
    app = Paho(srv.mqtt_port, username="grafana", password=viewer)
    assert app.connect() == 0
    app.subscribe("v1/devices/+/telemetry", 1)
    dev = Paho(srv.mqtt_port, username=token)
    dev.connect()
    dev.publish("v1/devices/me/telemetry", '{"flow": 12.5}', qos=1)
    m = app.get()
    assert m.topic == f"v1/devices/{name}/telemetry" and json.loads(m.payload) == {"flow": 12.5}
    # A viewer reads but does not publish (3.1.1: the connection is closed).
    app.publish("v1/devices/x/rpc/request/1", "{}", qos=0, wait=False)
    assert app.disconnects.get(timeout=5) != 0
    dev.close()


def test_client_attributes_and_attribute_requests(srv, tenant):
    name, token = device(srv, tenant)
    did = device_id(srv, tenant, name)
    assert_status(srv.api("PATCH", f"/api/v1/devices/{did}", token=tenant["admin"],
                          json={"attributes": {"setpoint": 42, "mode": "auto"}}), 200)
    c = Paho(srv.mqtt_port, username=token)
    c.connect()
    c.subscribe("v1/devices/me/attributes/response/+", 1)
    c.publish("v1/devices/me/attributes", json.dumps({"firmware": "1.2.0", "battery": 87}), qos=1)
    attrs = assert_status(srv.api("GET", f"/api/v1/devices/{did}", token=tenant["admin"]), 200)["attributes"]
    assert attrs["client"] == {"firmware": "1.2.0", "battery": 87} and attrs["setpoint"] == 42
    c.publish("v1/devices/me/attributes/request/1",
              json.dumps({"clientKeys": "firmware", "sharedKeys": "setpoint,mode"}), qos=1)
    m = c.get()
    assert m.topic == "v1/devices/me/attributes/response/1"
    assert json.loads(m.payload) == {"client": {"firmware": "1.2.0"}, "shared": {"setpoint": 42, "mode": "auto"}}
    c.publish("v1/devices/me/attributes/request/2", "{}", qos=1)
    got = json.loads(c.get().payload)
    assert got["shared"] == {"setpoint": 42, "mode": "auto"} and got["client"]["battery"] == 87
    c.close()


def test_shared_attribute_updates_are_pushed(srv, tenant):
    name, token = device(srv, tenant)
    did = device_id(srv, tenant, name)
    c = Paho(srv.mqtt_port, username=token)
    c.connect()
    c.subscribe("v1/devices/me/attributes", 1)
    assert_status(srv.api("PATCH", f"/api/v1/devices/{did}", token=tenant["admin"],
                          json={"attributes": {"target_temp": 75, "valve": "open"}}), 200)
    m = c.get()
    assert m.topic == "v1/devices/me/attributes"
    assert json.loads(m.payload) == {"target_temp": 75, "valve": "open"}
    assert_status(srv.api("PATCH", f"/api/v1/devices/{did}", token=tenant["admin"],
                          json={"attributes": {"target_temp": 80}}), 200)
    assert json.loads(c.get().payload) == {"target_temp": 80, "deleted": ["valve"]}
    # A change that changes nothing is not pushed.
    assert_status(srv.api("PATCH", f"/api/v1/devices/{did}", token=tenant["admin"], json={"location": "hall 2"}), 200)
    c.none(1.0)
    c.close()


def rpc_device(srv, token, answer=lambda req: {"ok": True, "echo": req}):
    """A device that answers server-side RPC with answer(request)."""
    c = Paho(srv.mqtt_port, username=token)
    c.connect()

    def on_message(client, userdata, m):
        mo = re.fullmatch(r"v1/devices/me/rpc/request/(\d+)", m.topic)
        if mo:
            reply = answer(json.loads(m.payload))
            if reply is not None:
                client.publish(f"v1/devices/me/rpc/response/{mo.group(1)}", json.dumps(reply), qos=1)

    c.c.on_message = on_message
    c.subscribe("v1/devices/me/rpc/request/+", 1)
    return c


def test_server_side_rpc_round_trip_through_http(srv, tenant):
    name, token = device(srv, tenant)
    did = device_id(srv, tenant, name)
    path = f"/api/v1/devices/{did}/rpc"
    # Offline: 409.
    r = srv.api("POST", path, token=tenant["admin"], json={"method": "setValve", "params": {"open": True}})
    assert_error(r, 409, code="failed_precondition")
    dev = rpc_device(srv, token)
    r = srv.api("POST", path, token=tenant["admin"],
                json={"method": "setValve", "params": {"open": True}, "timeout_ms": 5000})
    body = assert_status(r, 200)
    assert body == {"ok": True, "echo": {"method": "setValve", "params": {"open": True}}}
    # Several at once, each answered on its own id.
    results = []

    def call(i):
        results.append(srv.api("POST", path, token=tenant["admin"], json={"method": "n", "params": i}).json())

    threads = [threading.Thread(target=call, args=(i,)) for i in range(3)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert sorted(r["echo"]["params"] for r in results) == [0, 1, 2]
    dev.close()
    # A device that never answers: 504 after timeout_ms.
    silent = rpc_device(srv, token, answer=lambda req: None)
    t0 = time.monotonic()
    r = srv.api("POST", path, token=tenant["admin"], json={"method": "slow", "timeout_ms": 700})
    assert_error(r, 504, code="deadline_exceeded")
    assert 0.6 < time.monotonic() - t0 < 5
    silent.close()
    # Connected but not subscribed to RPC requests: 409 saying so.
    plain = Paho(srv.mqtt_port, username=token)
    plain.connect()
    r = srv.api("POST", path, token=tenant["admin"], json={"method": "x"})
    assert "not subscribed" in assert_error(r, 409, code="failed_precondition")["message"]
    plain.close()
    # A viewer may not command devices; every call is audited.
    viewer = srv.create_token(tenant["name"], "viewer")
    assert_error(srv.api("POST", path, token=viewer, json={"method": "x"}), 403)
    audit = srv.api("GET", "/api/v1/audit", token=tenant["admin"], params={"action": "device.rpc"}).json()["items"]
    assert any(a["result"] == "ok" and "method=setValve" in a["detail"] for a in audit)


def test_rpc_bad_requests(srv, tenant):
    name, _ = device(srv, tenant)
    did = device_id(srv, tenant, name)
    path = f"/api/v1/devices/{did}/rpc"
    assert_error(srv.api("POST", path, token=tenant["admin"], json={"params": {}}), 400)
    assert_error(srv.api("POST", path, token=tenant["admin"], json={"method": "x", "timeout_ms": 0}), 400)
    assert_error(srv.api("POST", path, token=tenant["admin"], json={"method": "x", "timeout_ms": 600001}), 400)
    assert_error(srv.api("POST", path, token=tenant["admin"], json={"method": "x", "extra": 1}), 400)
    assert_error(srv.api("POST", "/api/v1/devices/999999/rpc", token=tenant["admin"], json={"method": "x"}), 404)
    other = srv.create_tenant()
    other_admin = srv.create_token(other, "tenant-admin")
    assert_error(srv.api("POST", path, token=other_admin, json={"method": "x"}), 404)


def test_client_side_rpc_served_by_a_tenant_application(srv, tenant):
    name, token = device(srv, tenant)
    app = Paho(srv.mqtt_port, username="svc", password=tenant["admin"])
    app.connect()

    def serve(client, userdata, m):
        mo = re.fullmatch(r"v1/devices/([^/]+)/rpc/request/(\d+)", m.topic)
        if mo and json.loads(m.payload).get("method") == "getCurrentTime":
            client.publish(f"v1/devices/{mo.group(1)}/rpc/response/{mo.group(2)}", json.dumps({"time": 1234}), qos=1)

    app.c.on_message = serve
    app.subscribe("v1/devices/+/rpc/request/+", 1)
    dev = Paho(srv.mqtt_port, username=token)
    dev.connect()
    dev.subscribe("v1/devices/me/rpc/response/+", 1)
    dev.publish("v1/devices/me/rpc/request/7", json.dumps({"method": "getCurrentTime", "params": {}}), qos=1)
    m = dev.get()
    assert m.topic == "v1/devices/me/rpc/response/7" and json.loads(m.payload) == {"time": 1234}
    dev.close()
    app.close()


def test_device_connection_state_and_last_seen(srv, tenant):
    name, token = device(srv, tenant)
    did = device_id(srv, tenant, name)
    st = assert_status(srv.api("GET", f"/api/v1/devices/{did}/connection", token=tenant["admin"]), 200)
    assert st["online"] is False and st["protocol"] is None
    c = Paho(srv.mqtt_port, username=token, version=5)
    c.connect()
    st = assert_status(srv.api("GET", f"/api/v1/devices/{did}/connection", token=tenant["admin"]), 200)
    assert st["online"] is True and st["protocol"] == "5.0" and st["remote"] == "127.0.0.1" and st["connected"]
    # The database's last_seen is written on connection (then at most once a minute).
    wait_for(lambda: srv.api("GET", f"/api/v1/devices/{did}", token=tenant["admin"]).json()["last_seen"],
             what="last_seen in the database")
    c.close()
    wait_for(lambda: not srv.api("GET", f"/api/v1/devices/{did}/connection", token=tenant["admin"]).json()["online"],
             what="offline")


def test_rotating_a_device_token_closes_its_connection(srv, tenant):
    name, token = device(srv, tenant)
    did = device_id(srv, tenant, name)
    r = Raw(srv.mqtt_port)
    assert r.connect(version=5, client_id="rot", username=token) == 0
    new = assert_status(srv.api("POST", f"/api/v1/devices/{did}/token", token=tenant["admin"]), 200)["token"]
    srv.secrets.add(new)
    assert r.closed()
    assert [disconnect_reason(p[2]) for p in r.seen if p[0] == DISCONNECT] == [0x98]
    assert Raw(srv.mqtt_port).connect(client_id="rot2", username=token) == 4
    r2 = Raw(srv.mqtt_port)
    assert r2.connect(client_id="rot3", username=new) == 0
    r2.close()


def test_gateway_api(srv):
    t = srv.create_tenant()  # its own: the server lets gateways create devices below 12 a tenant
    tenant = {"name": t, "admin": srv.create_token(t, "tenant-admin")}
    gw_name, gw_token = device(srv, tenant, dtype="gateway")
    gw = Paho(srv.mqtt_port, username=gw_token)
    assert gw.connect() == 0
    gw.subscribe("v1/gateway/rpc", 1)
    gw.subscribe("v1/gateway/attributes", 1)
    gw.subscribe("v1/gateway/attributes/response", 1)
    sub_a, sub_b = uniq("Thermo A"), uniq("Thermo B")
    gw.publish("v1/gateway/connect", json.dumps({"device": sub_a, "type": "thermometer"}), qos=1)
    ts = int(time.time() * 1000)
    gw.publish("v1/gateway/telemetry", json.dumps({
        sub_a: [{"ts": ts, "values": {"temperature": 42}}, {"ts": ts + 1, "values": {"temperature": 43}}],
        sub_b: [{"humidity": 80}]}), qos=1)
    assert query_points(srv, tenant["admin"], sub_a)["temperature"] == [(ts, 42.0), (ts + 1, 43.0)]
    assert [v for _, v in query_points(srv, tenant["admin"], sub_b)["humidity"]] == [80.0]
    devices = {d["name"]: d for d in srv.list_all("/api/v1/devices", tenant["admin"])}
    assert devices[sub_a]["type"] == "thermometer" and devices[sub_b]["type"] == "default"
    assert devices[sub_a]["token_prefix"] == ""  # speaks through its gateway
    audit = srv.api("GET", "/api/v1/audit", token=tenant["admin"], params={"action": "device.create"}).json()["items"]
    creators = {a["target"]: a["actor"] for a in audit}
    assert creators[f"device:{sub_a}"] == f"device:{gw_name}"
    # Client attributes of a sub-device, and an attribute request.
    gw.publish("v1/gateway/attributes", json.dumps({sub_a: {"model": "T-1000"}}), qos=1)
    a_id = devices[sub_a]["id"]
    assert srv.api("GET", f"/api/v1/devices/{a_id}", token=tenant["admin"]).json()["attributes"]["client"] == {
        "model": "T-1000"}
    gw.publish("v1/gateway/attributes/request", json.dumps({"id": 5, "device": sub_a, "client": True, "key": "model"}),
               qos=1)
    m = gw.get()
    assert m.topic == "v1/gateway/attributes/response"
    assert json.loads(m.payload) == {"id": 5, "device": sub_a, "value": "T-1000"}
    # Shared attributes of a sub-device reach its gateway.
    assert_status(srv.api("PATCH", f"/api/v1/devices/{a_id}", token=tenant["admin"],
                          json={"attributes": {"interval": 30}}), 200)
    m = gw.get()
    assert m.topic == "v1/gateway/attributes" and json.loads(m.payload) == {"device": sub_a, "data": {"interval": 30}}
    # Server-side RPC to a sub-device goes through the gateway.
    st = srv.api("GET", f"/api/v1/devices/{a_id}/connection", token=tenant["admin"]).json()
    assert st["online"] is True and st["gateway"] == gw_name

    def answer(client, userdata, msg):
        if msg.topic == "v1/gateway/rpc":
            req = json.loads(msg.payload)
            client.publish("v1/gateway/rpc", json.dumps({"device": req["device"], "id": req["data"]["id"],
                                                         "data": {"done": req["data"]["method"]}}), qos=1)

    gw.c.on_message = answer
    r = srv.api("POST", f"/api/v1/devices/{a_id}/rpc", token=tenant["admin"], json={"method": "reboot"})
    assert assert_status(r, 200) == {"done": "reboot"}
    # Disconnecting a sub-device, then the gateway.
    gw.publish("v1/gateway/disconnect", json.dumps({"device": sub_a}), qos=1)
    assert srv.api("GET", f"/api/v1/devices/{a_id}/connection", token=tenant["admin"]).json()["online"] is False
    gw.close()
    # Only gateways speak for other devices.
    _, plain_token = device(srv, tenant)
    r = Raw(srv.mqtt_port)
    r.connect(version=5, client_id="notgw", username=plain_token)
    r.publish("v1/gateway/telemetry", json.dumps({sub_a: [{"x": 1}]}), qos=1, pid=1)
    assert ack_reason(r.expect(PUBACK)[2]) == 0x87
    r.close()


def test_gateway_device_creation_limit(srv):
    t = srv.create_tenant()
    admin = srv.create_token(t, "tenant-admin")
    gw_name, gw_token = device(srv, {"name": t, "admin": admin}, dtype="gateway")
    r = Raw(srv.mqtt_port)
    r.connect(version=5, client_id="gwlimit", username=gw_token)
    # The server allows 12 devices per tenant for creation by gateways; the gateway is one.
    for i in range(11):
        r.publish("v1/gateway/telemetry", json.dumps({f"s{i}": [{"v": i}]}), qos=1, pid=i + 1)
        assert ack_reason(r.expect(PUBACK)[2]) == 0
    r.publish("v1/gateway/telemetry", json.dumps({"one-too-many": [{"v": 1}]}), qos=1, pid=100)
    assert ack_reason(r.expect(PUBACK)[2]) == 0x97  # Quota exceeded
    r.close()
    names = [d["name"] for d in srv.list_all("/api/v1/devices", admin)]
    assert "one-too-many" not in names and len(names) == 12


def test_acknowledged_telemetry_survives_kill_9(plateau_factory):
    p = start_mqtt_server(plateau_factory)
    tenant, name, token = tenant_device(p)
    admin = p.create_token(tenant, "tenant-admin")
    r = Raw(p.mqtt_port)
    r.connect(client_id="durable", username=token)
    base = int(time.time() * 1000) - 10000
    for i in range(200):
        r.publish("v1/devices/me/telemetry", json.dumps({"ts": base + i, "values": {"seq": i}}), qos=1, pid=i + 1)
    acked = 0
    while acked < 200:
        t, _, body = r.expect(PUBACK)
        assert struct.unpack(">H", body[:2])[0] == acked + 1  # in order
        acked += 1
    p.kill9()
    p.start()
    pts = query_points(p, admin, name)
    assert [v for _, v in pts["seq"]] == [float(i) for i in range(200)]
