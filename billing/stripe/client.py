"""The one way Tollbooth code reaches Stripe (or the local sandbox): a configured `stripe.StripeClient`.

Settings are read at call time, never at import, so tests and `make run` can point it at the sandbox.
"""

from __future__ import annotations

import logging
from contextlib import contextmanager
from contextvars import ContextVar

import stripe
from django.conf import settings
from djstripe.settings import djstripe_settings

logger = logging.getLogger(__name__)


def stripe_api_key() -> str:
    return djstripe_settings.STRIPE_SECRET_KEY


def stripe_client() -> stripe.StripeClient:
    host = getattr(settings, "STRIPE_API_HOST", None)
    return stripe.StripeClient(
        stripe_api_key(),
        base_addresses={"api": host} if host else None,
        # Retrying is safe: every write we make carries an idempotency key.
        max_network_retries=2,
    )


def idempotent(key: str) -> dict:
    """Request options for a write. The key names what the write does, so a retry is the same write."""
    return {"idempotency_key": key}


_shared_reads: ContextVar[dict | None] = ContextVar("stripe_shared_reads", default=None)


@contextmanager
def stripe_reads_shared():
    """Inside, `retrieve_or_none` reads each object from Stripe once: every handler of one event (the mirror,
    the ledger, dunning, fraud) sees the same read, and Stripe's rate limit pays for one. A handler that writes
    to an object uses the object Stripe answers the write with; the next batch of events reads afresh."""
    token = _shared_reads.set({})
    try:
        yield
    finally:
        _shared_reads.reset(token)


def retrieve_or_none(service, object_id: str | None):
    """Re-read an object an event names (once per event: `stripe_reads_shared`). Gone at Stripe (deleted, or
    another Stripe account's): None, logged, so the event is done with instead of failing forever. Other errors
    propagate, and the handler is retried."""
    if not object_id:
        return None
    reads = _shared_reads.get()
    key = (type(service).__name__, object_id)
    if reads is not None and key in reads:
        return reads[key]
    try:
        found = service.retrieve(object_id)
    except stripe.InvalidRequestError as error:
        if error.code != "resource_missing":
            raise
        logger.warning("Stripe has no %s any more; event ignored.", object_id)
        found = None
    if reads is not None:
        reads[key] = found
    return found


def first_in_turn(key: tuple) -> bool:
    """True the first time `key` is asked for inside one `stripe_reads_shared` (one batch of a customer's events),
    False after; always True outside one. For work that follows only from an object as read (the same read for
    the whole batch), which need not be done twice in a turn."""
    reads = _shared_reads.get()
    if reads is None:
        return True
    marker = ("done", *key)
    if marker in reads:
        return False
    reads[marker] = True
    return True
