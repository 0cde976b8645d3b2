"""Clean and persistent sessions (docs/mqtt.md "Sessions"): messages queued for an offline
persistent client and delivered when it comes back, in order; clean sessions forgetting; bounded
queues; QoS 2 exactly once across a reconnection, in both directions."""

import json
import struct
import time

import pytest

from mqtt_helpers import (CONNACK, PUBCOMP, PUBLISH, PUBREC, PUBREL, Paho, Raw, connect_packet, mosquitto_pub,
                          parse_publish, query_points, start_mqtt_server, tenant_device)


@pytest.fixture(scope="module")
def srv(_module_factory):
    return start_mqtt_server(_module_factory, anonymous=True, extra=["--mqtt-max-queued", "50"])


def session_present(raw, **kw):
    raw.send(connect_packet(**kw))
    _, _, body = raw.expect(CONNACK)
    assert body[1] == 0
    return body[0] & 1


def test_persistent_session_queues_while_offline(srv):
    c = Paho(srv.mqtt_port, client_id="persist-1", clean=False)
    assert c.connect() == 0
    c.subscribe("plant/line1/#", 1)
    c.close()
    for i in range(10):
        assert mosquitto_pub(srv.mqtt_port, "plant/line1/count", str(i), "-q", "1").returncode == 0
    mosquitto_pub(srv.mqtt_port, "plant/line1/count", "qos0 is not queued", "-q", "0")
    c = Paho(srv.mqtt_port, client_id="persist-1", clean=False)
    c.connect()
    assert c.flags["session present"] == 1
    got = [c.get().payload.decode() for _ in range(10)]
    assert got == [str(i) for i in range(10)]
    c.none(0.8)
    c.close()


def test_clean_session_forgets(srv):
    c = Paho(srv.mqtt_port, client_id="clean-1", clean=False)
    c.connect()
    c.subscribe("forget/#", 1)
    c.close()
    r = Raw(srv.mqtt_port)
    assert session_present(r, client_id="clean-1", clean=True) == 0
    r.close()
    mosquitto_pub(srv.mqtt_port, "forget/x", "lost", "-q", "1")
    r = Raw(srv.mqtt_port)
    assert session_present(r, client_id="clean-1", clean=False) == 0  # the clean one ended it
    assert not r.closed(timeout=0.8) and not r.seen
    r.close()


def test_queue_is_bounded(srv):
    c = Paho(srv.mqtt_port, client_id="bounded-1", clean=False)
    c.connect()
    c.subscribe("flood/#", 1)
    c.close()
    p = Paho(srv.mqtt_port)
    p.connect()
    for i in range(80):
        p.publish("flood/x", str(i), qos=1)
    p.close()
    c = Paho(srv.mqtt_port, client_id="bounded-1", clean=False)
    c.connect()
    got = []
    try:
        while True:
            got.append(int(c.get(timeout=1.5).payload))
    except Exception:
        pass
    assert got == list(range(50))  # mqtt_max_queued=50: the oldest are kept, the rest dropped
    c.close()


def test_qos2_exactly_once_across_a_reconnect_publisher_side(srv):
    """The publisher loses its connection after PUBREC, reconnects to its session and sends the
    PUBLISH again (DUP) and the PUBREL: the subscriber gets the message once."""
    sub = Paho(srv.mqtt_port)
    sub.connect()
    sub.subscribe("eo/pub", 2)
    r = Raw(srv.mqtt_port)
    assert session_present(r, client_id="eo-pub", clean=False) == 0
    r.publish("eo/pub", "once", qos=2, pid=42)
    r.expect(PUBREC)
    r.close()  # gone before PUBREL
    r = Raw(srv.mqtt_port)
    assert session_present(r, client_id="eo-pub", clean=False) == 1
    r.publish("eo/pub", "once", qos=2, pid=42, dup=True)
    t, _, body = r.expect(PUBREC)
    assert struct.unpack(">H", body[:2])[0] == 42
    r.ack(PUBREL, 42)
    r.expect(PUBCOMP)
    # Once PUBREL released the identifier, the same id carries a new message.
    r.publish("eo/pub", "second", qos=2, pid=42)
    r.expect(PUBREC)
    r.ack(PUBREL, 42)
    r.expect(PUBCOMP)
    assert sub.get().payload == b"once"
    assert sub.get().payload == b"second"
    sub.none(1.0)
    r.close()
    sub.close()


def test_qos2_exactly_once_across_a_reconnect_before_pubrec(srv):
    """Lost before PUBREC: the DUP PUBLISH is acknowledged and not delivered again."""
    sub = Paho(srv.mqtt_port)
    sub.connect()
    sub.subscribe("eo/early", 2)
    r = Raw(srv.mqtt_port)
    session_present(r, client_id="eo-early", clean=False)
    r.publish("eo/early", "only one", qos=2, pid=9)
    time.sleep(0.3)  # the server has it; the client never reads the PUBREC
    r.close()
    r = Raw(srv.mqtt_port)
    assert session_present(r, client_id="eo-early", clean=False) == 1
    r.publish("eo/early", "only one", qos=2, pid=9, dup=True)
    r.expect(PUBREC)
    r.ack(PUBREL, 9)
    r.expect(PUBCOMP)
    assert sub.get().payload == b"only one"
    sub.none(1.0)
    r.close()
    sub.close()


def test_qos2_exactly_once_across_a_reconnect_subscriber_side(srv):
    """The subscriber loses its connection after PUBREC: on reconnection the server sends PUBREL
    (not the message again); before PUBREC it sends the PUBLISH again with DUP."""
    r = Raw(srv.mqtt_port)
    session_present(r, client_id="eo-sub", clean=False)
    assert r.subscribe(1, [("eo/sub/#", 2)]) == [2]
    mosquitto_pub(srv.mqtt_port, "eo/sub/a", "A", "-q", "2")
    t, flags, body = r.expect(PUBLISH)
    _, payload, qos, pid_a, _ = parse_publish(flags, body)
    assert (payload, qos) == (b"A", 2)
    r.ack(PUBREC, pid_a)
    time.sleep(0.3)
    r.close()  # before PUBREL arrives (or is answered)
    r = Raw(srv.mqtt_port)
    assert session_present(r, client_id="eo-sub", clean=False) == 1
    t, _, body = r.expect(PUBREL)
    assert struct.unpack(">H", body[:2])[0] == pid_a
    r.ack(PUBCOMP, pid_a)
    mosquitto_pub(srv.mqtt_port, "eo/sub/b", "B", "-q", "2")
    t, flags, body = r.expect(PUBLISH)
    _, payload, _, pid_b, _ = parse_publish(flags, body)
    assert payload == b"B"
    r.close()  # before PUBREC
    r = Raw(srv.mqtt_port)
    assert session_present(r, client_id="eo-sub", clean=False) == 1
    t, flags, body = r.expect(PUBLISH)
    _, payload, _, pid, _ = parse_publish(flags, body)
    assert payload == b"B" and pid == pid_b and flags & 0x08  # DUP
    r.ack(PUBREC, pid)
    r.expect(PUBREL)
    r.ack(PUBCOMP, pid)
    assert not r.closed(timeout=0.8) and not r.seen
    r.close()


def test_qos1_unacknowledged_is_sent_again_on_reconnect(srv):
    r = Raw(srv.mqtt_port)
    session_present(r, client_id="q1-again", clean=False)
    r.subscribe(1, [("again/#", 1)])
    mosquitto_pub(srv.mqtt_port, "again/x", "X", "-q", "1")
    t, flags, body = r.expect(PUBLISH)
    pid = parse_publish(flags, body)[3]
    r.close()  # no PUBACK
    r = Raw(srv.mqtt_port)
    session_present(r, client_id="q1-again", clean=False)
    t, flags, body = r.expect(PUBLISH)
    topic, payload, qos, pid2, _ = parse_publish(flags, body)
    assert (payload, pid2) == (b"X", pid) and flags & 0x08
    r.ack(4, pid2)
    r.close()


def test_device_qos2_telemetry_stored_exactly_once(plateau_factory):
    p = start_mqtt_server(plateau_factory)
    tenant, name, token = tenant_device(p)
    admin = p.create_token(tenant, "tenant-admin")
    r = Raw(p.mqtt_port)
    session_present(r, client_id="dev-q2", clean=False, username=token)
    r.publish("v1/devices/me/telemetry", json.dumps({"counter": 1}), qos=2, pid=5)
    r.expect(PUBREC)  # stored: PUBREC comes once the write is durable
    r.close()
    r = Raw(p.mqtt_port)
    assert session_present(r, client_id="dev-q2", clean=False, username=token) == 1
    r.publish("v1/devices/me/telemetry", json.dumps({"counter": 1}), qos=2, pid=5, dup=True)
    r.expect(PUBREC)
    r.ack(PUBREL, 5)
    r.expect(PUBCOMP)
    r.close()
    assert len(query_points(p, admin, name)["counter"]) == 1
