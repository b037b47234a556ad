"""The catalogue's events recorded where the change happens: usage thresholds once per period and metric,
through ingestion; billing's invoice and subscription events through the Stripe events of a real checkout are in
tests/billing/test_stripe_events.py."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import time_machine

from billing.usage.ingest import usage_events_record
from outbox.models import DomainEvent
from tests.billing.usage_helpers import event, subscribe

ANCHOR = datetime(2027, 3, 1, tzinfo=UTC)


def _report(owner, key: str, quantity: int, at: datetime):
    result = usage_events_record(
        events=[event(key, at=at, account=owner.account, quantity=quantity)], caller_account=None, now=at
    )
    assert result.counts["new"] == 1, result.results


def _thresholds(owner):
    return list(
        DomainEvent.objects.filter(type="usage.threshold_reached", account_id=owner.account.pk)
        .order_by("data__period_start", "data__threshold_percent")
        .values_list("data__period_start", "data__threshold_percent", "data__used")
    )


def test_usage_threshold_events_at_80_and_100_percent_once_per_period(owner):
    subscribe(owner.account, plan="pro", anchor=ANCHOR)  # Pro: 2,000 tickets a month included
    day = ANCHOR + timedelta(days=3)
    with time_machine.travel(day, tick=False):
        _report(owner, "a", 1_500, day)  # 75 %
        assert _thresholds(owner) == []
        _report(owner, "b", 100, day)  # 80 %
        _report(owner, "c", 100, day)  # 85 %: 80 % was reached already
        _report(owner, "d", 400, day)  # 105 %
        _report(owner, "e", 50, day)
    first = ANCHOR.isoformat()
    assert _thresholds(owner) == [(first, 80, 1_600), (first, 100, 2_100)]
    next_month = ANCHOR.replace(month=4) + timedelta(days=1)
    with time_machine.travel(next_month, tick=False):
        _report(owner, "f", 2_500, next_month)  # both at once in a new period: each once
    second = ANCHOR.replace(month=4).isoformat()
    assert _thresholds(owner)[2:] == [(second, 80, 2_500), (second, 100, 2_500)]
    assert DomainEvent.objects.get(data__threshold_percent=100, data__period_start=second).data["included"] == 2_000
