"""MQTT over TLS (docs/mqtt.md "TLS"): the server certificate, token authentication inside TLS,
client-certificate authentication of devices (subject O = tenant, CN = device), untrusted
certificates, plain clients on the TLS port, and the plain listener disabled."""

import json
import socket
import ssl
import subprocess

import pytest

from mqtt_helpers import Paho, mosquitto_pub, query_points, tenant_device, wait_for
from plateau_helpers import free_port, port_is_open, uniq


def openssl(*args, cwd):
    cp = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True)
    assert cp.returncode == 0, cp.stderr
    return cp


def make_ca(d, name):
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.pem",
            "-days", "2", "-subj", f"/CN={name}", cwd=d)


def make_cert(d, ca, name, subj, server=False):
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", subj,
            cwd=d)
    ext = d / f"{name}.ext"
    ext.write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n" if server else
                   "extendedKeyUsage=clientAuth\n")
    openssl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.pem", "-CAkey", f"{ca}.key", "-CAcreateserial",
            "-out", f"{name}.pem", "-days", "2", "-extfile", ext.name, cwd=d)


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    d = tmp_path_factory.mktemp("pki")
    make_ca(d, "ca")
    make_ca(d, "rogue")
    make_cert(d, "ca", "server", "/CN=localhost", server=True)
    return d


@pytest.fixture(scope="module")
def tls(_module_factory, pki):
    port = free_port()
    p = _module_factory.new(extra_args=["--mqtt-tls-listen", f"127.0.0.1:{port}", "--mqtt-tls-cert",
                                        str(pki / "server.pem"), "--mqtt-tls-key", str(pki / "server.key"),
                                        "--mqtt-tls-ca", str(pki / "ca.pem")])
    p.mqtt_tls_port = port
    return p


def test_token_authentication_over_tls(tls, pki):
    tenant, name, token = tenant_device(tls)
    admin = tls.create_token(tenant, "tenant-admin")
    cp = mosquitto_pub(tls.mqtt_tls_port, "v1/devices/me/telemetry", json.dumps({"secure": 1}), "-u", token,
                       "--cafile", pki / "ca.pem", "-q", "1", host="localhost")
    assert cp.returncode == 0, cp.stderr
    assert [v for _, v in query_points(tls, admin, name)["secure"]] == [1.0]


def test_client_certificate_authenticates_the_device(tls, pki):
    tenant, name, _ = tenant_device(tls)
    admin = tls.create_token(tenant, "tenant-admin")
    make_cert(pki, "ca", name, f"/O={tenant}/CN={name}")
    cp = mosquitto_pub(tls.mqtt_tls_port, "v1/devices/me/telemetry", json.dumps({"by_cert": 7}), "--cafile",
                       pki / "ca.pem", "--cert", pki / f"{name}.pem", "--key", pki / f"{name}.key", "-q", "1",
                       "-V", "mqttv5", host="localhost")
    assert cp.returncode == 0, cp.stderr
    assert [v for _, v in query_points(tls, admin, name)["by_cert"]] == [7.0]


def test_untrusted_or_unknown_certificates_are_refused(tls, pki):
    tenant, name, _ = tenant_device(tls)
    make_cert(pki, "rogue", "forged", f"/O={tenant}/CN={name}")
    cp = mosquitto_pub(tls.mqtt_tls_port, "v1/devices/me/telemetry", "{}", "--cafile", pki / "ca.pem", "--cert",
                       pki / "forged.pem", "--key", pki / "forged.key", "-q", "1", host="localhost")
    assert cp.returncode != 0
    make_cert(pki, "ca", "ghost", f"/O={tenant}/CN=no-such-device")
    cp = mosquitto_pub(tls.mqtt_tls_port, "v1/devices/me/telemetry", "{}", "--cafile", pki / "ca.pem", "--cert",
                       pki / "ghost.pem", "--key", pki / "ghost.key", "-q", "1", host="localhost")
    assert cp.returncode != 0
    assert "user name or password" in cp.stderr, cp.stderr  # 3.1.1 code 4: no such device


def test_paho_v5_over_tls_both_ways(tls, pki):
    tenant = tls.create_tenant()
    op = tls.create_token(tenant, "operator")
    ctx = ssl.create_default_context(cafile=str(pki / "ca.pem"))
    clients = []
    for _ in range(2):
        c = Paho(tls.mqtt_tls_port, host="localhost", username="app", password=op, version=5)
        c.c.tls_set_context(ctx)
        assert c.connect() == 0
        clients.append(c)
    clients[0].subscribe("secure/#", 1)
    clients[1].publish("secure/a", "x" * 50000, qos=1)  # several TLS records
    assert clients[0].get().payload == b"x" * 50000
    for c in clients:
        c.close()


def test_plain_client_on_the_tls_port_is_closed(tls):
    s = socket.create_connection(("127.0.0.1", tls.mqtt_tls_port), timeout=5)
    s.sendall(b"\x10\x0c\x00\x04MQTT\x04\x02\x00\x3c\x00\x00")
    data = b""
    try:
        while True:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
    except OSError:
        pass
    assert not data.startswith(b"\x20")  # no CONNACK in the clear
    cp = mosquitto_pub(tls.mqtt_port, "still/plain", "ok")  # the plain listener still works
    assert cp.returncode in (0, 5)  # 5: not authorized (no anonymous access) — but it answered


def test_plain_listener_can_be_disabled(plateau_factory, pki):
    port = free_port()
    p = plateau_factory.new(extra_args=["--mqtt", "", "--mqtt-tls-listen", f"127.0.0.1:{port}", "--mqtt-tls-cert",
                                        str(pki / "server.pem"), "--mqtt-tls-key", str(pki / "server.key"),
                                        "--mqtt-allow-anonymous"])
    assert not port_is_open("127.0.0.1", p.mqtt_port)
    cp = mosquitto_pub(port, "t", "over tls only", "--cafile", pki / "ca.pem", "-q", "1", host="localhost")
    assert cp.returncode == 0, cp.stderr


def test_bad_tls_files_stop_the_server_with_a_message(plateau_factory, pki):
    p = plateau_factory.new(start=False)
    log = p.workdir / "bad-tls.log"
    args = p.default_serve_args() + ["--mqtt-tls-cert", str(pki / "missing.pem"), "--mqtt-tls-key",
                                     str(pki / "server.key")]
    cp = subprocess.run([p.bin, *args], capture_output=True, text=True, timeout=60)
    assert cp.returncode != 0
    assert "mqtt TLS" in cp.stderr and "missing.pem" in cp.stderr
