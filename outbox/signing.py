"""Signing our outgoing webhooks, and the helper a receiver verifies them with (docs/events.md).

The header is Stripe's shape under our name: `Tollbooth-Signature: t=<unix time>,v1=<hex>`, where the hex is
HMAC-SHA256 of `"<t>.<raw body>"` with the endpoint's secret. A receiver checks the HMAC over the raw bytes it
received (never re-serialized JSON) and that `t` is recent (a replay of an old delivery is refused).
This module imports only the standard library, so a receiver can copy it as it is.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import time

HEADER = "Tollbooth-Signature"
DEFAULT_TOLERANCE = 300  # seconds: Stripe's default


class SignatureVerificationError(Exception):
    """The body was not signed with this secret, or the signature is too old."""


def new_secret() -> str:
    return "whsec_" + secrets.token_urlsafe(32)


def signature_header(*, secret: str, body: bytes, timestamp: int | None = None) -> str:
    timestamp = int(time.time()) if timestamp is None else timestamp
    return f"t={timestamp},v1={_digest(secret, timestamp, body)}"


def verify_signature(
    *, body: bytes, header: str, secret: str, tolerance: int = DEFAULT_TOLERANCE, now: int | None = None
) -> dict:
    """The event the body holds, once its signature is checked; raises SignatureVerificationError otherwise.
    Several `v1=` values may be present (a secret being rotated): one matching is enough."""
    parts = [part.split("=", 1) for part in (header or "").split(",") if "=" in part]
    stamps = [value for key, value in parts if key.strip() == "t"]
    signatures = [value.strip() for key, value in parts if key.strip() == "v1"]
    if len(stamps) != 1 or not stamps[0].strip().isdigit() or not signatures:
        raise SignatureVerificationError("The signature header is malformed.")
    timestamp = int(stamps[0])
    expected = _digest(secret, timestamp, body)
    if not any(hmac.compare_digest(expected, signature) for signature in signatures):
        raise SignatureVerificationError("The signature does not match the body.")
    now = int(time.time()) if now is None else now
    if tolerance and abs(now - timestamp) > tolerance:
        raise SignatureVerificationError("The signature is too old (a replay?).")
    return json.loads(body)


def _digest(secret: str, timestamp: int, body: bytes) -> str:
    return hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
