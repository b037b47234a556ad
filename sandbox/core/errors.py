"""Stripe-shaped API errors.

Handlers raise :class:`StripeError`; the app turns it into Stripe's JSON body
``{"error": {"type", "code", "message", "param", "decline_code", "doc_url", ...}}`` with
Stripe's HTTP status, because the ``stripe`` package picks its exception class
(CardError, InvalidRequestError, AuthenticationError, IdempotencyError, ...) from
exactly those two things.
"""

from __future__ import annotations

DOCS = "https://stripe.com/docs/error-codes/"


class StripeError(Exception):
    """An API error as Stripe would return it."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str = "invalid_request_error",
        code: str | None = None,
        param: str | None = None,
        decline_code: str | None = None,
        cacheable: bool = True,
        **extra,
    ):
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type
        self.code = code
        self.param = param
        self.decline_code = decline_code
        # Stripe saves an idempotent result only once the endpoint started executing;
        # parameter validation failures are not saved, so a corrected retry may reuse the key.
        self.cacheable = cacheable
        self.extra = extra

    def body(self, request_id: str | None = None) -> dict:
        error = {"type": self.type, "message": self.message}
        if self.code:
            error["code"] = self.code
            error["doc_url"] = DOCS + self.code
        if self.param is not None:
            error["param"] = self.param
        if self.decline_code:
            error["decline_code"] = self.decline_code
        if request_id:
            error["request_log_url"] = f"https://dashboard.stripe.com/test/logs/{request_id}"
        error.update(self.extra)
        return {"error": error}


def invalid_request(message: str, param: str | None = None, code: str | None = None) -> StripeError:
    """A 400 for bad input; not saved for idempotent replay (validation failed before executing)."""
    return StripeError(400, message, param=param, code=code, cacheable=False)


def parameter_missing(param: str) -> StripeError:
    return invalid_request(f"Missing required param: {param}.", param, "parameter_missing")


def parameter_unknown(param: str) -> StripeError:
    return invalid_request(
        f"Received unknown parameter: {param}",
        param,
        "parameter_unknown",
    )


def invalid_integer(param: str, value) -> StripeError:
    return invalid_request(f"Invalid integer: {value}", param, "parameter_invalid_integer")


def resource_missing(kind: str, obj_id: str, param: str | None = "id") -> StripeError:
    return StripeError(404, f"No such {kind}: '{obj_id}'", code="resource_missing", param=param)


def state_error(message: str, param: str | None = None, code: str | None = None) -> StripeError:
    """A 400 for a request that is well-formed but not allowed in the object's current state."""
    return StripeError(400, message, param=param, code=code)


def card_error(message: str, code: str, decline_code: str | None = None, param: str | None = None, **extra):
    """A 402 ``card_error``; ``extra`` carries e.g. ``payment_method``, ``charge``, ``payment_intent``."""
    return StripeError(402, message, type="card_error", code=code, decline_code=decline_code, param=param, **extra)


def authentication_error(message: str) -> StripeError:
    return StripeError(401, message, cacheable=False)


def idempotency_error(key: str) -> StripeError:
    return StripeError(
        400,
        f"Keys for idempotent requests can only be used with the same parameters they were first used with. "
        f"Try using a key other than '{key}' if you meant to execute a different request.",
        type="idempotency_error",
        cacheable=False,
    )


def unrecognized_url(method: str, path: str) -> StripeError:
    return StripeError(
        404,
        f"Unrecognized request URL ({method}: {path}). Please see https://stripe.com/docs "
        "or we can help at https://support.stripe.com/.",
        cacheable=False,
    )
