"""Disputes: list, retrieve, update (evidence, ``submit``), close; created by the sandbox helper.

- ``POST /_sandbox/charges/{id}/dispute`` (``reason``, ``amount``; default: the card's dispute reason or
  ``fraudulent``, the whole amount) opens one → ``charge.dispute.created`` (the charge becomes ``disputed``).
- ``POST /v1/disputes/{id}`` updates evidence/metadata → ``charge.dispute.updated`` (``submit=true`` moves it
  to ``under_review``); ``POST /v1/disputes/{id}/close`` accepts it → ``lost`` and ``charge.dispute.closed``.
- ``POST /_sandbox/disputes/{id}/resolve`` (``status=won|lost``) → ``charge.dispute.closed``.

A successful charge of one of Stripe's dispute test cards (4000 0000 0000 0259 ...) is disputed at once.
"""

from __future__ import annotations

import copy

from sandbox.core import errors, listing, objects
from sandbox.core import params as P
from sandbox.core.routing import ApiRequest, route
from sandbox.core.store import Store
from sandbox.events.emit import emit, previous_attributes

REASONS = (
    "bank_cannot_process",
    "check_returned",
    "credit_not_processed",
    "customer_initiated",
    "debit_not_authorized",
    "duplicate",
    "fraudulent",
    "general",
    "incorrect_account_details",
    "insufficient_funds",
    "noncompliant",
    "product_not_received",
    "product_unacceptable",
    "subscription_canceled",
    "unrecognized",
    "inquiry",
)
NETWORK_CODES = {"fraudulent": "10.4", "product_not_received": "13.1", "duplicate": "12.6.1", "general": "13.7"}
EVIDENCE_FIELDS = list(objects.template("dispute")["evidence"])
OPEN = ("warning_needs_response", "warning_under_review", "needs_response", "under_review")


def create_dispute(store: Store, charge: dict, reason: str = "fraudulent", amount: int | None = None) -> dict:
    """Open a dispute on ``charge`` (inquiries become ``warning_needs_response``)."""
    if charge["status"] != "succeeded":
        raise errors.invalid_request("Only a succeeded charge can be disputed.", "charge")
    if charge["disputed"]:
        raise errors.invalid_request(f"Charge {charge['id']} is already disputed.", "charge")
    clock_id = store.meta_for(charge["id"]).get("clock_id")
    now = store.now(clock_id)
    inquiry = reason == "inquiry"
    evidence = dict.fromkeys(EVIDENCE_FIELDS)
    evidence["enhanced_evidence"] = {}
    dispute = objects.build(
        "dispute",
        id=store.new_id("dp"),
        amount=amount if amount is not None else charge["amount"] - charge["amount_refunded"],
        balance_transactions=[],
        charge=charge["id"],
        created=now,
        currency=charge["currency"],
        evidence=evidence,
        evidence_details={
            "due_by": now + 7 * 86400,
            "has_evidence": False,
            "past_due": False,
            "submission_count": 0,
            "enhanced_eligibility": {},
        },
        is_charge_refundable=inquiry,
        livemode=False,
        metadata={},
        payment_intent=charge["payment_intent"],
        payment_method_details={
            "card": {
                "brand": charge["payment_method_details"]["card"]["brand"],
                "case_type": "inquiry" if inquiry else "chargeback",
                "network_reason_code": NETWORK_CODES.get(reason, "13.7"),
            },
            "type": "card",
        },
        reason="general" if inquiry else reason,
        status="warning_needs_response" if inquiry else "needs_response",
        enhanced_eligibility_types=[],
    )
    store.insert(dispute)
    store.meta_for(dispute["id"])["clock_id"] = clock_id
    charge["disputed"] = True
    emit(store, "charge.dispute.created", dispute, clock_id=clock_id)
    return dispute


def _get(req: ApiRequest, dispute_id: str) -> dict:
    return req.store.fetch("dispute", dispute_id, "dispute")


def _close(store: Store, dispute: dict, status: str) -> dict:
    if dispute["status"] not in OPEN:
        raise errors.invalid_request(
            f"This dispute is already closed ({dispute['status']}).", code="dispute_already_closed"
        )
    if dispute["status"].startswith("warning_"):
        status = "warning_closed"
    before = copy.deepcopy(dispute)
    dispute["status"] = status
    dispute["is_charge_refundable"] = status in ("won", "warning_closed")
    emit(
        store,
        "charge.dispute.closed",
        dispute,
        previous_attributes(before, dispute),
        clock_id=store.meta_for(dispute["id"]).get("clock_id"),
    )
    return dispute


@route("POST", "/_sandbox/charges/<charge_id>/dispute", auth=False)
def helper_create(req: ApiRequest, charge_id: str) -> dict:
    params = req.validate({"reason": P.OneOf(*REASONS), "amount": int})
    charge = req.store.fetch("charge", charge_id, "charge")
    return create_dispute(req.store, charge, params.get("reason") or "fraudulent", params.get("amount"))


@route("POST", "/_sandbox/disputes/<dispute_id>/resolve", auth=False)
def helper_resolve(req: ApiRequest, dispute_id: str) -> dict:
    params = req.validate({"status": P.OneOf("won", "lost")})
    P.require(params, "status")
    return _close(req.store, _get(req, dispute_id), params["status"])


@route("GET", "/v1/disputes/<dispute_id>")
def retrieve(req: ApiRequest, dispute_id: str) -> dict:
    req.validate({})
    return _get(req, dispute_id)


@route("POST", "/v1/disputes/<dispute_id>")
def update(req: ApiRequest, dispute_id: str) -> dict:
    params = req.validate(
        {
            "evidence": {name: P.ANY for name in EVIDENCE_FIELDS},
            "metadata": P.METADATA,
            "submit": bool,
            "intended_submission_method": str,
        }
    )
    dispute = _get(req, dispute_id)
    if dispute["status"] not in OPEN:
        raise errors.invalid_request(
            "This dispute is closed and can no longer be updated.", code="dispute_already_closed"
        )
    before = copy.deepcopy(dispute)
    for name, value in (params.get("evidence") or {}).items():
        dispute["evidence"][name] = value
    if params.get("evidence"):
        dispute["evidence_details"]["has_evidence"] = True
    if "metadata" in params:
        dispute["metadata"] = P.apply_metadata(dispute["metadata"], params["metadata"])
    if params.get("submit"):
        dispute["evidence_details"]["submission_count"] += 1
        dispute["status"] = "warning_under_review" if dispute["status"].startswith("warning_") else "under_review"
    changes = previous_attributes(before, dispute)
    if changes:
        emit(
            req.store,
            "charge.dispute.updated",
            dispute,
            changes,
            clock_id=req.store.meta_for(dispute_id).get("clock_id"),
        )
    return dispute


@route("POST", "/v1/disputes/<dispute_id>/close")
def close(req: ApiRequest, dispute_id: str) -> dict:
    req.validate({})
    return _close(req.store, _get(req, dispute_id), "lost")


@route("GET", "/v1/disputes")
def list_disputes(req: ApiRequest) -> dict:
    params = req.validate({**listing.LIST_PARAMS, "charge": str, "payment_intent": str})
    created = listing.created_filter(params.get("created"))

    def matches(dispute: dict) -> bool:
        return (
            (not params.get("charge") or dispute["charge"] == params["charge"])
            and (not params.get("payment_intent") or dispute["payment_intent"] == params["payment_intent"])
            and created(dispute)
        )

    return listing.paginate(params, filter(matches, req.store.all("dispute")), "/v1/disputes")
