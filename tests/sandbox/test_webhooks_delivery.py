"""Webhook endpoints and delivery, observed by a small HTTP receiver on 127.0.0.1 started by the test."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import stripe


class Receiver:
    """Records every POST (body, headers); answers with ``statuses`` in turn (then 200)."""

    def __init__(self, port: int = 0):
        self.received: list[dict] = []
        self.statuses: list[int] = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"])).decode()
                with receiver.lock:
                    status = receiver.statuses.pop(0) if receiver.statuses else 200
                    receiver.received.append(
                        {"body": body, "headers": dict(self.headers), "status": status, "at": time.monotonic()}
                    )
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def event_ids(self, only_ok=True) -> list[str]:
        with self.lock:
            return [json.loads(r["body"])["id"] for r in self.received if not only_ok or r["status"] < 300]

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    server = Receiver()
    yield server
    server.close()


@pytest.fixture
def hooks(sandbox):
    sandbox.request(
        "POST",
        "/_sandbox/webhooks/config",
        {"retry_schedule": "fast", "retry_base_seconds": "0.05", "max_attempts": 4},
        api_key=None,
    )
    yield sandbox
    sandbox.request("POST", "/_sandbox/webhooks/config", {"reset": "true"}, api_key=None)


def _endpoint(client, url, events=("*",)):
    return client.v1.webhook_endpoints.create(params={"url": url, "enabled_events": list(events)})


def _flush(sandbox):
    reply = sandbox.request("POST", "/_sandbox/webhooks/flush", {"timeout": "20"}, api_key=None)
    assert reply.status == 200, reply.body


def _products(client, n):
    return [client.v1.products.create(params={"name": f"P{i}"}) for i in range(n)]


def _event_ids(client, event_type="product.created"):
    return [e.id for e in reversed(client.v1.events.list(params={"type": event_type, "limit": 100}).data)]


def test_endpoint_crud_and_secret_only_on_create(stripe_client):
    created = stripe_client.v1.webhook_endpoints.create(
        params={"url": "https://example.com/hook", "enabled_events": ["charge.succeeded"], "description": "d"}
    )
    assert created.secret.startswith("whsec_")
    assert created.status == "enabled"
    fetched = stripe_client.v1.webhook_endpoints.retrieve(created.id)
    assert "secret" not in fetched
    updated = stripe_client.v1.webhook_endpoints.update(created.id, params={"enabled_events": ["*"], "disabled": True})
    assert updated.enabled_events == ["*"] and updated.status == "disabled"
    assert [e.id for e in stripe_client.v1.webhook_endpoints.list().data] == [created.id]
    assert stripe_client.v1.webhook_endpoints.delete(created.id).deleted is True
    with pytest.raises(stripe.InvalidRequestError):
        stripe_client.v1.webhook_endpoints.retrieve(created.id)


def test_signed_delivery_in_order_and_tampering_refused(hooks, receiver, stripe_client):
    endpoint = _endpoint(stripe_client, receiver.url)
    _products(stripe_client, 3)
    _flush(hooks)
    assert receiver.event_ids() == _event_ids(stripe_client)
    first = receiver.received[0]
    signature = first["headers"]["Stripe-Signature"]
    assert signature.startswith("t=") and ",v1=" in signature
    event = stripe.Webhook.construct_event(first["body"], signature, endpoint.secret)
    assert event.type == "product.created"
    tampered = first["body"].replace('"P0"', '"P9"')
    assert tampered != first["body"]
    with pytest.raises(stripe.SignatureVerificationError):
        stripe.Webhook.construct_event(tampered, signature, endpoint.secret)
    with pytest.raises(stripe.SignatureVerificationError):
        stripe.Webhook.construct_event(first["body"], signature, "whsec_" + "0" * 32)


def test_enabled_events_filter(hooks, receiver, stripe_client):
    _endpoint(stripe_client, receiver.url, ["customer.created"])
    stripe_client.v1.products.create(params={"name": "ignored"})
    customer = stripe_client.v1.customers.create(params={"email": "x@example.com"})
    _flush(hooks)
    bodies = [json.loads(r["body"]) for r in receiver.received]
    assert [(b["type"], b["data"]["object"]["id"]) for b in bodies] == [("customer.created", customer.id)]


def test_retries_after_non_2xx_keep_order(hooks, receiver, stripe_client):
    receiver.statuses = [500, 503]
    endpoint = _endpoint(stripe_client, receiver.url)
    _products(stripe_client, 2)
    _flush(hooks)
    ids = _event_ids(stripe_client)
    assert receiver.event_ids(only_ok=False) == [ids[0], ids[0], ids[0], ids[1]]
    assert receiver.event_ids() == ids
    attempts = hooks.request("GET", "/_sandbox/deliveries", {"endpoint": endpoint.id}, api_key=None).body["data"]
    assert [(a["event"], a["attempt"], a["status_code"]) for a in attempts] == [
        (ids[0], 1, 500),
        (ids[0], 2, 503),
        (ids[0], 3, 200),
        (ids[1], 1, 200),
    ]
    gap = receiver.received[2]["at"] - receiver.received[1]["at"]
    assert gap >= 0.09  # exponential back-off: 0.05 then 0.1 s


def test_gives_up_after_max_attempts(hooks, receiver, stripe_client):
    receiver.statuses = [500] * 10
    endpoint = _endpoint(stripe_client, receiver.url)
    stripe_client.v1.products.create(params={"name": "x"})
    _flush(hooks)
    attempts = hooks.request("GET", "/_sandbox/deliveries", {"endpoint": endpoint.id}, api_key=None).body["data"]
    assert [a["attempt"] for a in attempts] == [1, 2, 3, 4]
    assert not any(a["delivered"] for a in attempts)


def _fault(sandbox, endpoint_id, **faults):
    reply = sandbox.request(
        "POST",
        f"/_sandbox/webhook_endpoints/{endpoint_id}/faults",
        {k: str(v).lower() for k, v in faults.items()},
        api_key=None,
    )
    assert reply.status == 200, reply.body
    return reply.body["faults"]


def test_fault_duplicate(hooks, receiver, stripe_client):
    endpoint = _endpoint(stripe_client, receiver.url)
    _fault(hooks, endpoint.id, duplicate=True)
    _products(stripe_client, 2)
    _flush(hooks)
    ids = _event_ids(stripe_client)
    assert receiver.event_ids() == [ids[0], ids[0], ids[1], ids[1]]


def test_fault_shuffle(hooks, receiver, stripe_client):
    endpoint = _endpoint(stripe_client, receiver.url)
    _fault(hooks, endpoint.id, shuffle=True, shuffle_window=0.5)
    _products(stripe_client, 4)
    _flush(hooks)
    ids = _event_ids(stripe_client)
    assert sorted(receiver.event_ids()) == sorted(ids)
    assert receiver.event_ids() != ids


def test_fault_delay(hooks, receiver, stripe_client):
    endpoint = _endpoint(stripe_client, receiver.url)
    _fault(hooks, endpoint.id, delay=0.4)
    started = time.monotonic()
    stripe_client.v1.products.create(params={"name": "slow"})
    time.sleep(0.1)
    assert receiver.received == []
    _flush(hooks)
    assert len(receiver.received) == 1
    assert receiver.received[0]["at"] - started >= 0.4


def test_fault_drop_then_redeliver(hooks, receiver, stripe_client):
    endpoint = _endpoint(stripe_client, receiver.url)
    _fault(hooks, endpoint.id, drop_then_redeliver=True)
    stripe_client.v1.products.create(params={"name": "dropped"})
    _flush(hooks)
    ids = _event_ids(stripe_client)
    assert receiver.event_ids() == ids
    attempts = hooks.request("GET", "/_sandbox/deliveries", {"endpoint": endpoint.id}, api_key=None).body["data"]
    assert [(a["attempt"], a["status_code"], a["delivered"]) for a in attempts] == [(1, None, False), (2, 200, True)]
    # Clearing the fault restores normal delivery.
    assert _fault(hooks, endpoint.id, clear=True) == {}
    stripe_client.v1.products.create(params={"name": "normal"})
    _flush(hooks)
    assert receiver.event_ids() == _event_ids(stripe_client)


def test_drop_then_redeliver_lets_later_events_pass(hooks, receiver, stripe_client):
    endpoint = _endpoint(stripe_client, receiver.url)
    hooks.request("POST", "/_sandbox/webhooks/config", {"retry_base_seconds": "0.3"}, api_key=None)
    _fault(hooks, endpoint.id, drop_then_redeliver=True)
    first = stripe_client.v1.products.create(params={"name": "a"})
    # Turn the fault off only once the first attempt was dropped: otherwise the worker may pick the event
    # up after the fault is gone and deliver it normally, first.
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        attempts = hooks.request("GET", "/_sandbox/deliveries", {"endpoint": endpoint.id}, api_key=None).body["data"]
        if any(not attempt["delivered"] for attempt in attempts):
            break
        time.sleep(0.01)
    _fault(hooks, endpoint.id, drop_then_redeliver=False)
    stripe_client.v1.products.create(params={"name": "b"})
    _flush(hooks)
    ids = _event_ids(stripe_client)
    received = [json.loads(r["body"]) for r in receiver.received]
    assert [b["id"] for b in received] == [ids[1], ids[0]]
    assert received[1]["data"]["object"]["id"] == first.id
