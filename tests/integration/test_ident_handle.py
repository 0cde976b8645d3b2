"""The Handle protocol (RFC 3652) on UDP and TCP: resolution with index and type lists, the PO
and RD flags, every 2.x version, chunked UDP replies and chunked requests, GET_SITEINFO, error
responses, bad input, many requests on one connection, IPv6, and the `plateau ident resolve`
client."""

import hashlib
import json
import socket
import struct

import pytest

from ident_helpers import (OC_GET_SITEINFO, OC_RESOLUTION, OF_PO, OF_RD, OF_REC, RC_HANDLE_NOT_FOUND,
                           RC_INVALID_HANDLE, RC_OPERATION_NOT_SUPPORTED, RC_PROTOCOL_ERROR, RC_SUCCESS, TC, Reply,
                           digest_of, make_prefix, message, put_handle, resolution_request, resolve_tcp, resolve_udp,
                           s, tcp_exchange, text_value, udp_exchange, udp_raw, url_value)


@pytest.fixture(scope="module")
def node(server):
    tenant, tok = server.tenant_with_admin("water")
    make_prefix(server, "88.118.31", tenant)
    put_handle(server, tok, "88.118.31/lot-1", [
        url_value(1, "https://water.example.com/lot/1"),
        text_value(2, "EMAIL", "quality@water.example.com"),
        text_value(3, "DESC", "Spring water, lot 1"),
        url_value(4, "https://water.example.com/ja", type="URL.ja"),
        text_value(5, "SECRET", "internal", restricted=True),
    ])
    # Enough values that the answer needs several UDP packets.
    put_handle(server, tok, "88.118.31/big", [text_value(i, "DESC", f"{i:04d}-" + "x" * 95) for i in range(1, 41)])
    server.tok = tok
    return server


def test_udp_and_tcp_resolution(node):
    for resolve in (resolve_udp, resolve_tcp):
        r = resolve(node, "88.118.31/lot-1", request_id=77)
        assert r.rc == RC_SUCCESS and r.opcode == OC_RESOLUTION
        assert r.request_id == 77 and r.major == 2 and r.minor == 10
        assert r.handle == "88.118.31/lot-1"
        assert r.opflags & 0x80000000  # authoritative
        by = {v["index"]: v for v in r.values}
        assert set(by) == {1, 2, 3, 4}, "restricted values never go out anonymously"
        assert by[1]["type"] == "URL" and by[1]["data"] == b"https://water.example.com/lot/1"
        assert by[1]["ttl"] == 86400 and by[1]["perm"] & 0x02
        assert by[3]["data"].decode() == "Spring water, lot 1"


def test_index_and_type_lists(node):
    assert [v["index"] for v in resolve_udp(node, "88.118.31/lot-1", types=["URL"]).values] == [1]
    assert sorted(v["index"] for v in resolve_udp(node, "88.118.31/lot-1", types=["URL."]).values) == [1, 4]
    assert sorted(v["index"] for v in resolve_tcp(node, "88.118.31/lot-1", indexes=[2, 3]).values) == [2, 3]
    assert sorted(v["index"] for v in resolve_udp(node, "88.118.31/lot-1", indexes=[3], types=["EMAIL"]).values) == [2, 3]
    r = resolve_udp(node, "88.118.31/lot-1", types=["NOPE"])
    assert r.rc == 200  # RC_VALUES_NOT_FOUND


def test_flags_and_versions(node):
    req = resolution_request("88.118.31/lot-1", opflags=OF_RD | OF_PO, request_id=5)
    r = udp_exchange(node.host, node.handle_port, req)
    assert r.rc == RC_SUCCESS and r.digest is not None
    alg, digest = r.digest
    assert alg == 3 and digest == digest_of(req, 3)
    assert all(v["perm"] & 0x02 for v in r.values)
    for minor in (0, 1, 4, 5, 7, 9, 10, 11):
        req = resolution_request("88.118.31/lot-1", opflags=OF_RD, minor=minor, request_id=100 + minor)
        r = udp_exchange(node.host, node.handle_port, req)
        assert r.rc == RC_SUCCESS and r.minor == minor and r.request_id == 100 + minor
        assert r.digest[0] == (3 if minor >= 10 else 2)
        assert r.digest[1] == digest_of(req, r.digest[0])
    # A 3.x or 1.x message is not answered, and the server goes on.
    bad = bytearray(resolution_request("88.118.31/lot-1"))
    bad[0] = 3
    assert udp_raw(node.host, node.handle_port, bytes(bad)) is None
    assert resolve_udp(node, "88.118.31/lot-1").rc == RC_SUCCESS


def test_chunked_udp_reply(node):
    r = resolve_udp(node, "88.118.31/big")
    assert r.rc == RC_SUCCESS and r.packets > 1
    assert [v["index"] for v in r.values] == list(range(1, 41))
    assert all(v["data"].startswith(f"{v['index']:04d}-".encode()) for v in r.values)
    t = resolve_tcp(node, "88.118.31/big")
    assert [v["data"] for v in t.values] == [v["data"] for v in r.values]


def test_chunked_udp_request(node):
    # A request over 512 bytes (a long type list) sent in chunks with TC set, out of order.
    types = [f"T{i:03d}-" + "y" * 40 for i in range(20)] + ["DESC"]
    req = resolution_request("88.118.31/lot-1", types=types, request_id=4242)
    env, msg = req[:20], req[20:]
    chunks = [msg[i:i + 512] for i in range(0, len(msg), 512)]
    assert len(chunks) > 1
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
        u.settimeout(5)
        for seq in reversed(range(len(chunks))):
            head = struct.pack(">BBHIIII", 2, 10, TC, 0, 4242, seq, len(msg))
            u.sendto(head + chunks[seq], (node.host, node.handle_port))
        r = Reply(u.recvfrom(65536)[0])
    assert r.rc == RC_SUCCESS and r.request_id == 4242
    assert [v["index"] for v in r.values] == [3]


def test_siteinfo(node):
    for exchange in ("udp", "tcp"):
        req = message(OC_GET_SITEINFO, b"", request_id=9)
        r = udp_exchange(node.host, node.handle_port, req) if exchange == "udp" else tcp_exchange(node.host, node.handle_port, req)[0]
        assert r.rc == RC_SUCCESS and r.opcode == OC_GET_SITEINFO
        si = r.siteinfo
        version, major, minor, serial, mask, hashopt = struct.unpack(">HBBHBB", si[:8])
        assert version == 1 and major == 2 and mask & 0x40
        pos = 8
        (fl,) = struct.unpack(">I", si[pos:pos + 4]); pos += 4 + fl
        (na,) = struct.unpack(">I", si[pos:pos + 4]); pos += 4
        for _ in range(na):
            for _ in range(2):
                (l,) = struct.unpack(">I", si[pos:pos + 4]); pos += 4 + l
        (ns,) = struct.unpack(">I", si[pos:pos + 4]); pos += 4
        assert ns == 1
        sid = struct.unpack(">I", si[pos:pos + 4])[0]; pos += 4
        addr = si[pos:pos + 16]; pos += 16
        assert addr[-4:] == socket.inet_aton(node.host)
        (kl,) = struct.unpack(">I", si[pos:pos + 4]); pos += 4 + kl
        (ni,) = struct.unpack(">I", si[pos:pos + 4]); pos += 4
        ports = {}
        for _ in range(ni):
            stype, proto, port = struct.unpack(">BBI", si[pos:pos + 6]); pos += 6
            ports[proto] = port
        assert ports[0] == node.handle_port and ports[1] == node.handle_port and ports[2] == node.http_port


def test_prefix_handle(node):
    """0.NA/PREFIX of a held prefix names this node's site, as Handle clients look it up."""
    r = resolve_udp(node, "0.NA/88.118.31")
    assert r.rc == RC_SUCCESS
    by = {v["type"]: v for v in r.values}
    site = by["HS_SITE"]["data"]
    assert struct.unpack(">H", site[:2])[0] == 1 and struct.pack(">I", node.handle_port) in site
    assert by["HS_ADMIN"]["index"] == 100
    j = node.api("GET", "/api/handles/0.NA/88.118.31").json()
    assert j["responseCode"] == 1 and {v["type"] for v in j["values"]} == {"HS_SITE", "HS_ADMIN"}
    assert [v for v in j["values"] if v["type"] == "HS_SITE"][0]["data"]["format"] == "site"
    assert resolve_tcp(node, "0.NA/77.7").rc == RC_HANDLE_NOT_FOUND


def test_errors(node):
    r = resolve_udp(node, "88.118.31/nope")
    assert r.rc == RC_HANDLE_NOT_FOUND and "not found" in r.message
    r = resolve_tcp(node, "no-slash-here")
    assert r.rc == RC_INVALID_HANDLE
    r = udp_exchange(node.host, node.handle_port, message(100, s("88.118.31/new") + struct.pack(">I", 0)))
    assert r.rc == RC_OPERATION_NOT_SUPPORTED
    r = udp_exchange(node.host, node.handle_port, message(OC_RESOLUTION, b"\x00\x00\x00\xff"))
    assert r.rc == RC_PROTOCOL_ERROR
    # A prefix this node does not hold, without parents: not found, saying why.
    r = resolve_udp(node, "77.7/x")
    assert r.rc == RC_HANDLE_NOT_FOUND and "not held" in r.message
    # Garbage datagrams get no answer; garbage on TCP closes that connection only.
    for junk in (b"", b"\x02", b"hello world", b"\x02\x0a" + b"\xff" * 30, bytes(600)):
        assert udp_raw(node.host, node.handle_port, junk, timeout=0.3) is None
    with socket.create_connection((node.host, node.handle_port), timeout=5) as c:
        c.sendall(b"\x07" * 100)
        c.settimeout(5)
        assert c.recv(100) == b""
    # A message length over the limit is refused before anything is allocated.
    with socket.create_connection((node.host, node.handle_port), timeout=5) as c:
        c.sendall(struct.pack(">BBHIIII", 2, 10, 0, 0, 1, 0, 0x7fffffff))
        assert c.recv(100) == b""
    assert resolve_udp(node, "88.118.31/lot-1").rc == RC_SUCCESS


def test_pipelined_tcp(node):
    reqs = [resolution_request("88.118.31/lot-1", request_id=i, types=["URL"]) for i in range(1, 51)]
    reqs.insert(10, resolution_request("88.118.31/nope", request_id=999))
    replies = tcp_exchange(node.host, node.handle_port, reqs)
    assert [r.request_id for r in replies] == [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 999] + list(range(11, 51))
    assert replies[10].rc == RC_HANDLE_NOT_FOUND
    assert all(r.rc == RC_SUCCESS for i, r in enumerate(replies) if i != 10)


def test_cli_resolve(node):
    hp = f"{node.host}:{node.handle_port}"
    for transport in ("--udp", "--tcp"):
        cp = node.cli("ident", "resolve", "88.118.31/lot-1", "--server", hp, transport)
        assert cp.returncode == 0, cp.stderr
        assert "https://water.example.com/lot/1" in cp.stdout and "EMAIL" in cp.stdout
    cp = node.cli("ident", "resolve", "88.118.31/big", "--server", hp, "--json", "--type", "DESC")
    body = json.loads(cp.stdout)
    assert body["responseCode"] == 1 and len(body["values"]) == 40
    cp = node.cli("ident", "resolve", "88.118.31/nope", "--server", hp)
    assert cp.returncode == 3 and "not found" in cp.stderr
    cp = node.cli("ident", "resolve", "88.118.31/lot-1", "--server", "127.0.0.1:1", "--tcp", "--timeout", "500ms")
    assert cp.returncode == 1 and "127.0.0.1:1" in cp.stderr
    cp = node.cli("ident", "siteinfo", "--server", hp)
    assert cp.returncode == 0 and f"tcp {node.handle_port}" in cp.stdout


def test_ipv6(server6):
    tenant, tok = server6.tenant_with_admin("v6")
    make_prefix(server6, "88.118.32", tenant)
    put_handle(server6, tok, "88.118.32/six", [url_value(1, "https://six.example.com/")])
    assert resolve_udp(server6, "88.118.32/six").values[0]["data"] == b"https://six.example.com/"
    assert resolve_tcp(server6, "88.118.32/six").rc == RC_SUCCESS
    cp = server6.cli("ident", "resolve", "88.118.32/six", "--server", f"[::1]:{server6.handle_port}", "--tcp")
    assert cp.returncode == 0 and "six.example.com" in cp.stdout


def test_dual_stack(plateau_factory):
    """A node on [::] answers IPv4 and IPv6 clients on the same port."""
    from plateau_helpers import free_port, has_ipv6_loopback
    if not has_ipv6_loopback():
        pytest.skip("no IPv6 loopback")
    p = plateau_factory.new(start=False)
    port = free_port("127.0.0.1", udp_too=True)
    p.http_port = free_port("127.0.0.1")
    p.handle_port = port
    p.start(args=["serve", "--data", str(p.data), "--http", f"127.0.0.1:{p.http_port}", "--mqtt", f"127.0.0.1:{free_port()}",
                  "--handle", f"[::]:{port}", "--handle-site-address", "192.0.2.7"])
    p.admin_token = p.create_token("region", "admin")
    tenant, tok = p.tenant_with_admin("ds")
    make_prefix(p, "88.118.33", tenant)
    put_handle(p, tok, "88.118.33/x", [url_value(1, "https://ds.example.com/")])
    assert udp_exchange("127.0.0.1", port, resolution_request("88.118.33/x")).rc == RC_SUCCESS
    assert udp_exchange("::1", port, resolution_request("88.118.33/x")).rc == RC_SUCCESS
    assert tcp_exchange("::1", port, resolution_request("88.118.33/x"))[0].rc == RC_SUCCESS
    assert tcp_exchange("127.0.0.1", port, resolution_request("88.118.33/x"))[0].rc == RC_SUCCESS
    # The site information announces the configured public address, not "::".
    si = udp_exchange("::1", port, message(OC_GET_SITEINFO, b"", request_id=3)).siteinfo
    assert socket.inet_aton("192.0.2.7") in si and struct.unpack(">I", si[8:12])[0] == 0
