"""A hard decline through the sandbox's test clock: the refused card is never charged again, the merchant gets
one email asking for a new card, fraud one assessment; a new card resumes collection."""

from __future__ import annotations

from datetime import timedelta

import time_machine
from django.core import mail

from accounts.models import Account, AccountStatus
from billing.dunning.card import card_update_session
from billing.dunning.cases import dunning_on_invoice_failed, dunning_policy
from billing.models import DunningCase, DunningNotice, DunningStatus
from fraud.models import RiskSignal
from tests.billing.test_dunning import _advance, _flush, clocked  # noqa: F401 (the fixture)

NEW_CARD_SUBJECT = "Your card was refused: please enter a new one"


def _declining_card_is_hard(owner, stripe_client) -> str:
    """Make the policy treat the fixture's declining card as a hard decline; returns that card's id.

    Stripe's (and the sandbox's) stolen and lost cards are refused when attached, so no renewal can reach them;
    the card that attaches and then declines every charge says `card_declined`. The policy is data: naming
    that code hard exercises the hard-decline path for real."""
    policy = dunning_policy()
    policy.hard_decline_codes = ["card_declined", "generic_decline"]
    policy.save()
    customer = stripe_client.v1.customers.retrieve(owner.customer.id)
    return customer.invoice_settings.default_payment_method


def _charges_to(stripe_client, customer_id: str, card: str) -> int:
    """How many payment attempts were made on `card` (a declined one keeps it in its last_payment_error)."""

    def card_of(intent) -> str | None:
        tried = intent.payment_method or (intent.last_payment_error or {}).get("payment_method")
        return tried if isinstance(tried, str) or tried is None else tried["id"]

    intents = stripe_client.v1.payment_intents.list(params={"customer": customer_id, "limit": 100}).data
    return len([i for i in intents if card_of(i) == card])


def _subjects() -> list[str]:
    return [m.subject for m in mail.outbox]


def test_a_hard_declined_card_is_never_charged_again_and_one_email_asks_for_a_new_card(clocked, stripe_client):  # noqa: F811
    refused = _declining_card_is_hard(clocked, stripe_client)
    with time_machine.travel(clocked.renewal + timedelta(hours=2), tick=False) as traveller:
        _advance(clocked, stripe_client, clocked.renewal + timedelta(hours=2), traveller)
        case = DunningCase.objects.get(account=clocked.account)
        assert (case.hard_decline, case.status) == (True, DunningStatus.SUSPENDED)
        assert case.last_decline_code in ("card_declined", "generic_decline")
        assert Account.objects.get(pk=clocked.account.pk).status == AccountStatus.SUSPENDED

        # Stripe's retries are stopped and the card is no one's default any more.
        invoice = stripe_client.v1.invoices.retrieve(case.stripe_invoice_id)
        assert (invoice.auto_advance, invoice.next_payment_attempt) == (False, None)
        customer = stripe_client.v1.customers.retrieve(clocked.customer.id)
        assert customer.invoice_settings.default_payment_method is None
        assert stripe_client.v1.subscriptions.retrieve(clocked.subscription.id).default_payment_method is None

        # One email, the one asking for a new card (no "payment failed", no separate suspension notice).
        assert _subjects().count(NEW_CARD_SUBJECT) == 1
        new_card = next(m for m in mail.outbox if m.subject == NEW_CARD_SUBJECT)
        assert "/billing/fix-card/" in new_card.body
        assert "Your Tollbooth payment failed" not in _subjects()
        assert "Your Tollbooth account is suspended" not in _subjects()
        assert RiskSignal.objects.filter(account=clocked.account, code="hard_decline").count() == 1

        # The same decline reported again (a redelivery under a new event id) adds nothing.
        dunning_on_invoice_failed(invoice_id=case.stripe_invoice_id)
        assert _subjects().count(NEW_CARD_SUBJECT) == 1
        assert RiskSignal.objects.filter(account=clocked.account, code="hard_decline").count() == 1
        assert DunningNotice.objects.filter(case=case).count() == 1

        # Where Stripe would have retried (3 days later) nothing touches the card.
        _advance(clocked, stripe_client, clocked.renewal + timedelta(days=3, hours=3), traveller)
        assert _charges_to(stripe_client, clocked.customer.id, refused) == 1

        # The merchant enters a new card: collection resumes and the open invoice is paid with it at once.
        url = card_update_session(account=clocked.account, actor=clocked.user)
        session_id = url.rstrip("/").split("/")[-1]
        reply = clocked.sandbox.request(
            "POST", f"/_sandbox/checkout/{session_id}/complete", {"card": "4242424242424242"}, api_key=None
        )
        assert reply.status == 200, reply.body
        _flush(clocked.sandbox)
        _flush(clocked.sandbox)

    case.refresh_from_db()
    assert case.status == DunningStatus.RECOVERED
    assert Account.objects.get(pk=clocked.account.pk).status == AccountStatus.ACTIVE
    assert stripe_client.v1.invoices.retrieve(case.stripe_invoice_id).amount_paid == 9900

    # The next renewal charges the new card, never the refused one.
    next_renewal = clocked.renewal + timedelta(days=31, hours=2)
    with time_machine.travel(next_renewal, tick=False) as traveller:
        _advance(clocked, stripe_client, next_renewal, traveller)
    invoices = stripe_client.v1.invoices.list(params={"subscription": clocked.subscription.id, "limit": 10}).data
    assert [i.status for i in sorted(invoices, key=lambda i: i.created)] == ["paid", "paid", "paid"]
    assert _charges_to(stripe_client, clocked.customer.id, refused) == 1
    assert _subjects().count(NEW_CARD_SUBJECT) == 1
