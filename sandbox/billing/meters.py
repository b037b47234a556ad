"""Billing meters and meter events (``/v1/billing/meters``, ``/v1/billing/meter_events``).

Meter events are kept in ``tables["billing.meter_event"]`` keyed by their ``identifier`` (a
repeated identifier is refused). :func:`usage` aggregates a customer's events of a meter over a
period; the renewal invoice bills metered prices with it.
"""

from __future__ import annotations

import copy
from decimal import Decimal, InvalidOperation

from sandbox.core import errors, listing, objects
from sandbox.core import params as P
from sandbox.core.routing import ApiRequest, route
from sandbox.core.store import Store
from sandbox.events.emit import emit, previous_attributes

EVENT_TABLE = "billing.meter_event"

CREATE_SCHEMA = {
    "display_name": str,
    "event_name": str,
    "default_aggregation": {"formula": P.OneOf("sum", "count", "last")},
    "customer_mapping": {"event_payload_key": str, "type": P.OneOf("by_id")},
    "value_settings": {"event_payload_key": str},
    "event_time_window": P.OneOf("day", "hour"),
}


def get_meter(store: Store, meter_id: str, param: str = "id") -> dict:
    return store.fetch("billing.meter", meter_id, param)


def _value(raw) -> Decimal:
    try:
        return Decimal(str(raw))
    except InvalidOperation:
        return Decimal(0)


def usage(store: Store, meter_id: str, customer_id: str, start: int, end: int) -> int:
    """The meter's aggregate for ``customer_id`` over events with ``start <= timestamp < end``."""
    meter = store.get("billing.meter", meter_id)
    if meter is None:
        return 0
    customer_key = meter["customer_mapping"]["event_payload_key"]
    value_key = meter["value_settings"]["event_payload_key"]
    events = [
        e
        for e in store.tables.get(EVENT_TABLE, {}).values()
        if e["event_name"] == meter["event_name"]
        and e["payload"].get(customer_key) == customer_id
        and start <= e["timestamp"] < end
    ]
    formula = meter["default_aggregation"]["formula"]
    if formula == "count":
        total = Decimal(len(events))
    elif formula == "last":
        total = _value(max(events, key=lambda e: e["timestamp"])["payload"].get(value_key)) if events else Decimal(0)
    else:
        total = sum((_value(e["payload"].get(value_key, 1)) for e in events), Decimal(0))
    return int(total)


@route("POST", "/v1/billing/meters")
def create(req: ApiRequest) -> dict:
    params = req.validate(CREATE_SCHEMA)
    store = req.store
    P.require(params, "display_name", "event_name", "default_aggregation")
    P.require(params["default_aggregation"], "formula")
    if any(m["event_name"] == params["event_name"] and m["status"] == "active" for m in store.all("billing.meter")):
        raise errors.invalid_request(
            f"An active meter with event_name `{params['event_name']}` already exists.", "event_name"
        )
    now = store.now()
    mapping = params.get("customer_mapping") or {}
    meter = objects.build(
        "billing.meter",
        id="mtr_test_" + store.new_id("x", 32)[2:],
        created=now,
        customer_mapping={
            "event_payload_key": mapping.get("event_payload_key") or "stripe_customer_id",
            "type": "by_id",
        },
        default_aggregation={"formula": params["default_aggregation"]["formula"]},
        display_name=params["display_name"],
        event_name=params["event_name"],
        event_time_window=params.get("event_time_window"),
        livemode=False,
        status="active",
        status_transitions={"deactivated_at": None},
        updated=now,
        value_settings={"event_payload_key": (params.get("value_settings") or {}).get("event_payload_key") or "value"},
    )
    store.insert(meter)
    emit(store, "billing.meter.created", meter)
    return meter


@route("GET", "/v1/billing/meters/<meter_id>")
def retrieve(req: ApiRequest, meter_id: str) -> dict:
    req.validate({})
    return get_meter(req.store, meter_id)


@route("POST", "/v1/billing/meters/<meter_id>")
def update(req: ApiRequest, meter_id: str) -> dict:
    params = req.validate({"display_name": str})
    store = req.store
    meter = get_meter(store, meter_id)
    before = copy.deepcopy(meter)
    if params.get("display_name"):
        meter["display_name"] = params["display_name"]
        meter["updated"] = store.now()
    changes = previous_attributes(before, meter)
    if changes:
        emit(store, "billing.meter.updated", meter, changes)
    return meter


def _set_status(store: Store, meter: dict, status: str) -> dict:
    before = copy.deepcopy(meter)
    meter["status"] = status
    meter["status_transitions"]["deactivated_at"] = store.now() if status == "inactive" else None
    meter["updated"] = store.now()
    emit(
        store,
        "billing.meter.deactivated" if status == "inactive" else "billing.meter.reactivated",
        meter,
        previous_attributes(before, meter),
    )
    return meter


@route("POST", "/v1/billing/meters/<meter_id>/deactivate")
def deactivate(req: ApiRequest, meter_id: str) -> dict:
    req.validate({})
    return _set_status(req.store, get_meter(req.store, meter_id), "inactive")


@route("POST", "/v1/billing/meters/<meter_id>/reactivate")
def reactivate(req: ApiRequest, meter_id: str) -> dict:
    req.validate({})
    return _set_status(req.store, get_meter(req.store, meter_id), "active")


@route("GET", "/v1/billing/meters")
def list_meters(req: ApiRequest) -> dict:
    params = req.validate({**listing.LIST_PARAMS, "status": P.OneOf("active", "inactive")})
    items = (m for m in req.store.all("billing.meter") if not params.get("status") or m["status"] == params["status"])
    return listing.paginate(params, items, "/v1/billing/meters")


@route("POST", "/v1/billing/meter_events")
def create_event(req: ApiRequest) -> dict:
    params = req.validate({"event_name": str, "payload": P.ANY, "identifier": str, "timestamp": int})
    store = req.store
    P.require(params, "event_name", "payload")
    payload = params["payload"]
    if not isinstance(payload, dict):
        raise errors.invalid_request("Invalid object: payload", "payload")
    meter = next(
        (m for m in store.all("billing.meter") if m["event_name"] == params["event_name"] and m["status"] == "active"),
        None,
    )
    customer_key = meter["customer_mapping"]["event_payload_key"] if meter else "stripe_customer_id"
    value_key = meter["value_settings"]["event_payload_key"] if meter else "value"
    customer_id = payload.get(customer_key)
    if not customer_id:
        raise errors.parameter_missing(f"payload[{customer_key}]")
    customer = store.fetch("customer", customer_id, f"payload[{customer_key}]")
    if meter is not None and meter["default_aggregation"]["formula"] != "count":
        raw = payload.get(value_key)
        if raw is None:
            raise errors.parameter_missing(f"payload[{value_key}]")
        try:
            Decimal(str(raw))
        except InvalidOperation:
            raise errors.invalid_request(
                f"Invalid numeric value: payload[{value_key}]", f"payload[{value_key}]"
            ) from None
    identifier = params.get("identifier") or store.new_id("mevt", 20)
    table = store.tables.setdefault(EVENT_TABLE, {})
    if identifier in table:
        raise errors.invalid_request(
            f"An event already exists with identifier `{identifier}`. Use a unique identifier for each meter event.",
            "identifier",
            "duplicate_meter_event",
        )
    now = store.now(customer["test_clock"])
    event = objects.build(
        "billing.meter_event",
        created=now,
        event_name=params["event_name"],
        identifier=identifier,
        livemode=False,
        payload={k: str(v) for k, v in payload.items()},
        timestamp=params.get("timestamp") if params.get("timestamp") is not None else now,
    )
    table[identifier] = event
    store.dirty = True
    return event


@route("GET", "/v1/billing/meters/<meter_id>/event_summaries")
def event_summaries(req: ApiRequest, meter_id: str) -> dict:
    params = req.validate(
        {**listing.LIST_PARAMS, "customer": str, "start_time": int, "end_time": int, "value_grouping_window": str}
    )
    store = req.store
    meter = get_meter(store, meter_id)
    P.require(params, "customer", "start_time", "end_time")
    start, end = params["start_time"], params["end_time"]
    step = {"hour": 3600, "day": 86400}.get(params.get("value_grouping_window") or "", end - start)
    summaries = []
    cursor = start
    while cursor < end and step > 0:
        upper = min(end, cursor + step)
        summaries.append(
            objects.build(
                "billing.meter_event_summary",
                id=f"mtrusg_{meter_id[-12:]}_{cursor}",
                aggregated_value=usage(store, meter_id, params["customer"], cursor, upper),
                end_time=upper,
                livemode=False,
                meter=meter["id"],
                start_time=cursor,
            )
        )
        cursor = upper
    summaries.reverse()
    return listing.paginate(params, summaries, f"/v1/billing/meters/{meter_id}/event_summaries")
