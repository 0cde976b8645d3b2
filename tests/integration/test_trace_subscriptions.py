"""EPCIS subscriptions (issue 7): a named query's new events are POSTed to a webhook from a worker
thread (capture never waits for it), retried when the subscriber fails, delivered once."""

import http.server
import json
import queue
import threading
import time

import pytest

from plateau_helpers import assert_error, describe


class Hook:
    def __init__(self, fail_first=0):
        self.got = queue.Queue()
        self.fail = fail_first
        hook = self

        class H(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                if hook.fail > 0:
                    hook.fail -= 1
                    self.send_response(503)
                    self.end_headers()
                    return
                hook.got.put(json.loads(body))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *a):
                pass

        self.srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.url = f"http://127.0.0.1:{self.srv.server_address[1]}/hook"
        threading.Thread(target=self.srv.serve_forever, daemon=True).start()

    def close(self):
        self.srv.shutdown()


def document(events):
    return {"type": "EPCISDocument", "schemaVersion": "2.0", "creationDate": "2026-01-01T00:00:00Z",
            "epcisBody": {"eventList": events}}


def ev(serial, step):
    return {"type": "ObjectEvent", "action": "OBSERVE", "bizStep": step, "eventTime": "2026-05-01T08:00:00Z",
            "eventTimeZoneOffset": "+00:00", "epcList": [f"urn:epc:id:sgtin:0614141.107346.{serial}"]}


def capture(server, tok, events):
    r = server.api("POST", "/epcis/capture", token=tok, data=json.dumps(document(events)),
                   headers={"Content-Type": "application/json"})
    assert r.status_code == 202, describe(r)


@pytest.mark.parametrize("fail_first", [0, 2])
def test_subscription_delivers_new_matching_events(server, fail_first):
    _, tok = server.tenant_with_admin("sub")
    hook = Hook(fail_first)
    try:
        capture(server, tok, [ev(1, "shipping")])  # before the subscription: not delivered
        r = server.api("POST", "/epcis/queries", token=tok,
                       json={"name": "shipped", "query": {"EQ_bizStep": ["shipping"]}})
        assert r.status_code == 201, describe(r)
        r = server.api("POST", "/epcis/queries/shipped/subscriptions", token=tok, json={"dest": hook.url})
        assert r.status_code == 201, describe(r)
        sid = r.json()["subscriptionID"]
        t0 = time.monotonic()
        capture(server, tok, [ev(2, "shipping"), ev(3, "receiving"), ev(4, "shipping")])
        assert time.monotonic() - t0 < 5
        body = hook.got.get(timeout=30)
        assert body["type"] == "EPCISQueryDocument"
        qr = body["epcisBody"]["queryResults"]
        assert qr["queryName"] == "shipped" and qr["subscriptionID"] == sid
        assert [e["epcList"][0][-1] for e in qr["resultsBody"]["eventList"]] == ["2", "4"]
        capture(server, tok, [ev(5, "receiving")])  # nothing matches: nothing sent
        capture(server, tok, [ev(6, "shipping")])
        body = hook.got.get(timeout=30)
        assert [e["epcList"][0][-1] for e in body["epcisBody"]["queryResults"]["resultsBody"]["eventList"]] == ["6"]
        assert hook.got.empty()
        lst = server.api("GET", "/epcis/queries/shipped/subscriptions", token=tok).json()["member"]
        assert [s["subscriptionID"] for s in lst] == [sid]
        assert server.api("DELETE", f"/epcis/queries/shipped/subscriptions/{sid}", token=tok).status_code == 204
        capture(server, tok, [ev(7, "shipping")])
        with pytest.raises(queue.Empty):
            hook.got.get(timeout=2)
    finally:
        hook.close()


def test_subscription_bad_input(server):
    _, tok = server.tenant_with_admin("subbad")
    assert_error(server.api("POST", "/epcis/queries/none/subscriptions", token=tok, json={"dest": "http://x/"}), 404)
    server.api("POST", "/epcis/queries", token=tok, json={"name": "q", "query": {}})
    for bad in [{"dest": "ftp://x/"}, {"dest": "file:///etc/passwd"}, {}, {"dest": 5}, {"dest": "http://a b/"}]:
        assert_error(server.api("POST", "/epcis/queries/q/subscriptions", token=tok, json=bad), 400)
    assert_error(server.api("DELETE", "/epcis/queries/q/subscriptions/99999", token=tok), 404)
    other, otok = server.tenant_with_admin("subother")
    assert_error(server.api("POST", "/epcis/queries/q/subscriptions", token=otok, json={"dest": "http://x/"}), 404)
