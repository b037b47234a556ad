"""Signup → verify → onboarding → dashboard, through Django's test client as a person would."""

import re
import time

import pytest
from django.core import mail
from django.urls import reverse

from accounts.forms import signup_started_token
from accounts.models import Account, AuditLog, Membership, User
from tests.factories import AccountFactory, MembershipFactory, UserFactory

PASSWORD = "a long and quiet river"


def _link_from(message) -> str:
    match = re.search(r"https?://testserver(/accounts/confirm-email/[^\s]+/)", message.body)
    assert match, message.body
    return match.group(1)


def _signup(client, email: str, password: str = PASSWORD, password2: str | None = None):
    # A person takes more than a few seconds over the form: its start token says 30 s ago.
    started = signup_started_token(time.time() - 30)
    return client.post(
        reverse("account_signup"),
        {"email": email, "password1": password, "password2": password2 or password, "started": started},
        REMOTE_ADDR="198.51.100.7",
    )


@pytest.mark.django_db
def test_new_merchant_signs_up_verifies_names_company_and_sees_dashboard(client):
    response = _signup(client, "Ada@AdaShop.example")
    assert response.status_code == 302
    assert response["Location"] == reverse("account_email_verification_sent")
    user = User.objects.get(email__iexact="ada@adashop.example")
    assert user.signup_ip == "198.51.100.7"
    assert not user.emailaddress_set.get().verified

    # Unverified: the dashboard is out of reach.
    assert client.get(reverse("dashboard")).status_code == 302

    confirm_page = client.get(_link_from(mail.outbox[-1]))
    assert confirm_page.status_code == 200
    response = client.post(_link_from(mail.outbox[-1]))
    assert response.status_code == 302
    assert user.emailaddress_set.get().verified

    # Logged in, no account yet: the dashboard sends the user to onboarding.
    response = client.get(reverse("dashboard"))
    assert response["Location"] == reverse("onboarding")
    page = client.get(reverse("onboarding"))
    assert b"Company name" in page.content

    response = client.post(reverse("onboarding"), {"name": "Ada's Shop", "country": "FR"})
    assert response["Location"] == reverse("dashboard")
    account = Account.objects.get()
    assert account.signup_ip == "198.51.100.7"
    assert Membership.objects.get(user=user).role == "owner"

    dashboard = client.get(reverse("dashboard"))
    assert dashboard.status_code == 200
    html = dashboard.content.decode()
    assert "Ada&#x27;s Shop" in html
    assert "Trialing" in html
    assert "14 days" in html


@pytest.mark.django_db
def test_second_onboarding_submit_keeps_one_account(client):
    user = UserFactory()
    client.force_login(user)
    client.post(reverse("onboarding"), {"name": "First"})
    response = client.post(reverse("onboarding"), {"name": "Second"})
    assert response["Location"] == reverse("dashboard")
    assert list(Account.objects.values_list("name", flat=True)) == ["First"]
    assert AuditLog.objects.filter(action="account.provisioned").count() == 1


@pytest.mark.django_db
@pytest.mark.parametrize("name, message", [("", "This field is required"), ("x" * 201, "at most 200 characters")])
def test_onboarding_with_bad_name_shows_form_error_and_creates_nothing(client, name, message):
    client.force_login(UserFactory())
    response = client.post(reverse("onboarding"), {"name": name})
    assert response.status_code == 200
    assert message in response.content.decode()
    assert Account.objects.count() == 0


@pytest.mark.django_db
def test_onboarding_with_unknown_country_is_a_form_error(client):
    client.force_login(UserFactory())
    response = client.post(reverse("onboarding"), {"name": "Shop", "country": "XX"})
    assert response.status_code == 200
    assert "Select a valid choice" in response.content.decode()
    assert Account.objects.count() == 0


@pytest.mark.django_db
def test_signup_with_taken_email_creates_no_user_and_tells_the_owner_by_email(client):
    existing = UserFactory(email="taken@shop.example")
    existing.emailaddress_set.create(email=existing.email, verified=True, primary=True)

    response = _signup(client, "TAKEN@shop.example")

    # The page reveals nothing (enumeration prevention); the address's owner learns of the attempt.
    assert response.status_code == 302
    assert User.objects.filter(email__iexact="taken@shop.example").count() == 1
    assert mail.outbox[-1].to == ["taken@shop.example"]
    assert "already" in mail.outbox[-1].body.lower()


@pytest.mark.django_db
@pytest.mark.parametrize(
    "email, password, password2, message",
    [
        ("not-an-email", PASSWORD, None, "Enter a valid email address"),
        ("weak@shop.example", "password", None, "too common"),
        ("short@shop.example", "Zq9!", None, "too short"),
        ("mismatch@shop.example", PASSWORD, "another river entirely", "same password"),
    ],
)
def test_signup_bad_input_is_a_form_error_and_creates_no_user(client, email, password, password2, message):
    response = _signup(client, email, password, password2)
    assert response.status_code == 200
    assert message in response.content.decode()
    assert User.objects.count() == 0


@pytest.mark.django_db
def test_login_before_verification_resends_the_link_instead_of_logging_in(client):
    _signup(client, "late@shop.example")
    client.logout()
    mail.outbox.clear()
    response = client.post(reverse("account_login"), {"login": "late@shop.example", "password": PASSWORD})
    assert response.status_code == 302
    assert response["Location"] == reverse("account_email_verification_sent")
    assert client.get(reverse("dashboard")).status_code == 302


@pytest.mark.django_db
def test_password_reset_sends_a_link_that_sets_a_new_password(client):
    user = UserFactory(email="forgot@shop.example")
    user.emailaddress_set.create(email=user.email, verified=True, primary=True)
    client.post(reverse("account_reset_password"), {"email": "forgot@shop.example"})
    link = re.search(r"http://testserver(/accounts/password/reset/key/[^\s]+/)", mail.outbox[-1].body).group(1)
    form_page = client.get(link, follow=True)
    response = client.post(
        form_page.redirect_chain[-1][0],
        {"password1": "a brand new long phrase", "password2": "a brand new long phrase"},
    )
    assert response.status_code == 302
    user.refresh_from_db()
    assert user.check_password("a brand new long phrase")


@pytest.mark.django_db
def test_signup_is_rate_limited_per_ip(client):
    from fraud.models import Rule

    # allauth's limit is under test, not fraud's velocity rules (which would refuse the burst first).
    Rule.objects.filter(stage="signup").update(active=False)
    statuses = [_signup(client, f"burst{n}@shop.example").status_code for n in range(21)]
    assert statuses[:20] == [302] * 20
    assert statuses[-1] == 429


@pytest.mark.django_db
def test_agent_sees_dashboard_without_developer_links(client):
    membership = MembershipFactory(role="agent", account=AccountFactory(name="Team Shop"))
    client.force_login(membership.user)
    html = client.get(reverse("dashboard")).content.decode()
    assert "Team Shop" in html
    assert reverse("api_keys") not in html


@pytest.mark.django_db
def test_signup_page_labels_its_fields_and_states_the_terms(client):
    html = client.get(reverse("account_signup")).content.decode()
    assert '<label for="id_email">' in html
    assert "Terms of Service" in html and 'href="/terms/"' in html
    assert client.get("/terms/").status_code == 200
