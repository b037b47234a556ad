"""Stripe's webhook retry schedule (up to 3 days, exponential back-off), observed by a real HTTP receiver.

Time is driven, never waited for: by a test clock (events about objects on a clock retry by its time), by
``POST /_sandbox/advance`` (the sandbox's own time, for events on no clock), or compressed with ``retry_scale``.
The session's server runs the ``fast`` schedule (see ``tests/sandbox/fixtures.py``); these tests ask for ``stripe``.
"""

from __future__ import annotations

import itertools
import time

import pytest

from tests.sandbox.test_webhooks_delivery import Receiver

# When attempt 1, 2, ... 12 is due, in seconds after the first (sandbox/README.md, "Webhook retries").
SCHEDULE = [0, 60, 360, 2160, 9360, 27360, 63360, 99360, 142560, 185760, 228960, 259200]
T0 = 1_900_000_000  # a test clock's start
DAY = 86_400


@pytest.fixture
def receiver():
    server = Receiver()
    server.statuses = [500] * 1000  # failing until a test says otherwise
    yield server
    server.close()


@pytest.fixture
def stripe_schedule(sandbox):
    reply = sandbox.request("POST", "/_sandbox/webhooks/config", {"retry_schedule": "stripe"}, api_key=None)
    assert reply.status == 200, reply.body
    assert reply.body["retry_schedule"] == "stripe" and reply.body["retry_scale"] == 1
    assert reply.body["max_attempts"] is None  # the schedule's own: 12 attempts
    yield sandbox
    sandbox.request("POST", "/_sandbox/webhooks/config", {"reset": "true"}, api_key=None)


def _endpoint(client, receiver, event_type):
    return client.v1.webhook_endpoints.create(params={"url": receiver.url, "enabled_events": [event_type]})


def _flush(sandbox, timeout=20) -> dict:
    params = {"timeout": timeout}
    reply = sandbox.request("POST", "/_sandbox/webhooks/flush", params, api_key=None, timeout=timeout + 10)
    assert reply.status == 200, reply.body
    return reply.body


def _deliveries(sandbox, endpoint_id) -> dict:
    reply = sandbox.request("GET", "/_sandbox/deliveries", {"endpoint": endpoint_id}, api_key=None)
    assert reply.status == 200, reply.body
    return reply.body


def _advance(client, clock_id, frozen_time):
    clock = client.v1.test_helpers.test_clocks.advance(clock_id, params={"frozen_time": frozen_time})
    assert clock.status == "ready"


def _customer_on_a_clock(client):
    clock = client.v1.test_helpers.test_clocks.create(params={"frozen_time": T0})
    client.v1.customers.create(params={"email": "late@example.com", "test_clock": clock.id})
    return clock


def test_retries_follow_stripes_schedule_by_the_test_clock_then_the_delivery_is_failed(
    stripe_schedule, receiver, stripe_client
):
    endpoint = _endpoint(stripe_client, receiver, "customer.created")
    clock = _customer_on_a_clock(stripe_client)
    # The first attempt fails; the next is a minute away (by real time or the clock): flush does not wait for it.
    assert _flush(stripe_schedule)["pending"] == 1
    log = _deliveries(stripe_schedule, endpoint.id)
    assert [(a["attempt"], a["status_code"], a["clock_time"]) for a in log["data"]] == [(1, 500, T0)]
    for attempt, offset in enumerate(SCHEDULE[1:], start=2):
        [waiting] = log["scheduled"]
        assert (waiting["attempts"], waiting["test_clock"]) == (attempt - 1, clock.id)
        assert waiting["next_attempt_clock_time"] == T0 + offset
        assert log["data"][-1]["next_attempt_clock_time"] == T0 + offset
        if attempt <= 4:  # a second short of it, the retry is not due
            _advance(stripe_client, clock.id, T0 + offset - 1)
            assert _flush(stripe_schedule)["pending"] == 1
            assert len(_deliveries(stripe_schedule, endpoint.id)["data"]) == attempt - 1
        _advance(stripe_client, clock.id, T0 + offset)
        flushed = _flush(stripe_schedule)
        log = _deliveries(stripe_schedule, endpoint.id)
        assert [a["attempt"] for a in log["data"]] == list(range(1, attempt + 1))
        assert log["data"][-1]["clock_time"] == T0 + offset
    # 12 attempts over 72 hours, then no more: the delivery is failed.
    assert [a["clock_time"] - T0 for a in log["data"]] == SCHEDULE
    assert [a["failed"] for a in log["data"]] == [False] * 11 + [True]
    assert log["data"][-1]["next_attempt"] is None and log["data"][-1]["next_attempt_clock_time"] is None
    assert (flushed["pending"], log["scheduled"]) == (0, [])
    _advance(stripe_client, clock.id, T0 + 10 * DAY)
    _flush(stripe_schedule)
    assert len(_deliveries(stripe_schedule, endpoint.id)["data"]) == 12
    assert len(receiver.received) == 12 and all(r["status"] == 500 for r in receiver.received)


def test_a_clock_jumping_past_three_days_fails_the_delivery_at_its_next_attempt(
    stripe_schedule, receiver, stripe_client
):
    endpoint = _endpoint(stripe_client, receiver, "customer.created")
    clock = _customer_on_a_clock(stripe_client)
    assert _flush(stripe_schedule)["pending"] == 1
    _advance(stripe_client, clock.id, T0 + 3 * DAY + 1)
    assert _flush(stripe_schedule)["pending"] == 0
    log = _deliveries(stripe_schedule, endpoint.id)
    # The attempts the jump skipped over are not made up for: one attempt, then the 72 hours are over.
    assert [(a["attempt"], a["clock_time"], a["failed"]) for a in log["data"]] == [
        (1, T0, False),
        (2, T0 + 3 * DAY + 1, True),
    ]
    assert log["scheduled"] == []


def test_later_events_pass_a_waiting_retry_and_the_sandbox_time_makes_it_due(stripe_schedule, receiver, stripe_client):
    receiver.statuses = [500]
    endpoint = _endpoint(stripe_client, receiver, "product.created")
    first = stripe_client.v1.products.create(params={"name": "first"})
    stripe_client.v1.products.create(params={"name": "second"})
    assert _flush(stripe_schedule)["pending"] == 1
    events = [e.id for e in reversed(stripe_client.v1.events.list(params={"type": "product.created"}).data)]
    # Stripe does not keep order: the second event does not wait an hour behind the first one's retry.
    assert receiver.event_ids(only_ok=False) == events
    assert receiver.event_ids() == events[1:]
    [waiting] = _deliveries(stripe_schedule, endpoint.id)["scheduled"]
    assert (waiting["event"], waiting["attempts"], waiting["test_clock"]) == (events[0], 1, None)

    # Events on no clock retry by the sandbox's own time: move it on by the minute of the first retry.
    moved = stripe_schedule.request("POST", "/_sandbox/advance", {"seconds": 60}, api_key=None)
    assert moved.status == 200, moved.body
    assert _flush(stripe_schedule)["pending"] == 0
    assert receiver.event_ids() == [events[1], events[0]]
    attempts = _deliveries(stripe_schedule, endpoint.id)["data"]
    retried = [a for a in attempts if a["event"] == events[0]]
    assert [(a["attempt"], a["status_code"], a["delivered"], a["failed"]) for a in retried] == [
        (1, 500, False, False),
        (2, 200, True, False),
    ]
    assert retried[1]["clock_time"] - retried[0]["clock_time"] >= 60
    assert retried[1]["next_attempt"] is None
    assert stripe_client.v1.products.retrieve(first.id).name == "first"


def test_retry_scale_compresses_the_schedule_in_real_time(stripe_schedule, receiver, stripe_client):
    scale = 1e-5  # 72 hours become 2.6 seconds
    reply = stripe_schedule.request("POST", "/_sandbox/webhooks/config", {"retry_scale": scale}, api_key=None)
    assert reply.body["retry_scale"] == scale
    endpoint = _endpoint(stripe_client, receiver, "product.created")
    started = time.time()
    stripe_client.v1.products.create(params={"name": "unlucky"})
    # Every retry is due within the flush's timeout, so it waits for all of them.
    assert _flush(stripe_schedule, timeout=60)["pending"] == 0
    attempts = _deliveries(stripe_schedule, endpoint.id)["data"]
    assert 2 <= len(attempts) <= 12
    assert [a["attempt"] for a in attempts] == list(range(1, len(attempts) + 1))
    assert [a["failed"] for a in attempts] == [False] * (len(attempts) - 1) + [True]
    for before, after in itertools.pairwise(attempts):
        assert after["at"] >= before["next_attempt"]  # an attempt is never early
    # The schedule ends 72 (scaled) hours after the first attempt: the last one is no sooner.
    assert attempts[-1]["at"] - started >= SCHEDULE[-1] * scale


def test_config_knobs_are_checked(sandbox):
    def config(**params):
        return sandbox.request("POST", "/_sandbox/webhooks/config", params, api_key=None)

    try:
        assert config(retry_schedule="hourly").status == 400
        assert config(retry_scale="0").status == 400
        assert config(max_attempts="many").status == 400
        assert config(max_attempts="3").body["max_attempts"] == 3
        assert config(max_attempts="").body["max_attempts"] is None
        # The session's server runs the fast schedule (tests/sandbox/fixtures.py); reset comes back to it.
        assert config(retry_schedule="stripe").body["retry_schedule"] == "stripe"
        assert config(reset="true").body["retry_schedule"] == "fast"
    finally:
        config(reset="true")
