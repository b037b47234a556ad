"""How resource modules plug endpoints into the sandbox.

A resource module declares its endpoints with :func:`route` at import time::

    @route("POST", "/v1/customers")
    def create_customer(req: ApiRequest) -> dict:
        params = req.validate(CREATE_SCHEMA)
        ...
        return customer

and is listed in :data:`sandbox.resources.MODULES` so the app imports it. A handler gets an
:class:`ApiRequest` (plus the werkzeug URL variables as keyword arguments) and returns either the
object to send as JSON (the app applies ``expand[]`` and serialises it) or a ready
``werkzeug.Response`` (for hosted HTML pages). It raises :class:`sandbox.core.errors.StripeError` to
answer with a Stripe error. Handlers run holding the store's lock.
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable
from dataclasses import dataclass, field

from sandbox.core import params as P
from sandbox.core.store import Store


@dataclass(frozen=True)
class Route:
    method: str
    rule: str
    handler: Callable
    # False for the sandbox's own helper endpoints and for hosted pages a browser opens.
    auth: bool = True


ROUTES: list[Route] = []


def route(method: str, rule: str, *, auth: bool = True):
    """Register the decorated function as the handler of ``method rule`` (werkzeug rule syntax)."""

    def register(handler: Callable) -> Callable:
        ROUTES.append(Route(method.upper(), rule, handler, auth))
        return handler

    return register


@dataclass
class ApiRequest:
    """What a handler knows about the request it serves."""

    store: Store
    method: str
    path: str
    params: dict
    api_key: str | None = None
    idempotency_key: str | None = None
    request_id: str | None = None
    stripe_version: str | None = None
    url_root: str = ""
    headers: dict = field(default_factory=dict)

    @property
    def expand(self) -> list[str]:
        value = self.params.get("expand") or []
        return value if isinstance(value, list) else [value]

    def validate(self, schema: dict) -> dict:
        """The request's params checked against ``schema`` (``expand`` is always allowed and dropped)."""
        raw = {k: v for k, v in self.params.items() if k != "expand"}
        checked = P.validate(raw, schema)
        P.coerce(self.params.get("expand", []), P.ListOf(str), "expand")
        return checked


# The request being served on this thread, so that e.g. events can record ``request.id``.
current_request: contextvars.ContextVar[ApiRequest | None] = contextvars.ContextVar("current_request", default=None)


DEFAULT_BASE_URL = "http://127.0.0.1:12111"


def base_url(store) -> str:
    """The sandbox's own address as the client reached it (for hosted page URLs)."""
    req = current_request.get()
    if req is not None and req.url_root:
        store.public_url = req.url_root
        return req.url_root
    return getattr(store, "public_url", DEFAULT_BASE_URL)
