"""Reminders before an annual renewal or a trial's end (each once), and trials that end without a plan."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from django.db import IntegrityError, transaction
from django.utils import timezone
from djstripe import models as djstripe_models

from accounts.errors import DomainError
from accounts.models import Account, AccountStatus
from accounts.services import account_change_status
from billing.models import Reminder, ReminderKind
from billing.notices.emails import notice_send
from billing.subscriptions.selectors import subscription_summary

logger = logging.getLogger(__name__)

RENEWAL_REMINDERS = ((ReminderKind.RENEWAL_7, timedelta(days=7)), (ReminderKind.RENEWAL_30, timedelta(days=30)))

TRIAL_REMINDERS = ((ReminderKind.TRIAL_1, timedelta(days=1)), (ReminderKind.TRIAL_7, timedelta(days=7)))


def _due_kind(left: timedelta, schedule) -> str | None:
    """The tightest reminder whose window `left` has entered (the 7-day one wins over the 30-day one)."""
    if left <= timedelta(0):
        return None
    for kind, window in schedule:
        if left <= window:
            return kind
    return None


def _remind(account: Account, kind: str, about: datetime, context: dict) -> bool:
    try:
        with transaction.atomic():
            Reminder.objects.create(account=account, kind=kind, about=about)
            notice_send(key=f"reminder:{account.public_id}:{kind}:{about.isoformat()}", account=account, **context)
    except IntegrityError:
        return False  # already sent
    return True


def reminders_send_due(*, now: datetime | None = None) -> int:
    """Send every renewal and trial reminder that is due and not yet sent. Returns how many went out."""
    now = now or timezone.now()
    sent = 0
    # Only accounts with an annual subscription can be due: found in SQL, so a run reads a handful of
    # subscriptions, not every account's (the summary then checks it is the account's current one).
    annual = djstripe_models.Subscription.objects.filter(
        stripe_data__items__data__0__price__recurring__interval="year"
    ).values("customer__subscriber_id")
    candidates = (
        Account.objects.filter(status__in=[AccountStatus.ACTIVE, AccountStatus.PAST_DUE], pk__in=annual)
        .exclude(plan=None)
        .order_by("pk")
    )
    for account in candidates:
        summary = subscription_summary(account=account)
        if (
            summary is None
            or summary.plan_price is None
            or summary.plan_price.interval != "year"
            or summary.cancel_at_period_end
            or summary.current_period_end is None
        ):
            continue
        kind = _due_kind(summary.current_period_end - now, RENEWAL_REMINDERS)
        if kind:
            price = summary.plan_price
            sent += _remind(
                account,
                kind,
                summary.current_period_end,
                {
                    "subject": f"Your {price.plan.name} plan renews on {summary.current_period_end:%d %B %Y}",
                    "headline": f"Your annual {price.plan.name} plan renews on {summary.current_period_end:%d %B %Y}.",
                    "body": f"We'll charge {price.amount_cents * summary.quantity / 100:,.2f} "
                    f"{price.currency.upper()} to your card on file. To change or cancel, visit your billing page.",
                    "action_path": "/billing/",
                    "action_label": "Review billing",
                },
            )
    trials = Account.objects.filter(
        status=AccountStatus.TRIALING, trial_ends_at__gt=now, trial_ends_at__lte=now + timedelta(days=7)
    )
    for account in trials:
        kind = _due_kind(account.trial_ends_at - now, TRIAL_REMINDERS)
        if kind:
            sent += _remind(
                account,
                kind,
                account.trial_ends_at,
                {
                    "subject": f"Your Tollbooth trial ends on {account.trial_ends_at:%d %B %Y}",
                    "headline": f"Your free trial ends on {account.trial_ends_at:%d %B %Y}.",
                    "body": "Choose a plan to keep your helpdesk running without interruption.",
                    "action_path": "/pricing/",
                    "action_label": "Choose a plan",
                },
            )
    return sent


def trials_end_due(*, now: datetime | None = None) -> int:
    """Suspend accounts whose trial ended without a plan, and tell them how to continue."""
    now = now or timezone.now()
    ended = 0
    for account in Account.objects.filter(status=AccountStatus.TRIALING, trial_ends_at__lte=now):
        try:
            account = account_change_status(
                account=account, to=AccountStatus.SUSPENDED, actor=None, reason="The trial ended without a plan"
            )
        except DomainError:
            logger.exception("Could not end the trial of account %s", account.pk)
            continue
        _remind(
            account,
            ReminderKind.TRIAL_ENDED,
            account.trial_ends_at,
            {
                "subject": "Your Tollbooth trial has ended",
                "headline": "Your free trial has ended.",
                "body": "Your data is kept. Choose a plan to pick up where you left off.",
                "action_path": "/pricing/",
                "action_label": "Choose a plan",
            },
        )
        ended += 1
    return ended
