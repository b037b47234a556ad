"""Helpers of the tests that drive Stripe's events through the sandbox and the live app (fixture: `event_shop`)."""

from __future__ import annotations

from accounts.models import Account
from billing.models import CheckoutAttempt
from plans.models import PlanPrice

VISA = "4242424242424242"


def sandbox_flush(sandbox) -> None:
    # Up to a minute: with the broker away each intake takes seconds (Celery gives up on queueing, the event waits).
    reply = sandbox.request("POST", "/_sandbox/webhooks/flush", {"timeout": "60"}, api_key=None, timeout=70)
    assert reply.status == 200, reply.body


def subscribe_paying(client, shop, plan: str = "pro") -> None:
    """Subscribe through Checkout with the trial already over, so the first invoice charges (a receipt goes out)."""
    Account.objects.filter(pk=shop.account.pk).update(trial_ends_at=None)
    price = PlanPrice.objects.get(plan__code=plan, interval="month")
    assert shop.web(client).post("/billing/checkout/", {"plan_price": price.pk}).status_code == 302
    session_id = CheckoutAttempt.objects.get(account=shop.account, status="open").stripe_session_id
    reply = shop.sandbox.request("POST", f"/_sandbox/checkout/{session_id}/complete", {"card": VISA}, api_key=None)
    assert reply.status == 200, reply.body
    sandbox_flush(shop.sandbox)
