"""MQTT 5 on the same codec (docs/mqtt.md "MQTT 5"): CONNACK properties, user properties and
request/response, message and session expiry, topic aliases, Receive Maximum both ways, Maximum
Packet Size, subscription identifiers, No Local, Retain As Published, Retain Handling, shared
subscriptions, reason codes, will delay, enhanced authentication refused."""

import json
import struct
import time

import paho.mqtt.client as paho
import pytest

from mqtt_helpers import (CONNACK, DISCONNECT, PUBACK, PUBLISH, SUBACK, UNSUBACK, Paho, Raw, _read_varint,
                          ack_reason, disconnect_reason, mstr, p_str, p_u16, p_u32, p_user, packet, parse_publish,
                          props, start_mqtt_server, tenant_device, v5_props)
from paho.mqtt.packettypes import PacketTypes


@pytest.fixture(scope="module")
def srv(_module_factory):
    return start_mqtt_server(_module_factory, anonymous=True, extra=["--mqtt-max-packet-bytes", "4096",
                                                                       "--mqtt-topic-alias-max", "4"])


def connack_props(body):
    n, skip = _read_varint(body[2:])
    return parse_props(body[2 + skip:2 + skip + n])


def parse_props(b):
    """{id: value or [values]} for the property types the tests look at."""
    out, i = {}, 0
    while i < len(b):
        pid = b[i]
        i += 1
        if pid in (0x01, 0x17, 0x19, 0x24, 0x25, 0x28, 0x29, 0x2A):
            v, i = b[i], i + 1
        elif pid in (0x13, 0x21, 0x22, 0x23):
            v, i = struct.unpack(">H", b[i:i + 2])[0], i + 2
        elif pid in (0x02, 0x11, 0x18, 0x27):
            v, i = struct.unpack(">I", b[i:i + 4])[0], i + 4
        elif pid == 0x0B:
            v, n = _read_varint(b[i:])
            i += n
        elif pid == 0x26:
            kl = struct.unpack(">H", b[i:i + 2])[0]
            k = b[i + 2:i + 2 + kl].decode()
            i += 2 + kl
            vl = struct.unpack(">H", b[i:i + 2])[0]
            v = (k, b[i + 2:i + 2 + vl].decode())
            i += 2 + vl
        else:
            n = struct.unpack(">H", b[i:i + 2])[0]
            v, i = b[i + 2:i + 2 + n], i + 2 + n
        out.setdefault(pid, []).append(v)
    return {k: (v[0] if len(v) == 1 else v) for k, v in out.items()}


def raw5(srv, client_id="", **kw):
    r = Raw(srv.mqtt_port)
    r.version = 5
    from mqtt_helpers import connect_packet
    r.send(connect_packet(client_id=client_id, version=5, **kw))
    _, _, body = r.expect(CONNACK)
    r.connack = body
    return r


def test_connack_properties_and_assigned_client_id(srv):
    r = raw5(srv, client_id="")
    assert r.connack[1] == 0
    pr = connack_props(r.connack)
    assert pr[0x21] == 1000  # Receive Maximum
    assert pr[0x27] == 4096  # Maximum Packet Size
    assert pr[0x22] == 4     # Topic Alias Maximum
    assert pr[0x12].startswith(b"plateau-")  # Assigned Client Identifier
    r.close()
    # A session expiry over the server's maximum is lowered, and said so.
    r = raw5(srv, client_id="long-session", clean=False, cprops=p_u32(0x11, 0xFFFFFFFE))
    assert connack_props(r.connack)[0x11] == 7 * 86400
    r.close()


def test_user_properties_and_request_response(srv):
    responder = Paho(srv.mqtt_port, version=5)
    responder.connect()

    def on_request(client, userdata, m):
        if m.topic == "svc/time":
            props = v5_props(PacketTypes.PUBLISH, CorrelationData=m.properties.CorrelationData)
            client.publish(m.properties.ResponseTopic, b"12:00", qos=1, properties=props)

    responder.c.on_message = on_request
    responder.subscribe("svc/time", 1)
    asker = Paho(srv.mqtt_port, version=5)
    asker.connect()
    asker.subscribe("reply/asker", 1)
    props = v5_props(PacketTypes.PUBLISH, ResponseTopic="reply/asker", CorrelationData=b"req-17",
                     UserProperty=[("site", "lhasa"), ("line", "2")], ContentType="text/plain")
    watcher = Paho(srv.mqtt_port, version=5)
    watcher.connect()
    watcher.subscribe("svc/#", 1)
    asker.publish("svc/time", "what time is it?", qos=1, properties=props)
    reply = asker.get()
    assert reply.payload == b"12:00" and reply.properties.CorrelationData == b"req-17"
    seen = watcher.get()
    assert seen.properties.UserProperty == [("site", "lhasa"), ("line", "2")]
    assert seen.properties.ContentType == "text/plain" and seen.properties.ResponseTopic == "reply/asker"
    for c in (responder, asker, watcher):
        c.close()


def test_message_expiry(srv):
    c = Paho(srv.mqtt_port, version=5, client_id="expiry-sub", clean=False)
    c.connect(properties=v5_props(PacketTypes.CONNECT, SessionExpiryInterval=300))
    c.subscribe("exp/#", 1)
    c.close()
    p = Paho(srv.mqtt_port, version=5)
    p.connect()
    p.publish("exp/short", "gone", qos=1, properties=v5_props(PacketTypes.PUBLISH, MessageExpiryInterval=1))
    p.publish("exp/long", "kept", qos=1, properties=v5_props(PacketTypes.PUBLISH, MessageExpiryInterval=600))
    p.close()
    time.sleep(2.2)
    c = Paho(srv.mqtt_port, version=5, client_id="expiry-sub", clean=False)
    c.connect(properties=v5_props(PacketTypes.CONNECT, SessionExpiryInterval=300))
    m = c.get()
    assert m.payload == b"kept" and 590 <= m.properties.MessageExpiryInterval <= 600
    c.none(0.8)
    c.close()


def test_session_expiry(srv):
    r = raw5(srv, client_id="sess-exp", clean=True, cprops=p_u32(0x11, 1))
    r.subscribe(1, [("sx/#", 1)])
    r.close()
    r = raw5(srv, client_id="sess-exp", clean=False, cprops=p_u32(0x11, 1))
    assert r.connack[0] & 1 == 1  # within the interval: still there
    r.close()
    time.sleep(3)
    r = raw5(srv, client_id="sess-exp", clean=False, cprops=p_u32(0x11, 1))
    assert r.connack[0] & 1 == 0  # expired
    r.close()
    # Session expiry 0 (the default): the session ends with the connection.
    r = raw5(srv, client_id="sess-zero", clean=False)
    r.close()
    time.sleep(0.3)
    r = raw5(srv, client_id="sess-zero", clean=False)
    assert r.connack[0] & 1 == 0
    r.close()


def test_topic_aliases(srv):
    sub = Paho(srv.mqtt_port, version=5)
    sub.connect()
    sub.subscribe("alias/#", 1)
    r = raw5(srv, client_id="aliaser")
    r.publish("alias/very/long/topic/name", "1", qos=1, pid=1, pprops=p_u16(0x23, 2))
    r.expect(PUBACK)
    r.publish("", "2", qos=1, pid=2, pprops=p_u16(0x23, 2))
    r.expect(PUBACK)
    assert [sub.get().topic for _ in range(2)] == ["alias/very/long/topic/name"] * 2
    r.publish("", "3", qos=1, pid=3, pprops=p_u16(0x23, 3))  # never set
    assert r.closed() and disconnect_reason(r.seen[-1][2]) == 0x82
    r = raw5(srv, client_id="aliaser2")
    r.publish("alias/x", "4", qos=0, pprops=p_u16(0x23, 5))  # over the maximum of 4
    assert r.closed() and disconnect_reason(r.seen[-1][2]) == 0x94
    sub.close()


def test_receive_maximum_from_the_client(srv):
    """The server sends at most the client's Receive Maximum unacknowledged QoS 1 messages."""
    r = raw5(srv, client_id="slow-acker", cprops=p_u16(0x21, 2))
    r.subscribe(1, [("rm/#", 1)])
    p = Paho(srv.mqtt_port, version=5)
    p.connect()
    for i in range(5):
        p.publish("rm/x", str(i), qos=1)
    got = []
    for want in (2, 2, 1):
        batch = [parse_publish(*r.expect(PUBLISH)[1:], 5) for _ in range(want)]
        got += [pl for _, pl, _, _, _ in batch]
        # The window is full (or everything is sent): nothing more until acknowledgements.
        assert not r.closed(timeout=0.6) and not r.seen
        for _, _, _, pid, _ in batch:
            r.ack(PUBACK, pid)
    assert got == [b"0", b"1", b"2", b"3", b"4"]
    p.close()
    r.close()


def test_receive_maximum_of_the_server(plateau_factory):
    p = start_mqtt_server(plateau_factory, anonymous=True, extra=["--mqtt-receive-max", "2"])
    r = raw5(p, client_id="greedy")
    assert connack_props(r.connack)[0x21] == 2
    # QoS 2 messages stay unfinished until PUBREL: the third is one too many.
    for i in range(3):
        r.publish("rmx/x", str(i), qos=2, pid=i + 1)
    assert r.closed(timeout=8)
    assert [x[0] for x in r.seen] == [5, 5, DISCONNECT]
    assert disconnect_reason(r.seen[-1][2]) == 0x93


def test_maximum_packet_size_of_the_client(srv):
    r = raw5(srv, client_id="tiny", cprops=p_u32(0x27, 64))
    r.subscribe(1, [("mps/#", 0)])
    p = Paho(srv.mqtt_port, version=5)
    p.connect()
    p.publish("mps/big", "x" * 200, qos=1)
    p.publish("mps/small", "ok", qos=1)
    t, flags, body = r.expect(PUBLISH)
    assert parse_publish(flags, body, 5)[1] == b"ok"  # the big one was not sent
    p.close()
    r.close()


def test_packet_too_large_for_the_server(srv):
    r = raw5(srv, client_id="huge")
    r.publish("big", "y" * 5000, qos=0)
    assert r.closed()
    assert disconnect_reason(r.seen[-1][2]) == 0x95


def test_subscription_identifiers_no_local_retain_as_published(srv):
    r = raw5(srv, client_id="opts")
    assert r.subscribe(1, [("opt/id/#", 1)], sprops=b"\x0b\x07") == [1]
    assert r.subscribe(2, [("opt/nl", 1 | 0x04)]) == [1]        # No Local
    assert r.subscribe(3, [("opt/rap", 1 | 0x08)]) == [1]       # Retain As Published
    other = Paho(srv.mqtt_port, version=5)
    other.connect()
    other.publish("opt/id/a", "with id", qos=1)
    t, flags, body = r.expect(PUBLISH)
    topic, payload, qos, pid, pb = parse_publish(flags, body, 5)
    assert payload == b"with id" and parse_props(pb)[0x0B] == 7
    r.ack(PUBACK, pid)
    r.publish("opt/nl", "mine", qos=1, pid=50)
    assert ack_reason(r.expect(PUBACK)[2]) == 0x10  # its only subscriber is itself, with No Local
    other.publish("opt/rap", "kept flag", qos=1, retain=True)
    t, flags, body = r.expect(PUBLISH)
    assert parse_publish(flags, body, 5)[1] == b"kept flag" and flags & 1  # own "mine" was not echoed
    other.close()
    r.close()


def test_retain_handling(srv):
    Paho(srv.mqtt_port).c  # noqa: B018
    p = Paho(srv.mqtt_port, version=5)
    p.connect()
    p.publish("rh/state", "retained", qos=1, retain=True)
    p.close()
    r = raw5(srv, client_id="rh")
    assert r.subscribe(1, [("rh/#", 1 | (2 << 4))]) == [1]   # 2: never send retained
    assert not r.closed(timeout=0.6) and not r.seen
    assert r.subscribe(2, [("rh/+", 1 | (1 << 4))]) == [1]   # 1: only for a new subscription
    assert r.expect(PUBLISH)
    assert r.subscribe(3, [("rh/+", 1 | (1 << 4))]) == [1]   # the same again: not new
    assert not r.closed(timeout=0.6) and all(x[0] != PUBLISH for x in r.seen)
    r.close()


def test_shared_subscriptions(srv):
    workers = [Paho(srv.mqtt_port, version=5) for _ in range(2)]
    for w in workers:
        w.connect()
        w.subscribe("$share/pool/jobs/#", 1)
    plain = Paho(srv.mqtt_port, version=5)
    plain.connect()
    plain.subscribe("jobs/#", 1)
    p = Paho(srv.mqtt_port, version=5)
    p.connect()
    for i in range(10):
        p.publish(f"jobs/{i}", str(i), qos=1)
    time.sleep(1.0)
    counts = [w.messages.qsize() for w in workers]
    assert sum(counts) == 10 and all(counts), counts  # each job once, both workers used
    assert plain.messages.qsize() == 10               # an ordinary subscription still gets all
    for c in workers + [plain, p]:
        c.close()
    r = raw5(srv, client_id="badshare")
    assert r.subscribe(1, [("$share//x", 1), ("$share/g+/x", 1), ("$share/g", 1)]) == [0x8F, 0x8F, 0x8F]
    r.send(packet(0x82, struct.pack(">H", 2) + b"\x00" + mstr("$share/g/x") + bytes([1 | 0x04])))
    assert r.closed() and disconnect_reason(r.seen[-1][2]) == 0x82  # No Local on a shared subscription


def test_reason_codes(srv):
    r = raw5(srv, client_id="rc")
    r.publish("nobody/listens", "x", qos=1, pid=1)
    assert ack_reason(r.expect(PUBACK)[2]) == 0x10  # No matching subscribers
    r.send(packet(0xa2, struct.pack(">H", 2) + b"\x00" + mstr("never/subscribed")))
    _, _, body = r.expect(UNSUBACK)
    assert body[-1] == 0x11  # No subscription existed
    assert r.subscribe(3, [("a/#/b", 0)]) == [0x8F]
    r.publish("bad", b"\xff\xfe", qos=1, pid=4, pprops=b"\x01\x01")  # says UTF-8, is not
    assert ack_reason(r.expect(PUBACK)[2]) == 0x99
    r.close()


def test_will_delay_and_disconnect_with_will(srv):
    w = Paho(srv.mqtt_port, version=5)
    w.connect()
    w.subscribe("wd/#", 1)
    will = (b"\x18" + struct.pack(">I", 2))
    r = raw5(srv, client_id="wd", clean=False, cprops=p_u32(0x11, 60), will=("wd/gone", "bye", 1, False, will))
    r.close()  # abnormal: the will waits 2 s
    time.sleep(0.5)
    r = raw5(srv, client_id="wd", clean=False, cprops=p_u32(0x11, 60), will=("wd/gone", "bye", 1, False, will))
    w.none(2.5)  # came back within the delay: no will
    r.close()
    assert w.get(timeout=5).payload == b"bye"  # this time it stays away
    # DISCONNECT with reason 0x04 sends the will at once.
    r = raw5(srv, client_id="wd2", will=("wd/gone2", "bye2", 1, False))
    r.send(b"\xe0\x01\x04")
    assert w.get().payload == b"bye2"
    w.close()


def test_enhanced_authentication_is_refused(srv):
    r = Raw(srv.mqtt_port)
    from mqtt_helpers import connect_packet
    r.send(connect_packet(client_id="auth", version=5, cprops=p_str(0x15, "SCRAM-SHA-1")))
    _, _, body = r.expect(CONNACK)
    assert body[1] == 0x8C


def test_paho_v5_round_trip(srv):
    s = Paho(srv.mqtt_port, version=5)
    assert s.connect() == 0
    s.subscribe("p5/#", 2)
    p = Paho(srv.mqtt_port, version=5)
    p.connect()
    for q in (0, 1, 2):
        p.publish("p5/x", f"q{q}", qos=q)
    assert sorted(s.get().payload for _ in range(3)) == [b"q0", b"q1", b"q2"]
    s.close()
    p.close()
