"""The one way Tollbooth code reaches Stripe (or the local sandbox): a configured `stripe.StripeClient`.

Settings are read at call time, never at import, so tests and `make run` can point it at the sandbox.
"""

from __future__ import annotations

import logging

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


def retrieve_or_none(service, object_id: str | None):
    """Re-read an object an event names. Gone at Stripe (deleted, or another Stripe account's): None, logged,
    so the event is acknowledged instead of being redelivered forever. Other errors propagate, and Stripe
    redelivers the event."""
    if not object_id:
        return None
    try:
        return service.retrieve(object_id)
    except stripe.InvalidRequestError as error:
        if error.code != "resource_missing":
            raise
        logger.warning("Stripe has no %s any more; event ignored.", object_id)
        return None
