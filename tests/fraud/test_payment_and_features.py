"""Payment checks at their thresholds and their decisions; good standing for costly features; usage bursts."""

from __future__ import annotations

import math
from datetime import timedelta

import pytest
from django.utils import timezone

from accounts.errors import NotAllowed
from accounts.models import Account, AccountStatus
from accounts.services import api_key_create, invitation_create
from billing.models import UsageEvent, UsagePeriod
from billing.usage.bursts import account_usage_burst_check
from fraud.models import Decision, RiskAssessment
from fraud.services import ChargeFacts, checkout_assess, payment_record_attempt
from plans.models import PlanPrice
from tests.factories import AccountFactory, MembershipFactory
from tests.fraud.helpers import only_rules, set_rule

pytestmark = pytest.mark.django_db


def _decline(account, n, fingerprint=None):
    return payment_record_attempt(
        account=account, facts=ChargeFacts(reference=f"ch_{n}", succeeded=False, fingerprint=fingerprint or f"fp{n}x")
    )


def _paid(account, **facts):
    return payment_record_attempt(account=account, facts=ChargeFacts(reference="ch_ok", succeeded=True, **facts))


def _fresh(account) -> Account:
    return Account.objects.get(pk=account.pk)


@pytest.mark.parametrize("scope", ["account", "ip", "card"])
def test_card_testing_fires_at_the_third_decline_then_cools_off_checkout(scope):
    only_rules("card_testing")
    set_rule("card_testing", threshold=3, window_minutes=10, cooloff_minutes=60)
    accounts = [AccountFactory() for _ in range(4)] if scope != "account" else [AccountFactory()] * 4
    for n, account in enumerate(accounts):  # sessions opened first; the declines then arrive by webhook
        checkout_assess(account=account, ip="203.0.113.5" if scope == "ip" else f"203.0.113.{10 + n}")
    results = []
    for n, account in enumerate(accounts):
        fingerprint = "samecard1234" if scope == "card" else None
        results.append(_decline(account, n, fingerprint))
    assert [r is not None for r in results] == [False, False, True, True]  # 1, 2 (under), 3 (at), 4 (over)
    flagged = results[2]
    assert flagged.decision == Decision.REVIEW and flagged.cooloff_until > timezone.now()
    assert _fresh(flagged.account).risk_hold
    with pytest.raises(NotAllowed) as refused:
        checkout_assess(account=_fresh(flagged.account), ip="198.51.100.1")
    assert refused.value.code in ("checkout_cooling_off", "account_under_review")


def test_cool_off_refuses_the_ip_even_for_an_account_in_good_standing(time_machine):
    only_rules("card_testing")
    tester, other = AccountFactory(), AccountFactory()
    checkout_assess(account=tester, ip="203.0.113.5")
    for n in range(3):
        _decline(tester, n)
    with pytest.raises(NotAllowed) as refused:
        checkout_assess(account=other, ip="203.0.113.5")
    assert refused.value.code == "checkout_cooling_off"
    time_machine.move_to(timezone.now() + timedelta(minutes=61))
    checkout_assess(account=other, ip="203.0.113.5")  # the cool-off is over


@pytest.mark.parametrize("others, fired", [(0, False), (1, True), (2, True)])
def test_fingerprint_reused_by_other_accounts(others, fired):
    only_rules("fingerprint_reuse")
    for _ in range(others):
        _paid(AccountFactory(), fingerprint="sharedcard99")
    result = _paid(AccountFactory(), fingerprint="sharedcard99")
    assert (result is not None) is fired
    if fired:
        assert result.decision == Decision.REVIEW


def test_country_mismatch_prepaid_and_radar_signals_add_up():
    account = AccountFactory(country="FR", status=AccountStatus.TRIALING)
    only_rules("country_mismatch", "prepaid_on_trial", "radar_elevated", "radar_highest")
    checkout_assess(account=account, ip="203.0.113.9", ip_country="DE")
    assert _paid(account, card_country="DE", funding="credit", risk_level="normal").signals.get().details == {
        "card": "DE",
        "account": "FR",
    }
    Account.objects.filter(pk=account.pk).update(country="DE")
    assert _paid(_fresh(account), card_country="DE", funding="credit", risk_level="normal") is None
    mismatch = _paid(_fresh(account), card_country="NG", funding="credit", risk_level="normal")
    assert mismatch.decision == Decision.ALLOW and mismatch.signals.get().details == {
        "card": "NG",
        "account": "DE",
        "ip": "DE",
    }
    prepaid = _paid(_fresh(account), card_country="NG", funding="prepaid", risk_level="normal")
    assert (prepaid.score, prepaid.decision) == (60, Decision.REVIEW)
    assert _fresh(account).risk_hold and _fresh(account).status == AccountStatus.TRIALING


def test_radar_highest_blocks_the_account():
    account = AccountFactory(status=AccountStatus.ACTIVE)
    only_rules("radar_elevated", "radar_highest")
    assert _paid(account, risk_level="elevated").decision == Decision.ALLOW
    result = _paid(account, risk_level="highest")
    assert result.decision == Decision.BLOCK
    assert _fresh(account).status == AccountStatus.BLOCKED
    assert _fresh(account).audit_log.filter(action="account.status_changed", after={"status": "blocked"}).exists()


def test_blocklisted_card_fingerprint_blocks_at_payment():
    from fraud.models import BlocklistEntry

    only_rules("payment_blocklisted")
    BlocklistEntry.objects.create(kind="card_fingerprint", value="stolencard01", reason="test")
    account = AccountFactory()
    assert _paid(account, fingerprint="stolencard01").decision == Decision.BLOCK


def test_checkout_is_refused_while_on_hold_through_the_api(owner):
    Account.objects.filter(pk=owner.account.pk).update(risk_hold=True)
    PlanPrice.objects.filter(plan__code="pro", interval="month").update(stripe_price_id="price_pro_month")
    price = PlanPrice.objects.get(plan__code="pro", interval="month")
    response = owner.api().post("/api/v1/checkout-sessions", {"plan_price_id": price.pk}, format="json")
    assert response.status_code == 403
    body = response.json()["error"]
    assert body["code"] == "account_under_review"
    assert "score" not in body["message"].lower() and "fraud" not in body["message"].lower()


# --- feature access ------------------------------------------------------------------------------------------


def _new_account_owner():
    membership = MembershipFactory(role="owner", account=AccountFactory(trusted_at=None))
    return membership.account, membership.user


def test_api_keys_wait_for_good_standing_then_open(time_machine, settings):
    settings.FRAUD_GOOD_STANDING_DAYS = 7
    account, owner_user = _new_account_owner()
    with pytest.raises(NotAllowed) as refused:
        api_key_create(account=account, actor=owner_user, name="Shop")
    assert refused.value.code == "good_standing_required"
    time_machine.move_to(timezone.now() + timedelta(days=7, minutes=1))
    api_key_create(account=_fresh(account), actor=owner_user, name="Shop")


def test_a_paid_first_invoice_opens_costly_features_early():
    from accounts.services import account_mark_trusted

    account, owner_user = _new_account_owner()
    account_mark_trusted(account=account, actor=None, reason="invoice paid")
    api_key_create(account=_fresh(account), actor=owner_user, name="Shop")


def test_account_on_hold_gets_no_api_key_even_when_trusted(owner):
    Account.objects.filter(pk=owner.account.pk).update(risk_hold=True)
    response = owner.api().post("/api/v1/api-keys", {"name": "Shop"}, format="json")
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "account_under_review"


def test_new_account_invites_up_to_n_people_then_needs_good_standing(settings):
    settings.FRAUD_NEW_ACCOUNT_MAX_AGENTS = 3
    account, owner_user = _new_account_owner()
    invitation_create(account=account, actor=owner_user, email="a1@shop.example")  # 2 seats
    invitation_create(account=account, actor=owner_user, email="a2@shop.example")  # 3 seats: N, allowed
    with pytest.raises(NotAllowed) as refused:
        invitation_create(account=account, actor=owner_user, email="a3@shop.example")  # N + 1
    assert refused.value.code == "good_standing_required"


def test_account_on_hold_cannot_invite_anyone():
    account, owner_user = _new_account_owner()
    Account.objects.filter(pk=account.pk).update(risk_hold=True)
    with pytest.raises(NotAllowed) as refused:
        invitation_create(account=_fresh(account), actor=owner_user, email="a1@shop.example")
    assert refused.value.code == "account_under_review"


def _usage(account, quantity):
    now = timezone.now()
    period = UsagePeriod.objects.create(
        account=account,
        start=now - timedelta(days=1),
        end=now + timedelta(days=29),
        subscription_id="sub_test",
        plan_price=PlanPrice.objects.get(plan__code="pro", interval="month"),
    )
    UsageEvent.objects.create(
        account=account, period=period, metric="tickets", quantity=quantity, occurred_at=now, idempotency_key="k1"
    )


def _daily_share(account) -> float:
    from accounts.entitlements import entitlements_for_account

    return entitlements_for_account(account=account).metered["tickets"].included_units / 30


@pytest.mark.parametrize("offset, fired", [(-1, False), (0, True), (1, True)])
def test_usage_burst_at_ten_times_the_daily_share(offset, fired):
    only_rules("usage_burst")
    account = AccountFactory()
    threshold = math.ceil(10 * _daily_share(account))  # the first whole number of units at 10x the share
    _usage(account, threshold + offset)
    result = account_usage_burst_check(account=account)
    assert (result is not None) is fired
    if fired:
        assert result.decision == Decision.REVIEW and _fresh(account).risk_hold
        assert account_usage_burst_check(account=account) is None  # once a day


def test_usage_scan_task_flags_bursting_accounts_only():
    from billing.tasks import scan_usage_bursts

    only_rules("usage_burst")
    calm, bursting = AccountFactory(), AccountFactory()
    _usage(calm, 1)
    _usage(bursting, int(20 * _daily_share(bursting)))
    scan_usage_bursts()
    assert not _fresh(calm).risk_hold and _fresh(bursting).risk_hold
    assert RiskAssessment.objects.filter(stage="feature").count() == 1
