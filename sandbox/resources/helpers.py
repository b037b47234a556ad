"""The sandbox's own endpoints under ``/_sandbox/`` (no API key: they are for the person or test driving it)."""

from __future__ import annotations

from sandbox.core import errors
from sandbox.core.routing import ApiRequest, route


@route("POST", "/_sandbox/reset", auth=False)
def reset(req: ApiRequest) -> dict:
    """Forget all state, as if the server had just started (tests call this between cases)."""
    req.store.reset()
    return {"object": "sandbox.reset", "ok": True}


@route("GET", "/_sandbox/state", auth=False)
def state(req: ApiRequest) -> dict:
    """Everything the sandbox holds, in the shape of ``--state-file``, for debugging."""
    return req.store.dump()


def _state_file(req: ApiRequest):
    if req.store.state_file is None:
        raise errors.invalid_request("The sandbox was started without --state-file.")
    return req.store.state_file


@route("POST", "/_sandbox/state/save", auth=False)
def save_state(req: ApiRequest) -> dict:
    """Save now; ``hold=true`` starts a save that stops half-way until ``release=true`` (to test saves)."""
    params = req.validate({"hold": bool, "release": bool})
    state_file = _state_file(req)
    # The save takes the store lock for its snapshot, so wait for it without holding the lock.
    with req.store.unlocked():
        if params.get("release"):
            state_file.release()
        elif params.get("hold"):
            state_file.hold()
        else:
            state_file.save()
    return state_file.status()


@route("GET", "/_sandbox/state/save", auth=False)
def save_status(req: ApiRequest) -> dict:
    """``saving`` is true while a held save is half-way; ``saves`` counts finished saves."""
    req.validate({})
    return _state_file(req).status()


def _requests(store) -> dict:
    counts = dict(store.request_counts)
    return {"object": "sandbox.requests", "total": sum(counts.values()), "counts": counts}


@route("GET", "/_sandbox/requests", auth=False)
def requests_served(req: ApiRequest) -> dict:
    """The API requests served since the start or the last reset, by method and route
    (``GET /v1/invoices/<invoice_id>``): what a client costs Stripe's rate limit."""
    req.validate({})
    return _requests(req.store)


@route("POST", "/_sandbox/requests", auth=False)
def requests_reset(req: ApiRequest) -> dict:
    """``reset=true`` zeroes the counts (before the part a test or a benchmark measures)."""
    params = req.validate({"reset": bool})
    if params.get("reset"):
        req.store.request_counts.clear()
    return _requests(req.store)
