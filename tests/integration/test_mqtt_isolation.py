"""Authorization and isolation (docs/mqtt.md "Who may do what"): two tenants' identical topics
never meet, devices reach only their own topics, tenant applications reach their own tenant's
device streams and nothing else, roles decide publishing and subscribing, and the anonymous
sandbox is apart from every tenant."""

import json
import time

import pytest

from mqtt_helpers import PUBACK, Paho, Raw, ack_reason, start_mqtt_server
from plateau_helpers import uniq


@pytest.fixture(scope="module")
def srv(_module_factory):
    return start_mqtt_server(_module_factory, anonymous=True)


@pytest.fixture(scope="module")
def two(srv):
    out = []
    for _ in range(2):
        t = srv.create_tenant()
        out.append({"name": t, "op": srv.create_token(t, "operator")})
    return out


def test_same_topic_in_two_tenants_never_meets(srv, two):
    a, b = two
    sub_a = Paho(srv.mqtt_port, username="app", password=a["op"])
    sub_b = Paho(srv.mqtt_port, username="app", password=b["op"])
    anon = Paho(srv.mqtt_port)
    for c in (sub_a, sub_b, anon):
        assert c.connect() == 0
        c.subscribe("sensors/#", 1)
        c.subscribe("#", 0)
    pub_a = Paho(srv.mqtt_port, username="app", password=a["op"])
    pub_a.connect()
    pub_a.publish("sensors/x", "from a", qos=1)
    got = {sub_a.get().payload for _ in range(1)}
    assert got == {b"from a"}
    sub_b.none(1.0)
    anon.none(0.1)
    # The anonymous sandbox is a namespace of its own, too.
    anon_pub = Paho(srv.mqtt_port)
    anon_pub.connect()
    anon_pub.publish("sensors/x", "from the sandbox", qos=1)
    assert anon.get().payload == b"from the sandbox"
    sub_a.none(1.0)
    sub_b.none(0.1)
    for c in (sub_a, sub_b, anon, pub_a, anon_pub):
        c.close()


def test_retained_messages_stay_in_their_tenant(srv, two):
    a, b = two
    pa = Paho(srv.mqtt_port, username="app", password=a["op"])
    pa.connect()
    pa.publish("state/line", "a-running", qos=1, retain=True)
    pa.close()
    cb = Paho(srv.mqtt_port, username="app", password=b["op"])
    cb.connect()
    cb.subscribe("state/#", 1)
    cb.none(1.0)
    cb.close()
    ca = Paho(srv.mqtt_port, username="app", password=a["op"])
    ca.connect()
    ca.subscribe("state/#", 1)
    assert ca.get().payload == b"a-running"
    ca.close()


def test_device_streams_are_visible_only_to_their_tenant(srv, two):
    a, b = two
    dev = uniq("pump")
    token = srv.create_device_cli(dev, a["name"])
    watch_a = Paho(srv.mqtt_port, username="app", password=a["op"])
    watch_b = Paho(srv.mqtt_port, username="app", password=b["op"])
    for w in (watch_a, watch_b):
        w.connect()
        w.subscribe("v1/devices/+/telemetry", 1)
        w.subscribe("v1/devices/#", 1)
    d = Paho(srv.mqtt_port, username=token)
    d.connect()
    d.publish("v1/devices/me/telemetry", json.dumps({"t": 1}), qos=1)
    m = watch_a.get()
    assert m.topic == f"v1/devices/{dev}/telemetry"
    watch_b.none(1.0)
    for c in (watch_a, watch_b, d):
        c.close()


def test_a_device_cannot_reach_another_device(srv, two):
    a, _ = two
    d1, d2 = uniq("d1"), uniq("d2")
    t1, t2 = srv.create_device_cli(d1, a["name"]), srv.create_device_cli(d2, a["name"])
    victim = Paho(srv.mqtt_port, username=t2)
    victim.connect()
    victim.subscribe("v1/devices/me/rpc/request/+", 1)
    victim.subscribe("v1/devices/me/attributes", 1)
    r = Raw(srv.mqtt_port)
    r.connect(version=5, client_id="intruder", username=t1)
    for i, topic in enumerate([f"v1/devices/{d2}/rpc/request/1", f"v1/devices/{d2}/attributes",
                               "v1/devices/me/../" + d2 + "/rpc/request/1"]):
        r.publish(topic, "{}", qos=1, pid=i + 1)
        assert ack_reason(r.expect(PUBACK)[2]) == 0x87, topic
    assert r.subscribe(10, [(f"v1/devices/{d2}/#", 1), ("v1/devices/+/rpc/request/+", 1)]) == [0x87, 0x87]
    victim.none(1.0)
    # Two devices with the same client id do not take over each other's session.
    r2 = Raw(srv.mqtt_port)
    assert r2.connect(client_id="same-client-id", username=t1) == 0
    r3 = Raw(srv.mqtt_port)
    assert r3.connect(client_id="same-client-id", username=t2) == 0
    assert not r2.closed(timeout=0.8)
    for c in (r, r2, r3):
        c.close()
    victim.close()


def test_roles_decide_publish_and_subscribe(srv, two):
    a, _ = two
    viewer = srv.create_token(a["name"], "viewer")
    r = Raw(srv.mqtt_port)
    assert r.connect(version=5, client_id="viewer5", username="v", password=viewer) == 0
    assert r.subscribe(1, [("plant/#", 1)]) == [1]
    r.publish("plant/x", "no", qos=1, pid=2)
    assert ack_reason(r.expect(PUBACK)[2]) == 0x87
    r.close()


def test_sys_is_readable_not_writable(srv, two):
    a, _ = two
    r = Raw(srv.mqtt_port)
    r.connect(version=5, client_id="sysw", username="x", password=a["op"])
    assert r.subscribe(1, [("$SYS/broker/uptime", 0)]) == [0]
    r.publish("$SYS/broker/uptime", "0", qos=1, pid=3)
    got = [p for p in [r.read(3)] if p]
    acks = [p for p in got if p[0] == PUBACK]
    while not acks:
        p = r.read(3)
        if p[0] == PUBACK:
            acks.append(p)
    assert ack_reason(acks[0][2]) == 0x87
    r.close()


def test_revoked_and_foreign_tokens_are_refused(srv, two):
    a, b = two
    r = Raw(srv.mqtt_port)
    assert r.connect(version=5, client_id="x", username="x", password="plt_" + "B" * 43) == 0x86
    r = Raw(srv.mqtt_port)
    assert r.connect(version=5, client_id="x", username="pld_short") == 0x86
    r = Raw(srv.mqtt_port)
    assert r.connect(version=5, client_id="x", username="someone", password="not-a-token") == 0x86
