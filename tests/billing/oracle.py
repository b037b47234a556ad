"""The independent billing oracle: what every account's Stripe invoices should contain, from first principles.

Written from Stripe's documentation (billing periods on the `billing_cycle_anchor`, prorations "to the second":
`round(price x quantity x remaining / period)`, a credit for unused time on the old price and a charge for the
remaining time on the new one; a new interval resets the cycle: credit plus a full new period) and from the
README's shared rules of the journey (monthly usage periods from the anchor, cut at an anchor move, quotas per
stored period, highest plan held while a period was open, trials never billed, the final period billed).

It is pure: plain data in (catalog terms, the usage events the API accepted, the subscription history as
Stripe's events report it), plain data out (expected lines, differences). It imports nothing of Tollbooth, so
a defect in rating, the ledger or plan changes cannot hide itself by being computed twice the same way.

Where neither Stripe nor the shared rules speak, its decisions are listed in README ("The oracle's own rules"):
0-cent lines are not compared; downgrades and cancellations are not prorated; usage outside a subscription is not
billed; an invoice ops voided still counts; an expired or still-draft renewal bills nothing; fees are expected once
finalizable (`finalize_delay`), overage once rated after its finality window (`rated_through`).
"""

from __future__ import annotations

import calendar
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

PLAN_FEE, PRORATION, OVERAGE, OTHER = "plan_fee", "proration", "overage", "other"
FAR_FUTURE = datetime(9999, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Price:
    id: str
    plan: str
    rank: int
    interval: str  # "month" | "year"
    amount: int  # cents per unit
    currency: str


@dataclass(frozen=True)
class MetricTerms:
    included: int
    unit_price: int  # cents per unit beyond the quota


@dataclass
class Catalog:
    """Prices by Stripe id, and each plan's metered terms in force from a moment on (terms edits append)."""

    prices: dict[str, Price]
    terms: list[tuple[datetime, dict[str, dict[str, MetricTerms]]]] = field(default_factory=list)

    def terms_at(self, plan: str, at: datetime) -> dict[str, MetricTerms]:
        in_force = [snapshot for since, snapshot in self.terms if since <= at] or [self.terms[0][1]]
        return in_force[-1].get(plan, {})


@dataclass(frozen=True)
class UsageEvent:
    metric: str
    quantity: int
    occurred_at: datetime


@dataclass(frozen=True)
class SubscriptionState:
    """One moment of a subscription as Stripe reported it (an event's object, at the event's time)."""

    at: datetime
    subscription: str
    status: str
    price: str
    quantity: int
    period_start: datetime
    period_end: datetime
    trial_end: datetime | None
    ended_at: datetime | None


@dataclass(frozen=True)
class Line:
    kind: str
    start: datetime
    end: datetime
    amount: int
    detail: str = ""

    def key(self) -> tuple:
        return (self.kind, self.start, self.end, self.amount)


@dataclass(frozen=True)
class Difference:
    kind: str
    start: datetime
    end: datetime
    expected: int | None
    actual: int | None
    detail: str

    def __str__(self) -> str:
        expected, actual = (("—" if v is None else f"{v / 100:.2f}") for v in (self.expected, self.actual))
        return (
            f"{self.kind:<9} {self.start:%Y-%m-%d %H:%M:%S} → {self.end:%Y-%m-%d %H:%M:%S}  "
            f"expected {expected}  actual {actual}  {self.detail}"
        )


def _ts(value) -> datetime | None:
    return None if value in (None, 0) else datetime.fromtimestamp(int(value), tz=UTC)


def add_months(moment: datetime, months: int, day: int | None = None) -> datetime:
    """`moment` plus `months` calendar months, on `day` (default its own) clamped to the month's length."""
    index = moment.month - 1 + months
    year, month = moment.year + index // 12, index % 12 + 1
    return moment.replace(year=year, month=month, day=min(day or moment.day, calendar.monthrange(year, month)[1]))


def history_from_events(events: list[dict]) -> dict[str, list[SubscriptionState]]:
    """Stripe's customer.subscription.* events (oldest first) → each customer's subscription states."""
    states: dict[str, list[SubscriptionState]] = defaultdict(list)
    for event in events:
        if not event["type"].startswith("customer.subscription.") or event["type"].endswith("trial_will_end"):
            continue
        sub = event["data"]["object"]
        item = sub["items"]["data"][0]
        price = item["price"]["id"] if isinstance(item["price"], dict) else item["price"]
        start = item.get("current_period_start") or sub.get("current_period_start")
        end = item.get("current_period_end") or sub.get("current_period_end")
        states[sub["customer"]].append(
            SubscriptionState(
                at=_ts(event["created"]),
                subscription=sub["id"],
                status=sub["status"],
                price=price,
                quantity=item.get("quantity") or 1,
                period_start=_ts(start),
                period_end=_ts(end),
                trial_end=_ts(sub.get("trial_end")),
                ended_at=_ts(sub.get("ended_at")) if sub["status"] in ("canceled", "incomplete_expired") else None,
            )
        )
    return dict(states)


def expected_fees(catalog: Catalog, history: list[SubscriptionState], *, as_of: datetime, finalize_delay: timedelta):
    """Plan fees and prorations, subscription by subscription, following Stripe's arithmetic."""
    lines: list[Line] = []
    previous: dict[str, SubscriptionState] = {}
    # A subscription whose first payment never came expired, and Stripe voided its first invoice: no fee.
    expired = {state.subscription for state in history if state.status == "incomplete_expired"}
    # A renewal still a draft when its subscription was canceled is never finalized: that period costs nothing.
    ended = {state.subscription: state.ended_at or state.at for state in history if state.status == "canceled"}
    for state in history:
        before = previous.get(state.subscription)
        previous[state.subscription] = state
        if state.subscription in expired:
            continue
        if state.status == "canceled":
            continue  # no refund, no new period (decision: cancellations are never prorated)
        price = catalog.prices[state.price]
        old = catalog.prices[before.price] if before is not None else None
        # A new interval resets the cycle to now, even at the very second a period began.
        interval_changed = old is not None and old.interval != price.interval
        # A new period: a renewal, or the cycle reset (a new interval, a trial ended now) even at the same second.
        new_period = (
            before is None
            or (state.period_start, state.period_end) != (before.period_start, before.period_end)
            or interval_changed
        )
        if before is not None and before.status not in ("trialing", "canceled", "incomplete_expired", "incomplete"):
            changed = (before.price, before.quantity) != (state.price, state.quantity)
            reset = new_period and (state.period_start != before.period_end or interval_changed)
            if changed and reset and not _is_downgrade(old, price):
                lines += _prorations(old, before, price, state, credit_only=True)
            elif changed and not new_period and _is_prorated(old, price, before, state):
                lines += _prorations(old, before, price, state, credit_only=False)
        if new_period:
            trial = state.status == "trialing" or (state.trial_end is not None and state.period_end <= state.trial_end)
            finalized_at = state.period_start + (finalize_delay if before is not None else timedelta(0))
            if finalized_at <= as_of and not (
                before is not None and ended.get(state.subscription, FAR_FUTURE) < finalized_at
            ):
                amount = 0 if trial else price.amount * state.quantity
                lines.append(
                    Line(PLAN_FEE, state.period_start, state.period_end, amount, f"{price.plan}/{price.interval}")
                )
    return lines


def _is_downgrade(old: Price, new: Price) -> bool:
    return new.rank < old.rank or (new.rank == old.rank and old.interval == "year" and new.interval == "month")


def _is_prorated(old: Price, new: Price, before: SubscriptionState, after: SubscriptionState) -> bool:
    if old.interval != new.interval:
        return True
    if new.rank < old.rank:
        return False  # a downgrade takes effect at the boundary, unprorated
    return new.rank > old.rank or after.quantity != before.quantity or new.amount != old.amount


def _prorations(old: Price, before: SubscriptionState, new: Price, after: SubscriptionState, *, credit_only: bool):
    at, start, end = after.at, before.period_start, before.period_end
    if at >= end:
        return []
    remaining, length = (end - max(at, start)).total_seconds(), (end - start).total_seconds()
    credit = Line(PRORATION, at, end, -prorate(old.amount * before.quantity, remaining, length), f"unused {old.plan}")
    if credit_only:
        return [credit]
    charge = Line(PRORATION, at, end, prorate(new.amount * after.quantity, remaining, length), f"remaining {new.plan}")
    return [credit, charge]


def prorate(amount: int, remaining: float, length: float) -> int:
    """`amount` for `remaining` of `length` seconds, to the cent, halves rounded up (away from zero)."""
    if length <= 0:
        return 0
    remaining, length = int(remaining), int(length)
    return (amount * remaining * 2 + length) // (2 * length)


@dataclass(frozen=True)
class UsagePeriod:
    start: datetime
    end: datetime
    trial: bool
    plans: tuple[tuple[datetime, str], ...]  # (since, plan) held while the period was open


def usage_periods(catalog: Catalog, history: list[SubscriptionState]) -> list[UsagePeriod]:
    """Monthly periods on each anchor, cut where the anchor moves or a subscription ends (shared rules 1, 2, 4)."""
    segments = _anchor_segments(history)
    periods = []
    for seg_start, seg_end, anchor, trial_end, plans in segments:
        cursor = seg_start
        k = _months_before(anchor, seg_start)
        while cursor < seg_end:
            boundary = add_months(anchor, k + 1, anchor.day)
            k += 1
            if boundary <= cursor:
                continue
            end = min(boundary, seg_end)
            opened = [pair for pair in plans if pair[0] <= cursor][-1:] or plans[:1]
            raised = [pair for pair in plans if cursor < pair[0] < end]
            trial = trial_end is not None and end <= trial_end
            periods.append(UsagePeriod(cursor, end, trial, tuple(opened + raised)))
            cursor = end
    return periods


def _months_before(anchor: datetime, moment: datetime) -> int:
    k = 0
    while add_months(anchor, k, anchor.day) > moment:
        k -= 1
    while add_months(anchor, k + 1, anchor.day) <= moment:
        k += 1
    return k


def _anchor_segments(history: list[SubscriptionState]):
    """(start, end, anchor, trial_end, [(since, plan)]) per stretch of one subscription on one anchor.

    One subscription at a time bills usage: a new live one replaces the one before from its first state on,
    and the replaced one's later events (its cancellation, in whichever order the two came) change nothing.
    """
    segments = []
    current = None
    replaced: set[str] = set()
    for state in history:
        if state.subscription in replaced:
            continue
        if current is not None and current["sub"] != state.subscription:
            if state.status in ("canceled", "incomplete_expired", "incomplete"):
                continue  # another subscription that ended or never started: it replaces nothing
            current["end"] = min(current["end"], state.at)
            segments.append(current)
            replaced.add(current["sub"])
            current = None
        if state.status in ("incomplete_expired", "incomplete"):
            continue
        if state.status == "canceled":
            if current is not None:
                current["end"] = min(current["end"], state.ended_at or state.at)
                segments.append(current)
                current = None
            continue
        anchor = state.period_start if state.status != "trialing" else (state.trial_end or state.period_end)
        if current is None:
            current = _segment(state, state.period_start if state.status != "trialing" else state.at, anchor)
        elif _anchor_moved(current["last"], state):
            current["end"] = state.at  # the anchor moved: cut here, new periods from the new anchor
            segments.append(current)
            current = _segment(state, state.at, state.period_start)
        elif current["last"].status == "trialing" and state.status != "trialing":
            current["trial_end"] = min(current["trial_end"] or state.period_start, state.period_start)
        current["plans"].append((state.at, state.price))
        current["last"] = state
    if current is not None:
        segments.append(current)
    return [(s["start"], s["end"], s["anchor"], s["trial_end"], s["plans"]) for s in segments]


def _anchor_moved(last: SubscriptionState, state: SubscriptionState) -> bool:
    """Stripe moved the billing cycle (new interval, trial ended now): not a renewal, not the same period."""
    same_period = (state.period_start, state.period_end) == (last.period_start, last.period_end)
    return not same_period and state.period_start != last.period_end


def _segment(state: SubscriptionState, start: datetime, anchor: datetime) -> dict:
    trial_end = state.trial_end if state.status == "trialing" else None
    return {
        "sub": state.subscription,
        "start": start,
        "end": FAR_FUTURE,
        "anchor": anchor,
        "trial_end": trial_end,
        "plans": [],
        "last": state,
    }


def expected_overage(
    catalog: Catalog, history, events: list[UsageEvent], *, rated_through: datetime, finality: timedelta
) -> list[Line]:
    """Overage per stored period: max(0, used - included) x unit price per metric, on the highest plan held."""
    periods = usage_periods(catalog, history)
    used: dict[int, Counter] = defaultdict(Counter)
    for event in events:
        for index, period in enumerate(periods):
            if period.start <= event.occurred_at < period.end:
                used[index][event.metric] += event.quantity
                break
    lines = []
    for index, counts in sorted(used.items()):
        period = periods[index]
        if period.trial or period.end + finality > rated_through:
            continue
        prices = [(since, catalog.prices[price]) for since, price in period.plans]
        since, top = max(prices, key=lambda pair: (pair[1].rank, -pair[0].timestamp()))
        terms = catalog.terms_at(top.plan, max(since, period.start))
        parts, amount = [], 0
        for metric, quantity in sorted(counts.items()):
            metric_terms = terms.get(metric)
            if metric_terms is None:
                continue
            over = max(0, quantity - metric_terms.included)
            amount += over * metric_terms.unit_price
            parts.append(f"{metric} {quantity}/{metric_terms.included}@{metric_terms.unit_price}")
        lines.append(Line(OVERAGE, period.start, period.end, amount, f"{top.plan}: " + ", ".join(parts)))
    return lines


def actual_lines(invoices: list[dict], *, forgiven: set[str] = frozenset()) -> list[Line]:
    """The lines of Stripe's finalized invoices (paid, open, uncollectible; void ones only if ops voided them)."""
    lines = []
    for invoice in invoices:
        if invoice["status"] not in ("paid", "open", "uncollectible") and invoice["id"] not in forgiven:
            continue
        for line in invoice["lines"]["data"]:
            parent = line.get("parent") or {}
            details = parent.get("subscription_item_details") or parent.get("invoice_item_details") or {}
            period = line.get("period") or {}
            if (line.get("metadata") or {}).get("ledger_entry_id"):
                kind = OVERAGE
            elif details.get("proration") or line.get("proration"):
                kind = PRORATION
            elif parent.get("type") == "subscription_item_details":
                kind = PLAN_FEE
            else:
                kind = OTHER
            lines.append(Line(kind, _ts(period.get("start")), _ts(period.get("end")), line["amount"], invoice["id"]))
    return lines


def compare(expected: list[Line], actual: list[Line]) -> list[Difference]:
    """Expected and actual lines matched by (kind, period, amount); what is left over on either side."""
    remaining = Counter(line.key() for line in actual if line.amount)
    by_key = {line.key(): line for line in actual}
    differences = []
    missing = []
    for line in expected:
        if not line.amount:
            continue
        if remaining[line.key()]:
            remaining[line.key()] -= 1
        else:
            missing.append(line)
    extra = [by_key[key] for key, count in remaining.items() for _ in range(count)]
    for line in missing:
        twin = next((e for e in extra if e.kind == line.kind and e.start == line.start), None)
        if twin is not None:
            extra.remove(twin)
        differences.append(
            Difference(
                line.kind,
                line.start,
                line.end,
                line.amount,
                twin and twin.amount,
                line.detail + (f" | actual period ends {twin.end:%Y-%m-%d %H:%M} on {twin.detail}" if twin else ""),
            )
        )
    differences += [Difference(e.kind, e.start, e.end, None, e.amount, f"unexpected, on {e.detail}") for e in extra]
    return sorted(differences, key=lambda d: (d.start, d.kind))
