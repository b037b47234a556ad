"""The card-behaviour primitive later phases charge through (a unit test: no server needed)."""

from __future__ import annotations

import pytest

from sandbox.core.store import Store
from sandbox.payments import cards
from sandbox.resources.payment_methods import create_card_payment_method


def outcome(number: str, **kwargs) -> cards.Outcome:
    store = Store()
    return cards.charge_outcome(store, create_card_payment_method(store, number), **kwargs)


def test_plain_card_succeeds():
    assert outcome("4242424242424242").ok


@pytest.mark.parametrize(
    ("number", "decline_code"),
    [
        ("4000000000000002", "generic_decline"),
        ("4000000000009979", "stolen_card"),
        ("4000000000000341", "generic_decline"),
    ],
)
def test_declines(number, decline_code):
    result = outcome(number)
    assert result.status == "declined"
    assert (result.decline.code, result.decline.decline_code) == ("card_declined", decline_code)


def test_three_d_secure_card_asks_on_session_and_fails_off_session():
    assert outcome("4000002760003184").status == "requires_action"
    assert outcome("4000002760003184", authenticated=True).ok
    off = outcome("4000002760003184", off_session=True)
    assert (off.status, off.decline.decline_code) == ("declined", "authentication_required")


def test_every_test_name_points_at_a_known_card():
    assert set(cards.TEST_NAMES.values()) <= set(cards.CARDS)
    assert cards.number_for_test_id("pm_card_visa") == cards.number_for_test_id("tok_visa") == "4242424242424242"
    assert cards.number_for_test_id("pm_123") is None
