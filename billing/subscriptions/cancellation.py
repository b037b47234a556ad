"""Cancel at the period's end, and reactivate before it."""

from __future__ import annotations

import logging
import uuid

from accounts.errors import Conflict
from accounts.models import Account
from accounts.services import audit_record, require_manager
from billing.stripe.client import idempotent, stripe_client
from billing.subscriptions.changes import SubscriptionState, subscription_state
from billing.subscriptions.scheduled import scheduled_change_withdraw
from billing.subscriptions.sync import subscription_refresh

logger = logging.getLogger(__name__)


def _toggle_key(kind: str, current: SubscriptionState) -> tuple[str, str]:
    """A key for one cancel or reactivate request: the subscription and a fresh UUID kept on its audit row.

    A local count of earlier toggles would mean another thing in another database sharing the Stripe account;
    the UUID protects the request's own retries, and a repeated click is harmless (the flag is set, not toggled)."""
    request_id = str(uuid.uuid4())
    return request_id, f"{kind}:{current.subscription_id}:{request_id}"


def subscription_cancel(*, account: Account, actor) -> dict:
    """End the subscription at the end of the period (access stays until then)."""
    require_manager(account=account, actor=actor)
    current = subscription_state(account)
    if current.cancel_at_period_end:
        raise Conflict("The subscription already ends at the end of this period.", code="already_canceling")
    request_id, key = _toggle_key("cancel", current)
    stripe_client().v1.subscriptions.update(
        current.subscription_id, params={"cancel_at_period_end": True}, options=idempotent(key)
    )
    scheduled_change_withdraw(account=account, actor=actor, reason="subscription canceled at period end")
    subscription_refresh(subscription_id=current.subscription_id)
    audit_record(
        account=account,
        actor=actor,
        action="subscription.cancel_scheduled",
        target=f"subscription:{current.subscription_id}",
        after={"ends_at": current.period_end.isoformat(), "request": request_id},
    )
    return {"ends_at": current.period_end}


def subscription_reactivate(*, account: Account, actor) -> dict:
    """Undo a cancellation while the period lasts."""
    require_manager(account=account, actor=actor)
    current = subscription_state(account)
    if not current.cancel_at_period_end:
        raise Conflict("The subscription isn't set to end; nothing to reactivate.", code="not_canceling")
    request_id, key = _toggle_key("reactivate", current)
    stripe_client().v1.subscriptions.update(
        current.subscription_id, params={"cancel_at_period_end": False}, options=idempotent(key)
    )
    subscription_refresh(subscription_id=current.subscription_id)
    audit_record(
        account=account,
        actor=actor,
        action="subscription.reactivated",
        target=f"subscription:{current.subscription_id}",
        after={"request": request_id},
    )
    return {"renews_at": current.period_end}
