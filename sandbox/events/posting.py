"""One webhook attempt over HTTP: the request Stripe sends (signed body, headers) and what came of it."""

from __future__ import annotations

import hashlib
import hmac
import time
import urllib.error
import urllib.request

USER_AGENT = "Stripe/1.0 (+https://stripe.com/docs/webhooks)"


def sign(payload: str, secret: str, timestamp: int | None = None) -> str:
    """The ``Stripe-Signature`` header value for ``payload``."""
    timestamp = int(time.time()) if timestamp is None else timestamp
    digest = hmac.new(secret.encode(), f"{timestamp}.{payload}".encode(), hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def post(url: str, payload: str, secret: str, timeout: float) -> tuple[int | None, str | None]:
    """POST ``payload`` signed with ``secret``: (HTTP status or None, error text or None)."""
    request = urllib.request.Request(  # noqa: S310 (endpoint URLs are checked to be http(s))
        url,
        data=payload.encode(),
        method="POST",
        headers={
            "Content-Type": "application/json; charset=utf-8",
            "User-Agent": USER_AGENT,
            "Stripe-Signature": sign(payload, secret),
        },
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            response.read()
            return response.status, None
    except urllib.error.HTTPError as error:
        return error.code, error.read()[:500].decode(errors="replace")
    except (OSError, ValueError) as error:
        return None, f"{type(error).__name__}: {error}"
