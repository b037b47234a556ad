"""Suite-wide set-up: PostgreSQL must be reachable; personas for every scoping test."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from tests.factories import AccountFactory, MembershipFactory, UserFactory
from tests.sandbox.fixtures import sandbox, sandbox_server, stripe_client  # noqa: F401  (fixtures)


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


def pytest_collection_modifyitems(config, items):
    """Tests that need a real Celery worker on Redis skip, saying so, when Redis is not there."""
    workers = [item for item in items if item.get_closest_marker("worker")]
    if not workers:
        return
    from django.conf import settings

    reason = _redis_unreachable(settings.CELERY_BROKER_URL)
    if reason:
        for item in workers:
            item.add_marker(pytest.mark.skip(reason=reason))


def _redis_unreachable(url: str) -> str | None:
    import redis

    try:
        redis.Redis.from_url(url, socket_connect_timeout=2).ping()
    except redis.RedisError as exc:
        return f"Redis not reachable at {url} ({type(exc).__name__})"
    return None


@pytest.fixture(scope="session", autouse=True)
def _stripe_is_the_sandbox(sandbox_server):  # noqa: F811
    """The product reaches Stripe through settings; for the whole session they name the sandbox."""
    import stripe
    from django.conf import settings

    previous = (
        settings.STRIPE_API_HOST if hasattr(settings, "STRIPE_API_HOST") else None,
        settings.STRIPE_TEST_SECRET_KEY,
        stripe.api_base,
    )
    settings.STRIPE_API_HOST = sandbox_server.base_url
    settings.STRIPE_TEST_SECRET_KEY = sandbox_server.api_key
    stripe.api_base = sandbox_server.base_url  # dj-stripe's own calls go through the module-level base
    yield sandbox_server
    settings.STRIPE_API_HOST, settings.STRIPE_TEST_SECRET_KEY, stripe.api_base = previous


@pytest.fixture(autouse=True)
def _not_inside_a_worker():
    """An in-process Celery worker (tests/test_celery_worker.py) marks the whole process as a worker's when its pool
    starts, which may be after start_worker cleared the mark: every later eager `.get()` would then refuse."""
    from celery._state import _set_task_join_will_block

    _set_task_join_will_block(False)


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


@pytest.fixture
def catalog(db):
    """The demo catalog. No migration seeds it (a real database's catalog is its own): the tests do."""
    from plans.demo_catalog import catalog_seed_demo
    from plans.models import Plan

    if not Plan.objects.exists():
        catalog_seed_demo()
    return Plan.objects.order_by("rank")


@pytest.fixture
def fraud_rules(db):
    """The default fraud rules and the "fraud" group, seeded by a data migration (flushed like the catalog)."""
    from django.contrib.auth.models import Group

    from fraud.models import Rule
    from fraud.rules import rules_seed_defaults

    rules_seed_defaults()
    Group.objects.get_or_create(name="fraud")
    return Rule.objects.all()


@pytest.fixture(autouse=True)
def _catalog_for_database_tests(request):
    """Every test with a database sees the demo catalog (the trial plan among it), as `make run` seeds it."""
    uses_database = request.node.get_closest_marker("django_db") or {"db", "transactional_db", "live_server"} & set(
        request.fixturenames
    )
    if uses_database:
        request.getfixturevalue("catalog")
        request.getfixturevalue("fraud_rules")


@pytest.fixture
def smtp(settings):
    """A real local SMTP server that refuses the first `refuse_first` messages (554), then takes them; Django's
    SMTP backend pointed at it. `smtp(refuse_first=n)` starts one (a later call points Django at the new one)."""
    from tests.accounts.smtp_server import smtp_server_start

    started = []

    def start(*, refuse_first: int):
        state, server = smtp_server_start(refuse_first=refuse_first)
        started.append(server)
        settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
        settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", state.port
        settings.EMAIL_USE_TLS = settings.EMAIL_USE_SSL = False
        settings.EMAIL_TIMEOUT = 5
        return state

    yield start
    for server in started:
        server.shutdown()
        server.server_close()
