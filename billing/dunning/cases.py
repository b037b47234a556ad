"""Dunning cases: a failed renewal payment opens one; grace, suspension, and closing when paid, voided or
written off."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from accounts.models import Account, AccountStatus
from accounts.services import account_change_status, audit_record
from billing.domain_events import invoice_paid_record, invoice_payment_failed_record
from billing.dunning.declines import hard_decline_act, latest_decline, notice_claim
from billing.models import DUNNING_UNPAID_STATUSES, DunningCase, DunningNoticeKind, DunningPolicy, DunningStatus
from billing.notices.emails import notice_send, receipt_send
from billing.stripe.client import stripe_client
from billing.stripe.objects import invoice_subscription_id, stripe_object_with_account
from billing.subscriptions.selectors import subscription_current, subscription_summary

logger = logging.getLogger(__name__)

# What closes a case when Stripe says the invoice is no longer open, by the invoice's status.
CLOSING_STATUS = {"void": DunningStatus.VOIDED, "uncollectible": DunningStatus.UNCOLLECTIBLE}


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
    return latest_decline(invoice_id).code


def dunning_payment_failed(*, account: Account, invoice) -> DunningCase:
    """Open (or update) the invoice's dunning case; email the merchant once; act on a hard decline."""
    policy = dunning_policy()
    decline = latest_decline(invoice["id"])
    hard = decline.code in policy.hard_decline_codes
    subscription_id = invoice_subscription_id(invoice)
    with transaction.atomic():
        case, created = DunningCase.objects.select_for_update().get_or_create(
            stripe_invoice_id=invoice["id"],
            defaults={"account": account, "stripe_subscription_id": subscription_id or ""},
        )
        if case.status not in DUNNING_UNPAID_STATUSES:
            return case
        case.failures = max(case.failures + 1, invoice.get("attempt_count") or 0)
        case.last_decline_code = decline.code
        newly_hard = hard and not case.hard_decline
        if newly_hard:
            case.hard_decline, case.hard_declined_at = True, timezone.now()
        case.save(update_fields=["failures", "last_decline_code", "hard_decline", "hard_declined_at"])
        if created:
            audit_record(
                account=account,
                actor=None,
                action="dunning.opened",
                target=f"invoice:{invoice['id']}",
                after={"amount_due": invoice["amount_due"], "decline_code": decline.code},
            )
        if newly_hard:
            audit_record(
                account=account,
                actor=None,
                action="dunning.hard_decline",
                target=f"invoice:{invoice['id']}",
                after={"decline_code": decline.code, "payment_method": decline.payment_method},
            )
        attempt = invoice.get("attempt_count") or case.failures
        invoice_payment_failed_record(account=account, invoice=invoice, attempt=attempt, decline_code=decline.code)
        if not hard and notice_claim(case, DunningNoticeKind.PAYMENT_FAILED, decline_code=decline.code):
            # A hard decline has its own email (a new card is needed); a soft one gets this one, once per invoice.
            _email_failed(account, invoice, decline.code)
    if hard:
        hard_decline_act(account=account, case=case, invoice=invoice, decline=decline)
        # The hard-decline email says the account is paused: no second email for the suspension.
        _suspend(case, reason=f"Hard decline ({decline.code}): no retries", notify=False)
    return case


def _suspend(case: DunningCase, *, reason: str, notify: bool = True) -> bool:
    with transaction.atomic():
        locked = DunningCase.objects.select_for_update().get(pk=case.pk)
        if locked.status != DunningStatus.OPEN:
            return False
        locked.status, locked.suspended_at = DunningStatus.SUSPENDED, timezone.now()
        locked.save(update_fields=["status", "suspended_at"])
        account = Account.objects.get(pk=locked.account_id)
        if account.status in (AccountStatus.ACTIVE, AccountStatus.PAST_DUE, AccountStatus.TRIALING):
            account = account_change_status(account=account, to=AccountStatus.SUSPENDED, actor=None, reason=reason)
        if notify and notice_claim(locked, DunningNoticeKind.SUSPENDED):
            notice_send(
                key=f"dunning:{locked.stripe_invoice_id}:suspended",
                account=account,
                subject="Your Tollbooth account is suspended",
                headline="Your account is suspended because a payment is overdue.",
                body="Your team can still sign in and read everything; features are paused until the invoice is paid.",
                action_path="/billing/",
                action_label="Update your card and pay",
            )
    case.status = DunningStatus.SUSPENDED
    return True


def dunning_enforce_grace(*, now: datetime | None = None) -> int:
    """Suspend the accounts whose grace period is over with the invoice still unpaid.

    The invoice is re-read first: a case whose invoice was paid, voided or written off meanwhile (its
    webhook late or lost) is closed instead; and only the case of an unpaid invoice of the account's
    current subscription can suspend it (an old subscription's leftovers are for ops, not for a lockout)."""
    now = now or timezone.now()
    policy = dunning_policy()
    suspended = 0
    overdue = DunningCase.objects.filter(
        status=DunningStatus.OPEN, opened_at__lte=now - timedelta(days=policy.grace_days)
    )
    for case in overdue.select_related("account"):
        invoice = stripe_client().v1.invoices.retrieve(case.stripe_invoice_id)
        if invoice["status"] == "paid":
            dunning_invoice_paid(account=case.account, invoice_id=case.stripe_invoice_id)
            continue
        if invoice["status"] in CLOSING_STATUS:
            dunning_invoice_closed(account=case.account, invoice=invoice)
            continue
        if invoice["status"] != "open" or not _bills_current_subscription(case):
            logger.info("Dunning case %s does not suspend: invoice %s", case.pk, invoice["status"])
            continue
        if _suspend(case, reason=f"Payment overdue for {policy.grace_days} days"):
            suspended += 1
    return suspended


def _bills_current_subscription(case: DunningCase) -> bool:
    if not case.stripe_subscription_id:
        return True  # a one-off invoice (e.g. a final overage) is owed as much as a renewal
    summary = subscription_summary(account=case.account)
    return summary is not None and summary.id == case.stripe_subscription_id


def dunning_invoice_paid(*, account: Account, invoice_id: str) -> DunningCase | None:
    """The invoice was paid: close its case as recovered and say so (the account's status follows Stripe's)."""
    with transaction.atomic():
        case = DunningCase.objects.select_for_update().filter(stripe_invoice_id=invoice_id).first()
        if case is None or case.status not in DUNNING_UNPAID_STATUSES:
            return case
        case.status, case.closed_at = DunningStatus.RECOVERED, timezone.now()
        case.save(update_fields=["status", "closed_at"])
        audit_record(account=account, actor=None, action="dunning.recovered", target=f"invoice:{invoice_id}")
        if notice_claim(case, DunningNoticeKind.RECOVERED):
            notice_send(
                key=f"dunning:{invoice_id}:recovered",
                account=account,
                subject="Payment received: your Tollbooth account is active",
                headline="Thank you: the overdue invoice is paid.",
                body="Everything is back to normal for your team.",
                action_path="/billing/",
                action_label="See your invoices",
            )
    return case


def dunning_invoice_closed(*, account: Account, invoice) -> DunningCase | None:
    """The invoice was voided or marked uncollectible: its case closes and never suspends again.

    A void means nothing is owed: a suspension this case caused is lifted (unless another unpaid case
    remains). Uncollectible is a write-off of money still owed: the account stays as it is, for ops to decide.
    Anything else (the invoice is open or paid by the time we read it) is a no-op here."""
    closing = CLOSING_STATUS.get(invoice.get("status"))
    if closing is None:
        return None
    with transaction.atomic():
        case = DunningCase.objects.select_for_update().filter(stripe_invoice_id=invoice["id"]).first()
        if case is None or case.status not in DUNNING_UNPAID_STATUSES:
            return case
        was_suspending = case.status == DunningStatus.SUSPENDED
        case.status, case.closed_at = closing, timezone.now()
        case.save(update_fields=["status", "closed_at"])
        audit_record(
            account=account,
            actor=None,
            action=f"dunning.closed_{closing}",
            target=f"invoice:{invoice['id']}",
            before={"status": DunningStatus.SUSPENDED if was_suspending else DunningStatus.OPEN},
            after={"status": closing},
        )
        account.refresh_from_db(fields=["status"])
        still_suspending = (
            DunningCase.objects.filter(account=account, status=DunningStatus.SUSPENDED).exclude(pk=case.pk).exists()
        )
        lift = was_suspending and closing == DunningStatus.VOIDED and not still_suspending
        if lift and account.status == AccountStatus.SUSPENDED and _subscription_is_live(account):
            # Nothing is owed any more. A subscription that ended meanwhile (canceled after a hard decline, say)
            # pays for nothing either: the account stays suspended, as its subscription says.
            account_change_status(
                account=account, to=AccountStatus.ACTIVE, actor=None, reason=f"Invoice {invoice['id']} voided"
            )
    return case


def _subscription_is_live(account: Account) -> bool:
    current = subscription_current(account=account)
    return current is not None and current.stripe_data.get("status") in ("active", "trialing", "past_due")


def dunning_subscription_ended(*, account: Account, subscription_id: str, reason: str | None) -> int:
    """Stripe canceled the subscription after its last retry: close its unpaid cases as canceled.

    A subscription that ended otherwise (the merchant canceled during dunning) leaves its cases open: the
    invoice is still owed until it is paid, voided or written off."""
    if reason != "payment_failed":
        return 0
    closed = DunningCase.objects.filter(
        stripe_subscription_id=subscription_id, status__in=DUNNING_UNPAID_STATUSES
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
    if invoice.get("status") == "paid":
        invoice_paid_record(account=account, invoice=invoice)


def dunning_on_invoice_closed(*, invoice_id: str) -> DunningCase | None:
    """invoice.voided / invoice.marked_uncollectible: re-read the invoice, then close its case."""
    invoice, account = stripe_object_with_account(stripe_client().v1.invoices, invoice_id)
    if account is None:
        return None
    return dunning_invoice_closed(account=account, invoice=invoice)


def dunning_on_subscription_deleted(*, subscription_id: str) -> int:
    subscription, account = stripe_object_with_account(stripe_client().v1.subscriptions, subscription_id)
    if account is None:
        return 0
    reason = (subscription.get("cancellation_details") or {}).get("reason")
    return dunning_subscription_ended(account=account, subscription_id=subscription_id, reason=reason)


def _email_failed(account: Account, invoice, decline_code: str) -> None:
    amount = f"{invoice['amount_due'] / 100:,.2f} {invoice['currency'].upper()}"
    notice_send(
        key=f"dunning:{invoice['id']}:payment_failed",
        account=account,
        subject="Your Tollbooth payment failed",
        headline=f"We couldn't charge {amount} to your card"
        + (f" (the bank said: {decline_code.replace('_', ' ')})." if decline_code else "."),
        body="We'll try again over the next days. Update your card now to avoid an interruption.",
        action_path="/billing/fix-card/",
        action_label="Update your card",
    )
