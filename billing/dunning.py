"""Dunning: what happens between a failed renewal payment and either recovery or cancellation.

- `invoice.payment_failed`: the account becomes past_due (from the subscription's status); a `DunningCase`
  is opened for the invoice (unique: a duplicate webhook adds nothing) and the merchant is emailed a link to
  fix the card. Stripe retries the payment on its own schedule.
- A hard decline (stolen, lost, fraudulent card; the policy's list) skips the retries: the invoice's
  automatic collection is turned off at Stripe, the account is suspended at once, and fraud gets a signal.
- The grace period (policy, days) over and still unpaid: the account is suspended (agents can log in and
  read; gated features are off), by the beat task `dunning_enforce_grace`.
- Stripe's last retry failed: the subscription is canceled (the account stays suspended, data kept).
- A payment at any point (Stripe's retry, or the merchant's new card): the case is recovered, the account is
  active again (from the subscription's status), and the merchant is told.
Every status move goes through `account_change_status` (locked, audited).
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

import stripe
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from accounts.errors import DomainError
from accounts.models import Account, AccountStatus
from accounts.services import account_change_status, audit_record, require_manager
from billing import selectors
from billing.models import DunningCase, DunningPolicy, DunningStatus
from billing.renewals import notice_send, receipt_send
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


# --- entry points of the webhook handlers: re-read the object, find the account, act -------------------------


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


# --- fixing the card -----------------------------------------------------------------------------------------


def card_update_session(*, account: Account, actor) -> str:
    """A setup-mode Checkout Session where the merchant enters a new card; returns its URL."""
    require_manager(account=account, actor=actor)
    customer = selectors.customer_for_account(account=account)
    if customer is None:
        raise DomainError("There is no card to update yet; choose a plan first.", code="no_customer")
    attempt = audit_record(account=account, actor=actor, action="billing.card_update_started")
    session = stripe_client().v1.checkout.sessions.create(
        params={
            "mode": "setup",
            "customer": customer.id,
            "currency": "usd",
            "success_url": f"{settings.SITE_URL}/billing/?card=updated",
            "cancel_url": f"{settings.SITE_URL}/billing/",
            "metadata": {"account_id": str(account.pk), "purpose": "card_update"},
        },
        options=idempotent(f"card-update:{account.pk}:{attempt.pk}"),
    )
    return session.url


def card_updated(*, account: Account, session) -> None:
    """A setup session completed: make its card the default and pay what is overdue with it, now."""
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
    summary = selectors.subscription_summary(account=account)
    if summary is not None:
        stripe_client().v1.subscriptions.update(
            summary.id,
            params={"default_payment_method": payment_method},
            options=idempotent(f"card-update:{session['id']}:subscription"),
        )
    audit_record(account=account, actor=None, action="billing.card_updated", after={"payment_method": payment_method})
    for case in DunningCase.objects.filter(account=account, status__in=[DunningStatus.OPEN, DunningStatus.SUSPENDED]):
        try:
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
