"""Helpers for the MQTT integration tests (tests/integration/test_mqtt_*.py).

- start_mqtt_server(factory, ...)  a Plateau server (plateau_helpers.Plateau) with MQTT options
- Paho                             a python3-paho-mqtt 1.6 client that collects what it receives
- Raw                              a packet-level MQTT client (our own few lines of encoding) for
                                   exact flows, reason codes and malformed input
- mosquitto_pub / mosquitto_sub    Debian's command-line clients
- query_points                     telemetry read back through GET /api/v1/query

Only documented behaviour is relied on (docs/mqtt.md, docs/api.md).
"""

import json
import queue
import socket
import struct
import subprocess
import threading
import time
import uuid

import paho.mqtt.client as paho
from paho.mqtt.properties import Properties
from paho.mqtt.packettypes import PacketTypes

from plateau_helpers import uniq

WAIT_S = 10.0

CONNECT, CONNACK, PUBLISH, PUBACK, PUBREC, PUBREL, PUBCOMP = 1, 2, 3, 4, 5, 6, 7
SUBSCRIBE, SUBACK, UNSUBSCRIBE, UNSUBACK, PINGREQ, PINGRESP, DISCONNECT, AUTH = 8, 9, 10, 11, 12, 13, 14, 15


def start_mqtt_server(factory, anonymous=False, extra=()):
    """A started server (its MQTT port is p.mqtt_port) with $SYS every second."""
    args = ["--mqtt-sys-interval", "1s"]
    if anonymous:
        args.append("--mqtt-allow-anonymous")
    return factory.new(extra_args=args + list(extra))


def tenant_device(p, name=None, tenant=None):
    """(tenant, device name, device token) made with the CLI."""
    tenant = tenant or p.create_tenant()
    name = name or uniq("dev")
    return tenant, name, p.create_device_cli(name, tenant)


def cid():
    return "t-" + uuid.uuid4().hex[:12]


# ---- paho -------------------------------------------------------------------------------------

class Paho:
    """A paho client on its own network thread. Received messages go to .messages (a Queue of
    paho MQTTMessage); connect() returns the CONNACK code (an int, or a ReasonCodes for 5.0)."""

    def __init__(self, port, host="127.0.0.1", client_id=None, username=None, password=None, version=4,
                 clean=True, keepalive=30):
        self.version = version
        proto = paho.MQTTv5 if version == 5 else paho.MQTTv311 if version == 4 else paho.MQTTv31
        kwargs = {"client_id": client_id if client_id is not None else cid(), "protocol": proto}
        if version != 5:
            kwargs["clean_session"] = clean
        self.clean = clean
        self.c = paho.Client(**kwargs)
        if username is not None or password is not None:
            self.c.username_pw_set(username, password)
        self.host, self.port, self.keepalive = host, port, keepalive
        self.messages = queue.Queue()
        self.connack = queue.Queue()
        self.subacks = queue.Queue()
        self.published = queue.Queue()
        self.disconnects = queue.Queue()
        self.c.on_connect = self._on_connect
        self.c.on_message = lambda c, u, m: self.messages.put(m)
        self.c.on_subscribe = self._on_subscribe
        self.c.on_publish = lambda c, u, mid: self.published.put(mid)
        self.c.on_disconnect = self._on_disconnect

    def _on_connect(self, c, u, flags, rc, props=None):
        self.connack.put((rc, flags, props))

    def _on_subscribe(self, c, u, mid, granted, props=None):
        self.subacks.put((mid, granted))

    def _on_disconnect(self, c, u, rc, props=None):
        self.disconnects.put(rc)

    def connect(self, properties=None, will=None, wait=True):
        if will:
            self.c.will_set(*will[:4], properties=will[4] if len(will) > 4 else None)
        kw = {"keepalive": self.keepalive}
        if self.version == 5:
            kw["clean_start"] = self.clean
            kw["properties"] = properties
        self.c.connect(self.host, self.port, **kw)
        self.c.loop_start()
        if not wait:
            return None
        rc, flags, props = self.connack.get(timeout=WAIT_S)
        self.flags, self.props = flags, props
        return rc

    def subscribe(self, topic, qos=0, properties=None, options=None):
        if self.version == 5:
            opts = options or paho.SubscribeOptions(qos=qos)
            _, mid = self.c.subscribe(topic, options=opts, properties=properties)
        else:
            _, mid = self.c.subscribe(topic, qos)
        got_mid, granted = self.subacks.get(timeout=WAIT_S)
        assert got_mid == mid
        return granted

    def publish(self, topic, payload, qos=0, retain=False, properties=None, wait=True):
        info = self.c.publish(topic, payload, qos=qos, retain=retain, properties=properties)
        if wait and qos:
            info.wait_for_publish(timeout=WAIT_S)
            assert info.is_published(), f"no acknowledgement for {topic}"
        return info

    def get(self, timeout=WAIT_S):
        return self.messages.get(timeout=timeout)

    def none(self, within=1.0):
        """Asserts nothing arrives within `within` seconds."""
        try:
            m = self.messages.get(timeout=within)
        except queue.Empty:
            return
        raise AssertionError(f"unexpected message on {m.topic}: {m.payload[:80]!r}")

    def close(self):
        try:
            self.c.disconnect()
        except Exception:
            pass
        self.c.loop_stop()

    def drop(self):
        """Closes the socket without DISCONNECT (an abnormal end: the will is sent)."""
        self.c.loop_stop()
        sock = self.c.socket()
        if sock:
            sock.close()


def v5_props(packet, **kv):
    p = Properties(packet)
    for k, v in kv.items():
        setattr(p, k, v)
    return p


# ---- a raw client -----------------------------------------------------------------------------

def varint(n):
    out = b""
    while True:
        b = n % 128
        n //= 128
        out += bytes([b | (0x80 if n else 0)])
        if not n:
            return out


def mstr(s):
    b = s.encode() if isinstance(s, str) else s
    return struct.pack(">H", len(b)) + b


def packet(first, body):
    return bytes([first]) + varint(len(body)) + body


def props(*items):
    """Property block: items are already-encoded properties (id byte + value)."""
    body = b"".join(items)
    return varint(len(body)) + body


def p_user(k, v):
    return b"\x26" + mstr(k) + mstr(v)


def p_u32(pid, v):
    return bytes([pid]) + struct.pack(">I", v)


def p_u16(pid, v):
    return bytes([pid]) + struct.pack(">H", v)


def p_str(pid, s):
    return bytes([pid]) + mstr(s)


def connect_packet(client_id="", version=4, clean=True, keepalive=60, username=None, password=None,
                   will=None, cprops=b""):
    flags = 0x02 if clean else 0
    payload = mstr(client_id)
    if will:
        topic, msg, qos, retain = will[:4]
        flags |= 0x04 | (qos << 3) | (0x20 if retain else 0)
        if version == 5:
            payload += props(will[4] if len(will) > 4 else b"")
        payload += mstr(topic) + mstr(msg)
    if username is not None:
        flags |= 0x80
        payload += mstr(username)
    if password is not None:
        flags |= 0x40
        payload += mstr(password)
    body = mstr("MQTT") + bytes([version, flags]) + struct.pack(">H", keepalive)
    if version == 5:
        body += props(cprops)
    return packet(0x10, body + payload)


class Raw:
    """A blocking socket speaking MQTT packets; read() returns (type, flags, body) or None when the
    server closed the connection."""

    def __init__(self, port, host="127.0.0.1", timeout=WAIT_S):
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.s = socket.socket(family, socket.SOCK_STREAM)
        self.s.settimeout(timeout)
        self.s.connect((host, port))
        self.buf = b""
        self.version = 4

    def send(self, data):
        self.s.sendall(data)

    def _fill(self, n):
        while len(self.buf) < n:
            chunk = self.s.recv(65536)
            if not chunk:
                return False
            self.buf += chunk
        return True

    def read(self, timeout=None):
        if timeout is not None:
            self.s.settimeout(timeout)
        try:
            if not self._fill(2):
                return None
            mult, rem, i = 1, 0, 1
            while True:
                if not self._fill(i + 1):
                    return None
                b = self.buf[i]
                rem += (b & 127) * mult
                mult *= 128
                i += 1
                if not b & 128:
                    break
            if not self._fill(i + rem):
                return None
        except (ConnectionResetError, BrokenPipeError):
            return None
        first, body = self.buf[0], self.buf[i:i + rem]
        self.buf = self.buf[i + rem:]
        return first >> 4, first & 15, body

    def expect(self, ptype, timeout=None):
        got = self.read(timeout)
        assert got is not None, f"connection closed while waiting for packet type {ptype}"
        assert got[0] == ptype, f"expected packet type {ptype}, got {got[0]} {got[2][:40]!r}"
        return got

    def closed(self, timeout=5.0):
        """True when the server closes the connection (after any packets it sends first); the
        packets read meanwhile are returned as a list in .seen."""
        self.seen = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                got = self.read(max(0.05, deadline - time.monotonic()))
            except socket.timeout:
                return False
            if got is None:
                return True
            self.seen.append(got)
        return False

    def connect(self, version=4, **kw):
        self.version = version
        self.send(connect_packet(version=version, **kw))
        t, _, body = self.expect(CONNACK)
        return body[1]  # return code / reason code

    def publish(self, topic, payload, qos=0, pid=0, retain=False, dup=False, pprops=b""):
        first = 0x30 | (qos << 1) | (0x08 if dup else 0) | (0x01 if retain else 0)
        body = mstr(topic) + (struct.pack(">H", pid) if qos else b"")
        if self.version == 5:
            body += props(pprops)
        p = payload.encode() if isinstance(payload, str) else payload
        self.send(packet(first, body + p))

    def subscribe(self, pid, filters, sprops=b""):
        body = struct.pack(">H", pid)
        if self.version == 5:
            body += props(sprops)
        for f, opts in filters:
            body += mstr(f) + bytes([opts])
        self.send(packet(0x82, body))
        _, _, sb = self.expect(SUBACK)
        codes = sb[2:]
        if self.version == 5:
            n, skip = _read_varint(codes)
            codes = codes[skip + n:]
        return list(codes)

    def ack(self, ptype, pid, reason=None):
        first = {PUBACK: 0x40, PUBREC: 0x50, PUBREL: 0x62, PUBCOMP: 0x70}[ptype]
        body = struct.pack(">H", pid) + (bytes([reason]) if reason is not None else b"")
        self.send(packet(first, body))

    def close(self):
        try:
            self.s.close()
        except OSError:
            pass


def _read_varint(b):
    mult, v, i = 1, 0, 0
    while True:
        v += (b[i] & 127) * mult
        mult *= 128
        i += 1
        if not b[i - 1] & 128:
            return v, i


def parse_publish(flags, body, version=4):
    """(topic, payload, qos, pid, props bytes) of a PUBLISH body."""
    n = struct.unpack(">H", body[:2])[0]
    topic = body[2:2 + n].decode()
    pos = 2 + n
    qos = (flags >> 1) & 3
    pid = 0
    if qos:
        pid = struct.unpack(">H", body[pos:pos + 2])[0]
        pos += 2
    pbytes = b""
    if version == 5:
        plen, skip = _read_varint(body[pos:])
        pbytes = body[pos + skip:pos + skip + plen]
        pos += skip + plen
    return topic, body[pos:], qos, pid, pbytes


def ack_reason(body):
    """The reason code of a 5.0 PUBACK/PUBREC/PUBREL/PUBCOMP (0 when left out)."""
    return body[2] if len(body) > 2 else 0


def disconnect_reason(body):
    return body[0] if body else 0


# ---- mosquitto command-line clients ----------------------------------------------------------

def mosquitto_pub(port, topic, message, *args, host="127.0.0.1", timeout=30):
    """message None sends an empty payload (-n)."""
    body = ["-n"] if message is None else ["-m", message]
    cmd = ["mosquitto_pub", "-h", host, "-p", str(port), "-t", topic, *body, *map(str, args)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)


def mosquitto_sub_start(port, topic, *args, count=1, wait_s=10, host="127.0.0.1"):
    """Starts mosquitto_sub -v; returns the Popen (read .communicate() for 'topic payload' lines)."""
    cmd = ["mosquitto_sub", "-h", host, "-p", str(port), "-t", topic, "-v", "-C", str(count), "-W", str(wait_s),
           *map(str, args)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(0.4)  # it subscribes
    return proc


# ---- telemetry --------------------------------------------------------------------------------

def query_points(p, token, device, field=None, start="-1d"):
    """{field: [(time, value), ...]} of a device's telemetry, via GET /api/v1/query."""
    params = {"device": device, "start": start, "end": "now+1h" if False else "now", "epoch": "ms"}
    if field:
        params["field"] = field
    r = p.api("GET", "/api/v1/query", token=token, params=params)
    assert r.status_code == 200, r.text
    out = {}
    for s in r.json()["series"]:
        out[s["field"]] = [tuple(v) for v in s["values"]]
    return out


def wait_for(pred, timeout=WAIT_S, step=0.1, what="condition"):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = pred()
        if last:
            return last
        time.sleep(step)
    raise AssertionError(f"timed out waiting for {what} (last: {last!r})")


class Collector(threading.Thread):
    """Reads packets from a Raw in the background (for slow-consumer tests it does not)."""

    def __init__(self, raw):
        super().__init__(daemon=True)
        self.raw, self.packets, self.stop = raw, [], False

    def run(self):
        while not self.stop:
            try:
                got = self.raw.read(0.2)
            except socket.timeout:
                continue
            except OSError:
                return
            if got is None:
                return
            self.packets.append(got)


def json_payload(msg):
    return json.loads(msg.payload.decode())
