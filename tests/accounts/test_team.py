"""Team: each role x action, the seat limit at N-1 / N / N+1 and the concurrent last seat, invitation links,
and an outsider's attempts on every team endpoint."""

import re
import threading
from datetime import timedelta

import pytest
from django.core import mail
from django.db import connection
from django.utils import timezone

from accounts import services
from accounts.errors import DomainError
from accounts.models import AccountStatus, AuditLog, Invitation, Membership
from plans.models import Plan
from tests.factories import MembershipFactory

MEMBERS, INVITATIONS = "/api/v1/members", "/api/v1/invitations"


def _on_plan(account, code):
    account.plan = Plan.objects.get(code=code)
    account.status = AccountStatus.ACTIVE
    account.save(update_fields=["plan", "status"])
    return account


def _link(message) -> str:
    return re.search(r"https?://[^/\s]+(/invitations/[^\s/]+/)", message.body).group(1)


# --- role x action --------------------------------------------------------------------------------------


@pytest.mark.parametrize("persona, allowed", [("owner", True), ("admin_member", True), ("agent", False)])
def test_who_may_invite(db, request, persona, allowed, django_capture_on_commit_callbacks):
    actor = request.getfixturevalue(persona)
    with django_capture_on_commit_callbacks(execute=True):
        response = actor.api().post(INVITATIONS, {"email": "new@shop.example", "role": "agent"}, format="json")
    assert response.status_code == (201 if allowed else 403)
    assert Invitation.objects.filter(email="new@shop.example").exists() is allowed
    if allowed:
        [message] = mail.outbox
        assert message.to == ["new@shop.example"]
        inviter = actor.user.full_name or actor.user.email
        assert inviter in message.subject and actor.account.name in message.subject
        assert "as agent" in message.body


@pytest.mark.parametrize("persona, allowed", [("owner", True), ("admin_member", True), ("agent", False)])
def test_who_may_change_an_agents_role(db, request, owner, persona, allowed):
    actor = request.getfixturevalue(persona)
    target = MembershipFactory(account=owner.account, role="agent")
    response = actor.api().patch(f"{MEMBERS}/{target.pk}", {"role": "admin"}, format="json")
    assert response.status_code == (200 if allowed else 403)
    target.refresh_from_db()
    assert target.role == ("admin" if allowed else "agent")


@pytest.mark.parametrize("persona, allowed", [("owner", True), ("admin_member", True), ("agent", False)])
def test_who_may_deactivate_and_reactivate_an_agent(request, owner, persona, allowed):
    actor = request.getfixturevalue(persona)
    target = MembershipFactory(account=owner.account, role="agent")
    assert actor.api().post(f"{MEMBERS}/{target.pk}/deactivate").status_code == (200 if allowed else 403)
    target.refresh_from_db()
    assert target.is_active is (not allowed)
    if allowed:
        assert actor.api().post(f"{MEMBERS}/{target.pk}/reactivate").status_code == 200
        target.refresh_from_db()
        assert target.is_active
        assert AuditLog.objects.filter(action="membership.reactivated").count() == 1


@pytest.mark.parametrize("persona, allowed", [("owner", True), ("admin_member", False), ("agent", False)])
def test_who_may_transfer_ownership(request, owner, persona, allowed):
    actor = request.getfixturevalue(persona)
    target = MembershipFactory(account=owner.account, role="admin")
    response = actor.api().post(f"{MEMBERS}/{target.pk}/transfer-ownership")
    assert response.status_code == (200 if allowed else 403)
    target.refresh_from_db()
    owner.membership.refresh_from_db()
    if allowed:
        assert (target.role, owner.membership.role) == ("owner", "admin")
        assert AuditLog.objects.get(action="ownership.transferred").actor == owner.user
    else:
        assert (target.role, owner.membership.role) == ("admin", "owner")


@pytest.mark.parametrize("persona, allowed", [("owner", True), ("admin_member", True), ("agent", False)])
def test_who_may_list_revoke_and_resend_invitations(request, owner, persona, allowed, settings):
    settings.TOLLBOOTH_INVITATION_RESEND_MINUTES = 0
    actor = request.getfixturevalue(persona)
    invitation = services.invitation_create(account=owner.account, actor=owner.user, email="x@shop.example")
    api = actor.api()
    assert api.get(INVITATIONS).status_code == (200 if allowed else 403)
    assert api.post(f"{INVITATIONS}/{invitation.pk}/resend").status_code == (200 if allowed else 403)
    assert api.delete(f"{INVITATIONS}/{invitation.pk}").status_code == (200 if allowed else 403)
    invitation.refresh_from_db()
    assert invitation.status == ("revoked" if allowed else "pending")
    assert invitation.send_count == (2 if allowed else 1)


def test_admin_cannot_remove_or_demote_an_owner(owner, admin_member):
    api = admin_member.api()
    assert api.post(f"{MEMBERS}/{owner.membership.pk}/deactivate").status_code == 403
    assert api.patch(f"{MEMBERS}/{owner.membership.pk}", {"role": "agent"}, format="json").status_code == 403
    owner.membership.refresh_from_db()
    assert (owner.membership.role, owner.membership.is_active) == ("owner", True)


def test_the_last_owner_cannot_be_removed_or_demoted(owner):
    api = owner.api()
    response = api.post(f"{MEMBERS}/{owner.membership.pk}/deactivate")
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "last_owner"
    assert api.patch(f"{MEMBERS}/{owner.membership.pk}", {"role": "admin"}, format="json").status_code == 409
    owner.membership.refresh_from_db()
    assert (owner.membership.role, owner.membership.is_active) == ("owner", True)


def test_members_list_is_scoped_and_visible_to_agents(owner, agent, outsider):
    emails = {m["email"] for m in agent.api().get(MEMBERS).json()}
    assert emails == {owner.user.email, agent.user.email}
    assert {m["email"] for m in outsider.api().get(MEMBERS).json()} == {outsider.user.email}


def test_outsider_touches_nothing_of_another_account(owner, agent, outsider):
    invitation = services.invitation_create(account=owner.account, actor=owner.user, email="x@shop.example")
    api = outsider.api()
    for method, url, body in [
        ("patch", f"{MEMBERS}/{agent.membership.pk}", {"role": "admin"}),
        ("post", f"{MEMBERS}/{agent.membership.pk}/deactivate", None),
        ("post", f"{MEMBERS}/{agent.membership.pk}/reactivate", None),
        ("post", f"{MEMBERS}/{agent.membership.pk}/transfer-ownership", None),
        ("delete", f"{INVITATIONS}/{invitation.pk}", None),
        ("post", f"{INVITATIONS}/{invitation.pk}/resend", None),
    ]:
        response = getattr(api, method)(url, body, format="json")
        assert response.status_code == 404, (url, response.status_code)
    assert outsider.api().get(INVITATIONS).json() == []
    agent.membership.refresh_from_db()
    invitation.refresh_from_db()
    assert (agent.membership.role, agent.membership.is_active, invitation.status) == ("agent", True, "pending")


def test_outsider_pages_are_scoped_too(client, owner, agent, outsider):
    outsider.web(client)
    assert client.post(f"/team/members/{agent.membership.pk}/deactivate/").status_code == 404
    assert owner.user.email not in client.get("/team/").content.decode()


# --- bad invitation input -------------------------------------------------------------------------------


def test_inviting_a_current_member_is_refused(owner, agent):
    response = owner.api().post(INVITATIONS, {"email": agent.user.email.upper()}, format="json")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "already_member"
    assert "email" in response.json()["error"]["fields"]


def test_inviting_twice_is_refused_and_owner_role_cannot_be_invited(owner):
    api = owner.api()
    assert api.post(INVITATIONS, {"email": "x@shop.example"}, format="json").status_code == 201
    assert api.post(INVITATIONS, {"email": "X@shop.example"}, format="json").json()["error"]["code"] == (
        "already_invited"
    )
    response = api.post(INVITATIONS, {"email": "y@shop.example", "role": "owner"}, format="json")
    assert response.status_code == 400 and "role" in response.json()["error"]["fields"]
    assert Invitation.objects.count() == 1


def test_resend_is_rate_limited(owner):
    invitation = services.invitation_create(account=owner.account, actor=owner.user, email="x@shop.example")
    response = owner.api().post(f"{INVITATIONS}/{invitation.pk}/resend")
    assert response.status_code == 429
    assert response.json()["error"]["code"] == "rate_limited"


def _invite(owner, email="new@shop.example", role="agent"):
    invitation = services.invitation_create(account=owner.account, actor=owner.user, email=email, role=role)
    return invitation, f"/invitations/{services.invitation_token(invitation)}/"


def test_forged_link_is_refused(client, owner):
    _invitation, link = _invite(owner)
    response = client.get(link[:-5] + "XXXX/")
    assert response.status_code == 400
    assert "not valid" in response.content.decode()


def test_expired_link_is_refused(client, owner):
    invitation, link = _invite(owner)
    Invitation.objects.filter(pk=invitation.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    response = client.get(link)
    assert response.status_code == 409
    assert "expired" in response.content.decode()


def test_revoked_link_is_refused(client, owner):
    invitation, link = _invite(owner)
    services.invitation_revoke(invitation=invitation, actor=owner.user)
    assert "withdrawn" in client.get(link).content.decode()


def test_link_works_once(client, owner):
    _invitation, link = _invite(owner)
    client.post(link, {"password1": "a long and quiet river", "password2": "a long and quiet river"})
    client.logout()
    response = client.get(link)
    assert response.status_code == 409
    assert "already been used" in response.content.decode()
    assert Membership.objects.filter(account=owner.account).count() == 2


def test_invitee_signs_up_from_the_link_joins_as_agent_and_sees_no_billing(
    client, owner, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        owner.api().post(INVITATIONS, {"email": "sam@shop.example", "role": "agent"}, format="json")
    link = _link(mail.outbox[-1])
    page = client.get(link).content.decode()
    assert "Join " + owner.account.name.replace("'", "&#x27;") in page
    response = client.post(
        link, {"full_name": "Sam", "password1": "a long and quiet river", "password2": "a long and quiet river"}
    )
    assert response["Location"] == "/dashboard/"
    membership = Membership.objects.get(user__email="sam@shop.example")
    assert (membership.account, membership.role, membership.is_active) == (owner.account, "agent", True)
    dashboard = client.get("/dashboard/").content.decode()
    assert owner.account.name.replace("'", "&#x27;") in dashboard
    assert 'href="/billing/"' not in dashboard
    assert client.get("/billing/").status_code == 403
    assert client.get("/api/v1/subscription").status_code == 403


def test_existing_user_signs_in_then_accepts_and_works_in_the_new_account(client, owner, outsider):
    _invitation, link = _invite(owner, email=outsider.user.email, role="admin")
    assert "Sign in to accept" in client.get(link).content.decode()
    outsider.web(client)
    client.post(link)
    assert Membership.objects.get(user=outsider.user, account=owner.account).role == "admin"
    assert owner.account.name.replace("'", "&#x27;") in client.get("/dashboard/").content.decode()


def test_signed_in_as_someone_else_cannot_accept(client, owner, outsider):
    _invitation, link = _invite(owner, email="someone@else.example")
    outsider.web(client)
    assert client.post(link).status_code == 403
    assert not Membership.objects.filter(user=outsider.user, account=owner.account).exists()


# --- seats ----------------------------------------------------------------------------------------------


@pytest.fixture
def starter_owner(owner):
    """An owner on Starter, whose plan includes 2 seats."""
    _on_plan(owner.account, "starter")
    return owner


def test_seat_limit_at_n_minus_1_then_n(starter_owner):
    api = starter_owner.api()
    assert api.post(INVITATIONS, {"email": "second@shop.example"}, format="json").status_code == 201  # 1 → 2
    response = api.post(INVITATIONS, {"email": "third@shop.example"}, format="json")  # 2 of 2
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "seat_limit"
    assert "Starter plan includes 2 seats" in error["message"]
    assert "The Basic plan includes 5 seats" in error["message"]
    assert Invitation.objects.count() == 1


def test_over_the_limit_after_a_downgrade_keeps_members_and_blocks_additions(owner, agent, admin_member):
    _on_plan(owner.account, "starter")  # 3 members on a 2-seat plan: N+1
    inactive = MembershipFactory(account=owner.account, role="agent", is_active=False)
    api = owner.api()
    assert api.post(INVITATIONS, {"email": "fourth@shop.example"}, format="json").json()["error"]["code"] == (
        "seat_limit"
    )
    assert api.post(f"{MEMBERS}/{inactive.pk}/reactivate").json()["error"]["code"] == "seat_limit"
    assert Membership.objects.filter(account=owner.account, is_active=True).count() == 3  # nobody removed


def test_an_expired_invitation_frees_its_seat(starter_owner):
    invitation = services.invitation_create(
        account=starter_owner.account, actor=starter_owner.user, email="a@x.example"
    )
    Invitation.objects.filter(pk=invitation.pk).update(expires_at=timezone.now() - timedelta(minutes=1))
    services.invitation_create(account=starter_owner.account, actor=starter_owner.user, email="b@x.example")
    assert services.seats_in_use(account=starter_owner.account) == 2


@pytest.mark.django_db(transaction=True)
def test_two_concurrent_invitations_for_the_last_seat_give_exactly_one(catalog):
    membership = MembershipFactory(role="owner")
    account = _on_plan(membership.account, "starter")
    barrier = threading.Barrier(2)
    outcomes = []

    def invite(email):
        try:
            barrier.wait(timeout=5)
            services.invitation_create(account=account, actor=membership.user, email=email)
            outcomes.append("ok")
        except DomainError as error:
            outcomes.append(error.code)
        finally:
            connection.close()

    threads = [threading.Thread(target=invite, args=(f"racer{n}@shop.example",)) for n in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["ok", "seat_limit"]
    assert Invitation.objects.filter(account=account).count() == 1


def test_suspended_account_keeps_its_team_but_adds_nobody(owner, agent):
    owner.account.status = AccountStatus.SUSPENDED
    owner.account.save(update_fields=["status"])
    response = owner.api().post(INVITATIONS, {"email": "late@shop.example"}, format="json")
    assert response.status_code == 403
    assert Membership.objects.filter(account=owner.account, is_active=True).count() == 2


def test_staff_resend_and_revoke_from_the_admin_are_audited(client, owner, staff_user, settings):
    settings.TOLLBOOTH_INVITATION_RESEND_MINUTES = 0
    invitation = services.invitation_create(account=owner.account, actor=owner.user, email="x@shop.example")
    client.force_login(staff_user)
    url = "/admin/accounts/invitation/"
    client.post(url, {"action": "resend", "_selected_action": [invitation.pk]})
    client.post(url, {"action": "revoke", "_selected_action": [invitation.pk]})
    invitation.refresh_from_db()
    assert (invitation.send_count, invitation.status) == (2, "revoked")
    actions = set(AuditLog.objects.filter(actor=staff_user).values_list("action", flat=True))
    assert actions == {"invitation.resent", "invitation.revoked"}
    page = client.get(f"/admin/accounts/account/{owner.account.pk}/change/").content.decode()
    assert "x@shop.example" in page


def test_team_page_shows_seats_and_lets_an_owner_invite(client, starter_owner):
    starter_owner.web(client)
    page = client.get("/team/").content.decode()
    assert "1 of 2 seats used on the Starter plan" in page
    response = client.post("/team/invite/", {"email": "page@shop.example", "role": "agent"}, follow=True)
    assert "Invitation sent to page@shop.example" in response.content.decode()
    response = client.post("/team/invite/", {"email": "more@shop.example", "role": "agent"}, follow=True)
    assert "Starter plan includes 2 seats" in response.content.decode()


def test_agent_sees_the_team_page_without_actions(client, agent):
    html = agent.web(client).get("/team/").content.decode()
    assert "Send invitation" not in html
    assert client.post("/team/invite/", {"email": "x@shop.example", "role": "agent"}).status_code == 302
    assert not Invitation.objects.exists()
