"""REST API v1: /me, /account and /api-keys, each with owner, agent of the same account and outsider."""

import pytest
from django.urls import reverse
from rest_framework.test import APIClient

from accounts.models import Account, ApiKey, AuditLog
from accounts.services import api_key_create, api_key_revoke

ME, ACCOUNT, KEYS = "/api/v1/me", "/api/v1/account", "/api/v1/api-keys"


def _key_client(raw_key: str) -> APIClient:
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {raw_key}")
    return api


def test_me_tells_each_persona_its_own_account_and_role(owner, agent, outsider):
    for persona, role in [(owner, "owner"), (agent, "agent"), (outsider, "owner")]:
        body = persona.api().get(ME).json()
        assert body["auth"] == "session"
        assert body["user"]["email"] == persona.user.email
        assert body["role"] == role
        assert body["account"]["id"] == persona.account.pk


def test_me_with_api_key_names_the_account_not_a_person(owner):
    _key, raw = api_key_create(account=owner.account, actor=owner.user, name="Shop backend")
    body = _key_client(raw).get(ME).json()
    assert body == {**body, "auth": "api_key", "user": None, "role": None}
    assert body["account"]["id"] == owner.account.pk


def test_account_get_is_scoped_to_the_callers_account(owner, agent, outsider):
    assert owner.api().get(ACCOUNT).json()["id"] == owner.account.pk
    assert agent.api().get(ACCOUNT).json()["id"] == owner.account.pk
    outsider_view = outsider.api().get(ACCOUNT).json()
    assert outsider_view["id"] == outsider.account.pk
    assert outsider_view["name"] == "Other Shop"


def test_owner_renames_the_account_and_it_is_audited(owner):
    response = owner.api().patch(ACCOUNT, {"name": "Renamed Shop", "country": "DE"}, format="json")
    assert response.status_code == 200
    assert response.json()["name"] == "Renamed Shop"
    owner.account.refresh_from_db()
    assert (owner.account.name, owner.account.country.code) == ("Renamed Shop", "DE")
    audit = AuditLog.objects.get(action="account.updated")
    assert audit.actor == owner.user
    assert audit.after == {"name": "Renamed Shop", "country": "DE"}


def test_admin_member_may_rename_too(admin_member):
    assert admin_member.api().patch(ACCOUNT, {"name": "By Admin"}, format="json").status_code == 200


def test_agent_cannot_change_the_account(agent):
    response = agent.api().patch(ACCOUNT, {"name": "Hijacked"}, format="json")
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "permission_denied"
    agent.account.refresh_from_db()
    assert agent.account.name != "Hijacked"
    assert not AuditLog.objects.filter(action="account.updated").exists()


def test_outsider_patch_touches_only_their_own_account(owner, outsider):
    name_before = owner.account.name
    response = outsider.api().patch(ACCOUNT, {"name": "Outsider Renamed", "id": owner.account.pk}, format="json")
    assert response.status_code == 400  # "id" is not a field one may send
    outsider.api().patch(ACCOUNT, {"name": "Outsider Renamed"}, format="json")
    owner.account.refresh_from_db()
    assert owner.account.name == name_before
    assert Account.objects.get(pk=outsider.account.pk).name == "Outsider Renamed"


@pytest.mark.parametrize(
    "payload, field, fragment",
    [
        ({"name": ""}, "name", "may not be blank"),
        ({"name": "x" * 300}, "name", "no more than 200 characters"),
        ({"status": "active"}, "status", "Unknown field"),
        ({"name": "Fine", "plan": "pro"}, "plan", "Unknown field"),
        ({"country": "XX"}, "country", "not a valid choice"),
        ({"billing_email": "nope"}, "billing_email", "valid email"),
    ],
)
def test_bad_patch_gets_field_errors_and_changes_nothing(owner, payload, field, fragment):
    before = Account.objects.values().get(pk=owner.account.pk)
    response = owner.api().patch(ACCOUNT, payload, format="json")
    assert response.status_code == 400
    error = response.json()["error"]
    assert fragment in " ".join(error["fields"][field])
    assert Account.objects.values().get(pk=owner.account.pk) == before


def test_malformed_json_is_a_400_not_a_500(owner):
    response = owner.api().generic("PATCH", ACCOUNT, "{not json", content_type="application/json")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "parse_error"


def test_unauthenticated_calls_get_401_json(db):
    for url in (ME, ACCOUNT, KEYS):
        response = APIClient().get(url)
        assert response.status_code == 401
        assert response.json()["error"]["code"] == "not_authenticated"


@pytest.mark.parametrize("header", ["Bearer tb_000000000000_wrong", "Bearer tb_garbage", "Bearer sk_live_x"])
def test_wrong_api_key_is_refused(db, header):
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=header)
    response = api.get(ACCOUNT)
    assert response.status_code == 401
    assert response.json()["error"]["code"] in {"invalid_api_key", "authentication_failed"}


def test_revoked_api_key_is_refused(owner):
    api_key, raw = api_key_create(account=owner.account, actor=owner.user, name="Old")
    assert _key_client(raw).get(ACCOUNT).status_code == 200
    api_key_revoke(api_key=api_key, actor=owner.user)
    response = _key_client(raw).get(ACCOUNT)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_api_key"


def test_api_key_reads_its_account_and_records_use(owner):
    api_key, raw = api_key_create(account=owner.account, actor=owner.user, name="Shop backend")
    assert _key_client(raw).get(ACCOUNT).json()["id"] == owner.account.pk
    api_key.refresh_from_db()
    assert api_key.last_used_at is not None


def test_api_key_cannot_change_the_account_or_issue_keys(owner):
    _key, raw = api_key_create(account=owner.account, actor=owner.user, name="Shop backend")
    client = _key_client(raw)
    assert client.patch(ACCOUNT, {"name": "By a machine"}, format="json").status_code == 403
    assert client.post(KEYS, {"name": "More"}, format="json").status_code == 403
    assert ApiKey.objects.count() == 1


def test_owner_issues_a_key_shown_once_and_stored_hashed(owner):
    response = owner.api().post(KEYS, {"name": "Shop backend"}, format="json")
    assert response.status_code == 201
    raw = response.json()["key"]
    stored = ApiKey.objects.get()
    assert raw.startswith(f"tb_{stored.prefix}_")
    assert raw.split("_", 2)[2] not in stored.secret_hash
    listing = owner.api().get(KEYS).json()
    assert [item["name"] for item in listing] == ["Shop backend"]
    assert "key" not in listing[0]
    assert _key_client(raw).get(ACCOUNT).status_code == 200


def test_agent_cannot_list_issue_or_revoke_keys(owner, agent):
    api_key, _raw = api_key_create(account=owner.account, actor=owner.user, name="Shop backend")
    client = agent.api()
    assert client.get(KEYS).status_code == 403
    assert client.post(KEYS, {"name": "Mine"}, format="json").status_code == 403
    assert client.delete(f"{KEYS}/{api_key.pk}").status_code == 403
    api_key.refresh_from_db()
    assert api_key.revoked_at is None
    assert ApiKey.objects.count() == 1


def test_outsider_cannot_see_or_revoke_another_accounts_key(owner, outsider):
    api_key, _raw = api_key_create(account=owner.account, actor=owner.user, name="Shop backend")
    assert outsider.api().get(KEYS).json() == []
    response = outsider.api().delete(f"{KEYS}/{api_key.pk}")
    assert response.status_code == 404
    api_key.refresh_from_db()
    assert api_key.revoked_at is None


def test_owner_revokes_a_key(owner):
    api_key, raw = api_key_create(account=owner.account, actor=owner.user, name="Shop backend")
    response = owner.api().delete(f"{KEYS}/{api_key.pk}")
    assert response.status_code == 200
    assert response.json()["revoked"] is True
    assert AuditLog.objects.filter(action="api_key.revoked").count() == 1
    assert _key_client(raw).get(ACCOUNT).status_code == 401


@pytest.mark.parametrize(
    "payload, field", [({}, "name"), ({"name": ""}, "name"), ({"name": "k", "scope": "all"}, "scope")]
)
def test_bad_key_request_gets_field_error(owner, payload, field):
    response = owner.api().post(KEYS, payload, format="json")
    assert response.status_code == 400
    assert field in response.json()["error"]["fields"]
    assert ApiKey.objects.count() == 0


def test_user_without_account_gets_a_clear_404(db):
    from tests.factories import UserFactory

    api = APIClient()
    api.force_login(UserFactory())
    response = api.get(ACCOUNT)
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "no_account"


def test_unknown_api_path_answers_json_404(owner):
    response = owner.api().get("/api/v1/nope")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


def test_openapi_schema_describes_the_endpoints(db, client):
    response = client.get(reverse("api-schema"), HTTP_ACCEPT="application/json")
    assert response.status_code == 200
    schema = response.json() if response["Content-Type"].startswith("application/json") else None
    if schema is None:
        import yaml

        schema = yaml.safe_load(response.content)
    for path in ("/api/v1/me", "/api/v1/account", "/api/v1/api-keys", "/api/v1/api-keys/{key_id}"):
        assert path in schema["paths"]
    assert "patch" in schema["paths"]["/api/v1/account"]


def test_api_docs_page_is_served_without_a_cdn(db, client):
    response = client.get(reverse("api-docs"))
    assert response.status_code == 200
    html = response.content.decode()
    assert "cdn." not in html
    assert "/static/drf_spectacular_sidecar/" in html
