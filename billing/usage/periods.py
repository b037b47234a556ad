"""Usage periods: their bounds from the subscription's anchor, the finality window, the account's usage context."""

from __future__ import annotations

import calendar
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.core.cache import cache
from django.utils import timezone
from djstripe import models as djstripe_models

from accounts.models import Account
from billing.models import (
    PlanChangeStatus,
    ScheduledPlanChange,
    UsagePeriod,
    UsagePeriodState,
)
from billing.stripe.objects import stripe_id, stripe_time
from billing.subscriptions.selectors import LIVE_STATUSES
from billing.usage.rating import metered_terms
from plans.models import Entitlement, EntitlementKind, PlanPrice
from plans.selectors import plan_price_by_stripe_id


def finality_window() -> timedelta:
    return timedelta(hours=settings.TOLLBOOTH_USAGE_FINALITY_HOURS)


def add_months(moment: datetime, months: int) -> datetime:
    """`moment` plus whole months, on its day of month clamped to the target month's length (as Stripe)."""
    index = moment.month - 1 + months
    year, month = moment.year + index // 12, index % 12 + 1
    return moment.replace(year=year, month=month, day=min(moment.day, calendar.monthrange(year, month)[1]))


def period_bounds(*, anchor: datetime, at: datetime) -> tuple[datetime, datetime]:
    """The monthly period [start, end) containing `at`, counted from the billing cycle anchor.

    Boundaries are always computed from the anchor (never from the previous boundary), so a 31st anchor
    comes back to the 31st after February.
    """
    k = (at.year - anchor.year) * 12 + (at.month - anchor.month)
    while add_months(anchor, k) > at:
        k -= 1
    while add_months(anchor, k + 1) <= at:
        k += 1
    return add_months(anchor, k), add_months(anchor, k + 1)


@dataclass
class UsageContext:
    """What ingestion and the usage page need to know about an account's subscription."""

    account_id: int
    subscription_id: str
    status: str
    anchor: datetime
    started_at: datetime | None
    ended_at: datetime | None
    plan_price: PlanPrice
    metered: dict[str, Entitlement] = field(default_factory=dict)
    trial_end: datetime | None = None
    _last: tuple[datetime, datetime] | None = None

    def period_for(self, at: datetime) -> tuple[datetime, datetime]:
        """The period containing `at` by this subscription alone: from the anchor, clipped to the
        subscription's start, its trial's end and its end. Stored periods clip it further (ingest)."""
        # Most events of a batch fall in the same period: reuse the last answer when it fits.
        if self._last is None or not (self._last[0] <= at < self._last[1]):
            start, end = period_bounds(anchor=self._anchor_at(at), at=at)
            if at < self.anchor < end:
                end = self.anchor  # the anchor moved there: the period it was in ends at the move
            if self.started_at and start < self.started_at <= at:
                start = self.started_at
            if self.trial_end and start <= at < self.trial_end < end:
                end = self.trial_end
            if self.trial_end and start < self.trial_end <= at:
                # The trial's end is a boundary even when the anchor moved since (a change to annual after the
                # trial): a late event from before the move is in the period that began when the trial ended.
                start = self.trial_end
            if self.ended_at and start <= at < self.ended_at < end:
                end = self.ended_at
            self._last = (start, end)
        return self._last

    def _anchor_at(self, at: datetime) -> datetime:
        """The anchor the subscription's grid had at `at`. A move (monthly <-> annual: Stripe puts the anchor at the
        change) leaves no trace of the grid before it but the subscription's start, or its trial's end: a late
        event from before the move belongs to the period of that grid, cut at the move, not to one counted
        backwards from the new anchor (that was a month ending at the move, starting days before the real one)."""
        moved = self.started_at is not None and self.started_at < self.anchor != self.trial_end
        if not moved or at >= self.anchor:
            return self.anchor
        if self.trial_end and self.trial_end <= at:
            return self.trial_end
        return self.started_at

    def in_trial(self, at: datetime) -> bool:
        return bool(self.trial_end and at < self.trial_end)

    def terms(self) -> dict:
        return metered_terms(plan_price=self.plan_price, metered=self.metered)


# Ingestion reads the context from the cache: three queries per account per batch otherwise, which at
# batches of 100 cost more than the insert. A subscription change refreshes it (usage_period_raise_plan,
# called by the webhook handler); the TTL bounds staleness if that refresh is missed.
CONTEXT_TTL_SECONDS = 60


def context_cache_key(account_id: int) -> str:
    return f"usage:context:{account_id}"


def usage_context_cached(*, account: Account) -> UsageContext | None:
    context = cache.get(context_cache_key(account.pk), MISSING)
    if context is MISSING:
        context = usage_context(account=account)
        cache.set(context_cache_key(account.pk), context, CONTEXT_TTL_SECONDS)
        if context is not None:
            # First sight of this plan in a while: make sure the current period is rated on it if bigger.
            usage_period_raise_plan(account=account, context=context)
    return context


MISSING = object()


def usage_context(*, account: Account) -> UsageContext | None:
    """The account's subscription as usage sees it, or None without a subscription on a known plan."""
    subscriptions = list(
        djstripe_models.Subscription.objects.filter(customer__subscriber_id=account.pk)
        .order_by("-created")
        .only("id", "stripe_data")
    )
    subscription = next(
        (s for status in LIVE_STATUSES for s in subscriptions if s.stripe_data.get("status") == status),
        subscriptions[0] if subscriptions else None,
    )
    if subscription is None:
        return None
    data = subscription.stripe_data
    items = (data.get("items") or {}).get("data") or []
    first = items[0] if items else {}
    price = first.get("price")
    price_id = stripe_id(price)
    plan_price = plan_price_by_stripe_id(stripe_price_id=price_id) if price_id else None
    anchor = stripe_time(data.get("billing_cycle_anchor")) or stripe_time(data.get("start_date"))
    if plan_price is None or anchor is None:
        return None
    metered = {
        e.feature: e for e in Entitlement.objects.filter(plan_id=plan_price.plan_id, kind=EntitlementKind.METERED)
    }
    return UsageContext(
        account_id=account.pk,
        subscription_id=subscription.id,
        status=data.get("status") or "",
        anchor=anchor,
        started_at=stripe_time(data.get("start_date")),
        ended_at=stripe_time(data.get("ended_at")),
        plan_price=plan_price,
        metered=metered,
        trial_end=stripe_time(data.get("trial_end")),
    )


def usage_period_raise_plan(*, account: Account, context: UsageContext | None = None, now: datetime | None = None):
    """Rate the account's current period on its current plan if that plan ranks higher (an upgrade).

    Called when a subscription changes (which also refreshes the cached context) and by ingestion when
    it reads a context afresh. A conditional UPDATE, so it is idempotent and
    never lowers a plan: a downgrade takes effect with the next period.
    """
    if context is None:
        context = usage_context(account=account)
        cache.set(context_cache_key(account.pk), context, CONTEXT_TTL_SECONDS)
    if context is None:
        return 0
    now = now or timezone.now()
    # The stored open period containing now, on this subscription (a replaced one's final period keeps its plan).
    return UsagePeriod.objects.filter(
        account_id=account.pk,
        subscription_id=context.subscription_id,
        start__lte=now,
        end__gt=now,
        state=UsagePeriodState.OPEN,
        plan_price__plan__rank__lt=context.plan_price.plan.rank,
    ).update(plan_price=context.plan_price, terms=context.terms())


def usage_periods_create(
    *, wanted: list[tuple[int, datetime, datetime, datetime]], contexts: dict[int, UsageContext], now: datetime
) -> None:
    """Create the periods that events (account, occurred_at, start, end by the subscription) fall in.

    Bounds come from the subscription (anchor, start, trial end, end), clipped to the stored periods
    around the event: after a cut, the next period starts where the cut one ends, never overlapping it.
    A period a concurrent batch created first is left as it is (the exclusion constraint, DO NOTHING).
    """
    stored: dict[int, list[tuple[datetime, datetime]]] = {}
    for account_id, start, end in UsagePeriod.objects.filter(
        account_id__in={w[0] for w in wanted},
        start__lt=max(w[3] for w in wanted),
        end__gt=min(w[2] for w in wanted),
    ).values_list("account_id", "start", "end"):
        stored.setdefault(account_id, []).append((start, end))
    bounds: dict[tuple[int, datetime], tuple[datetime, bool]] = {}
    for account_id, occurred_at, start, end in wanted:
        for other_start, other_end in stored.get(account_id, ()):
            if start < other_end <= occurred_at:
                start = other_end
            if occurred_at < other_start < end:
                end = other_start
        bounds.setdefault((account_id, start), (end, contexts[account_id].in_trial(occurred_at)))
    periods = []
    for (account_id, start), (end, in_trial) in sorted(bounds.items()):
        plan_price, terms = _price_in_force(contexts[account_id], end)
        periods.append(
            UsagePeriod(
                account_id=account_id,
                start=start,
                end=end,
                subscription_id=contexts[account_id].subscription_id,
                plan_price=plan_price,
                terms=terms,
                trial=in_trial,
                created_at=now,
            )
        )
    UsagePeriod.objects.bulk_create(periods, ignore_conflicts=True)


def _price_in_force(context: UsageContext, end: datetime) -> tuple[PlanPrice, dict]:
    """The price (and its terms) a period ending at `end` is rated on when it is created now.

    The subscription's price, unless that price is a downgrade put on Stripe ahead of its boundary (in the
    period's last half hour, billing/subscriptions/scheduled.py) taking effect at or after `end`: the period
    was paid for on the price the downgrade replaced (a late event can create it after the boundary)."""
    change = (
        ScheduledPlanChange.objects.filter(
            stripe_subscription_id=context.subscription_id,
            status=PlanChangeStatus.APPLIED,
            to_price_id=context.plan_price.pk,
            effective_at__gte=end,
        )
        .select_related("from_price")
        .order_by("effective_at")
        .first()
    )
    if change is None:
        return context.plan_price, context.terms()
    metered = {
        e.feature: e
        for e in Entitlement.objects.filter(plan_id=change.from_price.plan_id, kind=EntitlementKind.METERED)
    }
    return change.from_price, metered_terms(plan_price=change.from_price, metered=metered)
