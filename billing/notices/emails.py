"""Emails to the merchant: a notice (one template, a headline, a body, an action) and the receipt.

They go to the outbox (outbox.services.email_enqueue) in the caller's transaction, under a key naming what they
are about: written with the state change they tell about, sent after it commits, once per key."""

from __future__ import annotations

import logging

from django.conf import settings
from django.db import transaction
from django.template.loader import render_to_string

from accounts.models import Account
from billing.models import Receipt
from outbox.services import email_enqueue

logger = logging.getLogger(__name__)


def notice_send(
    *, key: str, account: Account, subject: str, headline: str, body: str, action_path: str, action_label: str
) -> bool:
    """One plain billing email (text and HTML) to the account's billing address, once per `key`."""
    context = {
        "account": account,
        "site_url": settings.SITE_URL,
        "headline": headline,
        "body": body,
        "action_path": action_path,
        "action_label": action_label,
    }
    return email_enqueue(
        key=key,
        to=[account.billing_email],
        subject=subject,
        text=render_to_string("emails/notice.txt", context),
        html=render_to_string("emails/notice.html", context),
    )


def receipt_send(*, account: Account, invoice) -> bool:
    """Email a receipt for a paid invoice with something paid, once per invoice (the Receipt row and the
    outbox's key both say so: a handler retried after it committed finds them)."""
    if not invoice.get("amount_paid"):
        return False
    amount = f"{invoice['amount_paid'] / 100:,.2f} {invoice['currency'].upper()}"
    with transaction.atomic():
        # Only "already there" means sent before; any other refusal of the write is a failure to retry.
        _, created = Receipt.objects.get_or_create(
            stripe_invoice_id=invoice["id"],
            defaults={"account": account, "amount_cents": invoice["amount_paid"], "currency": invoice["currency"]},
        )
        if not created:
            return False
        notice_send(
            key=f"receipt:{invoice['id']}",
            account=account,
            subject=f"Your Tollbooth receipt for {amount}",
            headline=f"Thank you: we received {amount} (invoice {invoice.get('number') or invoice['id']}).",
            body="The invoice and its PDF are on your billing page.",
            action_path="/billing/",
            action_label="See your invoices",
        )
    return True
