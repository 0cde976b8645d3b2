"""Helpers for the identifier tests: a small Handle protocol client written from RFC 3652 (with
the 4-byte value timestamp deployed servers use), independent of Plateau's C codec, and
shortcuts for prefixes and identifiers over the HTTP API."""

import hashlib
import socket
import struct
import time

OC_RESOLUTION = 1
OC_GET_SITEINFO = 2
RC_SUCCESS = 1
RC_PROTOCOL_ERROR = 4
RC_OPERATION_NOT_SUPPORTED = 5
RC_RECURSION_LIMIT = 6
RC_HANDLE_NOT_FOUND = 100
RC_INVALID_HANDLE = 102
RC_VALUES_NOT_FOUND = 200
RC_ERROR = 2

OF_REC = 0x10000000
OF_PO = 0x01000000
OF_RD = 0x00800000
TC = 0x2000


def s(b):
    if isinstance(b, str):
        b = b.encode()
    return struct.pack(">I", len(b)) + b


def message(opcode, body, request_id=1, opflags=0, minor=10, recursion=0, env_flags=0, seq=0, credential=b""):
    hdr = struct.pack(">IIIHBBII", opcode, 0, opflags, 0, recursion, 0, 0, len(body))
    msg = hdr + body + struct.pack(">I", len(credential)) + credential
    env = struct.pack(">BBHIIII", 2, minor, env_flags, 0, request_id, seq, len(msg))
    return env + msg


def resolution_request(handle, indexes=(), types=(), request_id=1, opflags=OF_REC, minor=10):
    body = s(handle) + struct.pack(">I", len(indexes)) + b"".join(struct.pack(">I", i) for i in indexes)
    body += struct.pack(">I", len(types)) + b"".join(s(t) for t in types)
    return message(OC_RESOLUTION, body, request_id=request_id, opflags=opflags, minor=minor)


class Reply:
    def __init__(self, data, packets=1):
        self.raw = data
        self.packets = packets
        (self.major, self.minor, self.env_flags, self.session, self.request_id, self.seq,
         self.msg_len) = struct.unpack(">BBHIIII", data[:20])
        m = data[20:]
        (self.opcode, self.rc, self.opflags, self.serial, self.recursion, _, self.expiration,
         self.body_len) = struct.unpack(">IIIHBBII", m[:24])
        self.body = m[24:24 + self.body_len]
        self.signed = m[:24 + self.body_len]
        self.digest = None
        self.values = []
        self.handle = None
        self.message = None
        pos = 0
        if self.opflags & OF_RD:
            alg = self.body[0]
            n = {1: 16, 2: 20, 3: 32}[alg]
            self.digest = (alg, self.body[1:1 + n])
            pos = 1 + n
        if self.rc == RC_SUCCESS and self.opcode == OC_RESOLUTION:
            (hl,) = struct.unpack(">I", self.body[pos:pos + 4])
            self.handle = self.body[pos + 4:pos + 4 + hl].decode()
            pos += 4 + hl
            (nv,) = struct.unpack(">I", self.body[pos:pos + 4])
            pos += 4
            for _ in range(nv):
                v, pos = parse_value(self.body, pos)
                self.values.append(v)
            assert pos == len(self.body), "trailing bytes after the value list"
        elif self.rc == RC_SUCCESS and self.opcode == OC_GET_SITEINFO:
            self.siteinfo = self.body[pos:]
        elif self.rc != RC_SUCCESS:
            (ml,) = struct.unpack(">I", self.body[pos:pos + 4])
            self.message = self.body[pos + 4:pos + 4 + ml].decode()


def parse_value(b, pos):
    index, ts, ttl_type, ttl, perm = struct.unpack(">IIBiB", b[pos:pos + 14])
    pos += 14
    (tl,) = struct.unpack(">I", b[pos:pos + 4])
    typ = b[pos + 4:pos + 4 + tl].decode()
    pos += 4 + tl
    (dl,) = struct.unpack(">I", b[pos:pos + 4])
    data = b[pos + 4:pos + 4 + dl]
    pos += 4 + dl
    (nr,) = struct.unpack(">I", b[pos:pos + 4])
    pos += 4
    refs = []
    for _ in range(nr):
        (hl,) = struct.unpack(">I", b[pos:pos + 4])
        h = b[pos + 4:pos + 4 + hl].decode()
        pos += 4 + hl
        (ri,) = struct.unpack(">I", b[pos:pos + 4])
        pos += 4
        refs.append((h, ri))
    return {"index": index, "timestamp": ts, "ttl_type": ttl_type, "ttl": ttl, "perm": perm, "type": typ,
            "data": data, "refs": refs}, pos


def _family(host):
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def udp_exchange(host, port, request, timeout=5.0):
    """Sends one datagram and reassembles the (possibly chunked) reply."""
    with socket.socket(_family(host), socket.SOCK_DGRAM) as u:
        u.settimeout(timeout)
        u.sendto(request, (host, port))
        chunks = {}
        total = None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            pkt, _ = u.recvfrom(65536)
            env = struct.unpack(">BBHIIII", pkt[:20])
            flags, seq, msg_len = env[2], env[5], env[6]
            if not flags & TC:
                return Reply(pkt)
            assert len(pkt) <= 532, f"a UDP chunk of {len(pkt)} bytes"
            total = msg_len
            chunks[seq] = pkt[20:]
            if sum(len(c) for c in chunks.values()) == total:
                msg = b"".join(chunks[i] for i in sorted(chunks))
                assert sorted(chunks) == list(range(len(chunks)))
                head = struct.pack(">BBHIIII", env[0], env[1], 0, env[3], env[4], 0, total)
                return Reply(head + msg, packets=len(chunks))
        raise TimeoutError("no complete reply")


def udp_raw(host, port, data, timeout=1.0):
    """Sends raw bytes; returns the first datagram back, or None."""
    with socket.socket(_family(host), socket.SOCK_DGRAM) as u:
        u.settimeout(timeout)
        u.sendto(data, (host, port))
        try:
            return u.recvfrom(65536)[0]
        except socket.timeout:
            return None


def tcp_exchange(host, port, requests, timeout=5.0):
    """Sends one or more requests on one connection; returns the replies in order."""
    if isinstance(requests, bytes):
        requests = [requests]
    with socket.create_connection((host, port), timeout=timeout) as c:
        c.sendall(b"".join(requests))
        buf = b""
        replies = []
        while len(replies) < len(requests):
            while len(buf) < 20 or len(buf) < 20 + struct.unpack(">I", buf[16:20])[0]:
                chunk = c.recv(65536)
                if not chunk:
                    raise ConnectionError("closed")
                buf += chunk
            n = 20 + struct.unpack(">I", buf[16:20])[0]
            replies.append(Reply(buf[:n]))
            buf = buf[n:]
        return replies


def resolve_udp(node, handle, **kw):
    return udp_exchange(node.host, node.handle_port, resolution_request(handle, **kw))


def resolve_tcp(node, handle, **kw):
    return tcp_exchange(node.host, node.handle_port, resolution_request(handle, **kw))[0]


def digest_of(request, alg):
    signed = request[20:20 + 24 + struct.unpack(">I", request[20 + 20:20 + 24])[0]]
    return {2: hashlib.sha1, 3: hashlib.sha256, 1: hashlib.md5}[alg](signed).digest()


# ---- HTTP shortcuts ----

def make_prefix(node, prefix, tenant):
    cp = node.cli("prefix", "create", prefix, "--tenant", tenant, "--data", node.data)
    assert cp.returncode == 0, cp.stderr
    return prefix


def put_handle(node, token, handle, values, expect=(200, 201), **params):
    r = node.api("PUT", f"/api/handles/{handle}", token=token, json={"values": values}, params=params or None)
    assert r.status_code in ((expect,) if isinstance(expect, int) else expect), r.text
    return r


def url_value(index, url, **kw):
    v = {"index": index, "type": "URL", "data": {"format": "string", "value": url}}
    v.update(kw)
    return v


def text_value(index, typ, text, **kw):
    v = {"index": index, "type": typ, "data": text}
    v.update(kw)
    return v
