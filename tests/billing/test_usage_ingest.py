"""Usage ingestion: exactly once per (account, key), per-event refusals, periods and the finality window."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.db import connection

from billing.models import UsageEvent, UsagePeriod, UsageRollup
from billing.usage.ingest import usage_events_record
from billing.usage.periods import period_bounds
from tests.billing.usage_helpers import PLATFORM_TOKEN, api_key_for, event, platform_post, subscribe
from tests.factories import AccountFactory

ANCHOR = datetime(2026, 1, 31, 12, 0, tzinfo=UTC)
NOW = datetime(2026, 3, 10, 9, 0, tzinfo=UTC)  # inside the period 28 Feb 12:00 - 31 Mar 12:00


@pytest.fixture(autouse=True)
def _platform_token(settings):
    settings.TOLLBOOTH_PLATFORM_TOKEN = PLATFORM_TOKEN


@pytest.fixture
def clock():
    with time_machine.travel(NOW, tick=False) as traveller:
        yield traveller


@pytest.fixture
def shop(owner, clock):
    owner.subscription = subscribe(owner.account, plan="pro", anchor=ANCHOR)
    return owner


def _used(account, metric="tickets") -> int:
    return sum(UsageRollup.objects.filter(period__account=account, metric=metric).values_list("used", flat=True))


def _batch(account, n, prefix="k", **kwargs):
    return [event(f"{prefix}-{i}", at=NOW - timedelta(hours=1), account=account, **kwargs) for i in range(n)]


def test_periods_are_months_from_the_anchor_clamped_like_stripe():
    assert period_bounds(anchor=ANCHOR, at=NOW) == (
        datetime(2026, 2, 28, 12, tzinfo=UTC),
        datetime(2026, 3, 31, 12, tzinfo=UTC),
    )
    assert period_bounds(anchor=ANCHOR, at=datetime(2026, 3, 31, 12, tzinfo=UTC))[0] == datetime(
        2026, 3, 31, 12, tzinfo=UTC
    )
    assert period_bounds(anchor=ANCHOR, at=datetime(2025, 12, 31, 11, tzinfo=UTC)) == (
        datetime(2025, 11, 30, 12, tzinfo=UTC),
        datetime(2025, 12, 31, 12, tzinfo=UTC),
    )


def test_the_same_batch_sent_three_times_is_counted_once(client, shop):
    batch = _batch(shop.account, 50, quantity=2)
    answers = [platform_post(shop.api(), batch) for _ in range(3)]
    assert [a.status_code for a in answers] == [200, 200, 200]
    assert answers[0].json()["counts"] == {"new": 50, "duplicate": 0, "refused": 0}
    assert answers[1].json()["counts"] == answers[2].json()["counts"] == {"new": 0, "duplicate": 50, "refused": 0}
    assert {r["status"] for r in answers[2].json()["results"]} == {"duplicate"}
    assert UsageEvent.objects.filter(account=shop.account).count() == 50
    assert _used(shop.account) == 100


def test_a_key_repeated_inside_one_batch_counts_once(shop):
    batch = [*_batch(shop.account, 2), event("k-0", at=NOW, account=shop.account, quantity=9)]
    outcome = usage_events_record(events=batch, caller_account=None)
    assert [r["status"] for r in outcome.results] == ["new", "new", "duplicate"]
    assert outcome.results[2]["duplicate_of_index"] == 0
    assert _used(shop.account) == 2


@pytest.mark.django_db(transaction=True)
def test_the_same_batch_sent_concurrently_is_counted_once(owner):
    # Real concurrency needs committed data and one connection per thread: no test transaction here.
    with time_machine.travel(NOW, tick=False):
        subscribe(owner.account, plan="pro", anchor=ANCHOR)
        batch = _batch(owner.account, 200, quantity=3)
        start = threading.Barrier(4)
        outcomes, errors = [], []

        def send():
            try:
                start.wait()
                outcomes.append(usage_events_record(events=batch, caller_account=None).counts)
            except Exception as error:  # surfaced below
                errors.append(error)
            finally:
                connection.close()

        threads = [threading.Thread(target=send) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert not errors, errors
    assert sum(c["new"] for c in outcomes) == 200
    assert sum(c["duplicate"] for c in outcomes) == 600
    assert UsageEvent.objects.filter(account=owner.account).count() == 200
    assert _used(owner.account) == 600
    assert UsagePeriod.objects.filter(account=owner.account).count() == 1


def test_one_bad_event_refuses_only_itself_and_names_index_and_field(shop, outsider):
    subscribe(outsider.account, plan="starter", anchor=ANCHOR)
    good = event("good", at=NOW, account=shop.account)
    bad = [
        ({**good, "idempotency_key": "m", "metric": "voice_minutes"}, "metric", "metric_not_in_plan"),
        ({**good, "idempotency_key": "q0", "quantity": 0}, "quantity", "invalid_quantity"),
        ({**good, "idempotency_key": "qn", "quantity": -3}, "quantity", "invalid_quantity"),
        ({**good, "idempotency_key": "qf", "quantity": 1.5}, "quantity", "invalid_quantity"),
        ({**good, "idempotency_key": "qs", "quantity": "2"}, "quantity", "invalid_quantity"),
        (
            {**good, "idempotency_key": "fut", "occurred_at": (NOW + timedelta(hours=1)).isoformat()},
            "occurred_at",
            "occurred_in_future",
        ),
        (
            {**good, "idempotency_key": "naive", "occurred_at": "2026-03-10T08:00:00"},
            "occurred_at",
            "invalid_occurred_at",
        ),
        (
            {**good, "idempotency_key": "old", "occurred_at": "2026-02-20T08:00:00Z"},
            "occurred_at",
            "period_closed",
        ),
        ({k: v for k, v in good.items() if k != "idempotency_key"}, "idempotency_key", "required"),
        ({**good, "idempotency_key": "x" * 300}, "idempotency_key", "invalid_idempotency_key"),
        ({**good, "idempotency_key": "na", "account": 987654}, "account", "unknown_account"),
        # Starter meters tickets but not automated resolutions.
        (
            {**good, "idempotency_key": "st", "account": outsider.account.pk, "metric": "automated_resolutions"},
            "metric",
            "metric_not_in_plan",
        ),
        ({**good, "idempotency_key": "extra", "colour": "red"}, "colour", "unknown_field"),
        ("not an object", None, "invalid_event"),
    ]
    events = [good, *[b[0] for b in bad], event("good-2", at=NOW, account=shop.account, quantity=4)]
    response = platform_post(shop.api(), events)
    assert response.status_code == 207
    body = response.json()
    assert body["counts"] == {"new": 2, "duplicate": 0, "refused": len(bad)}
    for offset, (_event, field, code) in enumerate(bad, start=1):
        result = body["results"][offset]
        assert result["index"] == offset
        assert (result["status"], result["error"]["code"], result["error"]["field"]) == ("refused", code, field)
        assert result["error"]["message"]
        assert f"events[{offset}].{field or 'event'}" in body["error"]["fields"]
    assert _used(shop.account) == 5


def test_a_batch_of_1001_and_malformed_json_are_refused_whole(shop):
    response = platform_post(shop.api(), _batch(shop.account, 1001))
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "batch_too_large" and "events" in error["fields"]
    broken = shop.api().post(
        "/api/v1/usage-events",
        data='{"events": [',
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {PLATFORM_TOKEN}",
    )
    assert broken.status_code == 400 and broken.json()["error"]["code"] == "parse_error"
    assert not UsageEvent.objects.exists()


def test_a_single_event_without_a_batch_is_accepted(shop):
    response = shop.api().post(
        "/api/v1/usage-events",
        event("single", at=NOW, account=shop.account),
        format="json",
        HTTP_AUTHORIZATION=f"Bearer {PLATFORM_TOKEN}",
    )
    assert response.status_code == 200
    assert response.json()["results"][0]["status"] == "new"


def test_a_late_event_is_taken_in_the_finality_window_and_refused_after_it(shop, clock):
    # The previous period ended 28 Feb 12:00; its window (72 h) ends 3 Mar 12:00.
    late = event("late", at=datetime(2026, 2, 27, 8, tzinfo=UTC), account=shop.account)
    clock.move_to(datetime(2026, 3, 3, 11, 59, tzinfo=UTC))
    assert usage_events_record(events=[late], caller_account=None).counts["new"] == 1
    clock.move_to(datetime(2026, 3, 3, 12, 0, tzinfo=UTC))
    too_late = {**late, "idempotency_key": "too-late"}
    outcome = usage_events_record(events=[too_late], caller_account=None)
    assert outcome.results[0]["error"]["code"] == "period_closed"
    assert "72 hours" in outcome.results[0]["error"]["message"]
    period = UsagePeriod.objects.get(account=shop.account)
    assert (period.start, period.end) == (datetime(2026, 1, 31, 12, tzinfo=UTC), datetime(2026, 2, 28, 12, tzinfo=UTC))
    assert _used(shop.account) == 1


def test_an_event_for_a_rated_period_is_refused_even_inside_the_window(shop, clock):
    from billing.models import UsagePeriodState

    usage_events_record(events=[event("a", at=NOW, account=shop.account)], caller_account=None)
    UsagePeriod.objects.filter(account=shop.account).update(state=UsagePeriodState.RATED)
    outcome = usage_events_record(events=[event("b", at=NOW, account=shop.account)], caller_account=None)
    assert outcome.results[0]["error"]["code"] == "period_closed"
    assert _used(shop.account) == 1


def test_an_account_without_subscription_cannot_report(owner, clock):
    outcome = usage_events_record(events=[event("a", at=NOW, account=owner.account)], caller_account=None)
    assert outcome.results[0]["error"]["code"] == "no_subscription"


# --- who may report ------------------------------------------------------------------------------------


def test_an_api_key_reports_for_its_own_account_only(shop, outsider):
    subscribe(outsider.account, plan="pro", anchor=ANCHOR)
    key = api_key_for(shop)
    api = shop.api()
    api.logout()
    events = [
        event("mine", at=NOW),
        event("theirs", at=NOW, account=outsider.account),
        event("explicit", at=NOW, account=shop.account),
    ]
    response = api.post("/api/v1/usage-events", {"events": events}, format="json", HTTP_AUTHORIZATION=f"Bearer {key}")
    assert response.status_code == 207
    statuses = [(r["status"], r.get("error", {}).get("code")) for r in response.json()["results"]]
    assert statuses == [("new", None), ("refused", "account_not_allowed"), ("new", None)]
    assert _used(shop.account) == 2 and _used(outsider.account) == 0


def test_the_platform_token_reports_for_any_account(shop, outsider):
    subscribe(outsider.account, plan="pro", anchor=ANCHOR)
    response = platform_post(
        shop.api(), [event("a", at=NOW, account=shop.account), event("a", at=NOW, account=outsider.account)]
    )
    assert response.json()["counts"] == {"new": 2, "duplicate": 0, "refused": 0}


def test_the_platform_token_must_name_the_account(shop):
    response = platform_post(shop.api(), [event("a", at=NOW)])
    assert response.status_code == 400
    assert response.json()["results"][0]["error"] == {
        "code": "required",
        "field": "account",
        "message": "Say which account the event is for (its id).",
    }


@pytest.mark.parametrize("persona", ["owner", "agent", "outsider"])
def test_people_signed_in_cannot_report_usage(request, shop, persona):
    who = request.getfixturevalue(persona)
    response = who.api().post(
        "/api/v1/usage-events", {"events": [event("a", at=NOW, account=shop.account)]}, format="json"
    )
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "machine_only"
    assert not UsageEvent.objects.exists()


def test_a_wrong_token_is_refused(shop):
    from rest_framework.test import APIClient

    response = platform_post(APIClient(), [event("a", at=NOW, account=shop.account)], token="not-the-token")
    assert response.status_code == 401
    assert not UsageEvent.objects.exists()


def test_another_accounts_events_stay_apart(shop):
    other = AccountFactory()
    subscribe(other, plan="pro", anchor=ANCHOR)
    usage_events_record(events=[event("same-key", at=NOW, account=shop.account)], caller_account=None)
    outcome = usage_events_record(events=[event("same-key", at=NOW, account=other)], caller_account=None)
    assert outcome.counts["new"] == 1  # keys are per account
