"""The webhook bench's URLs: the product's, plus the baseline it measures our intake against.

Served only by the bench's gunicorn (`bench.webhooks_setup.bench_wsgi` makes this module the urlconf).
"""

from __future__ import annotations

import json

import stripe
from django.contrib.auth.decorators import login_not_required
from django.http import HttpRequest, JsonResponse
from django.urls import path
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST
from djstripe import models as djstripe_models

from config.urls import urlpatterns as product_urlpatterns


@csrf_exempt
@login_not_required
@require_POST
def signature_only(request: HttpRequest, uuid) -> JsonResponse:
    """What any webhook view must do before its own work, and nothing more: find the endpoint's secret (the same
    query as our intake), verify the signature, parse the body, answer. Nothing is stored or queued."""
    endpoint = djstripe_models.WebhookEndpoint.objects.filter(djstripe_uuid=uuid).only("secret", "djstripe_tolerance")
    endpoint = endpoint.first()
    if endpoint is None or not endpoint.secret:
        return JsonResponse({"error": {"message": "No such webhook endpoint."}}, status=404)
    try:
        payload = request.body.decode("utf-8")
        signature = request.headers.get("Stripe-Signature", "")
        stripe.WebhookSignature.verify_header(payload, signature, endpoint.secret, endpoint.djstripe_tolerance)
        event = json.loads(payload)
    except (UnicodeDecodeError, ValueError, stripe.SignatureVerificationError):
        return JsonResponse({"error": {"message": "The signature does not match the body."}}, status=400)
    return JsonResponse({"received": True, "id": event.get("id") if isinstance(event, dict) else None})


urlpatterns = [
    path("bench/signature-only/<uuid:uuid>/", signature_only, name="bench_signature_only"),
    *product_urlpatterns,
]
