"""Reads of usage: per metric, the current period's summary and projection, past periods."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db.models import QuerySet, Sum
from django.utils import timezone

from accounts.models import Account
from billing.models import LedgerEntry, UsageEvent, UsagePeriod, UsagePeriodState
from billing.usage.periods import finality_window, usage_context
from billing.usage.rating import Rating, metered_entitlements, period_terms, usage_rate, usage_rate_terms
from plans.models import Plan, PlanPrice


def usage_by_metric(*, account: Account, since) -> dict[str, int]:
    """Units reported per metric since `since` (by when they occurred)."""
    rows = (
        UsageEvent.objects.filter(account=account, occurred_at__gte=since)
        .values("metric")
        .annotate(total=Sum("quantity"))
    )
    return {row["metric"]: int(row["total"] or 0) for row in rows}


def accounts_with_recent_usage(*, since) -> QuerySet[Account]:
    """Accounts with an open usage period: only they can have reported usage lately. (Events carry no index on
    their time, so the scan goes by account, whose key prefix is indexed.)"""
    ids = UsagePeriod.objects.filter(state=UsagePeriodState.OPEN, end__gte=since).values("account_id")
    return Account.objects.filter(pk__in=ids)


# Projections divide by at least this much elapsed time, so a period's first hours do not promise
# absurd totals.
MIN_ELAPSED_FOR_PROJECTION = timedelta(days=1)


@dataclass(frozen=True)
class UpgradeOption:
    plan_code: str
    plan_name: str
    interval: str
    monthly_fee_cents: int
    projected_overage_cents: int
    projected_total_cents: int
    current_projected_total_cents: int
    saving_cents: int


@dataclass(frozen=True)
class PastPeriod:
    start: datetime
    end: datetime
    state: str
    amount_cents: int | None
    currency: str | None
    ledger_state: str | None
    lines: list


@dataclass(frozen=True)
class UsageSummary:
    plan_code: str
    plan_name: str
    interval: str
    currency: str
    period_start: datetime
    period_end: datetime
    closes_at: datetime
    current: Rating
    projected: Rating
    upgrade: UpgradeOption | None
    past: list[PastPeriod]


def monthly_fee_cents(plan_price: PlanPrice) -> int:
    """A price per usage period (a month): the annual price counts as a twelfth."""
    return plan_price.amount_cents // 12 if plan_price.interval == "year" else plan_price.amount_cents


def usage_summary(*, account: Account, now: datetime | None = None, past_limit: int = 12) -> UsageSummary | None:
    now = now or timezone.now()
    context = usage_context(account=account)
    if context is None:
        return None
    # The stored period containing now (it may have been cut by an anchor move), else the one to come.
    period = (
        UsagePeriod.objects.select_related("plan_price__plan")
        .filter(account=account, start__lte=now, end__gt=now)
        .first()
    )
    start, end = (period.start, period.end) if period else context.period_for(now)
    plan_price = period.plan_price if period else context.plan_price
    used = dict(period.rollups.values_list("metric", "used")) if period else {}
    terms = period_terms(period=period) if period else context.terms()
    trial = period.trial if period else context.in_trial(now)
    elapsed = max(now - start, MIN_ELAPSED_FOR_PROJECTION)
    length = end - start
    projected_used = {metric: -(-units * length // elapsed) for metric, units in used.items()}  # ceiling
    current = usage_rate_terms(terms=terms, used=used, trial=trial)
    projected = usage_rate_terms(terms=terms, used=projected_used, trial=trial)
    return UsageSummary(
        plan_code=plan_price.plan.code,
        plan_name=plan_price.plan.name,
        interval=plan_price.interval,
        currency=plan_price.currency,
        period_start=start,
        period_end=end,
        closes_at=end + finality_window(),
        current=current,
        projected=projected,
        upgrade=_upgrade_option(plan_price, projected_used, projected),
        past=_past_periods(account, limit=past_limit),
    )


def _upgrade_option(plan_price: PlanPrice, projected_used: dict, projected: Rating) -> UpgradeOption | None:
    """The next plan up, when its fee plus its projected overage costs less than staying put."""
    bigger = Plan.objects.filter(rank__gt=plan_price.plan.rank, is_public=True, is_active=True).order_by("rank").first()
    if bigger is None:
        return None
    price = PlanPrice.objects.filter(
        plan=bigger, interval=plan_price.interval, currency=plan_price.currency, is_active=True
    ).first()
    if price is None:
        return None
    theirs = usage_rate(plan_price=price, metered=metered_entitlements(plan_price=price), used=projected_used)
    current_total = monthly_fee_cents(plan_price) + projected.amount_cents
    their_total = monthly_fee_cents(price) + theirs.amount_cents
    if their_total >= current_total:
        return None
    return UpgradeOption(
        plan_code=bigger.code,
        plan_name=bigger.name,
        interval=price.interval,
        monthly_fee_cents=monthly_fee_cents(price),
        projected_overage_cents=theirs.amount_cents,
        projected_total_cents=their_total,
        current_projected_total_cents=current_total,
        saving_cents=current_total - their_total,
    )


def _past_periods(account: Account, *, limit: int) -> list[PastPeriod]:
    periods = list(UsagePeriod.objects.filter(account=account, state=UsagePeriodState.RATED).order_by("-start")[:limit])
    entries = {e.period_id: e for e in LedgerEntry.objects.filter(period__in=periods)}
    past = []
    for period in periods:
        entry = entries.get(period.pk)
        past.append(
            PastPeriod(
                start=period.start,
                end=period.end,
                state=period.state,
                amount_cents=entry.amount_cents if entry else None,
                currency=entry.currency if entry else None,
                ledger_state=entry.state if entry else None,
                lines=entry.lines if entry else [],
            )
        )
    return past
