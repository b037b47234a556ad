"""GET /api/v1/usage and the usage page: units for everyone in the account, money for owners and admins."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import time_machine

from billing.ledger.rate import usage_periods_rate_closed
from billing.usage.ingest import usage_events_record
from tests.billing.usage_helpers import PLATFORM_TOKEN, api_key_for, event, subscribe

ANCHOR = datetime(2026, 3, 1, tzinfo=UTC)
NOW = datetime(2026, 4, 16, tzinfo=UTC)  # half-way through 1 Apr - 1 May (30 days)


@pytest.fixture
def shop(owner, settings):
    settings.TOLLBOOTH_PLATFORM_TOKEN = PLATFORM_TOKEN
    with time_machine.travel(NOW, tick=False):
        subscribe(owner.account, plan="basic", anchor=ANCHOR)
        # March: 350 tickets on Basic (300 included, 30¢): $15.00, rated and closed.
        march = [event(f"m{i}", at=datetime(2026, 3, 20, tzinfo=UTC), account=owner.account) for i in range(350)]
        with time_machine.travel(datetime(2026, 3, 25, tzinfo=UTC), tick=False):
            usage_events_record(events=march, caller_account=None)
        usage_periods_rate_closed()
        # April so far: 1,000 tickets in 15 days → 2,000 projected: 1,700 over Basic = $510.00.
        april = [event(f"a{i}", at=NOW - timedelta(hours=1), account=owner.account, quantity=10) for i in range(100)]
        usage_events_record(events=april, caller_account=None)
        yield owner


def _get(client, **headers):
    with time_machine.travel(NOW, tick=False):
        return client.get("/api/v1/usage", **headers)


def test_owner_sees_this_period_projection_cheaper_plan_and_past_amounts(shop):
    body = _get(shop.api()).json()
    assert (body["plan"], body["money_visible"]) == ("basic", True)
    tickets = next(m for m in body["metrics"] if m["metric"] == "tickets")
    assert (tickets["used"], tickets["included"], tickets["overage_units"]) == (1000, 300, 700)
    assert body["overage_cents"] == 700 * 30
    assert body["projected_overage_cents"] == 1700 * 30
    # Pro: $99 with 2,000 included beats $49 + $510.
    assert body["upgrade"]["plan_code"] == "pro"
    assert body["upgrade"]["projected_total_cents"] == 9900
    assert body["upgrade"]["saving_cents"] == 4900 + 51000 - 9900
    [march] = body["past_periods"]
    assert (march["amount_cents"], march["ledger_state"]) == (1500, "rated")


def test_admin_and_api_key_see_money_too(shop, admin_member):
    assert _get(admin_member.api()).json()["money_visible"] is True
    key = api_key_for(shop)
    from rest_framework.test import APIClient

    body = _get(APIClient(), HTTP_AUTHORIZATION=f"Bearer {key}").json()
    assert body["overage_cents"] == 21000


def test_agent_sees_units_but_no_money(shop, agent):
    body = _get(agent.api()).json()
    assert body["money_visible"] is False
    assert body["overage_cents"] is None and body["upgrade"] is None
    assert all(m["amount_cents"] is None for m in body["metrics"])
    assert next(m for m in body["metrics"] if m["metric"] == "tickets")["used"] == 1000
    assert body["past_periods"][0]["amount_cents"] is None


def test_outsider_sees_only_their_own_account(shop, outsider):
    response = _get(outsider.api())
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "no_subscription"


def test_platform_token_reads_nothing(shop):
    from rest_framework.test import APIClient

    response = _get(APIClient(), HTTP_AUTHORIZATION=f"Bearer {PLATFORM_TOKEN}")
    assert response.status_code == 403


def test_usage_page_for_owner_and_agent(client, shop, agent):
    with time_machine.travel(NOW, tick=False):
        page = shop.web(client).get("/billing/usage/").content.decode()
        assert "$210.00" in page and "Pro would cost" in page and "$15.00" in page
        client.logout()
        page = agent.web(client).get("/billing/usage/").content.decode()
    assert "1000" in page and "$" not in page.split("<main", 1)[-1]
