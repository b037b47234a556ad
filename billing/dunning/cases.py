"""Dunning cases: a failed renewal payment opens one; grace, suspension, and closing when paid."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

import stripe
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from accounts.models import Account, AccountStatus
from accounts.services import account_change_status, audit_record
from billing.models import DunningCase, DunningPolicy, DunningStatus
from billing.notices.emails import notice_send, receipt_send
from billing.stripe.client import idempotent, stripe_client
from billing.stripe.objects import invoice_subscription_id, stripe_object_with_account
from fraud.services import payment_hard_decline

logger = logging.getLogger(__name__)


def dunning_policy() -> DunningPolicy:
    policy, _ = DunningPolicy.objects.get_or_create(
        name="default",
        defaults={
            "grace_days": settings.TOLLBOOTH_DUNNING_GRACE_DAYS,
            "hard_decline_codes": list(settings.TOLLBOOTH_DUNNING_HARD_DECLINES),
        },
    )
    return policy


def _decline_code(invoice_id: str) -> str:
    """The decline code of the invoice's latest failed payment attempt ('' when unknown)."""
    payments = stripe_client().v1.invoice_payments.list(params={"invoice": invoice_id, "limit": 10}).data
    for payment in sorted(payments, key=lambda p: p["created"], reverse=True):
        intent_id = (payment.get("payment") or {}).get("payment_intent")
        if not intent_id:
            continue
        intent_id = intent_id if isinstance(intent_id, str) else intent_id["id"]
        error = stripe_client().v1.payment_intents.retrieve(intent_id).get("last_payment_error") or {}
        if error:
            return error.get("decline_code") or error.get("code") or ""
    return ""


def dunning_payment_failed(*, account: Account, invoice) -> DunningCase:
    """Open (or update) the invoice's dunning case; email the merchant once; act on a hard decline."""
    policy = dunning_policy()
    decline_code = _decline_code(invoice["id"])
    subscription_id = invoice_subscription_id(invoice)
    with transaction.atomic():
        case, created = DunningCase.objects.select_for_update().get_or_create(
            stripe_invoice_id=invoice["id"],
            defaults={"account": account, "stripe_subscription_id": subscription_id or ""},
        )
        if case.status not in (DunningStatus.OPEN, DunningStatus.SUSPENDED):
            return case
        case.failures = max(case.failures + 1, invoice.get("attempt_count") or 0)
        case.last_decline_code = decline_code
        case.hard_decline = case.hard_decline or decline_code in policy.hard_decline_codes
        case.save(update_fields=["failures", "last_decline_code", "hard_decline"])
        if created:
            audit_record(
                account=account,
                actor=None,
                action="dunning.opened",
                target=f"invoice:{invoice['id']}",
                after={"amount_due": invoice["amount_due"], "decline_code": decline_code},
            )
            transaction.on_commit(lambda: _email_failed(account, invoice, decline_code))
    if case.hard_decline and case.status == DunningStatus.OPEN:
        _stop_retries(invoice["id"])
        _suspend(case, reason=f"Hard decline ({decline_code}): no retries")
        _fraud_signal(account, decline_code)
    return case


def _stop_retries(invoice_id: str) -> None:
    try:
        stripe_client().v1.invoices.update(
            invoice_id, params={"auto_advance": False}, options=idempotent(f"dunning:stop-retries:{invoice_id}")
        )
    except stripe.StripeError:
        logger.exception("Could not stop Stripe's retries of %s", invoice_id)


def _fraud_signal(account: Account, decline_code: str) -> None:
    """A stolen/lost/fraudulent card on a renewal is a payment-stage signal that sends the account to review."""
    try:
        payment_hard_decline(account=account, decline_code=decline_code, note="Renewal payment hard-declined")
    except Exception:
        # A fraud-side failure must not stop dunning; the suspension above already stands.
        logger.exception("Fraud signal for a hard decline of account %s failed", account.pk)


def _suspend(case: DunningCase, *, reason: str) -> None:
    with transaction.atomic():
        locked = DunningCase.objects.select_for_update().get(pk=case.pk)
        if locked.status != DunningStatus.OPEN:
            return
        locked.status, locked.suspended_at = DunningStatus.SUSPENDED, timezone.now()
        locked.save(update_fields=["status", "suspended_at"])
        account = Account.objects.get(pk=locked.account_id)
        if account.status in (AccountStatus.ACTIVE, AccountStatus.PAST_DUE, AccountStatus.TRIALING):
            account = account_change_status(account=account, to=AccountStatus.SUSPENDED, actor=None, reason=reason)
        transaction.on_commit(
            lambda: notice_send(
                account=account,
                subject="Your Tollbooth account is suspended",
                headline="Your account is suspended because a payment is overdue.",
                body="Your team can still sign in and read everything; features are paused until the invoice is paid.",
                action_path="/billing/",
                action_label="Update your card and pay",
            )
        )
    case.status = DunningStatus.SUSPENDED


def dunning_enforce_grace(*, now: datetime | None = None) -> int:
    """Suspend the accounts whose grace period is over with the invoice still unpaid."""
    now = now or timezone.now()
    policy = dunning_policy()
    suspended = 0
    overdue = DunningCase.objects.filter(
        status=DunningStatus.OPEN, opened_at__lte=now - timedelta(days=policy.grace_days)
    )
    for case in overdue.select_related("account"):
        _suspend(case, reason=f"Payment overdue for {policy.grace_days} days")
        suspended += 1
    return suspended


def dunning_invoice_paid(*, account: Account, invoice_id: str) -> DunningCase | None:
    """The invoice was paid: close its case as recovered and say so (the account's status follows Stripe's)."""
    with transaction.atomic():
        case = DunningCase.objects.select_for_update().filter(stripe_invoice_id=invoice_id).first()
        if case is None or case.status in (DunningStatus.RECOVERED, DunningStatus.CANCELED):
            return case
        case.status, case.closed_at = DunningStatus.RECOVERED, timezone.now()
        case.save(update_fields=["status", "closed_at"])
        audit_record(account=account, actor=None, action="dunning.recovered", target=f"invoice:{invoice_id}")
        transaction.on_commit(
            lambda: notice_send(
                account=account,
                subject="Payment received: your Tollbooth account is active",
                headline="Thank you: the overdue invoice is paid.",
                body="Everything is back to normal for your team.",
                action_path="/billing/",
                action_label="See your invoices",
            )
        )
    return case


def dunning_subscription_ended(*, account: Account, subscription_id: str) -> int:
    """Stripe canceled the subscription after its last retry: close the open cases as canceled."""
    closed = DunningCase.objects.filter(
        stripe_subscription_id=subscription_id, status__in=[DunningStatus.OPEN, DunningStatus.SUSPENDED]
    ).update(status=DunningStatus.CANCELED, closed_at=timezone.now())
    if closed:
        audit_record(account=account, actor=None, action="dunning.canceled", target=f"subscription:{subscription_id}")
    return closed


def dunning_on_invoice_failed(*, invoice_id: str) -> DunningCase | None:
    invoice, account = stripe_object_with_account(stripe_client().v1.invoices, invoice_id)
    if account is None or invoice.get("status") != "open":
        return None  # a stranger's invoice, or already settled by the time we read it
    return dunning_payment_failed(account=account, invoice=invoice)


def dunning_on_invoice_paid(*, invoice_id: str) -> None:
    """A paid invoice: close its dunning case if it had one, and email the receipt (once)."""
    invoice, account = stripe_object_with_account(stripe_client().v1.invoices, invoice_id)
    if account is None:
        return
    dunning_invoice_paid(account=account, invoice_id=invoice_id)
    receipt_send(account=account, invoice=invoice)


def dunning_on_subscription_deleted(*, subscription_id: str) -> int:
    _subscription, account = stripe_object_with_account(stripe_client().v1.subscriptions, subscription_id)
    if account is None:
        return 0
    return dunning_subscription_ended(account=account, subscription_id=subscription_id)


def _email_failed(account: Account, invoice, decline_code: str) -> None:
    amount = f"{invoice['amount_due'] / 100:,.2f} {invoice['currency'].upper()}"
    notice_send(
        account=account,
        subject="Your Tollbooth payment failed",
        headline=f"We couldn't charge {amount} to your card"
        + (f" (the bank said: {decline_code.replace('_', ' ')})." if decline_code else "."),
        body="We'll try again over the next days. Update your card now to avoid an interruption.",
        action_path="/billing/fix-card/",
        action_label="Update your card",
    )
