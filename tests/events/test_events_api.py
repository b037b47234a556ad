"""The webhook endpoints and events API: owners and admins only, scoped to their account; bad input is a 400
with field messages, another account's ids are not found."""

from __future__ import annotations

import pytest

from accounts.models import AccountStatus
from accounts.services import account_change_status
from outbox.models import DomainEvent, WebhookEndpoint

URL = "http://127.0.0.1:9/hooks"


def _suspend(persona) -> DomainEvent:
    account_change_status(account=persona.account, to=AccountStatus.SUSPENDED, actor=None, reason="test")
    return DomainEvent.objects.get(account_id=persona.account.pk, type="account.suspended")


@pytest.mark.parametrize(("persona", "allowed"), [("owner", True), ("admin_member", True), ("agent", False)])
def test_who_may_manage_endpoints_and_read_events(request, owner, persona, allowed):
    api = request.getfixturevalue(persona).api()
    created = api.post("/api/v1/webhook-endpoints", {"url": URL, "event_types": ["invoice.paid"]}, format="json")
    listed = api.get("/api/v1/webhook-endpoints")
    events = api.get("/api/v1/events")
    if not allowed:
        assert (created.status_code, listed.status_code, events.status_code) == (403, 403, 403)
        assert not WebhookEndpoint.objects.exists()
        return
    assert created.status_code == 201 and created.json()["secret"].startswith("whsec_")
    endpoint_id = created.json()["id"]
    assert [e["id"] for e in listed.json()] == [endpoint_id] and "secret" not in listed.json()[0]
    assert api.get(f"/api/v1/webhook-endpoints/{endpoint_id}").json()["event_types"] == ["invoice.paid"]
    patched = api.patch(
        f"/api/v1/webhook-endpoints/{endpoint_id}", {"enabled": False, "roll_secret": True}, format="json"
    )
    assert patched.status_code == 200 and patched.json()["enabled"] is False
    assert patched.json()["secret"] != created.json()["secret"]
    assert api.delete(f"/api/v1/webhook-endpoints/{endpoint_id}").status_code == 204
    assert not WebhookEndpoint.objects.exists()


def test_events_are_listed_newest_first_paginated_and_read_one_by_one(owner):
    account_change_status(account=owner.account, to=AccountStatus.SUSPENDED, actor=None, reason="overdue")
    account_change_status(account=owner.account, to=AccountStatus.ACTIVE, actor=None, reason="paid")
    api = owner.api()
    page = api.get("/api/v1/events?limit=1").json()
    assert [e["type"] for e in page["results"]] == ["account.reactivated"] and page["next"]
    older = api.get(page["next"]).json()
    assert [e["type"] for e in older["results"]] == ["account.suspended"] and older["next"] is None
    event = older["results"][0]
    assert api.get(f"/api/v1/events/{event['id']}").json()["data"]["reason"] == "overdue"
    assert [e["type"] for e in api.get("/api/v1/events?type=account.suspended").json()["results"]] == [
        "account.suspended"
    ]


def test_an_outsider_sees_and_touches_nothing_of_another_account(owner, outsider):
    endpoint_id = owner.api().post("/api/v1/webhook-endpoints", {"url": URL}, format="json").json()["id"]
    event = _suspend(owner)
    api = outsider.api()
    assert api.get("/api/v1/webhook-endpoints").json() == []
    assert api.get("/api/v1/events").json()["results"] == []
    for method, path in [
        ("get", f"/api/v1/webhook-endpoints/{endpoint_id}"),
        ("patch", f"/api/v1/webhook-endpoints/{endpoint_id}"),
        ("delete", f"/api/v1/webhook-endpoints/{endpoint_id}"),
        ("get", f"/api/v1/events/{event.public_id}"),
        ("post", f"/api/v1/events/{event.public_id}/redeliver"),
    ]:
        assert getattr(api, method)(path, {}, format="json").status_code == 404, path
    assert WebhookEndpoint.objects.get().enabled is True


def test_an_agent_cannot_redeliver(owner, agent):
    event = _suspend(owner)
    assert agent.api().post(f"/api/v1/events/{event.public_id}/redeliver", {}, format="json").status_code == 403


def test_bad_input_is_a_400_with_field_messages_and_writes_nothing(owner, settings):
    api = owner.api()
    for body, field in [
        ({"url": "not a url"}, "url"),
        ({"url": URL, "event_types": ["invoice.exploded"]}, "event_types"),
        ({"url": URL, "colour": "red"}, "colour"),
        ({}, "url"),
    ]:
        reply = api.post("/api/v1/webhook-endpoints", body, format="json")
        assert reply.status_code == 400 and field in str(reply.json()), (body, reply.json())
    settings.TOLLBOOTH_WEBHOOKS_ALLOW_PRIVATE = False  # production: our own network is off limits
    reply = api.post("/api/v1/webhook-endpoints", {"url": "https://127.0.0.1/hooks"}, format="json")
    assert reply.status_code == 400 and "public address" in str(reply.json())
    reply = api.post("/api/v1/webhook-endpoints", {"url": "http://example.com/hooks"}, format="json")
    assert reply.status_code == 400 and "https" in str(reply.json())
    assert api.get("/api/v1/events/evt_nonsense").status_code == 404
    assert not WebhookEndpoint.objects.exists()


@pytest.mark.parametrize(("persona", "status"), [("owner", 200), ("admin_member", 200), ("agent", 403)])
def test_the_webhooks_page_is_for_owners_and_admins(client, request, owner, persona, status):
    page = request.getfixturevalue(persona).web(client).get("/settings/webhooks/")
    assert page.status_code == status
    if status == 200:
        reply = client.post("/settings/webhooks/", {"url": URL, "event_types": ["invoice.paid"], "description": "CRM"})
        assert reply.status_code == 200 and "whsec_" in reply.content.decode()  # the secret, shown once
        endpoint = WebhookEndpoint.objects.get(account_id=owner.account.pk)
        assert endpoint.event_types == ["invoice.paid"]
        assert client.post(f"/settings/webhooks/{endpoint.pk}/toggle/").status_code == 302
        endpoint.refresh_from_db()
        assert endpoint.enabled is False


def test_the_webhooks_page_of_one_account_touches_nothing_of_another(client, owner, outsider):
    endpoint_id = owner.api().post("/api/v1/webhook-endpoints", {"url": URL}, format="json").json()["id"]
    event = _suspend(owner)
    web = outsider.web(client)
    page = web.get("/settings/webhooks/").content.decode()
    assert URL not in page and event.public_id not in page
    pk = endpoint_id.removeprefix("we_")
    assert web.post(f"/settings/webhooks/{pk}/delete/").status_code == 404
    assert web.post(f"/settings/events/{event.pk}/redeliver/").status_code == 404
    assert WebhookEndpoint.objects.filter(account_id=owner.account.pk).count() == 1


def test_a_bad_url_on_the_page_is_a_form_error(client, owner):
    reply = owner.web(client).post("/settings/webhooks/", {"url": "ftp://nowhere"})
    assert reply.status_code == 200 and "Enter a valid URL." in reply.content.decode()
    assert not WebhookEndpoint.objects.exists()
