"""``--state-file``: what one run creates (webhook deliveries included) the next run has; saving holds up no one."""

from __future__ import annotations

import json
import socket
import subprocess
import sys

import pytest
import stripe

from tests.sandbox.fixtures import REPO_ROOT, TEST_API_KEY, SandboxServer
from tests.sandbox.test_webhooks_delivery import Receiver

REFUSE = [503] * 100_000


def start(state_file) -> tuple[subprocess.Popen, stripe.StripeClient]:
    process, sandbox = start_server(state_file)
    return process, sandbox.client()


def start_server(state_file) -> tuple[subprocess.Popen, SandboxServer]:
    process = subprocess.Popen(
        [sys.executable, "-m", "sandbox", "--port", "0", "--state-file", str(state_file)],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    url = process.stdout.readline().split()[-1]
    return process, SandboxServer(base_url=url, api_key=TEST_API_KEY, process=process)


def stop(process: subprocess.Popen) -> None:
    process.terminate()  # SIGTERM
    assert process.wait(timeout=30) == 0
    process.stdout.close()


def test_state_survives_a_restart(tmp_path):
    state_file = tmp_path / "sandbox.json"
    process, client = start(state_file)
    try:
        customer = client.v1.customers.create(params={"email": "kept@example.com"})
        account_id = client.v1.accounts.retrieve_current().id
    finally:
        stop(process)
    assert state_file.exists()
    assert [path.name for path in tmp_path.iterdir()] == ["sandbox.json"]  # no temp file left behind
    process, client = start(state_file)
    try:
        assert client.v1.customers.retrieve(customer.id).email == "kept@example.com"
        assert client.v1.accounts.retrieve_current().id == account_id
        assert client.v1.events.list().data[0].type == "customer.created"
    finally:
        stop(process)


def test_deliveries_pending_at_a_stop_all_arrive_after_the_restart(tmp_path):
    state_file = tmp_path / "sandbox.json"
    refusing = Receiver()
    refusing.statuses = list(REFUSE)
    # A port nobody listens on yet (bound, not listening: connections are refused); the second receiver comes up there.
    reserved = socket.socket()
    reserved.bind(("127.0.0.1", 0))
    down_port = reserved.getsockname()[1]
    down = None
    process, sandbox = start_server(state_file)
    client = sandbox.client()
    try:
        config = {"retry_schedule": "fast", "retry_base_seconds": "0.05", "max_attempts": 200}
        sandbox.request("POST", "/_sandbox/webhooks/config", config, api_key=None)
        first = client.v1.webhook_endpoints.create(params={"url": refusing.url, "enabled_events": ["customer.created"]})
        second = client.v1.webhook_endpoints.create(
            params={"url": f"http://127.0.0.1:{down_port}/hooks", "enabled_events": ["customer.created"]}
        )
        sandbox.request("POST", f"/_sandbox/webhook_endpoints/{second.id}/faults", {"delay": "0.2"}, api_key=None)
        for n in range(3):
            client.v1.customers.create(params={"email": f"c{n}@example.com"})
        expected = [e.id for e in reversed(client.v1.events.list(params={"type": "customer.created"}).data)]
        assert sandbox.request("GET", "/_sandbox/deliveries", api_key=None).body["pending"] == 6
        stop(process)

        saved = json.loads(state_file.read_text())["webhook_deliveries"]["queues"]
        assert {endpoint: [job["event_id"] for job in jobs] for endpoint, jobs in saved.items()} == {
            first.id: expected,
            second.id: expected,
        }

        process, sandbox = start_server(state_file)
        with refusing.lock:
            refusing.statuses.clear()
        reserved.close()
        down = Receiver(port=down_port)
        reply = sandbox.request("POST", "/_sandbox/webhooks/flush", {"timeout": "60"}, api_key=None, timeout=70)
        assert reply.status == 200, reply.body
        for receiver, endpoint in ((refusing, first), (down, second)):
            assert receiver.event_ids() == expected
            for delivery in receiver.received:
                if delivery["status"] < 300:
                    signature = delivery["headers"]["Stripe-Signature"]
                    stripe.Webhook.construct_event(delivery["body"], signature, endpoint.secret)
    finally:
        if process.poll() is None:
            stop(process)
        refusing.close()
        if down is not None:
            down.close()
        reserved.close()


def test_a_retry_waiting_at_a_stop_is_made_after_the_restart_when_it_is_due(tmp_path):
    """Stripe's schedule (the default): the retry a minute away keeps its attempt count and due times."""
    state_file = tmp_path / "sandbox.json"
    receiver = Receiver()
    receiver.statuses = [500]
    frozen = 1_900_000_000
    process, sandbox = start_server(state_file)
    client = sandbox.client()
    try:
        endpoint = client.v1.webhook_endpoints.create(
            params={"url": receiver.url, "enabled_events": ["customer.created"]}
        )
        clock = client.v1.test_helpers.test_clocks.create(params={"frozen_time": frozen})
        client.v1.customers.create(params={"email": "later@example.com", "test_clock": clock.id})
        flushed = sandbox.request("POST", "/_sandbox/webhooks/flush", {"timeout": "20"}, api_key=None, timeout=30)
        assert (flushed.status, flushed.body["pending"]) == (200, 1)
        [before] = sandbox.request("GET", "/_sandbox/deliveries", api_key=None).body["scheduled"]
        assert (before["attempts"], before["next_attempt_clock_time"]) == (1, frozen + 60)
        stop(process)

        [saved] = json.loads(state_file.read_text())["webhook_deliveries"]["queues"][endpoint.id]
        assert (saved["event_id"], saved["attempt"], saved["clock"]) == (before["event"], 1, clock.id)
        assert saved["clock_due"] == frozen + 60
        assert saved["not_before"] == pytest.approx(before["next_attempt"], abs=1)

        process, sandbox = start_server(state_file)
        client = sandbox.client()
        [after] = sandbox.request("GET", "/_sandbox/deliveries", api_key=None).body["scheduled"]
        assert after == {**before, "next_attempt": pytest.approx(before["next_attempt"], abs=1)}
        # Due by the clock: advancing it by the first retry's minute makes the attempt.
        client.v1.test_helpers.test_clocks.advance(clock.id, params={"frozen_time": frozen + 60})
        flushed = sandbox.request("POST", "/_sandbox/webhooks/flush", {"timeout": "20"}, api_key=None, timeout=30)
        assert (flushed.status, flushed.body["pending"]) == (200, 0)
        attempts = sandbox.request("GET", "/_sandbox/deliveries", api_key=None).body["data"]
        assert [(a["event"], a["attempt"], a["status_code"], a["clock_time"]) for a in attempts] == [
            (before["event"], 2, 200, frozen + 60)
        ]
        assert [r["status"] for r in receiver.received] == [500, 200]
        assert receiver.event_ids() == [before["event"]]
        delivered = receiver.received[1]
        stripe.Webhook.construct_event(delivered["body"], delivered["headers"]["Stripe-Signature"], endpoint.secret)
    finally:
        if process.poll() is None:
            stop(process)
        receiver.close()


def test_requests_are_answered_while_a_save_is_half_way(tmp_path):
    state_file = tmp_path / "sandbox.json"
    process, sandbox = start_server(state_file)
    client = sandbox.client()
    try:
        before = [client.v1.customers.create(params={"email": f"c{n}@example.com"}) for n in range(50)]
        held = sandbox.request("POST", "/_sandbox/state/save", {"hold": "true"}, api_key=None)
        assert held.body["saving"] is True
        saves = held.body["saves"]

        # The save is stopped half-way through writing; reads and writes are served all the same.
        during = client.v1.customers.create(params={"email": "during@example.com"})
        assert client.v1.customers.retrieve(before[0].id).email == "c0@example.com"
        status = sandbox.request("GET", "/_sandbox/state/save", api_key=None).body
        assert status["saving"] is True and status["saves"] == saves
        if state_file.exists():  # an earlier save's file is still whole
            json.loads(state_file.read_text())

        released = sandbox.request("POST", "/_sandbox/state/save", {"release": "true"}, api_key=None).body
        assert released["saving"] is False and released["saves"] > saves
        assert before[-1].id in json.loads(state_file.read_text())["tables"]["customer"]
    finally:
        stop(process)
    process, client = start(state_file)
    try:
        assert client.v1.customers.retrieve(during.id).email == "during@example.com"
    finally:
        stop(process)


def test_a_port_in_use_is_one_line_and_exit_status_2(tmp_path):
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    port = taken.getsockname()[1]
    try:
        result = subprocess.run(
            [sys.executable, "-m", "sandbox", "--port", str(port), "--state-file", str(tmp_path / "s.json")],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=60,
        )
    finally:
        taken.close()
    assert result.returncode == 2
    assert result.stderr == f"sandbox: port {port} is in use (set TOLLBOOTH_SANDBOX_PORT to another port)\n"
    assert result.stdout == ""
    assert list(tmp_path.iterdir()) == []


def test_a_state_file_from_before_the_invoice_shape_change_loads_without_the_old_key():
    from sandbox.core.store import STATE_VERSION, Store

    invoice = {"id": "in_old", "object": "invoice", "subscription": "sub_1", "parent": None}
    store = Store()
    store.load_dict({"version": STATE_VERSION, "tables": {"invoice": {"in_old": invoice}}, "meta": {}})
    assert "subscription" not in store.get("invoice", "in_old")
