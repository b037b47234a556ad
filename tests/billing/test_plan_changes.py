"""Plan changes on a live subscription in the sandbox: amounts checked against hand-computed figures."""

from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.core.management import call_command

from accounts.models import Account, AuditLog
from billing.models import ScheduledPlanChange
from billing.subscriptions.changes import scheduled_changes_apply_due, subscription_change, subscription_change_preview
from billing.subscriptions.checkout import checkout_completed, checkout_start
from billing.subscriptions.sync import subscription_refresh
from plans.models import PlanPrice
from tests.factories import MembershipFactory

PREVIEW, CHANGE = "/api/v1/subscription/preview", "/api/v1/subscription/change"


@pytest.fixture
def subscriber(sandbox, catalog, owner):
    """The owner's account on Pro monthly, paid (no trial), mirrored as the webhook handler would."""
    call_command("sync_plans", stdout=open("/dev/null", "w"))  # noqa: SIM115
    Account.objects.filter(pk=owner.account.pk).update(trial_ends_at=None)
    owner.account.refresh_from_db()
    price = PlanPrice.objects.get(plan__code="pro", interval="month")
    attempt = checkout_start(account=owner.account, actor=owner.user, plan_price=price)
    reply = sandbox.request(
        "POST", f"/_sandbox/checkout/{attempt.stripe_session_id}/complete", {"card": "4242424242424242"}, api_key=None
    )
    assert reply.status == 200, reply.body
    checkout_completed(session_id=attempt.stripe_session_id)
    owner.account.refresh_from_db()
    assert owner.account.plan.code == "pro"
    return owner


def _price(code, interval="month"):
    return PlanPrice.objects.get(plan__code=code, interval=interval)


def _period(stripe_client, account):
    from billing.subscriptions.selectors import subscription_summary

    summary = subscription_summary(account=account)
    item = stripe_client.v1.subscriptions.retrieve(summary.id)["items"]["data"][0]
    return summary.id, item["current_period_start"], item["current_period_end"]


def test_upgrade_now_charges_the_previewed_proration_to_the_cent(subscriber, stripe_client):
    api = subscriber.api()
    preview = api.post(PREVIEW, {"plan_price_id": _price("advanced").pk}, format="json").json()
    assert preview["kind"] == "upgrade"

    subscription_id, start, end = _period(stripe_client, subscriber.account)
    at = int(datetime.fromisoformat(preview["effective_at"].replace("Z", "+00:00")).timestamp())
    remaining = (end - at) / (end - start)
    by_hand = round(19900 * remaining) - round(9900 * remaining)  # charge new price, credit old, to the second
    assert preview["amount_due_now_cents"] == by_hand
    assert preview["next_invoice_cents"] == 19900

    result = api.post(CHANGE, {"token": preview["token"]}, format="json").json()
    assert result["kind"] == "upgrade"
    invoice = stripe_client.v1.invoices.retrieve(result["invoice"]["id"])
    assert (invoice.amount_due, invoice.amount_paid, invoice.status) == (by_hand, by_hand, "paid")
    subscriber.account.refresh_from_db()
    assert subscriber.account.plan.code == "advanced"
    assert AuditLog.objects.get(action="subscription.upgraded").after["amount_due"] == by_hand
    # The same token again is not a second charge.
    again = api.post(CHANGE, {"token": preview["token"]}, format="json")
    assert (again.status_code, again.json()["error"]["code"]) == (409, "preview_stale")
    assert len(stripe_client.v1.invoices.list(params={"subscription": subscription_id}).data) == 2


def test_an_upgrade_worth_less_than_stripes_minimum_charge_is_carried_to_the_next_invoice(subscriber, stripe_client):
    """Seed 9104 of the simulator: an upgrade an hour before the renewal prorates to a few cents; Stripe charges no
    invoice under its minimum (50 cents in USD) but adds the amount to the customer's balance. The preview says
    so instead of promising a charge."""
    _, start, end = _period(stripe_client, subscriber.account)
    with time_machine.travel(datetime.fromtimestamp(end - 3600, tz=UTC), tick=False):
        api = subscriber.api()
        preview = api.post(PREVIEW, {"plan_price_id": _price("advanced").pk}, format="json").json()
        remaining = 3600 / (end - start)
        by_hand = round(19900 * remaining) - round(9900 * remaining)
        assert 0 < by_hand < 50
        assert (preview["amount_due_now_cents"], preview["carried_forward_cents"]) == (0, by_hand)
        result = api.post(CHANGE, {"token": preview["token"]}, format="json").json()
    invoice = stripe_client.v1.invoices.retrieve(result["invoice"]["id"])
    assert (invoice.total, invoice.amount_due, invoice.amount_paid, invoice.status) == (by_hand, 0, 0, "paid")
    assert result["invoice"]["amount_due_cents"] == preview["amount_due_now_cents"]
    customer = stripe_client.v1.customers.retrieve(invoice.customer)
    assert customer.balance == by_hand  # owed, collected with the next invoice


def test_monthly_to_annual_charges_the_year_less_the_unused_month(subscriber, stripe_client):
    preview = subscription_change_preview(
        account=subscriber.account, actor=subscriber.user, plan_price=_price("pro", "year")
    )
    _sub, start, end = _period(stripe_client, subscriber.account)
    remaining = (end - preview.effective_at.timestamp()) / (end - start)
    assert preview.kind == "upgrade"
    assert preview.amount_due_now_cents == 99000 - round(9900 * remaining)
    result = subscription_change(account=subscriber.account, actor=subscriber.user, token=preview.token)
    assert result["invoice"]["amount_paid_cents"] == preview.amount_due_now_cents


def test_a_preview_replayed_after_prices_changed_is_refused(subscriber, stripe_client):
    api = subscriber.api()
    preview = api.post(PREVIEW, {"plan_price_id": _price("advanced").pk}, format="json").json()
    PlanPrice.objects.filter(pk=_price("advanced").pk).update(amount_cents=20900)
    call_command("sync_plans", stdout=open("/dev/null", "w"))  # noqa: SIM115
    response = api.post(CHANGE, {"token": preview["token"]}, format="json")
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "preview_stale"
    subscriber.account.refresh_from_db()
    assert subscriber.account.plan.code == "pro"


def test_downgrade_waits_for_the_end_of_the_period(subscriber, stripe_client):
    api = subscriber.api()
    preview = api.post(PREVIEW, {"plan_price_id": _price("basic").pk}, format="json").json()
    assert (preview["kind"], preview["amount_due_now_cents"], preview["next_invoice_cents"]) == ("downgrade", 0, 4900)
    result = api.post(CHANGE, {"token": preview["token"]}, format="json").json()
    assert result["kind"] == "downgrade"
    change = ScheduledPlanChange.objects.get()
    subscription_id, _start, end = _period(stripe_client, subscriber.account)
    assert change.effective_at == datetime.fromtimestamp(end, tz=UTC)
    assert stripe_client.v1.subscriptions.retrieve(subscription_id)["items"]["data"][0]["price"]["id"] == (
        _price("pro").stripe_price_id
    )

    # Too early: nothing happens. In the last hour: the new price goes onto Stripe, without proration.
    assert scheduled_changes_apply_due(now=change.effective_at - timedelta(hours=3)) == 0
    assert scheduled_changes_apply_due(now=change.effective_at - timedelta(minutes=30)) == 1
    assert scheduled_changes_apply_due(now=change.effective_at - timedelta(minutes=20)) == 0
    item = stripe_client.v1.subscriptions.retrieve(subscription_id)["items"]["data"][0]
    assert item["price"]["id"] == _price("basic").stripe_price_id
    pending = stripe_client.v1.invoice_items.list(params={"customer": item["price"] and _customer(subscriber)}).data
    assert [i for i in pending if i.proration] == []
    # The paid-for plan stays in force until the boundary, then the smaller one.
    subscriber.account.refresh_from_db()
    assert subscriber.account.plan.code == "pro"
    with time_machine.travel(change.effective_at + timedelta(minutes=1)):
        subscription_refresh(subscription_id=subscription_id)
    subscriber.account.refresh_from_db()
    assert subscriber.account.plan.code == "basic"


def _customer(persona):
    from billing.subscriptions.selectors import customer_for_account

    return customer_for_account(account=persona.account).id


def test_downgrade_below_the_current_seats_is_refused(subscriber):
    MembershipFactory(account=subscriber.account, role="agent")
    MembershipFactory(account=subscriber.account, role="agent")
    response = subscriber.api().post(PREVIEW, {"plan_price_id": _price("starter").pk}, format="json")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "too_many_seats"
    assert "remove 1" in response.json()["error"]["message"]


@pytest.mark.parametrize(
    "plan, interval, code", [("pro", "month", "same_plan"), ("enterprise", "month", "plan_unavailable")]
)
def test_changes_to_the_current_or_a_hidden_plan_are_refused(subscriber, plan, interval, code):
    response = subscriber.api().post(PREVIEW, {"plan_price_id": _price(plan, interval).pk}, format="json")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == code


def test_agent_and_outsider_cannot_change_the_plan(subscriber, agent, outsider):
    body = {"plan_price_id": _price("advanced").pk}
    assert agent.api().post(PREVIEW, body, format="json").status_code == 403
    response = outsider.api().post(PREVIEW, body, format="json")
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "no_subscription"
    assert agent.api().post("/api/v1/subscription/cancel").status_code == 403
    assert outsider.api().post("/api/v1/subscription/cancel").status_code == 409


def test_a_forged_token_is_refused(subscriber):
    response = subscriber.api().post(CHANGE, {"token": "forged"}, format="json")
    assert response.status_code == 400
    assert response.json()["error"]["fields"]["token"]


def test_cancel_and_reactivate_toggle_cancel_at_period_end(subscriber, stripe_client):
    api = subscriber.api()
    subscription_id, _start, _end = _period(stripe_client, subscriber.account)
    assert api.post("/api/v1/subscription/cancel").status_code == 200
    assert stripe_client.v1.subscriptions.retrieve(subscription_id).cancel_at_period_end is True
    again = api.post("/api/v1/subscription/cancel")
    assert (again.status_code, again.json()["error"]["code"]) == (409, "already_canceling")
    assert api.post("/api/v1/subscription/reactivate").status_code == 200
    assert stripe_client.v1.subscriptions.retrieve(subscription_id).cancel_at_period_end is False
    assert api.post("/api/v1/subscription/reactivate").json()["error"]["code"] == "not_canceling"
    # A second cancel after a reactivation is a new write, not a replay of the first.
    assert api.post("/api/v1/subscription/cancel").status_code == 200
    assert stripe_client.v1.subscriptions.retrieve(subscription_id).cancel_at_period_end is True
    actions = list(AuditLog.objects.filter(target=f"subscription:{subscription_id}").values_list("action", flat=True))
    assert actions.count("subscription.cancel_scheduled") == 2


def test_pages_preview_then_confirm_an_upgrade_and_cancel(client, subscriber, stripe_client):
    subscriber.web(client)
    advanced = _price("advanced")
    pricing = client.get("/pricing/").content.decode()
    assert f"/billing/change/?plan_price={advanced.pk}" in pricing
    page = client.get(f"/billing/change/?plan_price={advanced.pk}").content.decode()
    assert "Charged today" in page
    token = page.split('name="token" value="')[1].split('"')[0]
    response = client.post("/billing/change/", {"token": token}, follow=True)
    assert "Your plan is upgraded" in response.content.decode()
    subscriber.account.refresh_from_db()
    assert subscriber.account.plan.code == "advanced"
    response = client.post("/billing/cancel/", follow=True)
    assert "Your subscription ends on" in response.content.decode()
    assert "Keep my subscription" in response.content.decode()


def test_agent_gets_no_plan_change_pages(client, subscriber, agent):
    agent.web(client)
    assert client.get(f"/billing/change/?plan_price={_price('advanced').pk}").status_code == 403
    assert client.post("/billing/cancel/").status_code == 403


def test_annual_to_a_higher_monthly_plan_charges_what_the_preview_said(sandbox, catalog, owner, stripe_client):
    """An interval change resets the cycle: unused annual time is credited and a full month charged at once.
    The 200-merchant simulator found the preview disagreeing with the invoice here."""
    call_command("sync_plans", stdout=open("/dev/null", "w"))  # noqa: SIM115
    Account.objects.filter(pk=owner.account.pk).update(trial_ends_at=None)
    owner.account.refresh_from_db()
    attempt = checkout_start(account=owner.account, actor=owner.user, plan_price=_price("pro", "year"))
    sandbox.request(
        "POST", f"/_sandbox/checkout/{attempt.stripe_session_id}/complete", {"card": "4242424242424242"}, api_key=None
    )
    checkout_completed(session_id=attempt.stripe_session_id)
    owner.account.refresh_from_db()

    _sub, start, end = _period(stripe_client, owner.account)
    # Ten months into the year: the unused time (about 65 days) is worth less than a full month of Advanced.
    with time_machine.travel(datetime.fromtimestamp(start, tz=UTC) + timedelta(days=300), tick=False):
        preview = subscription_change_preview(account=owner.account, actor=owner.user, plan_price=_price("advanced"))
        remaining = (end - preview.effective_at.timestamp()) / (end - start)
        by_hand = 19900 - round(99000 * remaining)
        assert preview.kind == "upgrade"
        assert 0 < preview.amount_due_now_cents == by_hand
        result = subscription_change(account=owner.account, actor=owner.user, token=preview.token)
    assert result["invoice"]["amount_due_cents"] == result["invoice"]["amount_paid_cents"] == by_hand


def test_a_pending_invitation_holds_a_seat_against_a_downgrade(subscriber):
    # Seats held = active members + live invitations (an accepted invitation takes its seat unchecked), so a
    # downgrade that fits the members but not the invitation would let the team outgrow the plan.
    from accounts.models import Invitation

    MembershipFactory(account=subscriber.account, role="agent")
    Invitation.objects.create(
        account=subscriber.account,
        email="pending@shop.example",
        role="agent",
        invited_by=subscriber.user,
        created_at=datetime.now(UTC),
        last_sent_at=datetime.now(UTC),
        expires_at=datetime.now(UTC) + timedelta(days=7),
    )
    response = subscriber.api().post(PREVIEW, {"plan_price_id": _price("starter").pk}, format="json")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "too_many_seats"
    assert "remove 1" in response.json()["error"]["message"]


def test_an_upgrade_the_card_refuses_is_a_402_and_changes_nothing(subscriber, stripe_client):
    """error_if_incomplete: Stripe keeps the old price; we answer what happened, never a 500."""
    subscription_id = _period(stripe_client, subscriber.account)[0]
    customer_id = stripe_client.v1.subscriptions.retrieve(subscription_id).customer
    failing = stripe_client.v1.payment_methods.attach("pm_card_chargeCustomerFail", params={"customer": customer_id})
    stripe_client.v1.subscriptions.update(subscription_id, params={"default_payment_method": failing.id})
    api = subscriber.api()
    preview = api.post(PREVIEW, {"plan_price_id": _price("advanced").pk}, format="json").json()

    reply = api.post(CHANGE, {"token": preview["token"]}, format="json")

    assert reply.status_code == 402, reply.content
    assert reply.json()["error"]["code"] == "card_declined"
    subscription_id, _start, _end = _period(stripe_client, subscriber.account)
    item = stripe_client.v1.subscriptions.retrieve(subscription_id)["items"]["data"][0]
    assert item["price"]["id"] == _price("pro").stripe_price_id
    subscriber.account.refresh_from_db()
    assert subscriber.account.plan.code == "pro"
    assert not AuditLog.objects.filter(action="subscription.upgraded").exists()
