"""Card update: a setup-mode Checkout page for a new card, and what happens when it completes."""

from __future__ import annotations

import logging
import uuid

import stripe
from django.conf import settings

from accounts.errors import DomainError
from accounts.models import Account
from accounts.services import audit_record, require_manager
from billing.models import DUNNING_UNPAID_STATUSES, DunningCase
from billing.stripe.client import idempotent, stripe_client
from billing.subscriptions.selectors import LIVE_STATUSES, customer_for_account, subscription_summary

logger = logging.getLogger(__name__)


def card_update_session(*, account: Account, actor) -> str:
    """A setup-mode Checkout Session where the merchant enters a new card; returns its URL."""
    require_manager(account=account, actor=actor)
    customer = customer_for_account(account=account)
    if customer is None:
        raise DomainError("There is no card to update yet; choose a plan first.", code="no_customer")
    # A fresh UUID, kept on the audit row, names this page: a local primary key would name another
    # account's page in another database sharing the Stripe account.
    attempt_key = str(uuid.uuid4())
    audit_record(account=account, actor=actor, action="billing.card_update_started", after={"key": attempt_key})
    session = stripe_client().v1.checkout.sessions.create(
        params={
            "mode": "setup",
            "customer": customer.id,
            "currency": "usd",
            "success_url": f"{settings.SITE_URL}/billing/?card=updated",
            "cancel_url": f"{settings.SITE_URL}/billing/",
            "metadata": {"account_id": str(account.pk), "purpose": "card_update"},
        },
        options=idempotent(f"card-update:{customer.id}:{attempt_key}"),
    )
    return session.url


def card_updated(*, account: Account, session) -> None:
    """A setup session completed: make its card the default and pay what is overdue with it, now.

    This is also how collection resumes after a hard decline: the new card becomes the default again, and
    an invoice whose retries were stopped gets them back (auto_advance) before it is paid."""
    setup_intent = session.get("setup_intent")
    setup_intent = setup_intent if isinstance(setup_intent, str) else (setup_intent or {}).get("id")
    if not setup_intent:
        return
    payment_method = stripe_client().v1.setup_intents.retrieve(setup_intent)["payment_method"]
    payment_method = payment_method if isinstance(payment_method, str) else payment_method["id"]
    customer_id = session["customer"]
    stripe_client().v1.customers.update(
        customer_id,
        params={"invoice_settings": {"default_payment_method": payment_method}},
        options=idempotent(f"card-update:{session['id']}:default"),
    )
    summary = subscription_summary(account=account)
    # A canceled subscription takes no writes (Stripe refuses them): the customer's default is the card then.
    if summary is not None and summary.status in LIVE_STATUSES:
        stripe_client().v1.subscriptions.update(
            summary.id,
            params={"default_payment_method": payment_method},
            options=idempotent(f"card-update:{session['id']}:subscription"),
        )
    audit_record(account=account, actor=None, action="billing.card_updated", after={"payment_method": payment_method})
    for case in DunningCase.objects.filter(account=account, status__in=DUNNING_UNPAID_STATUSES):
        try:
            if case.hard_decline:
                stripe_client().v1.invoices.update(
                    case.stripe_invoice_id,
                    params={"auto_advance": True},
                    options=idempotent(f"card-update:{session['id']}:resume:{case.stripe_invoice_id}"),
                )
            stripe_client().v1.invoices.pay(
                case.stripe_invoice_id,
                params={"payment_method": payment_method},
                options=idempotent(f"dunning:pay:{case.stripe_invoice_id}:{payment_method}"),
            )
        except stripe.CardError:
            logger.info("The new card of account %s was declined too", account.pk)
        except stripe.InvalidRequestError as error:
            # Already paid (a Stripe retry won the race) or voided: nothing to collect.
            logger.info("Invoice %s not payable: %s", case.stripe_invoice_id, error.user_message)
