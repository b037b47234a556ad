"""`manage.py seed_demo` against the session's sandbox: what a person opening the demo sees, and a second run
that adds nothing.

Expected amounts come from the catalog's terms (plans/demo_catalog.py) and the usage the seeder reports,
never from our rating code.
"""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import call_command
from django.urls import reverse
from djstripe import models as djstripe_models

from accounts.errors import NotAllowed
from accounts.models import Account, AuditLog, Invitation, Membership, User
from billing.demo import DEMO_OPS, DEMO_OWNER, DEMO_SHOP, LATE_PAYER, SHOP_HISTORY
from billing.models import DunningCase, LedgerEntry, UsageEvent, UsagePeriod
from fraud.demo import FLAGGED_ACCOUNT
from fraud.models import RiskAssessment
from plans.demo_catalog import CATALOG

PRO = next(row for row in CATALOG if row[0] == "pro")
PRO_TICKETS_INCLUDED, PRO_TICKET_OVERAGE_CENTS = PRO[6], PRO[7]
PRO_AUTOMATED_INCLUDED, PRO_AUTOMATED_OVERAGE_CENTS = PRO[8]


def _seed() -> str:
    out = StringIO()
    call_command("seed_demo", stdout=out)
    return out.getvalue()


@pytest.fixture
def demo(sandbox, db):
    _seed()
    return sandbox


def _account(name) -> Account:
    return Account.objects.get(name=name)


def _customer_id(account) -> str:
    return djstripe_models.Customer.objects.get(subscriber=account).id


def _invoices(stripe_client, account, **params):
    listing = stripe_client.v1.invoices.list(params={"customer": _customer_id(account), "limit": 100, **params})
    return list(listing.auto_paging_iter())


def test_the_demo_shop_is_on_pro_with_paid_renewals_and_an_overage_line(demo, stripe_client):
    shop = _account(DEMO_SHOP)
    assert (shop.status, shop.plan.code) == ("active", "pro")
    paid = _invoices(stripe_client, shop, status="paid")
    assert len(paid) >= 3
    # The oldest period went over by what SHOP_HISTORY says: 340 tickets and 60 automated resolutions.
    extra_tickets, extra_automated = SHOP_HISTORY[0]
    expected = extra_tickets * PRO_TICKET_OVERAGE_CENTS + extra_automated * PRO_AUTOMATED_OVERAGE_CENTS
    overage_lines = [
        line
        for invoice in paid
        for line in stripe_client.v1.invoices.line_items.list(invoice.id, params={"limit": 100}).data
        if (line.get("metadata") or {}).get("ledger_entry_id")
    ]
    assert [line.amount for line in overage_lines] == [expected] == [9800]
    # Every paid invoice is the Pro fee, plus that one overage line.
    assert sorted(invoice.amount_paid for invoice in paid) == sorted([PRO[4]] * (len(paid) - 1) + [PRO[4] + expected])


def test_the_usage_api_and_page_show_this_periods_usage_with_overage_projected(demo, client):
    assert client.login(email=DEMO_OWNER[0], password=DEMO_OWNER[1])
    body = client.get("/api/v1/usage").json()
    used = {line["metric"]: line["used"] for line in body["metrics"]}
    projected = {line["metric"]: line["used"] for line in body["projected_metrics"]}
    assert 0 < used["tickets"] < PRO_TICKETS_INCLUDED  # within the quota so far...
    assert projected["tickets"] > PRO_TICKETS_INCLUDED  # ...but above its pace
    expected = (projected["tickets"] - PRO_TICKETS_INCLUDED) * PRO_TICKET_OVERAGE_CENTS + max(
        0, projected["automated_resolutions"] - PRO_AUTOMATED_INCLUDED
    ) * PRO_AUTOMATED_OVERAGE_CENTS
    assert (body["overage_cents"], body["projected_overage_cents"]) == (0, expected)
    # Past periods: the one billed with overage (invoiced), two within the quota, one waiting for its renewal.
    states = sorted(period["ledger_state"] for period in body["past_periods"])
    assert states == ["invoiced", "nothing_due", "nothing_due", "pushed"]

    page = client.get(reverse("usage")).content.decode()
    whole, cents = divmod(expected, 100)
    assert f"projected for the period: <strong>${whole:,}.{cents:02d}</strong>" in page


def test_the_demo_shop_has_two_agents_and_a_pending_invitation(demo):
    shop = _account(DEMO_SHOP)
    agents = Membership.objects.filter(account=shop, role="agent", is_active=True)
    assert agents.count() == 2
    assert list(Invitation.objects.filter(account=shop, status="pending").values_list("email", flat=True)) == [
        "lee@demo.tollbooth.test"
    ]


def test_the_late_payer_is_past_due_with_an_open_invoice_and_the_farm_is_in_review(demo, stripe_client):
    late = _account(LATE_PAYER)
    assert late.status == "past_due"
    open_invoices = _invoices(stripe_client, late, status="open")
    assert len(open_invoices) == 1 and open_invoices[0].attempt_count >= 1
    assert DunningCase.objects.filter(account=late, status="open", stripe_invoice_id=open_invoices[0].id).exists()
    farm = _account(FLAGGED_ACCOUNT)
    assert farm.risk_hold
    assert RiskAssessment.objects.filter(account=farm, decision="review", resolved_at__isnull=True).exists()


def _counts(stripe_client) -> dict:
    ours = {
        model.__name__: model.objects.count()
        for model in (
            User,
            Account,
            Membership,
            Invitation,
            AuditLog,
            UsageEvent,
            UsagePeriod,
            LedgerEntry,
            DunningCase,
            RiskAssessment,
            djstripe_models.Customer,
            djstripe_models.Subscription,
            djstripe_models.Invoice,
        )
    }
    clocks = list(stripe_client.v1.test_helpers.test_clocks.list(params={"limit": 100}).auto_paging_iter())
    customers = list(stripe_client.v1.customers.list(params={"limit": 100}).auto_paging_iter())
    theirs = {
        "clocks": len(clocks),
        "customers": len(customers),
        "invoices": sum(
            len(stripe_client.v1.invoices.list(params={"customer": c.id, "limit": 100}).data) for c in customers
        ),
        "invoice_items": sum(
            len(stripe_client.v1.invoice_items.list(params={"customer": c.id, "limit": 100}).data) for c in customers
        ),
        "subscriptions": len(stripe_client.v1.subscriptions.list(params={"status": "all", "limit": 100}).data),
    }
    return {**ours, **theirs}


def test_seeding_again_creates_nothing(demo, stripe_client):
    before = _counts(stripe_client)
    output = _seed()
    assert "already seeded" in output
    assert _counts(stripe_client) == before


def test_a_run_that_fails_half_way_is_completed_by_the_next(sandbox, db, stripe_client):
    # The owner's signup is on hold, so their account may not invite: the seeding fails at the team step,
    # after its months on the test clock.
    User.objects.create_user(email=DEMO_OWNER[0], password=DEMO_OWNER[1], signup_risk_hold=True)
    with pytest.raises(NotAllowed):
        _seed()
    assert not Account.objects.filter(name=DEMO_SHOP).exists()
    User.objects.filter(email=DEMO_OWNER[0]).update(signup_risk_hold=False)  # ops lifted the hold

    _seed()

    shop = _account(DEMO_SHOP)
    assert (shop.status, Membership.objects.filter(account=shop).count()) == ("active", 3)
    names = [c.name for c in stripe_client.v1.test_helpers.test_clocks.list(params={"limit": 100}).data]
    assert sorted(names) == [f"Tollbooth demo: {DEMO_SHOP}", f"Tollbooth demo: {LATE_PAYER}"]
    customers = stripe_client.v1.customers.list(params={"email": DEMO_OWNER[0], "limit": 100}).data
    assert [c.id for c in customers] == [_customer_id(shop)]


def test_ops_sees_the_demo_in_the_admin(demo, client):
    assert client.login(email=DEMO_OPS[0], password=DEMO_OPS[1])
    pages = {
        "admin:accounts_account_changelist": [DEMO_SHOP, LATE_PAYER, FLAGGED_ACCOUNT],
        "admin:billing_ledgerentry_changelist": [DEMO_SHOP],
        "admin:fraud_riskassessment_changelist": [FLAGGED_ACCOUNT],  # the open review queue
    }
    for url_name, names in pages.items():
        response = client.get(reverse(url_name))
        assert response.status_code == 200, url_name
        text = response.content.decode()
        for name in names:
            assert name in text, (url_name, name)
