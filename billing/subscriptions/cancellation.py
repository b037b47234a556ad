"""Cancel at the period's end, and reactivate before it."""

from __future__ import annotations

import logging

from accounts.errors import Conflict
from accounts.models import Account, AuditLog
from accounts.services import audit_record, require_manager
from billing.stripe.client import idempotent, stripe_client
from billing.subscriptions.changes import SubscriptionState, subscription_state
from billing.subscriptions.scheduled import scheduled_change_withdraw
from billing.subscriptions.sync import subscription_refresh

logger = logging.getLogger(__name__)


def _toggle_count(current: SubscriptionState) -> int:
    """How often this subscription was cancelled or reactivated: names the next toggle for idempotency
    (a cancel after a reactivation is a new write, not a replay of the first cancel)."""
    return AuditLog.objects.filter(
        target=f"subscription:{current.subscription_id}",
        action__in=["subscription.cancel_scheduled", "subscription.reactivated"],
    ).count()


def subscription_cancel(*, account: Account, actor) -> dict:
    """End the subscription at the end of the period (access stays until then)."""
    require_manager(account=account, actor=actor)
    current = subscription_state(account)
    if current.cancel_at_period_end:
        raise Conflict("The subscription already ends at the end of this period.", code="already_canceling")
    stripe_client().v1.subscriptions.update(
        current.subscription_id,
        params={"cancel_at_period_end": True},
        options=idempotent(f"cancel:{current.subscription_id}:{_toggle_count(current)}"),
    )
    scheduled_change_withdraw(account=account, actor=actor, reason="subscription canceled at period end")
    subscription_refresh(subscription_id=current.subscription_id)
    audit_record(
        account=account,
        actor=actor,
        action="subscription.cancel_scheduled",
        target=f"subscription:{current.subscription_id}",
        after={"ends_at": current.period_end.isoformat()},
    )
    return {"ends_at": current.period_end}


def subscription_reactivate(*, account: Account, actor) -> dict:
    """Undo a cancellation while the period lasts."""
    require_manager(account=account, actor=actor)
    current = subscription_state(account)
    if not current.cancel_at_period_end:
        raise Conflict("The subscription isn't set to end; nothing to reactivate.", code="not_canceling")
    stripe_client().v1.subscriptions.update(
        current.subscription_id,
        params={"cancel_at_period_end": False},
        options=idempotent(f"reactivate:{current.subscription_id}:{_toggle_count(current)}"),
    )
    subscription_refresh(subscription_id=current.subscription_id)
    audit_record(
        account=account,
        actor=actor,
        action="subscription.reactivated",
        target=f"subscription:{current.subscription_id}",
    )
    return {"renews_at": current.period_end}
