"""Events: every state change a Stripe integration can observe is recorded here.

Resource modules call :func:`emit` after they change an object. The event snapshots the object
(``data.object``), records the API version and the request that caused it, is listable through
``GET /v1/events``, and is handed to each of ``store.event_subscribers`` (webhook delivery
subscribes there) without the emitter knowing who listens. An event about an object on a test clock
has that clock's time as ``created`` and the clock's id in ``store.meta_for(event_id)["test_clock"]``.
"""

from __future__ import annotations

import copy

from sandbox.core import objects
from sandbox.core.routing import current_request
from sandbox.core.store import Store

# The version the sandbox speaks when a request names none (that of the stripe package we target).
DEFAULT_API_VERSION = "2026-08-26.dahlia"


def emit(store: Store, type: str, obj: dict, previous_attributes: dict | None = None, *, clock_id=None) -> dict:
    """Record an event of ``type`` about ``obj`` (snapshotted now) and notify subscribers."""
    req = current_request.get()
    data = {"object": copy.deepcopy(obj)}
    if previous_attributes is not None:
        data["previous_attributes"] = copy.deepcopy(previous_attributes)
    with store.lock:
        event = objects.build(
            "event",
            id=store.new_id("evt"),
            api_version=(req.stripe_version if req and req.stripe_version else DEFAULT_API_VERSION),
            created=store.now(clock_id),
            data=data,
            livemode=False,
            pending_webhooks=0,
            request={
                "id": req.request_id if req else None,
                "idempotency_key": req.idempotency_key if req else None,
            },
            type=type,
        )
        store.insert(event)
        if clock_id:  # hidden: webhook retries of the event are due by its clock's time too
            store.meta_for(event["id"])["test_clock"] = clock_id
        for subscriber in list(store.event_subscribers):
            subscriber(store, event)
    return event


def previous_attributes(before: dict, after: dict) -> dict:
    """Stripe's ``data.previous_attributes``: the old values of what changed (nested dicts only partly)."""
    changed = {}
    for key, old in before.items():
        new = after.get(key)
        if old == new:
            continue
        if isinstance(old, dict) and isinstance(new, dict) and key != "metadata":
            changed[key] = previous_attributes(old, new)
        else:
            changed[key] = old
    return changed
