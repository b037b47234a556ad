"""Emails to the merchant: a notice (one template, a headline, a body, an action) and the receipt."""

from __future__ import annotations

import logging

from django.conf import settings
from django.core.mail import send_mail
from django.db import IntegrityError, transaction
from django.template.loader import render_to_string

from accounts.models import Account
from billing.models import Receipt

logger = logging.getLogger(__name__)


def notice_send(*, account: Account, subject: str, headline: str, body: str, action_path: str, action_label: str):
    """One plain billing email (text and HTML) to the account's billing address."""
    context = {
        "account": account,
        "site_url": settings.SITE_URL,
        "headline": headline,
        "body": body,
        "action_path": action_path,
        "action_label": action_label,
    }
    send_mail(
        subject=subject,
        message=render_to_string("emails/notice.txt", context),
        html_message=render_to_string("emails/notice.html", context),
        from_email=None,
        recipient_list=[account.billing_email],
    )


def receipt_send(*, account: Account, invoice) -> bool:
    """Email a receipt for a paid invoice with something paid, once per invoice."""
    if not invoice.get("amount_paid"):
        return False
    amount = f"{invoice['amount_paid'] / 100:,.2f} {invoice['currency'].upper()}"
    try:
        with transaction.atomic():
            Receipt.objects.create(
                account=account,
                stripe_invoice_id=invoice["id"],
                amount_cents=invoice["amount_paid"],
                currency=invoice["currency"],
            )
            notice_send(
                account=account,
                subject=f"Your Tollbooth receipt for {amount}",
                headline=f"Thank you: we received {amount} (invoice {invoice.get('number') or invoice['id']}).",
                body="The invoice and its PDF are on your billing page.",
                action_path="/billing/",
                action_label="See your invoices",
            )
    except IntegrityError:
        return False
    return True
