"""``GET /v1/events`` and ``GET /v1/events/{id}``: the events :func:`sandbox.events.emit.emit` recorded."""

from __future__ import annotations

from sandbox.core import listing
from sandbox.core import params as P
from sandbox.core.errors import resource_missing
from sandbox.core.routing import ApiRequest, route


@route("GET", "/v1/events")
def list_events(req: ApiRequest) -> dict:
    params = req.validate({**listing.LIST_PARAMS, "type": str, "types": P.ListOf(str), "delivery_success": bool})
    wanted_types = set(params.get("types") or [])
    single = params.get("type")
    created = listing.created_filter(params.get("created"))

    def matches(event: dict) -> bool:
        if single and not _type_matches(single, event["type"]):
            return False
        if wanted_types and event["type"] not in wanted_types:
            return False
        return created(event)

    return listing.paginate(params, filter(matches, req.store.all("event")), "/v1/events")


def _type_matches(pattern: str, event_type: str) -> bool:
    """Stripe lets ``type`` end in ``*`` (``customer.*``)."""
    if pattern.endswith("*"):
        return event_type.startswith(pattern[:-1])
    return pattern == event_type


@route("GET", "/v1/events/<event_id>")
def retrieve_event(req: ApiRequest, event_id: str) -> dict:
    req.validate({})
    event = req.store.get("event", event_id)
    if event is None:
        raise resource_missing("event", event_id)
    return event
