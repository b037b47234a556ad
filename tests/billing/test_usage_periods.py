"""The period a moment falls in, by the subscription alone (`UsageContext.period_for`): Stripe's monthly grid from
the billing cycle anchor, clipped by the start, the trial's end, the end — and, before an anchor move, the grid
the subscription had then, cut at the move. Expected bounds are written from Stripe's rules, not computed."""

from __future__ import annotations

from datetime import UTC, datetime

from billing.usage.periods import UsageContext


def _at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def _context(*, started: str, anchor: str, trial_end: str | None = None, ended: str | None = None) -> UsageContext:
    return UsageContext(
        account_id=1,
        subscription_id="sub_test",
        status="active",
        anchor=_at(anchor),
        started_at=_at(started),
        ended_at=_at(ended) if ended else None,
        plan_price=None,
        trial_end=_at(trial_end) if trial_end else None,
    )


def test_a_monthly_subscription_counts_its_months_from_its_start():
    context = _context(started="2027-03-15 07:36:51", anchor="2027-03-15 07:36:51")
    assert context.period_for(_at("2027-04-20 00:00")) == (_at("2027-04-15 07:36:51"), _at("2027-05-15 07:36:51"))


def test_a_late_event_from_before_a_move_to_annual_is_in_the_month_of_the_old_grid_cut_at_the_move():
    """Monthly from 03-15, annual from 04-24 (Stripe puts the anchor at the change): usage of 04-20 reported after
    the move is in 04-15 → 04-24 (the 300-merchant bench booked it to 03-24 → 04-24, counted back from the new
    anchor), and usage after the move in the new anchor's months."""
    context = _context(started="2027-03-15 07:36:51", anchor="2027-04-24 19:34:27")
    assert context.period_for(_at("2027-04-20 00:00")) == (_at("2027-04-15 07:36:51"), _at("2027-04-24 19:34:27"))
    assert context.period_for(_at("2027-03-20 00:00")) == (_at("2027-03-15 07:36:51"), _at("2027-04-15 07:36:51"))
    assert context.period_for(_at("2027-04-25 00:00")) == (_at("2027-04-24 19:34:27"), _at("2027-05-24 19:34:27"))


def test_before_a_move_after_a_trial_the_grid_counts_from_the_trials_end():
    """A trial to 01-18, then a month and more of paid months, then annual from 02-20: 01-25 is in 01-18 → 02-18,
    02-19 in 02-18 → 02-20 (the move), the trial's days in the trial period."""
    context = _context(started="2027-01-04 10:00", anchor="2027-02-20 12:00", trial_end="2027-01-18 10:00")
    assert context.period_for(_at("2027-01-25 00:00")) == (_at("2027-01-18 10:00"), _at("2027-02-18 10:00"))
    assert context.period_for(_at("2027-02-19 00:00")) == (_at("2027-02-18 10:00"), _at("2027-02-20 12:00"))
    assert context.period_for(_at("2027-01-10 00:00")) == (_at("2027-01-04 10:00"), _at("2027-01-18 10:00"))


def test_a_trialing_subscription_is_not_a_move():
    """Stripe anchors a trialing subscription at the trial's end: the trial is one period up to it."""
    context = _context(started="2027-01-04 10:00", anchor="2027-01-18 10:00", trial_end="2027-01-18 10:00")
    assert context.period_for(_at("2027-01-10 00:00")) == (_at("2027-01-04 10:00"), _at("2027-01-18 10:00"))
    assert context.period_for(_at("2027-02-01 00:00")) == (_at("2027-01-18 10:00"), _at("2027-02-18 10:00"))
