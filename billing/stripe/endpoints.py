"""Registering our webhook endpoint with Stripe (idempotent), its signing secret kept by dj-stripe."""

from __future__ import annotations

import logging
import uuid

import stripe
from django.urls import reverse
from djstripe import models as djstripe_models
from djstripe.settings import djstripe_settings

from billing.stripe.client import idempotent, stripe_api_key, stripe_client

logger = logging.getLogger(__name__)


def webhook_endpoint_ensure(*, base_url: str) -> djstripe_models.WebhookEndpoint:
    """Register (once) a Stripe webhook endpoint delivering every event to our intake at `base_url`.

    The endpoint's uuid is derived from the base URL, so the create is idempotent and a re-run finds it.
    """
    base_url = base_url.rstrip("/")
    endpoint_uuid = uuid.uuid5(uuid.NAMESPACE_URL, base_url)
    existing = djstripe_models.WebhookEndpoint.objects.filter(djstripe_uuid=endpoint_uuid).first()
    if existing and existing.secret:
        try:
            stripe_client().v1.webhook_endpoints.retrieve(existing.id)
            return existing
        except stripe.InvalidRequestError as error:
            if error.code != "resource_missing":
                raise
            # Stripe no longer has it (a reset sandbox, a deleted endpoint): register it again.
            existing.delete()
    url = base_url + reverse("stripe_webhook", kwargs={"uuid": endpoint_uuid})
    data = stripe_client().v1.webhook_endpoints.create(
        params={
            "url": url,
            "enabled_events": ["*"],
            "api_version": djstripe_settings.STRIPE_API_VERSION,
            "metadata": {"djstripe_uuid": str(endpoint_uuid)},
        },
        options=idempotent(f"webhook_endpoint:{endpoint_uuid}"),
    )
    endpoint = djstripe_models.WebhookEndpoint.sync_from_stripe_data(data, api_key=stripe_api_key())
    djstripe_models.WebhookEndpoint.objects.filter(pk=endpoint.pk).update(secret=data["secret"])
    endpoint.refresh_from_db()
    return endpoint
