"""Webhook endpoints (``/v1/webhook_endpoints`` CRUD) and the delivery helpers under ``/_sandbox/``.

``secret`` (``whsec_…``) is returned by create only, as on Stripe. Delivery itself is
:mod:`sandbox.events.delivery`; it subscribes to the store when the first endpoint is created.

Helpers (no API key):

- ``POST /_sandbox/webhook_endpoints/{id}/faults``: ``duplicate``, ``shuffle`` (+ ``shuffle_window``),
  ``delay`` (seconds), ``drop_then_redeliver``; ``false``/``0``/empty turns one off, ``clear=true`` all.
- ``GET /_sandbox/deliveries`` (``endpoint``, ``event``, ``type``): delivery attempts, oldest first, and the
  deliveries ``scheduled`` for a later attempt.
- ``POST /_sandbox/webhooks/flush`` (``timeout``, default 30 s): returns once nothing is in flight and nothing
  queued is due within ``timeout``; ``pending`` counts what stays scheduled for later (504 if still busy).
- ``POST /_sandbox/webhooks/config``: ``retry_schedule`` (``stripe`` | ``fast``), ``retry_scale``,
  ``retry_base_seconds``, ``max_attempts`` (empty: the schedule's own), ``timeout_seconds``, ``reset``.
"""

from __future__ import annotations

import secrets

from sandbox.core import errors, listing, objects
from sandbox.core import params as P
from sandbox.core.routing import ApiRequest, route
from sandbox.events import delivery as webhooks

CREATE_SCHEMA = {
    "url": str,
    "enabled_events": P.ListOf(str),
    "description": str,
    "metadata": P.METADATA,
    "api_version": str,
    "connect": bool,
}
UPDATE_SCHEMA = {
    "url": str,
    "enabled_events": P.ListOf(str),
    "description": str,
    "metadata": P.METADATA,
    "disabled": bool,
}


def _get(req: ApiRequest, endpoint_id: str) -> dict:
    return req.store.fetch("webhook_endpoint", endpoint_id, "webhook_endpoint")


def _check_url(url: str) -> None:
    if not url.startswith(("http://", "https://")):
        raise errors.invalid_request(
            "Invalid URL: URL must be publicly accessible and use http(s).", "url", "url_invalid"
        )


@route("POST", "/v1/webhook_endpoints")
def create(req: ApiRequest) -> dict:
    params = req.validate(CREATE_SCHEMA)
    P.require(params, "url", "enabled_events")
    _check_url(params["url"])
    if not params["enabled_events"]:
        raise errors.parameter_missing("enabled_events")
    store = req.store
    webhooks.attach(store)
    endpoint = objects.build(
        "webhook_endpoint",
        id=store.new_id("we"),
        api_version=params.get("api_version"),
        application=None,
        created=store.now(),
        description=params.get("description"),
        enabled_events=params["enabled_events"],
        livemode=False,
        metadata=P.apply_metadata({}, params.get("metadata")),
        status="enabled",
        url=params["url"],
    )
    store.insert(endpoint)
    secret = "whsec_" + secrets.token_hex(16)
    store.meta_for(endpoint["id"])["secret"] = secret
    return {**endpoint, "secret": secret}


@route("GET", "/v1/webhook_endpoints/<endpoint_id>")
def retrieve(req: ApiRequest, endpoint_id: str) -> dict:
    req.validate({})
    return _get(req, endpoint_id)


@route("POST", "/v1/webhook_endpoints/<endpoint_id>")
def update(req: ApiRequest, endpoint_id: str) -> dict:
    params = req.validate(UPDATE_SCHEMA)
    endpoint = _get(req, endpoint_id)
    if params.get("url"):
        _check_url(params["url"])
        endpoint["url"] = params["url"]
    if params.get("enabled_events"):
        endpoint["enabled_events"] = params["enabled_events"]
    if "description" in params:
        endpoint["description"] = params["description"]
    if "metadata" in params:
        endpoint["metadata"] = P.apply_metadata(endpoint["metadata"], params["metadata"])
    if params.get("disabled") is not None:
        endpoint["status"] = "disabled" if params["disabled"] else "enabled"
    return endpoint


@route("DELETE", "/v1/webhook_endpoints/<endpoint_id>")
def delete(req: ApiRequest, endpoint_id: str) -> dict:
    req.validate({})
    _get(req, endpoint_id)
    req.store.delete("webhook_endpoint", endpoint_id)
    return objects.deleted("webhook_endpoint", endpoint_id)


@route("GET", "/v1/webhook_endpoints")
def list_endpoints(req: ApiRequest) -> dict:
    params = req.validate(listing.LIST_PARAMS)
    return listing.paginate(params, req.store.all("webhook_endpoint"), "/v1/webhook_endpoints")


# helpers

FAULT_SCHEMA = {
    "duplicate": bool,
    "shuffle": bool,
    "shuffle_window": P.ANY,
    "delay": P.ANY,
    "drop_then_redeliver": bool,
    "clear": bool,
}


def _number(value, name: str) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        raise errors.invalid_request(f"Invalid number: {name}", name) from None


@route("POST", "/_sandbox/webhook_endpoints/<endpoint_id>/faults", auth=False)
def set_faults(req: ApiRequest, endpoint_id: str) -> dict:
    params = req.validate(FAULT_SCHEMA)
    _get(req, endpoint_id)
    meta = req.store.meta_for(endpoint_id)
    faults = {} if params.pop("clear", False) else dict(meta.get("faults") or {})
    for name, value in params.items():
        if name in ("delay", "shuffle_window"):
            value = _number(value, name) if value not in (None, "") else 0
        if value:
            faults[name] = value
        else:
            faults.pop(name, None)
    meta["faults"] = faults
    return {"object": "sandbox.webhook_faults", "endpoint": endpoint_id, "faults": faults}


@route("GET", "/_sandbox/deliveries", auth=False)
def deliveries(req: ApiRequest) -> dict:
    params = req.validate({"endpoint": str, "event": str, "type": str})
    delivery = webhooks.attach(req.store)
    delivery.check_reset()
    with delivery.cond:
        log = list(delivery.log)

    def wanted(entry: dict) -> bool:
        return all(not params.get(key) or entry[key] == params[key] for key in ("endpoint", "event", "type"))

    return {
        "object": "list",
        "data": [entry for entry in log if wanted(entry)],
        "pending": delivery.pending(),
        "scheduled": [row for row in delivery.scheduled() if wanted(row)],
    }


@route("POST", "/_sandbox/webhooks/flush", auth=False)
def flush(req: ApiRequest) -> dict:
    params = req.validate({"timeout": P.ANY})
    timeout = _number(params.get("timeout") or 30, "timeout")
    delivery = webhooks.attach(req.store)
    delivery.check_reset()
    # Wait without the store lock: receivers may call the API while handling an event (dj-stripe does).
    with req.store.unlocked():
        done = delivery.flush(timeout)
    if not done:
        raise errors.StripeError(504, f"Webhook queues still busy after {timeout} s.", type="api_error")
    scheduled = delivery.scheduled()
    return {
        "object": "sandbox.webhooks_flush",
        "pending": delivery.pending(),
        "next_attempt": scheduled[0]["next_attempt"] if scheduled else None,
        "deliveries": len(delivery.log),
    }


CONFIG_SCHEMA = {
    "retry_schedule": P.OneOf(*webhooks.SCHEDULES),
    "retry_scale": P.ANY,
    "retry_base_seconds": P.ANY,
    "max_attempts": int,
    "timeout_seconds": P.ANY,
    "reset": bool,
}


@route("POST", "/_sandbox/webhooks/config", auth=False)
def config(req: ApiRequest) -> dict:
    params = req.validate(CONFIG_SCHEMA)
    delivery = webhooks.attach(req.store)
    settings = dict(webhooks.DEFAULTS) if params.get("reset") else dict(delivery.config)
    if params.get("retry_schedule"):
        settings["retry_schedule"] = params["retry_schedule"]
    for name in ("retry_scale", "retry_base_seconds", "timeout_seconds"):
        if params.get(name) is not None:
            settings[name] = _number(params[name], name)
            if settings[name] <= 0 and name != "retry_base_seconds":
                raise errors.invalid_request(f"{name} must be greater than 0.", name)
    if "max_attempts" in params:  # empty: the schedule's own
        settings["max_attempts"] = None if params["max_attempts"] is None else max(1, params["max_attempts"])
    delivery.config = settings
    return {"object": "sandbox.webhooks_config", **delivery.config}
