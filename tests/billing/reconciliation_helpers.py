"""Helpers for the reconciliation tests: an account subscribed through a real Checkout at the sandbox."""

from __future__ import annotations

from io import StringIO

from django.core.management import call_command

from accounts.models import AccountStatus
from billing.subscriptions.checkout import checkout_completed, checkout_start
from plans.models import PlanPrice


def subscribe_through_checkout(sandbox, persona, *, plan="pro", interval="month"):
    """Check out at the sandbox and mirror the outcome as the webhook handler would (no live server: no webhook)."""
    call_command("sync_plans", stdout=StringIO())
    attempt = checkout_start(
        account=persona.account,
        actor=persona.user,
        plan_price=PlanPrice.objects.get(plan__code=plan, interval=interval, currency="usd"),
    )
    sandbox.request(
        "POST", f"/_sandbox/checkout/{attempt.stripe_session_id}/complete", {"card": "4242424242424242"}, api_key=None
    )
    checkout_completed(session_id=attempt.stripe_session_id)
    persona.account.refresh_from_db()
    assert persona.account.status == AccountStatus.ACTIVE
    return persona
