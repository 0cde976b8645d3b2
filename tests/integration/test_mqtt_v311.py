"""MQTT 3.1.1 server, complete (docs/mqtt.md): CONNECT/CONNACK with authentication, PUBLISH at QoS
0, 1 and 2, SUBSCRIBE/UNSUBSCRIBE with + and #, retained messages, last will, keep-alive, PINGREQ,
DISCONNECT, session takeover, $SYS statistics, MQTT 3.1, IPv6 — with Debian's mosquitto clients,
paho 1.6 and a packet-level client."""

import socket
import struct
import time

import pytest

from mqtt_helpers import (CONNACK, PINGRESP, PUBLISH, SUBACK, UNSUBACK, Paho, Raw, connect_packet, mosquitto_pub,
                          mosquitto_sub_start, mstr, packet, parse_publish, start_mqtt_server, tenant_device)
from plateau_helpers import has_ipv6_loopback


@pytest.fixture(scope="module")
def anon(_module_factory):
    return start_mqtt_server(_module_factory, anonymous=True)


@pytest.fixture(scope="module")
def secured(_module_factory):
    return start_mqtt_server(_module_factory, anonymous=False)


def test_credentials_are_required_unless_anonymous_is_allowed(secured):
    r = Raw(secured.mqtt_port)
    assert r.connect(client_id="nobody") == 5  # not authorized: no credentials
    assert r.closed()
    r = Raw(secured.mqtt_port)
    assert r.connect(client_id="x", username="someone", password="hunter22") == 4  # bad user name or password
    r = Raw(secured.mqtt_port)
    fake = "pld_" + "A" * 43
    assert r.connect(client_id="x", username=fake) == 4
    tenant, dev, token = tenant_device(secured)
    r = Raw(secured.mqtt_port)
    assert r.connect(client_id="x", username=token) == 0  # ThingsBoard style: token as user name
    r.close()
    api = secured.create_token(tenant, "operator")
    r = Raw(secured.mqtt_port)
    assert r.connect(client_id="y", username="anything", password=api) == 0  # API token as password
    r.close()


def test_qos_0_1_2_with_mosquitto_clients(anon):
    for qos in (0, 1, 2):
        sub = mosquitto_sub_start(anon.mqtt_port, f"q/{qos}", "-q", str(qos), "-V", "mqttv311")
        cp = mosquitto_pub(anon.mqtt_port, f"q/{qos}", f"hello at qos {qos}", "-q", qos, "-V", "mqttv311")
        assert cp.returncode == 0, cp.stderr
        out, err = sub.communicate(timeout=15)
        assert out.strip() == f"q/{qos} hello at qos {qos}", err


def test_qos2_full_flow_packets(anon):
    sub = Raw(anon.mqtt_port)
    sub.connect(client_id="q2-sub")
    assert sub.subscribe(1, [("flow/q2", 2)]) == [2]
    pub = Raw(anon.mqtt_port)
    pub.connect(client_id="q2-pub")
    pub.publish("flow/q2", "exactly once", qos=2, pid=7)
    t, _, body = pub.expect(5)  # PUBREC
    assert struct.unpack(">H", body[:2])[0] == 7
    pub.ack(6, 7)  # PUBREL
    t, _, body = pub.expect(7)  # PUBCOMP
    # The subscriber gets PUBLISH QoS 2 and completes its side.
    t, flags, body = sub.expect(PUBLISH)
    topic, payload, qos, pid, _ = parse_publish(flags, body)
    assert (topic, payload, qos) == ("flow/q2", b"exactly once", 2)
    sub.ack(5, pid)  # PUBREC
    t, _, rel = sub.expect(6)  # PUBREL
    assert struct.unpack(">H", rel[:2])[0] == pid
    sub.ack(7, pid)  # PUBCOMP
    pub.close()
    sub.close()


def test_wildcards(anon):
    c = Paho(anon.mqtt_port)
    assert c.connect() == 0
    c.subscribe("plant/+/temp", 1)
    c.subscribe("line/#", 1)
    c.subscribe("+/alarm", 1)
    cases = {"plant/a/temp": True, "plant/a/b/temp": False, "plant/temp": False, "line": True, "line/2": True,
             "line/2/filler/pressure": True, "crusher/alarm": True, "crusher/x/alarm": False, "other": False}
    p = Paho(anon.mqtt_port)
    p.connect()
    for topic in cases:
        p.publish(topic, topic, qos=1)
    got = set()
    try:
        while True:
            got.add(c.get(timeout=1.5).topic)
    except Exception:
        pass
    assert got == {t for t, ok in cases.items() if ok}
    c.close()
    p.close()


def test_overlapping_subscriptions_deliver_once(anon):
    c = Paho(anon.mqtt_port)
    c.connect()
    c.subscribe("ov/#", 0)
    c.subscribe("ov/+", 1)
    p = Paho(anon.mqtt_port)
    p.connect()
    p.publish("ov/x", "once", qos=1)
    m = c.get()
    assert m.payload == b"once" and m.qos == 1  # the higher QoS of the two
    c.none(0.8)
    c.close()
    p.close()


def test_retained_messages(anon):
    cp = mosquitto_pub(anon.mqtt_port, "ret/line1/state", "running", "-r", "-q", "1")
    assert cp.returncode == 0
    c = Paho(anon.mqtt_port)
    c.connect()
    c.subscribe("ret/#", 1)
    m = c.get()
    assert (m.topic, m.payload, m.retain) == ("ret/line1/state", b"running", 1)
    # A live message is not flagged retained to existing subscribers.
    mosquitto_pub(anon.mqtt_port, "ret/line1/state", "stopped", "-r", "-q", "1")
    m = c.get()
    assert m.payload == b"stopped" and m.retain == 0
    c.close()
    # An empty retained message clears it.
    assert mosquitto_pub(anon.mqtt_port, "ret/line1/state", None, "-r").returncode == 0
    c = Paho(anon.mqtt_port)
    c.connect()
    c.subscribe("ret/#", 1)
    c.none(1.0)
    c.close()


def test_last_will(anon):
    watcher = Paho(anon.mqtt_port)
    watcher.connect()
    watcher.subscribe("status/#", 1)
    dev = Paho(anon.mqtt_port, client_id="will-dev")
    dev.connect(will=("status/will-dev", "offline", 1, False))
    dev.drop()  # no DISCONNECT: the will goes out
    m = watcher.get()
    assert (m.topic, m.payload) == ("status/will-dev", b"offline")
    dev2 = Paho(anon.mqtt_port, client_id="will-dev2")
    dev2.connect(will=("status/will-dev2", "offline", 1, False))
    dev2.close()  # a clean DISCONNECT discards the will
    watcher.none(1.0)
    watcher.close()


def test_keepalive_timeout_closes_the_connection(anon):
    r = Raw(anon.mqtt_port)
    assert r.connect(client_id="sleepy", keepalive=1) == 0
    start = time.monotonic()
    assert r.closed(timeout=6), "the server kept a silent connection past 1.5 x keep-alive"
    assert 1.2 <= time.monotonic() - start <= 4.5


def test_pingreq_keeps_a_connection_alive(anon):
    r = Raw(anon.mqtt_port)
    assert r.connect(client_id="pinger", keepalive=1) == 0
    for _ in range(4):
        time.sleep(0.5)
        r.send(b"\xc0\x00")
        r.expect(PINGRESP)
    r.close()


def test_unsubscribe(anon):
    r = Raw(anon.mqtt_port)
    r.connect(client_id="unsub")
    assert r.subscribe(3, [("u/#", 0)]) == [0]
    r.send(packet(0xa2, struct.pack(">H", 4) + mstr("u/#")))
    t, _, body = r.expect(UNSUBACK)
    assert body == struct.pack(">H", 4)
    mosquitto_pub(anon.mqtt_port, "u/x", "gone")
    assert r.closed(timeout=1.0) is False and not r.seen
    r.close()


def test_session_takeover(anon):
    first = Raw(anon.mqtt_port)
    assert first.connect(client_id="same-id") == 0
    second = Raw(anon.mqtt_port)
    assert second.connect(client_id="same-id") == 0
    assert first.closed(), "the older connection of the client id must be closed"
    second.close()


def test_second_connect_is_a_protocol_violation(anon):
    r = Raw(anon.mqtt_port)
    r.connect(client_id="twice")
    r.send(connect_packet(client_id="twice"))
    assert r.closed()


def test_empty_client_id_needs_clean_session(anon):
    r = Raw(anon.mqtt_port)
    assert r.connect(client_id="", clean=False) == 2  # identifier rejected
    r = Raw(anon.mqtt_port)
    assert r.connect(client_id="", clean=True) == 0
    r.close()


def test_mqtt_31_and_unsupported_levels(anon):
    cp = mosquitto_pub(anon.mqtt_port, "v31/t", "old clients", "-V", "mqttv31", "-q", "1")
    assert cp.returncode == 0, cp.stderr
    r = Raw(anon.mqtt_port)
    body = mstr("MQTT") + bytes([9, 2]) + struct.pack(">H", 60) + mstr("future")
    r.send(packet(0x10, body))
    t, _, ack = r.expect(CONNACK)
    assert ack[1] == 1  # unacceptable protocol version
    assert r.closed()


def test_sys_statistics(anon):
    c = Paho(anon.mqtt_port)
    c.connect()
    c.subscribe("$SYS/broker/clients/connected", 0)
    c.subscribe("$SYS/broker/version", 0)
    seen = {}
    deadline = time.monotonic() + 5
    # The retained value may be from before this client connected; the next one counts it.
    while (len(seen) < 2 or int(seen["$SYS/broker/clients/connected"]) < 1) and time.monotonic() < deadline:
        m = c.get()
        seen[m.topic] = m.payload.decode()
    assert seen["$SYS/broker/version"].startswith("plateau ")
    assert int(seen["$SYS/broker/clients/connected"]) >= 1
    # "#" does not match $SYS topics.
    c2 = Paho(anon.mqtt_port)
    c2.connect()
    c2.subscribe("#", 0)
    time.sleep(1.5)
    while not c2.messages.empty():
        assert not c2.get().topic.startswith("$SYS")
    c.close()
    c2.close()


def test_publishing_to_sys_is_refused(anon):
    r = Raw(anon.mqtt_port)
    r.connect(client_id="sys-writer")
    r.publish("$SYS/broker/version", "fake", qos=1, pid=1)
    assert r.closed(), "3.1.1 cannot refuse a PUBLISH: the connection is closed"


@pytest.mark.skipif(not has_ipv6_loopback(), reason="no IPv6 loopback")
def test_ipv6(_module_factory):
    p = _module_factory.new(host="::1", extra_args=["--mqtt-allow-anonymous"])
    sub = mosquitto_sub_start(p.mqtt_port, "six/#", "-q", "1", host="::1")
    cp = mosquitto_pub(p.mqtt_port, "six/a", "over IPv6", "-q", "1", host="::1")
    assert cp.returncode == 0, cp.stderr
    out, _ = sub.communicate(timeout=15)
    assert out.strip() == "six/a over IPv6"
