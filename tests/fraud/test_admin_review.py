"""The fraud admin: only the "fraud" group sees it; bad rule/blocklist input is refused on the field; the review
queue's approve and block actions are audited."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse

from accounts.models import Account, AccountStatus, AuditLog
from fraud.models import BlocklistEntry, Decision, RiskAssessment, Rule
from fraud.services import assessment_approve
from fraud.services.scoring import Hit, assessment_record, decision_apply
from tests.factories import AccountFactory, MembershipFactory
from tests.fraud.helpers import fraud_staff

pytestmark = pytest.mark.django_db

FRAUD_PAGES = [
    "admin:fraud_riskassessment_changelist",
    "admin:fraud_rule_changelist",
    "admin:fraud_blocklistentry_changelist",
    "admin:fraud_risksignal_changelist",
    "admin:fraud_disputecase_changelist",
    "admin:fraud_rule_add",
    "admin:fraud_blocklistentry_add",
]


@pytest.fixture
def analyst(client):
    user = fraud_staff()
    client.force_login(user)
    client.user = user
    return client


def _review(account=None, email="", score=60) -> RiskAssessment:
    assessment = assessment_record(
        stage="signup", hits=[Hit("velocity_device", score, {"count": 2})], account=account, email=email
    )
    decision_apply(assessment=assessment)
    return assessment


@pytest.mark.parametrize("page", FRAUD_PAGES)
def test_merchant_personas_never_reach_fraud_pages(client, owner, agent, admin_member, page):
    for persona in (owner, agent, admin_member):
        response = persona.web(client).get(reverse(page))
        assert response.status_code == 302 and "/admin/login/" in response["Location"]


@pytest.mark.parametrize("page", FRAUD_PAGES)
def test_staff_outside_the_fraud_group_are_refused_even_as_superuser(client, staff_user, page):
    client.force_login(staff_user)
    assert client.get(reverse(page)).status_code == 403
    index = client.get(reverse("admin:index")).content.decode()
    assert "Risk assessments" not in index and "Blocklist" not in index


@pytest.mark.parametrize("page", FRAUD_PAGES)
def test_fraud_staff_see_every_fraud_page(analyst, page):
    _review(account=AccountFactory())
    assert analyst.get(reverse(page)).status_code == 200


def test_merchant_pages_and_api_never_show_scores(client, owner):
    account = owner.account
    _review(account=account, score=77)
    for url in ("/dashboard/", "/billing/", "/team/", "/api/v1/account", "/api/v1/me"):
        body = (owner.api().get(url) if url.startswith("/api/") else owner.web(client).get(url)).content.decode()
        # The score as a number of its own (not digits inside an id or a timestamp), nor any word of it.
        assert not re.search(r"(?<![\w.:-])77(?![\w.:])", body), body
        assert "velocity" not in body and "risk" not in body.lower() and "score" not in body.lower()


@pytest.mark.parametrize(
    "parameters, message",
    [
        ('{"threshold": "three", "window_minutes": 60}', "'threshold' must be a whole number"),
        ('{"threshold": 0, "window_minutes": 60}', "'threshold' must be between 1 and 100000"),
        ('{"threshold": true}', "'threshold' must be a whole number"),
        ('{"treshold": 3}', "Unknown parameter 'treshold'"),
        ("[1, 2]", "must be a JSON object"),
        ("{not json", "Enter a valid JSON"),
    ],
)
def test_rule_with_bad_parameters_is_refused_naming_the_field(analyst, parameters, message):
    rule = Rule.objects.get(kind="velocity_ip")
    response = analyst.post(
        reverse("admin:fraud_rule_change", args=[rule.pk]),
        {"kind": "velocity_ip", "parameters": parameters, "score": 50, "active": "on", "description": ""},
    )
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert "parameters" in errors and message in " ".join(errors["parameters"])
    rule.refresh_from_db()
    assert rule.parameters == {"threshold": 3, "window_minutes": 60}


def test_rule_edit_that_is_valid_is_saved(analyst):
    rule = Rule.objects.get(kind="velocity_ip")
    response = analyst.post(
        reverse("admin:fraud_rule_change", args=[rule.pk]),
        {"kind": "velocity_ip", "parameters": '{"threshold": 5}', "score": 40, "active": "on", "description": "x"},
    )
    assert response.status_code == 302
    rule.refresh_from_db()
    assert (rule.parameters, rule.score, rule.stage) == ({"threshold": 5, "window_minutes": 60}, 40, "signup")


@pytest.mark.parametrize(
    "kind, value, message",
    [
        ("ip", "203.0.113.0/33", "is not an IP address or CIDR range"),
        ("ip", "300.1.2.3", "is not an IP address or CIDR range"),
        ("country", "XX", "is not an ISO 3166 country code"),
        ("country", "France", "is not an ISO 3166 country code"),
        ("email_domain", "not a domain", "is not a domain name"),
        ("email", "nobody", "valid email"),
        ("card_fingerprint", "x!", "letters and digits"),
    ],
)
def test_bad_blocklist_values_are_refused_on_the_value_field(analyst, kind, value, message):
    response = analyst.post(reverse("admin:fraud_blocklistentry_add"), {"kind": kind, "value": value, "reason": "r"})
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert "value" in errors and message in " ".join(errors["value"])
    assert not BlocklistEntry.objects.exists()


@pytest.mark.parametrize(
    "kind, value, stored",
    [
        ("ip", "203.0.113.77/24", "203.0.113.0/24"),
        ("country", "fr", "FR"),
        ("email_domain", "@Spam.Example", "spam.example"),
    ],
)
def test_blocklist_values_are_normalised(analyst, kind, value, stored):
    response = analyst.post(reverse("admin:fraud_blocklistentry_add"), {"kind": kind, "value": value, "reason": "r"})
    assert response.status_code == 302
    entry = BlocklistEntry.objects.get()
    assert (entry.value, entry.created_by) == (stored, analyst.user)


def test_queue_lists_open_reviews_newest_first_with_score_and_reasons(analyst):
    older = _review(account=AccountFactory(name="Older Shop"))
    newer = _review(account=AccountFactory(name="Newer Shop"))
    assessment_record(stage="signup", hits=[], email="fine@shop.example")  # an allow: not in the queue
    response = analyst.get(reverse("admin:fraud_riskassessment_changelist"))
    assert [a.pk for a in response.context["cl"].result_list] == [newer.pk, older.pk]
    html = response.content.decode()
    assert "velocity_device (+60)" in html and "Newer Shop" in html
    detail = analyst.get(reverse("admin:fraud_riskassessment_change", args=[newer.pk])).content.decode()
    assert "Assessments" in detail and "account.risk_hold_changed" in detail


def test_approve_releases_the_hold_and_is_audited(analyst):
    membership = MembershipFactory(role="owner")
    account = membership.account
    review = _review(account=account)
    assert Account.objects.get(pk=account.pk).risk_hold
    response = analyst.post(
        reverse("admin:fraud_riskassessment_changelist"), {"action": "approve", "_selected_action": [review.pk]}
    )
    assert response.status_code == 302
    account.refresh_from_db()
    assert not account.risk_hold
    review.refresh_from_db()
    assert review.resolved_at is not None
    decision = RiskAssessment.objects.filter(account=account, decided_by="staff").get()
    assert (decision.decision, decision.staff) == (Decision.ALLOW, analyst.user)
    audit = AuditLog.objects.get(action="fraud.review_approved")
    assert (audit.actor, audit.account, audit.before["decision"]) == (analyst.user, account, "review")
    release = AuditLog.objects.get(action="account.risk_hold_changed", after={"risk_hold": False})
    assert release.actor == analyst.user
    assert not RiskAssessment.objects.filter(account=account, resolved_at__isnull=True).exists()


def test_block_blocks_the_account_and_is_audited(analyst):
    account = AccountFactory(status=AccountStatus.TRIALING)
    review = _review(account=account)
    analyst.post(reverse("admin:fraud_riskassessment_changelist"), {"action": "block", "_selected_action": [review.pk]})
    account.refresh_from_db()
    assert account.status == AccountStatus.BLOCKED and account.risk_hold
    assert AuditLog.objects.get(action="fraud.review_blocked").actor == analyst.user
    change = AuditLog.objects.get(action="account.status_changed")
    assert (change.actor, change.after) == (analyst.user, {"status": "blocked"})


def test_approving_a_signup_before_its_account_exists_clears_the_users_flag(analyst):
    from accounts.services import account_provision
    from tests.factories import UserFactory

    user = UserFactory(email="held@shop.example", signup_risk_hold=True)
    review = _review(email="held@shop.example")
    assessment_approve(assessment=review, actor=analyst.user)
    user.refresh_from_db()
    assert not user.signup_risk_hold
    assert not account_provision(user=user, name="Held", signup_ip=None).risk_hold


def test_only_fraud_staff_may_decide(staff_user):
    from accounts.errors import NotAllowed

    review = _review(account=AccountFactory())
    with pytest.raises(NotAllowed):
        assessment_approve(assessment=review, actor=staff_user)
