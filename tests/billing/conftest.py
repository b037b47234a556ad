"""Fixtures of billing's tests that several modules share."""

from __future__ import annotations

import pytest
from django.core.management import call_command

from billing.stripe.endpoints import webhook_endpoint_ensure
from tests.billing.event_helpers import sandbox_flush


@pytest.fixture
def event_shop(sandbox, catalog, live_server, owner):
    """A trialing merchant, the catalog on the sandbox, and the sandbox's webhooks flowing to the live app
    (`event_shop.url` is our intake's address)."""
    call_command("sync_plans", stdout=open("/dev/null", "w"))  # noqa: SIM115
    owner.endpoint = webhook_endpoint_ensure(base_url=live_server.url)
    owner.sandbox = sandbox
    owner.url = live_server.url + f"/stripe/webhook/{owner.endpoint.djstripe_uuid}/"
    yield owner
    # Let this test's deliveries finish before its endpoint and database go away.
    sandbox_flush(sandbox)
    sandbox.reset()
