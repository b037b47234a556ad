"""The WSGI application and the waitress server around it.

Each API request goes through the same steps, in the order Stripe applies them: find the
route (unknown URLs get Stripe's "Unrecognized request URL" 404), authenticate the test key
(401), decode the form/query params, replay or refuse a reused ``Idempotency-Key``, run the
handler under the store lock, expand ``expand[]`` paths, and answer JSON with ``Request-Id``.
"""

from __future__ import annotations

import base64
import binascii
import copy
import json
import re
import sys
import traceback

from waitress.server import create_server
from werkzeug.exceptions import MethodNotAllowed, NotFound
from werkzeug.routing import Map, Rule
from werkzeug.wrappers import Request, Response

from sandbox import resources
from sandbox.core import errors, idempotency
from sandbox.core.expand import expand
from sandbox.core.params import decode
from sandbox.core.routing import ROUTES, ApiRequest, current_request
from sandbox.core.store import Store
from sandbox.events.emit import DEFAULT_API_VERSION

TEST_KEY = re.compile(r"^(sk|rk)_test_[A-Za-z0-9]{24,}$")


class SandboxApp:
    """A WSGI app serving every registered route against one :class:`Store`."""

    def __init__(self, store: Store | None = None):
        self.store = store or Store()
        resources.load_all()
        self.url_map = Map(
            [Rule(r.rule, methods=[r.method], endpoint=r) for r in ROUTES],
            strict_slashes=False,
        )

    def __call__(self, environ, start_response):
        return self.handle(Request(environ))(environ, start_response)

    def handle(self, request: Request) -> Response:
        request_id = Store.new_id("req", 14)
        version = request.headers.get("Stripe-Version", DEFAULT_API_VERSION)
        headers = {"Request-Id": request_id, "Stripe-Version": version}
        try:
            route, url_args = self.url_map.bind_to_environ(request.environ).match()
        except (NotFound, MethodNotAllowed):
            return _error_response(errors.unrecognized_url(request.method, request.path), request_id, headers)
        try:
            api_key = authenticate(request) if route.auth else None
            params = _request_params(request)
        except errors.StripeError as exc:
            return _error_response(exc, request_id, headers)

        idem_key = request.headers.get("Idempotency-Key") if request.method in ("POST", "DELETE") else None
        req = ApiRequest(
            store=self.store,
            method=request.method,
            path=request.path,
            params=params,
            api_key=api_key,
            idempotency_key=idem_key,
            request_id=request_id,
            stripe_version=request.headers.get("Stripe-Version"),
            url_root=request.url_root.rstrip("/"),
            headers=dict(request.headers),
        )
        with self.store.lock:
            if route.auth:  # the API, not the sandbox's own helpers or hosted pages
                self.store.request_counts[f"{request.method} {route.rule}"] += 1
            if idem_key and api_key:
                headers["Idempotency-Key"] = idem_key
                fp = idempotency.fingerprint(request.method, request.path, params)
                saved = idempotency.lookup(self.store, api_key, idem_key)
                if saved is not None:
                    if saved.fingerprint != fp:
                        return _error_response(errors.idempotency_error(idem_key), request_id, headers)
                    headers["Idempotent-Replayed"] = "true"
                    return Response(saved.body, saved.status, headers, content_type="application/json")
            status, body, cacheable = self._run(route, req, url_args)
            if isinstance(body, Response):
                return body
            if idem_key and api_key and cacheable and status < 500:
                idempotency.save(self.store, api_key, idem_key, fp, status, body)
            if request.method != "GET":
                self.store.dirty = True
        return Response(body, status, headers, content_type="application/json")

    def _run(self, route, req: ApiRequest, url_args: dict):
        """Call the handler; returns (status, body bytes or a Response, cacheable for idempotency)."""
        token = current_request.set(req)
        try:
            result = route.handler(req, **url_args)
            if isinstance(result, Response):
                return result.status_code, result, False
            result = expand(self.store, copy.deepcopy(result), req.expand)
            return 200, json.dumps(result).encode(), True
        except errors.StripeError as exc:
            return exc.status, json.dumps(exc.body(req.request_id)).encode(), exc.cacheable
        except Exception:
            traceback.print_exc(file=sys.stderr)
            exc = errors.StripeError(500, "An unknown error occurred in the sandbox.", type="api_error")
            return 500, json.dumps(exc.body(req.request_id)).encode(), False
        finally:
            current_request.reset(token)


def authenticate(request: Request) -> str:
    """The secret test key from ``Authorization: Bearer …`` (or basic auth with the key as user)."""
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    key = None
    if scheme.lower() == "bearer":
        key = value.strip()
    elif scheme.lower() == "basic":
        try:
            key = base64.b64decode(value.strip()).decode().partition(":")[0]
        except (binascii.Error, UnicodeDecodeError):
            key = ""
    if not key:
        raise errors.authentication_error(
            "You did not provide an API key. You need to provide your API key in the Authorization header, "
            "using Bearer auth (e.g. 'Authorization: Bearer YOUR_SECRET_KEY')."
        )
    if not TEST_KEY.match(key):
        raise errors.authentication_error(f"Invalid API Key provided: {key[:8]}{'*' * 8}{key[-4:]}")
    return key


def _request_params(request: Request) -> dict:
    """Query string and form body together, decoded from Stripe's bracket notation."""
    pairs = list(request.args.items(multi=True))
    if request.method in ("POST", "DELETE"):
        pairs += list(request.form.items(multi=True))
    return decode(pairs)


def _error_response(exc: errors.StripeError, request_id: str, headers: dict) -> Response:
    return Response(json.dumps(exc.body(request_id)), exc.status, headers, content_type="application/json")


def make_server(app: SandboxApp, host: str = "127.0.0.1", port: int = 12111, threads: int = 16):
    """A waitress server (threaded) for ``app``; ``port=0`` picks a free port (see ``.effective_port``)."""
    return create_server(app, host=host, port=port, threads=threads, ident="stripe-sandbox")
