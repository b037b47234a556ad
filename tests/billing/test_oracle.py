"""The oracle on small worked cases: Stripe's documented prorations and the README's shared rules of the journey.

No sandbox, no database: the oracle is pure, and each case is small enough to check by hand.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tests.billing.oracle import (
    OVERAGE,
    PLAN_FEE,
    PRORATION,
    Catalog,
    Line,
    MetricTerms,
    Price,
    SubscriptionState,
    UsageEvent,
    actual_lines,
    compare,
    expected_fees,
    expected_overage,
    history_from_events,
    prorate,
    usage_periods,
)

HOUR = timedelta(hours=1)
FINALITY = timedelta(hours=72)
CATALOG = Catalog(
    prices={
        "price_small": Price("price_small", "small", 10, "month", 1000, "usd"),
        "price_big": Price("price_big", "big", 20, "month", 2000, "usd"),
        "price_small_year": Price("price_small_year", "small", 10, "year", 10000, "usd"),
    },
    terms=[
        (
            datetime(2000, 1, 1, tzinfo=UTC),
            {
                "small": {"tickets": MetricTerms(included=50, unit_price=40)},
                "big": {"tickets": MetricTerms(included=300, unit_price=30)},
            },
        )
    ],
)


def at(month: int, day: int, hour: int = 0) -> datetime:
    return datetime(2026, month, day, hour, tzinfo=UTC)


def state(when, status="active", price="price_small", start=None, end=None, trial_end=None, ended_at=None, qty=1):
    return SubscriptionState(when, "sub_1", status, price, qty, start, end, trial_end, ended_at)


def fees(history, as_of=None):
    as_of = as_of or at(12, 31)
    return [
        (line.kind, line.start, line.amount)
        for line in expected_fees(CATALOG, history, as_of=as_of, finalize_delay=HOUR)
    ]


def test_upgrade_halfway_credits_unused_time_and_charges_remaining_time_as_stripe_documents():
    # Stripe's example: 10 USD -> 20 USD halfway through the period: -5 USD unused, +10 USD remaining.
    history = [
        state(at(4, 1), start=at(4, 1), end=at(5, 1)),
        state(at(4, 16), price="price_big", start=at(4, 1), end=at(5, 1)),
        state(at(5, 1), price="price_big", start=at(5, 1), end=at(6, 1)),
    ]
    assert fees(history) == [
        (PLAN_FEE, at(4, 1), 1000),
        (PRORATION, at(4, 16), -500),
        (PRORATION, at(4, 16), 1000),
        (PLAN_FEE, at(5, 1), 2000),
    ]


def test_prorations_are_to_the_second_and_round_half_up():
    assert prorate(1000, 1, 3) == 333
    assert prorate(1000, 1, 8) == 125
    assert prorate(999, 1, 2) == 500  # 499.5 -> 500
    assert prorate(100000, 86399, 30 * 86400) == 3333  # one second short of a day: 3333.29...


def test_a_downgrade_at_the_boundary_is_not_prorated_and_the_next_period_costs_the_lower_price():
    history = [
        state(at(4, 1), price="price_big", start=at(4, 1), end=at(5, 1)),
        state(at(4, 30, 23), price="price_small", start=at(4, 1), end=at(5, 1)),
        state(at(5, 1), price="price_small", start=at(5, 1), end=at(6, 1)),
    ]
    assert fees(history) == [(PLAN_FEE, at(4, 1), 2000), (PLAN_FEE, at(5, 1), 1000)]


def test_a_trial_costs_nothing_and_its_usage_is_never_billed():
    history = [
        state(at(4, 1), status="trialing", start=at(4, 1), end=at(4, 15), trial_end=at(4, 15)),
        state(at(4, 15), start=at(4, 15), end=at(5, 15), trial_end=at(4, 15)),
    ]
    assert fees(history) == [(PLAN_FEE, at(4, 1), 0), (PLAN_FEE, at(4, 15), 1000)]
    events = [UsageEvent("tickets", 500, at(4, 10)), UsageEvent("tickets", 70, at(4, 20))]
    overage = expected_overage(CATALOG, history, events, rated_through=at(12, 1), finality=FINALITY)
    assert [(line.start, line.end, line.amount) for line in overage] == [(at(4, 15), at(5, 15), 20 * 40)]


def test_the_renewal_fee_is_expected_only_once_its_invoice_is_finalized():
    history = [state(at(4, 1), start=at(4, 1), end=at(5, 1)), state(at(5, 1), start=at(5, 1), end=at(6, 1))]
    assert fees(history, as_of=at(5, 1) + HOUR / 2) == [(PLAN_FEE, at(4, 1), 1000)]


def test_a_mid_period_upgrade_rates_the_whole_period_on_the_higher_plan():
    history = [
        state(at(4, 1), start=at(4, 1), end=at(5, 1)),
        state(at(4, 20), price="price_big", start=at(4, 1), end=at(5, 1)),
    ]
    events = [UsageEvent("tickets", 350, at(4, 5))]  # over small's 50 (300 x 40c), over big's 300 (50 x 30c)
    overage = expected_overage(CATALOG, history, events, rated_through=at(12, 1), finality=FINALITY)
    assert [line.amount for line in overage] == [50 * 30]


def test_a_cancellation_cuts_the_period_which_keeps_its_full_quota_and_is_billed():
    history = [
        state(at(4, 1), start=at(4, 1), end=at(5, 1)),
        state(at(4, 10), status="canceled", start=at(4, 1), end=at(5, 1), ended_at=at(4, 10)),
    ]
    events = [UsageEvent("tickets", 60, at(4, 2)), UsageEvent("tickets", 5, at(4, 11))]  # the second: no period
    overage = expected_overage(CATALOG, history, events, rated_through=at(12, 1), finality=FINALITY)
    assert [(line.start, line.end, line.amount) for line in overage] == [(at(4, 1), at(4, 10), 10 * 40)]
    assert fees(history) == [(PLAN_FEE, at(4, 1), 1000)]  # no refund for the unused days


def test_monthly_to_annual_credits_unused_time_charges_a_full_year_and_moves_the_usage_anchor():
    history = [
        state(at(4, 1), start=at(4, 1), end=at(5, 1)),
        state(at(4, 16), price="price_small_year", start=at(4, 16), end=datetime(2027, 4, 16, tzinfo=UTC)),
    ]
    assert fees(history) == [
        (PLAN_FEE, at(4, 1), 1000),
        (PRORATION, at(4, 16), -500),
        (PLAN_FEE, at(4, 16), 10000),
    ]
    periods = [(p.start, p.end) for p in usage_periods(CATALOG, history)[:3]]
    assert periods == [(at(4, 1), at(4, 16)), (at(4, 16), at(5, 16)), (at(5, 16), at(6, 16))]


def test_overage_waits_for_the_finality_window_and_the_rating_after_it():
    history = [state(at(4, 1), start=at(4, 1), end=at(5, 1))]
    events = [UsageEvent("tickets", 51, at(4, 30))]
    assert expected_overage(CATALOG, history, events, rated_through=at(5, 3), finality=FINALITY) == []
    assert len(expected_overage(CATALOG, history, events, rated_through=at(5, 4), finality=FINALITY)) == 1


def test_an_overage_that_never_reaches_an_invoice_is_a_difference():
    expected = [Line(PLAN_FEE, at(4, 1), at(5, 1), 1000), Line(OVERAGE, at(4, 1), at(5, 1), 400)]
    invoices = [_invoice("in_1", "paid", [_fee_line(1000, at(4, 1), at(5, 1))])]
    [difference] = compare(expected, actual_lines(invoices))
    assert (difference.kind, difference.expected, difference.actual) == (OVERAGE, 400, None)


def test_a_line_billed_twice_or_for_another_amount_is_a_difference():
    expected = [Line(OVERAGE, at(4, 1), at(5, 1), 400)]
    invoices = [
        _invoice("in_1", "paid", [_overage_line(400, at(4, 1), at(5, 1))]),
        _invoice("in_2", "open", [_overage_line(440, at(4, 1), at(5, 1))]),
        _invoice("in_3", "void", [_overage_line(999, at(4, 1), at(5, 1))]),  # void: not billed
    ]
    [difference] = compare(expected, actual_lines(invoices))
    assert (difference.expected, difference.actual) == (None, 440)


def test_an_invoice_ops_voided_still_counts_as_billed():
    expected = [Line(PLAN_FEE, at(4, 1), at(5, 1), 1000)]
    invoices = [_invoice("in_1", "void", [_fee_line(1000, at(4, 1), at(5, 1))])]
    assert len(compare(expected, actual_lines(invoices))) == 1
    assert compare(expected, actual_lines(invoices, forgiven={"in_1"})) == []


def test_history_is_read_from_stripes_subscription_events():
    sub = {
        "id": "sub_1",
        "customer": "cus_1",
        "status": "active",
        "trial_end": None,
        "items": {
            "data": [
                {"price": {"id": "price_small"}, "quantity": 2, "current_period_start": 1, "current_period_end": 2}
            ]
        },
    }
    events = [{"type": "customer.subscription.created", "created": 1, "data": {"object": sub}}]
    [only] = history_from_events(events)["cus_1"]
    assert (only.price, only.quantity, only.status) == ("price_small", 2, "active")


def _invoice(invoice_id, status, lines):
    return {"id": invoice_id, "status": status, "lines": {"data": lines}}


def _fee_line(amount, start, end):
    return {
        "amount": amount,
        "period": {"start": int(start.timestamp()), "end": int(end.timestamp())},
        "parent": {"type": "subscription_item_details", "subscription_item_details": {"proration": False}},
    }


def _overage_line(amount, start, end):
    return {
        "amount": amount,
        "period": {"start": int(start.timestamp()), "end": int(end.timestamp())},
        "metadata": {"ledger_entry_id": "1"},
        "parent": {"type": "invoice_item_details", "invoice_item_details": {"proration": False}},
    }


def test_a_new_interval_at_the_very_second_a_period_began_still_resets_the_cycle():
    history = [
        state(at(4, 1), start=at(4, 1), end=at(5, 1)),
        state(at(4, 1), price="price_small_year", start=at(4, 1), end=datetime(2027, 4, 1, tzinfo=UTC)),
    ]
    assert fees(history) == [(PLAN_FEE, at(4, 1), 1000), (PRORATION, at(4, 1), -1000), (PLAN_FEE, at(4, 1), 10000)]


def test_a_subscription_whose_first_payment_never_came_bills_nothing():
    history = [
        state(at(4, 1), status="incomplete", start=at(4, 1), end=at(5, 1)),
        state(at(4, 2), status="incomplete_expired", start=at(4, 1), end=at(5, 1), ended_at=at(4, 2)),
    ]
    assert fees(history) == []
    events = [UsageEvent("tickets", 500, at(4, 1, 12))]
    assert expected_overage(CATALOG, history, events, rated_through=at(12, 1), finality=FINALITY) == []


def test_the_oracle_imports_nothing_of_the_product_it_checks():
    import ast
    from pathlib import Path

    import tests.billing.oracle as module

    tree = ast.parse(Path(module.__file__).read_text())
    imported = {
        alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names
    }
    imported |= {
        node.module.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module
    }
    assert imported <= {"__future__", "calendar", "collections", "dataclasses", "datetime"}, imported


def test_a_trial_ended_at_the_second_it_began_bills_a_full_period_from_now_on_a_new_anchor():
    history = [
        state(at(4, 1), status="trialing", start=at(4, 1), end=at(4, 15), trial_end=at(4, 15)),
        state(at(4, 1), start=at(4, 1), end=at(5, 1), trial_end=at(4, 1)),
    ]
    assert fees(history) == [(PLAN_FEE, at(4, 1), 0), (PLAN_FEE, at(4, 1), 1000)]
    assert [(p.start, p.end) for p in usage_periods(CATALOG, history)[:2]] == [
        (at(4, 1), at(5, 1)),
        (at(5, 1), at(6, 1)),
    ]


def test_a_subscription_canceled_while_its_renewal_is_a_draft_owes_no_fee_for_the_new_period():
    history = [
        state(at(4, 1), start=at(4, 1), end=at(5, 1)),
        state(at(5, 1), start=at(5, 1), end=at(6, 1)),
        state(at(5, 1), status="canceled", start=at(5, 1), end=at(6, 1), ended_at=at(5, 1)),
    ]
    assert fees(history) == [(PLAN_FEE, at(4, 1), 1000)]
