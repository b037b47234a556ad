"""Declines: what the failed attempt said, and a hard decline's consequences (no card left to charge again)."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import stripe
from django.db import IntegrityError, transaction

from accounts.models import Account
from billing.models import DunningCase, DunningNotice, DunningNoticeKind
from billing.notices.emails import notice_send
from billing.stripe.client import idempotent, stripe_client
from billing.stripe.objects import invoice_subscription_id
from fraud.services import payment_hard_decline

logger = logging.getLogger(__name__)


def _id(value) -> str | None:
    """The id of an expandable field, expanded (a StripeObject, not a dict) or not."""
    return value if value is None or isinstance(value, str) else value["id"]


@dataclass(frozen=True)
class Decline:
    code: str  # the decline code ('' when unknown, e.g. no payment method at all)
    payment_method: str | None  # the card that was refused


def latest_decline(invoice_id: str) -> Decline:
    """The decline of the invoice's latest failed payment attempt."""
    payments = stripe_client().v1.invoice_payments.list(params={"invoice": invoice_id, "limit": 10}).data
    for payment in sorted(payments, key=lambda p: p["created"], reverse=True):
        intent_id = _id((payment.get("payment") or {}).get("payment_intent"))
        if not intent_id:
            continue
        intent = stripe_client().v1.payment_intents.retrieve(intent_id)
        error = intent.get("last_payment_error") or {}
        if error:
            payment_method = _id(error.get("payment_method")) or _id(intent.get("payment_method"))
            return Decline(error.get("decline_code") or error.get("code") or "", payment_method)
    return Decline("", None)


def notice_claim(case: DunningCase, kind: str, *, decline_code: str = "") -> bool:
    """Claim the right to tell the merchant `kind` about this case; False when it was already told.

    Call inside the transaction that decides: the unique (case, kind) row is the once-only guarantee."""
    try:
        with transaction.atomic():
            DunningNotice.objects.create(case=case, kind=kind, decline_code=decline_code)
    except IntegrityError:
        return False
    return True


def hard_decline_act(*, account: Account, case: DunningCase, invoice, decline: Decline) -> None:
    """Make sure the refused card is never charged again, and tell the merchant (and fraud) once.

    Stripe's own retries of the invoice stop (auto_advance false); the card is cleared as the default of the
    customer and of the subscription, so the next renewal has nothing to charge until a new card is entered
    (the card update page resumes collection). Each write's key names the invoice and the refused card:
    a redelivered event repeats the same writes; a second card refused on the same invoice is a new one.
    """
    card = decline.payment_method or "none"
    _stripe_write(
        "stop retries",
        lambda: stripe_client().v1.invoices.update(
            invoice["id"],
            params={"auto_advance": False},
            options=idempotent(f"dunning:stop-retries:{invoice['id']}:{card}"),
        ),
    )
    customer_id = _id(invoice.get("customer"))
    if customer_id:
        _stripe_write(
            "clear the customer's default card",
            lambda: stripe_client().v1.customers.update(
                customer_id,
                params={"invoice_settings": {"default_payment_method": ""}},
                options=idempotent(f"dunning:hard-decline:{invoice['id']}:{card}:customer"),
            ),
        )
    subscription_id = invoice_subscription_id(invoice)
    if subscription_id:
        _stripe_write(
            "clear the subscription's default card",
            lambda: stripe_client().v1.subscriptions.update(
                subscription_id,
                params={"default_payment_method": ""},
                options=idempotent(f"dunning:hard-decline:{invoice['id']}:{card}:subscription"),
            ),
        )
    with transaction.atomic():
        if not notice_claim(case, DunningNoticeKind.HARD_DECLINE, decline_code=decline.code):
            return
        _fraud_signal(account, decline.code)
        _email_new_card_needed(account, invoice, decline.code)


def _stripe_write(what: str, write) -> None:
    try:
        write()
    except stripe.StripeError:
        # Dunning goes on (the case records the hard decline); the next redelivery or event repeats the write.
        logger.exception("Hard decline: could not %s", what)


def _fraud_signal(account: Account, decline_code: str) -> None:
    """A stolen/lost/fraudulent card on a renewal is a payment-stage signal that sends the account to review."""
    try:
        with transaction.atomic():
            payment_hard_decline(account=account, decline_code=decline_code, note="Renewal payment hard-declined")
    except Exception:
        # A fraud-side failure must not stop dunning; the card is already cleared.
        logger.exception("Fraud signal for a hard decline of account %s failed", account.pk)


def _email_new_card_needed(account: Account, invoice, decline_code: str) -> None:
    amount = f"{invoice['amount_due'] / 100:,.2f} {invoice['currency'].upper()}"
    notice_send(
        key=f"dunning:{invoice['id']}:new_card_needed",
        account=account,
        subject="Your card was refused: please enter a new one",
        headline=f"Your bank refused the payment of {amount}"
        + (f" (the bank said: {decline_code.replace('_', ' ')})." if decline_code else "."),
        body="We won't try this card again, and your account is paused until the invoice is paid. "
        "Enter a new card: we'll charge the invoice with it at once.",
        action_path="/billing/fix-card/",
        action_label="Enter a new card",
    )
