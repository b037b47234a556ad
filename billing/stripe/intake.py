"""Stripe's webhooks in: verify, store once, answer at once; Celery applies the event after commit.

Nothing is stored before the signature checks out (a forger's body never reaches the database), bodies over
`MAX_BODY_BYTES` are refused unread, and an event Stripe delivers twice (or an attacker replays within the
signature's tolerance) is stored once, on its unique id, and handed to a worker once. dj-stripe stays the
mirror and keeps the endpoint's secret; its own view, which stored every body before verifying it and
processed the event inside the request, is not routed.
"""

from __future__ import annotations

import json
import logging
from functools import partial

import stripe
from django.contrib.auth.decorators import login_not_required
from django.db import transaction
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST
from djstripe import models as djstripe_models

from billing.stripe.events import stripe_event_store
from billing.tasks import stripe_event_enqueue

logger = logging.getLogger(__name__)

# Stripe's events are a few kilobytes; an invoice with hundreds of lines stays far below this.
MAX_BODY_BYTES = 256 * 1024


def _refuse(status: int, message: str) -> JsonResponse:
    return JsonResponse({"error": {"message": message}}, status=status)


@csrf_exempt
@login_not_required
@require_POST
def stripe_webhook(request: HttpRequest, uuid) -> HttpResponse:
    signature = request.headers.get("Stripe-Signature")
    if not signature:
        return _refuse(400, "The Stripe-Signature header is missing.")
    declared = request.META.get("CONTENT_LENGTH") or "0"
    if not declared.isdigit() or int(declared) > MAX_BODY_BYTES:
        return _refuse(413, f"The body is over {MAX_BODY_BYTES} bytes.")
    endpoint = djstripe_models.WebhookEndpoint.objects.filter(djstripe_uuid=uuid).only("secret", "djstripe_tolerance")
    endpoint = endpoint.first()
    if endpoint is None or not endpoint.secret:
        return _refuse(404, "No such webhook endpoint.")
    body = request.read(MAX_BODY_BYTES + 1)  # a chunked body declares no length: read no more than the cap
    if len(body) > MAX_BODY_BYTES:
        return _refuse(413, f"The body is over {MAX_BODY_BYTES} bytes.")
    try:
        payload = body.decode("utf-8")
        stripe.WebhookSignature.verify_header(payload, signature, endpoint.secret, endpoint.djstripe_tolerance)
        event = json.loads(payload)
    except (UnicodeDecodeError, ValueError, stripe.SignatureVerificationError) as error:
        logger.warning("Stripe webhook refused: %s", error)
        return _refuse(400, "The signature does not match the body.")
    if not _looks_like_an_event(event):
        return _refuse(400, "The body is not a Stripe event.")
    stored_pk, created = stripe_event_store(payload=event)
    if created:
        transaction.on_commit(partial(stripe_event_enqueue, stored_pk))  # at once: the row has committed
    return JsonResponse({"received": True, "id": event["id"], "duplicate": not created})


def _looks_like_an_event(event) -> bool:
    return (
        isinstance(event, dict)
        and str(event.get("id", "")).startswith("evt_")
        and isinstance(event.get("type"), str)
        and isinstance(event.get("created"), int)
        and isinstance((event.get("data") or {}).get("object"), dict)
    )
