"""Usage periods: their bounds from the subscription's anchor, the finality window, the account's usage context."""

from __future__ import annotations

import calendar
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.core.cache import cache
from django.db import connection, transaction
from django.db.models import Min
from django.utils import timezone
from djstripe import models as djstripe_models

from accounts.models import Account
from billing.models import UsageEvent, UsagePeriod, UsagePeriodState, UsageRollup
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
            start, end = period_bounds(anchor=self.anchor, at=at)
            if self.started_at and start < self.started_at <= at:
                start = self.started_at
            if self.trial_end and start <= at < self.trial_end < end:
                end = self.trial_end
            if self.ended_at and start <= at < self.ended_at < end:
                end = self.ended_at
            self._last = (start, end)
        return self._last

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


def usage_periods_follow_subscription(*, account: Account, now: datetime | None = None) -> int:
    """A subscription changed: cut the open period at an anchor move, raise its plan on an upgrade.

    Called by the subscription sync (which re-reads the subscription first); refreshes the cached context.
    Returns how many periods were cut.
    """
    context = usage_context(account=account)
    cache.set(context_cache_key(account.pk), context, CONTEXT_TTL_SECONDS)
    cut = usage_periods_cut(account=account, context=context)
    usage_period_raise_plan(account=account, context=context, now=now)
    return cut


def usage_periods_cut(*, account: Account, context: UsageContext | None) -> int:
    """Cut the account's open periods at the moment the subscription stopped matching them.

    A period is cut (its end set to the change moment, a conditional UPDATE, so re-running is harmless) when
    its subscription ended, was replaced by another, or moved its anchor (monthly <-> annual, a trial ended
    early): the period its start falls in under the subscription as it is now ends sooner. The cut period
    keeps its events and its full quota; events after the cut open a period from the new anchor.
    """
    if context is None:
        return 0
    cut = 0
    for period in UsagePeriod.objects.filter(account_id=account.pk, state=UsagePeriodState.OPEN):
        moment = _cut_moment(period, context)
        if moment is not None and period.start < moment < period.end:
            cut += _period_cut(period, moment, context)
        elif moment is not None and moment <= period.start and period.subscription_id != context.subscription_id:
            cut += _period_hand_over(period, context)
        elif period.trial and period.subscription_id == context.subscription_id and not context.in_trial(period.start):
            cut += _period_trial_over(period, context)
        elif moment is not None and period.end <= moment and period.subscription_id != context.subscription_id:
            _period_strays_hand_over(period, context)
    return cut


def _period_strays_hand_over(period: UsagePeriod, context: UsageContext) -> None:
    """The replaced subscription's period already ends where the new one starts (cut at its cancellation,
    before the new subscription existed): events it kept from its end on (the cancellation's very second,
    with nowhere else to go then) belong to the new subscription's periods now."""
    if not UsageEvent.objects.filter(period_id=period.pk, occurred_at__gte=period.end).exists():
        return
    with transaction.atomic():
        locked = UsagePeriod.objects.select_for_update().filter(pk=period.pk, state=UsagePeriodState.OPEN).first()
        if locked is not None:
            _events_move_after_cut(locked, locked.end, context)


def _period_trial_over(period: UsagePeriod, context: UsageContext) -> int:
    """A trial period whose trial ended at (or before) its very start (trial ended "now" at signup): no
    moment is left to cut at, so it becomes a paid period, ending where the anchor says (never past the
    next stored period)."""
    context._last = None
    end = context.period_for(period.start)[1]
    following = (
        UsagePeriod.objects.filter(account_id=period.account_id, start__gte=period.end)
        .order_by("start")
        .values_list("start", flat=True)
        .first()
    )
    end = max(period.end, min(end, following) if following else end)
    return UsagePeriod.objects.filter(pk=period.pk, state=UsagePeriodState.OPEN, trial=True, end=period.end).update(
        trial=False, end=end
    )


def _period_hand_over(period: UsagePeriod, context: UsageContext) -> int:
    """A period of the replaced subscription that starts at or after the new one started (a switch at the
    very boundary, events booked before the sync): it is the new subscription's, on its plan and terms.
    Events after its end by the new anchor move on, as after a cut."""
    with transaction.atomic():
        locked = (
            UsagePeriod.objects.select_for_update()
            .filter(pk=period.pk, state=UsagePeriodState.OPEN, subscription_id=period.subscription_id)
            .first()
        )
        if locked is None:
            return 0
        context._last = None
        end = min(context.period_for(period.start)[1], period.end)
        UsagePeriod.objects.filter(pk=period.pk).update(
            subscription_id=context.subscription_id,
            plan_price=context.plan_price,
            terms=context.terms(),
            trial=context.in_trial(period.start),
            end=end,
        )
        if end < period.end:
            _events_move_after_cut(locked, end, context)
    return 1


def _period_cut(period: UsagePeriod, moment: datetime, context: UsageContext) -> int:
    """Cut one period at `moment` and move its events from `moment` on to the periods that contain them.

    Events that occurred after the change but were booked before the sync cut the period (ingestion
    went by the context it had) belong to the new period. All in one transaction with the period row
    locked FOR UPDATE: ingestion holds it FOR SHARE while it books, so no event slips in between.
    """
    with transaction.atomic():
        locked = (
            UsagePeriod.objects.select_for_update()
            .filter(pk=period.pk, state=UsagePeriodState.OPEN, end=period.end)
            .first()
        )
        if locked is None:
            return 0  # rated, or cut by a concurrent sync meanwhile
        UsagePeriod.objects.filter(pk=period.pk).update(end=moment)
        _events_move_after_cut(locked, moment, context)
    return 1


def _events_move_after_cut(period: UsagePeriod, moment: datetime, context: UsageContext) -> None:
    """Create the periods the cut period's events at or after `moment` fall in (as ingestion would) and
    move the events there, with their rollup units. Events outside the new context (after a canceled
    subscription's end) stay where they were booked: counted on the final period, never lost."""
    wanted = []
    events = UsageEvent.objects.filter(period_id=period.pk)
    at = events.filter(occurred_at__gte=moment).aggregate(first=Min("occurred_at"))["first"]
    while at is not None:
        if (context.started_at and at < context.started_at) or (context.ended_at and at >= context.ended_at):
            break
        context._last = None
        start, end = context.period_for(at)
        wanted.append((period.account_id, at, start, end))
        at = events.filter(occurred_at__gte=end).aggregate(first=Min("occurred_at"))["first"]
    if not wanted:
        return
    usage_periods_create(wanted=wanted, contexts={period.account_id: context}, now=timezone.now())
    with connection.cursor() as cursor:
        cursor.execute(
            _MOVE_SQL.format(
                period=UsagePeriod._meta.db_table, event=UsageEvent._meta.db_table, rollup=UsageRollup._meta.db_table
            ),
            {"account": period.account_id, "old": period.pk, "moment": moment, "now": timezone.now()},
        )


# The targets are the account's open periods from the cut on (locked FOR UPDATE, in id order, like
# ingestion's FOR SHARE); each moved event's units leave the cut period's rollup and join its target's.
_MOVE_SQL = """
WITH target AS (
    SELECT id, start, "end" FROM {period}
    WHERE account_id = %(account)s AND start >= %(moment)s AND state = 'open'
    ORDER BY id FOR UPDATE
), moved AS (
    UPDATE {event} e SET period_id = t.id FROM target t
    WHERE e.period_id = %(old)s AND e.occurred_at >= %(moment)s AND t.start <= e.occurred_at AND e.occurred_at < t."end"
    RETURNING e.period_id, e.metric, e.quantity
), sums AS (
    SELECT period_id, metric, sum(quantity) AS units FROM moved GROUP BY period_id, metric
), added AS (
    INSERT INTO {rollup} (period_id, metric, used, updated_at)
    SELECT period_id, metric, units, %(now)s FROM sums ORDER BY period_id, metric
    ON CONFLICT (period_id, metric) DO UPDATE SET used = {rollup}.used + excluded.used, updated_at = excluded.updated_at
)
UPDATE {rollup} r SET used = r.used - s.units, updated_at = %(now)s
FROM (SELECT metric, sum(units) AS units FROM sums GROUP BY metric) s
WHERE r.period_id = %(old)s AND r.metric = s.metric
"""


def _cut_moment(period: UsagePeriod, context: UsageContext) -> datetime | None:
    if period.subscription_id != context.subscription_id:
        return context.started_at  # a new subscription replaced the period's
    if context.ended_at and context.ended_at < period.end:
        return context.ended_at
    # An anchor move (monthly <-> annual, a trial ended early) puts the new anchor at the moment of the change:
    # only the period that contains it is cut. A period that ended before it (closed, awaiting its finality
    # window) keeps its bounds; the grid under the new anchor starts at the anchor, not before it.
    anchor = context.anchor
    return anchor if period.start < anchor < period.end else None


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
    UsagePeriod.objects.bulk_create(
        [
            UsagePeriod(
                account_id=account_id,
                start=start,
                end=end,
                subscription_id=contexts[account_id].subscription_id,
                plan_price=contexts[account_id].plan_price,
                terms=contexts[account_id].terms(),
                trial=in_trial,
                created_at=now,
            )
            for (account_id, start), (end, in_trial) in sorted(bounds.items())
        ],
        ignore_conflicts=True,
    )
