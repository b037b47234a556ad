"""Usage periods follow their subscription: cut where it stopped matching them (an anchor move, its end, a
replacement), handed over to a replacing subscription, and their events moved to the periods that contain them."""

from __future__ import annotations

from datetime import datetime

from django.core.cache import cache
from django.db import connection, transaction
from django.db.models import Min
from django.utils import timezone

from accounts.models import Account
from billing.models import UsageEvent, UsagePeriod, UsagePeriodState, UsageRollup
from billing.usage.periods import (
    CONTEXT_TTL_SECONDS,
    UsageContext,
    context_cache_key,
    usage_context,
    usage_period_raise_plan,
    usage_periods_create,
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
