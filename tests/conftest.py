"""Suite-wide set-up: PostgreSQL must be reachable; personas for every scoping test."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from tests.factories import AccountFactory, MembershipFactory, UserFactory


def pytest_configure(config):
    """Stop at once, in one line, when the test database server cannot be reached."""
    import psycopg
    from django.conf import settings

    db = settings.DATABASES["default"]
    if db["ENGINE"] != "django.db.backends.postgresql":
        pytest.exit(f"DATABASE_URL must point at PostgreSQL for the tests (got {db['ENGINE']}).", returncode=2)
    try:
        psycopg.connect(
            host=db["HOST"],
            port=db["PORT"] or 5432,
            user=db["USER"],
            password=db["PASSWORD"] or None,
            dbname="postgres",
            connect_timeout=3,
        ).close()
    except psycopg.Error as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        pytest.exit(
            f"Cannot reach PostgreSQL at DATABASE_URL (host {db['HOST']}:{db['PORT'] or 5432}): {first_line}",
            returncode=2,
        )


@pytest.fixture(autouse=True)
def _fresh_cache():
    """Rate-limit counters live in the cache: each test starts with none."""
    from django.core.cache import cache

    cache.clear()
    yield
    cache.clear()


class Persona:
    """A user with a role in an account, and clients logged in as them."""

    def __init__(self, user, account, membership):
        self.user = user
        self.account = account
        self.membership = membership

    def web(self, client):
        client.force_login(self.user)
        return client

    def api(self) -> APIClient:
        api = APIClient()
        api.force_login(self.user)
        return api


@pytest.fixture
def owner(db) -> Persona:
    membership = MembershipFactory(role="owner")
    return Persona(membership.user, membership.account, membership)


@pytest.fixture
def agent(owner) -> Persona:
    """An agent of the owner's account."""
    membership = MembershipFactory(account=owner.account, role="agent")
    return Persona(membership.user, owner.account, membership)


@pytest.fixture
def admin_member(owner) -> Persona:
    """An admin of the owner's account."""
    membership = MembershipFactory(account=owner.account, role="admin")
    return Persona(membership.user, owner.account, membership)


@pytest.fixture
def outsider(db) -> Persona:
    """The owner of another account."""
    membership = MembershipFactory(role="owner", account=AccountFactory(name="Other Shop"))
    return Persona(membership.user, membership.account, membership)


@pytest.fixture
def staff_user(db):
    return UserFactory(is_staff=True, is_superuser=True, email="ops@tollbooth.example")
