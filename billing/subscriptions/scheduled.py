"""Scheduled downgrades: one per account, replaced or withdrawn by a later change, applied under a lease.

A change is applied shortly before its boundary, so the renewal invoice is drafted on the new price. One
found after its boundary has passed (the beat was down, a worker died) was renewed on the old price: it is
applied at once with proration (the unused time on the old price is credited on the next invoice, the rest
of the period charged at the new price) and audited as `subscription.downgraded_late`, never silently.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from accounts.errors import Conflict
from accounts.models import Account
from accounts.services import audit_record
from billing.models import PlanChangeStatus, ScheduledPlanChange
from billing.stripe.client import idempotent, stripe_client
from billing.subscriptions.sync import subscription_refresh
from plans.models import PlanPrice

logger = logging.getLogger(__name__)

# A scheduled downgrade is put on the Stripe subscription this long before the period ends: after the
# renewal invoice is drafted (at the boundary) a price change would no longer reach it.
DOWNGRADE_LEAD = timedelta(hours=1)

# How long a worker holds a change while it writes to Stripe. A worker killed in between leaves the change
# SCHEDULED with a stale claim; the next run after the lease retries it under the same idempotency key.
CLAIM_LEASE = timedelta(minutes=5)

# Subscription statuses on which a downgrade can still be put; on any other it is dropped (audited).
APPLICABLE_STATUSES = ("active", "trialing", "past_due")


def scheduled_change_withdraw(*, account: Account, actor, reason: str) -> int:
    """A new change (an upgrade, a cancellation) withdraws the downgrade waiting for the period's end."""
    with transaction.atomic():
        withdrawn = list(
            ScheduledPlanChange.objects.select_for_update().filter(account=account, status=PlanChangeStatus.SCHEDULED)
        )
        for change in withdrawn:
            ScheduledPlanChange.objects.filter(pk=change.pk).update(status=PlanChangeStatus.CANCELED)
            _audit_withdrawn(change, actor=actor, action="subscription.downgrade_withdrawn", reason=reason)
    return len(withdrawn)


def scheduled_change_schedule(
    *, account: Account, actor, subscription_id: str, from_price: PlanPrice, to_price: PlanPrice, effective_at
) -> ScheduledPlanChange:
    """Schedule a downgrade for the period's end; one already waiting is replaced (and the replacement audited)."""
    with transaction.atomic():
        for previous in ScheduledPlanChange.objects.select_for_update().filter(
            account=account, status=PlanChangeStatus.SCHEDULED
        ):
            ScheduledPlanChange.objects.filter(pk=previous.pk).update(status=PlanChangeStatus.CANCELED)
            _audit_withdrawn(
                previous, actor=actor, action="subscription.downgrade_replaced", reason=f"now {to_price.lookup_key}"
            )
        try:
            with transaction.atomic():
                change = ScheduledPlanChange.objects.create(
                    account=account,
                    stripe_subscription_id=subscription_id,
                    from_price=from_price,
                    to_price=to_price,
                    effective_at=effective_at,
                    requested_by=actor,
                )
        except IntegrityError:
            raise Conflict("Another change was just scheduled; reload and try again.", code="conflict") from None
        audit_record(
            account=account,
            actor=actor,
            action="subscription.downgrade_scheduled",
            target=f"subscription:{subscription_id}",
            before={"price": from_price.lookup_key},
            after={"price": to_price.lookup_key, "effective_at": effective_at.isoformat()},
        )
    return change


def _audit_withdrawn(change: ScheduledPlanChange, *, actor, action: str, reason: str) -> None:
    audit_record(
        account=change.account,
        actor=actor,
        action=action,
        target=f"subscription:{change.stripe_subscription_id}",
        before={"price": change.to_price.lookup_key, "effective_at": change.effective_at.isoformat()},
        reason=reason,
    )


def scheduled_change_key(change: ScheduledPlanChange, *, late: bool) -> str:
    """The Stripe write's idempotency key, in Stripe's terms: the same in every database sharing the account."""
    key = f"scheduled-plan-change:{change.stripe_subscription_id}:{int(change.effective_at.timestamp())}"
    return f"{key}:{change.to_price.stripe_price_id}" + (":late" if late else "")


def _claimable(now: datetime) -> Q:
    return Q(status=PlanChangeStatus.SCHEDULED) & (Q(claimed_at__isnull=True) | Q(claimed_at__lte=now - CLAIM_LEASE))


def scheduled_changes_apply_due(*, now: datetime | None = None, limit: int = 200) -> int:
    """Put due downgrades on their Stripe subscriptions. Safe to run concurrently, again, and after a crash.

    Each change is claimed for a lease (a conditional UPDATE on status and claim); it becomes APPLIED only
    after Stripe has answered (a conditional UPDATE again), so a worker killed in between loses nothing:
    the next run after the lease re-reads the subscription (a write that did reach Stripe is confirmed,
    not repeated) and otherwise repeats the write under the same key. 200 a run keeps one run well inside
    Stripe's write rate limit (two calls a change) and the beat's interval.
    """
    now = now or timezone.now()
    due = list(
        ScheduledPlanChange.objects.filter(_claimable(now), effective_at__lte=now + DOWNGRADE_LEAD)
        .select_related("account", "from_price", "to_price", "to_price__plan")
        .order_by("effective_at")[:limit]
    )
    applied = 0
    for change in due:
        if not ScheduledPlanChange.objects.filter(_claimable(now), pk=change.pk).update(claimed_at=now):
            continue  # another worker holds it
        try:
            outcome = _apply(change, now=now)
        except Exception:
            # The claim is given back at once; the Stripe write is idempotent, so the retry is harmless.
            ScheduledPlanChange.objects.filter(pk=change.pk, claimed_at=now).update(claimed_at=None)
            logger.exception("Scheduled plan change %s failed; will retry", change.pk)
            continue
        status = PlanChangeStatus.CANCELED if outcome == "dropped" else PlanChangeStatus.APPLIED
        confirmed = ScheduledPlanChange.objects.filter(pk=change.pk, status=PlanChangeStatus.SCHEDULED).update(
            status=status, applied_at=now if status == PlanChangeStatus.APPLIED else None
        )
        if not confirmed or outcome == "dropped":
            continue
        subscription_refresh(subscription_id=change.stripe_subscription_id)
        audit_record(
            account=change.account,
            actor=None,
            action="subscription.downgraded_late" if outcome == "late" else "subscription.downgraded",
            reason="found on Stripe after an interrupted run" if outcome == "confirmed" else "",
            target=f"subscription:{change.stripe_subscription_id}",
            before={"price": change.from_price.lookup_key},
            after={
                "price": change.to_price.lookup_key,
                "boundary": change.effective_at.isoformat(),
                "applied_at": now.isoformat(),
            },
        )
        applied += 1
    return applied


def _apply(change: ScheduledPlanChange, *, now: datetime) -> str:
    """Write the change to Stripe; say how: "on_time", "late" (prorated), "confirmed" (already on Stripe), or
    "dropped" (nothing to apply any more)."""
    data = stripe_client().v1.subscriptions.retrieve(change.stripe_subscription_id)
    item = data["items"]["data"][0]
    period_start = datetime.fromtimestamp(item["current_period_start"], tz=UTC)
    late = period_start >= change.effective_at  # Stripe already renewed the subscription on the old price
    price_now = item["price"]["id"]
    if price_now == change.to_price.stripe_price_id:
        return "confirmed"  # an interrupted run's write did reach Stripe: confirm it, never write it twice
    if data["status"] not in APPLICABLE_STATUSES or price_now != change.from_price.stripe_price_id:
        # Canceled meanwhile, or moved to a third price behind our back: applying now would undo that.
        audit_record(
            account=change.account,
            actor=None,
            action="subscription.downgrade_dropped",
            target=f"subscription:{change.stripe_subscription_id}",
            before={"price": change.to_price.lookup_key, "effective_at": change.effective_at.isoformat()},
            reason=f"subscription is {data['status']} on {price_now}",
        )
        return "dropped"
    stripe_client().v1.subscriptions.update(
        change.stripe_subscription_id,
        params={
            "items": [{"id": item["id"], "price": change.to_price.stripe_price_id, "quantity": item["quantity"]}],
            "proration_behavior": "create_prorations" if late else "none",
        },
        options=idempotent(scheduled_change_key(change, late=late)),
    )
    return "late" if late else "on_time"
