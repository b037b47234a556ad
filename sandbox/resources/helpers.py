"""The sandbox's own endpoints under ``/_sandbox/`` (no API key: they are for the person or test driving it)."""

from __future__ import annotations

from sandbox.routing import ApiRequest, route


@route("POST", "/_sandbox/reset", auth=False)
def reset(req: ApiRequest) -> dict:
    """Forget all state, as if the server had just started (tests call this between cases)."""
    req.store.reset()
    return {"object": "sandbox.reset", "ok": True}


@route("GET", "/_sandbox/state", auth=False)
def state(req: ApiRequest) -> dict:
    """Everything the sandbox holds, in the shape of ``--state-file``, for debugging."""
    return req.store.dump()
