"""One JSON error shape for the whole API: `{"error": {"code", "message", "fields"}}`."""

from __future__ import annotations

import logging

import stripe
from django.http import JsonResponse
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from accounts.errors import DomainError

logger = logging.getLogger(__name__)


def _first_code(detail) -> str:
    if isinstance(detail, dict):
        for value in detail.values():
            return _first_code(value)
    if isinstance(detail, list) and detail:
        return _first_code(detail[0])
    return getattr(detail, "code", None) or "invalid"


def _messages(detail) -> list[str] | dict:
    if isinstance(detail, dict):
        return {key: _messages(value) for key, value in detail.items()}
    if isinstance(detail, list):
        flat = []
        for item in detail:
            flat.extend(_messages(item) if isinstance(item, list) else [str(item)])
        return flat
    return [str(detail)]


def error_body(*, code: str, message: str, fields: dict | None = None) -> dict:
    return {"error": {"code": code, "message": message, "fields": fields or {}}}


def exception_handler(exc, context):
    if isinstance(exc, DomainError):
        fields = {exc.field: [exc.message]} if exc.field else {}
        return Response(error_body(code=exc.code, message=exc.message, fields=fields), status=exc.status_code)

    if isinstance(exc, stripe.StripeError):
        # The payment provider failed or refused us (not the caller's input): say so, log it, keep it a 502.
        logger.error("Stripe error in %s: %s", context.get("view").__class__.__name__, exc, exc_info=exc)
        return Response(
            error_body(code="payment_provider_error", message="Payments are unavailable right now; try again soon."),
            status=status.HTTP_502_BAD_GATEWAY,
        )

    response = drf_exception_handler(exc, context)
    if response is None:
        return None  # an unexpected error: Django's 500 handling (and logging) takes over
    if isinstance(exc, exceptions.ValidationError):
        detail = exc.detail if isinstance(exc.detail, dict) else {"non_field_errors": exc.detail}
        fields = _messages(detail)
        message = "Some fields are invalid." if fields else "Invalid request."
        response.data = error_body(code=_first_code(detail), message=message, fields=fields)
    else:
        detail = exc.detail if isinstance(exc, exceptions.APIException) else str(exc)
        response.data = error_body(code=_first_code(detail), message=" ".join(_messages(detail)))
    return response


def api_not_found(request, exception=None):
    return JsonResponse(error_body(code="not_found", message="No such endpoint."), status=status.HTTP_404_NOT_FOUND)
