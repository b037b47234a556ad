"""The journey simulator: merchants live 14 months on a sandbox test clock, and the books must balance.

Each merchant signs up, subscribes (some with a trial, some annual), reports usage (often over its quota),
and now and then upgrades, downgrades, cancels, reactivates, or has its card fail and fixes it. Time moves
on one test clock; our clock (time-machine) follows it; webhooks reach the live app; the beat tasks (usage
rating and push, scheduled downgrades, dunning, reminders) run at each step as Celery beat would.

Invariants at the end, for every account:
- what Stripe invoiced equals plan fees (catalog price x quantity) + rated overage (the ledger) + proration
  lines (credits negative), to the cent, with no line of another kind;
- every pushed ledger entry is on exactly one Stripe invoice line, for its amount (no ledger key twice);
- reconciliation reports zero differences;
- the account's status matches its subscription's.

`TOLLBOOTH_SIM_MERCHANTS` sets the population (CI: 5); `bench/journey.py` runs 200 and prints the time.
"""

from __future__ import annotations

import json
import os
import random
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from io import StringIO

import pytest
import time_machine
from django.core.management import call_command
from django.db import transaction
from djstripe import models as djstripe_models

from accounts.errors import DomainError
from accounts.models import Account
from accounts.services import account_provision
from billing import tasks
from billing.dunning.cases import dunning_enforce_grace
from billing.models import LedgerEntry, LedgerState
from billing.notices.reminders import reminders_send_due
from billing.reconciliation.run import reconciliation_run
from billing.stripe.client import stripe_api_key
from billing.stripe.endpoints import webhook_endpoint_ensure
from billing.subscriptions.cancellation import subscription_cancel, subscription_reactivate
from billing.subscriptions.changes import scheduled_changes_apply_due, subscription_change, subscription_change_preview
from billing.subscriptions.sync import ACCOUNT_STATUS_FOR_SUBSCRIPTION
from billing.usage.ingest import usage_events_record
from billing.usage.periods import add_months
from plans.models import PlanPrice
from tests.factories import UserFactory

MERCHANTS = int(os.environ.get("TOLLBOOTH_SIM_MERCHANTS", "5"))
MONTHS = int(os.environ.get("TOLLBOOTH_SIM_MONTHS", "14"))
REPORT = os.environ.get("TOLLBOOTH_SIM_REPORT", "")
PLANS = ["starter", "basic", "pro", "advanced"]
INCLUDED = {"starter": 50, "basic": 300, "pro": 2000, "advanced": 5000}


@dataclass
class Merchant:
    account: Account
    customer_id: str
    subscription_id: str
    plan: str
    user: object
    failing: bool = False
    events: int = 0
    log: list = field(default_factory=list)


def _flush(sandbox):
    # A large population queues thousands of deliveries: wait as long as they take.
    reply = sandbox.request("POST", "/_sandbox/webhooks/flush", {"timeout": 900}, api_key=None, timeout=910)
    assert reply.status == 200, reply.body


@pytest.mark.django_db(transaction=True)
def test_merchants_live_fourteen_months_and_the_books_balance(sandbox, stripe_client, live_server, catalog):
    started = time.monotonic()
    rng = random.Random(20261124)
    call_command("sync_plans", stdout=StringIO())
    endpoint = webhook_endpoint_ensure(base_url=live_server.url)
    djstripe_models.WebhookEndpoint.objects.filter(pk=endpoint.pk).update(djstripe_tolerance=0)
    start = datetime.now(tz=UTC).replace(microsecond=0)
    clock = stripe_client.v1.test_helpers.test_clocks.create(params={"frozen_time": int(start.timestamp())})

    merchants = []
    with time_machine.travel(start, tick=False) as traveller:

        def advance(to: datetime):
            stripe_client.v1.test_helpers.test_clocks.advance(clock.id, params={"frozen_time": int(to.timestamp())})
            traveller.move_to(to)
            _flush(sandbox)

        for n in range(MERCHANTS):
            merchants.append(_sign_up(n, rng, stripe_client, clock.id))
        _flush(sandbox)

        for month in range(MONTHS):
            boundary = add_months(start, month + 1)
            advance(add_months(start, month) + timedelta(days=10))
            for merchant in merchants:
                _live_a_month(merchant, rng, month, traveller)
            _flush(sandbox)
            # The last hour of the period: scheduled downgrades go onto Stripe (beat, every few minutes).
            advance(boundary - timedelta(minutes=30))
            scheduled_changes_apply_due()
            # The renewal (drafted at the boundary, charged an hour later), then the finality window.
            advance(boundary + timedelta(hours=2))
            advance(boundary + timedelta(hours=73))
            tasks.rate_closed_usage_periods()
            tasks.push_ledger_entries()
            dunning_enforce_grace()
            reminders_send_due()
            _flush(sandbox)
        advance(add_months(start, MONTHS) + timedelta(days=20))  # last retries and renewals settle

        run = reconciliation_run(window=timedelta(days=31 * (MONTHS + 2)))

    invoices_count = _check_books(merchants, stripe_client)
    assert list(run.differences.values_list("kind", "stripe_id", "expected", "actual")) == []
    for merchant in merchants:
        _check_status(merchant)

    seconds = time.monotonic() - started
    report = {
        "merchants": MERCHANTS,
        "months": MONTHS,
        "invoices": invoices_count,
        "seconds": round(seconds, 1),
        "ledger_entries": LedgerEntry.objects.exclude(state=LedgerState.NOTHING_DUE).count(),
        "reconciliation_differences": run.differences_found,
        "actions": dict(Counter(action for m in merchants for action in m.log)),
    }
    if REPORT:
        with open(REPORT, "w") as handle:
            json.dump(report, handle)
    print(f"\njourney simulator: {json.dumps(report)}")


def _sign_up(n: int, rng: random.Random, stripe_client, clock_id: str) -> Merchant:
    user = UserFactory(email=f"merchant{n}-{clock_id[-6:].lower()}@sim{n}.example")
    # One transaction: the account's Stripe customer (on the test clock) is linked before provisioning's
    # after-commit work runs, so that work finds it instead of creating a customer off the clock.
    with transaction.atomic():
        account = account_provision(user=user, name=f"Sim Shop {n}", signup_ip=None)
        customer = stripe_client.v1.customers.create(
            params={
                "email": account.billing_email,
                "test_clock": clock_id,
                "metadata": {"account_id": str(account.pk)},
                "invoice_settings": {"default_payment_method": "pm_card_visa"},
            }
        )
        mirrored = djstripe_models.Customer.sync_from_stripe_data(customer, api_key=stripe_api_key())
        djstripe_models.Customer.objects.filter(pk=mirrored.pk).update(subscriber=account)
    plan = rng.choice(PLANS)
    interval = "year" if rng.random() < 0.2 else "month"
    params = {
        "customer": customer.id,
        "items": [{"price": PlanPrice.objects.get(plan__code=plan, interval=interval).stripe_price_id}],
    }
    if rng.random() < 0.5:
        params["trial_period_days"] = 14
    subscription = stripe_client.v1.subscriptions.create(params=params)
    return Merchant(account, customer.id, subscription.id, plan, user, log=[f"signup:{plan}:{interval}"])


def _live_a_month(merchant: Merchant, rng: random.Random, month: int, traveller) -> None:
    account = Account.objects.get(pk=merchant.account.pk)
    if account.plan_id is None or (account.status == "suspended" and not merchant.failing):
        return
    plan = account.plan.code
    # Usage: most months around the quota, some well over it.
    count = rng.randint(0, 12)
    quantity = max(1, int(INCLUDED[plan] * rng.choice([0.3, 0.8, 1.2, 1.6]) / max(count, 1)))
    now = datetime.now(tz=UTC)
    events = [
        {
            "account": account.pk,
            "metric": "tickets",
            "quantity": quantity,
            "occurred_at": now.isoformat(),
            "idempotency_key": f"m{account.pk}-{month}-{i}",
        }
        for i in range(count)
    ]
    if events:
        result = usage_events_record(events=events, caller_account=None)
        merchant.events += result.counts["new"]

    roll = rng.random()
    try:
        if merchant.failing:
            _fix_card(merchant)
        elif roll < 0.12 and plan != "advanced":
            _change(merchant, PLANS[PLANS.index(plan) + 1], "upgrade")
        elif roll < 0.22 and plan != "starter":
            _change(merchant, PLANS[PLANS.index(plan) - 1], "downgrade")
        elif roll < 0.30:
            _fail_card(merchant)
        elif roll < 0.35:
            subscription_cancel(account=account, actor=merchant.user)
            merchant.log.append("cancel")
            if rng.random() < 0.5:
                subscription_reactivate(account=account, actor=merchant.user)
                merchant.log.append("reactivate")
    except DomainError as error:  # a refused action (seats, no subscription) is part of life: record it
        merchant.log.append(f"refused:{error.code}")


def _change(merchant: Merchant, plan: str, kind: str) -> None:
    account = Account.objects.get(pk=merchant.account.pk)
    interval = "month"
    price = PlanPrice.objects.get(plan__code=plan, interval=interval)
    preview = subscription_change_preview(account=account, actor=merchant.user, plan_price=price)
    result = subscription_change(account=account, actor=merchant.user, token=preview.token)
    if result["kind"] == "upgrade":
        # The preview promised a figure: the invoice must charge it to the cent.
        assert result["invoice"]["amount_due_cents"] == preview.amount_due_now_cents
    merchant.log.append(f"{kind}:{plan}")


def _fail_card(merchant: Merchant) -> None:
    from billing.stripe.client import stripe_client

    client = stripe_client()
    failing = client.v1.payment_methods.attach("pm_card_chargeCustomerFail", params={"customer": merchant.customer_id})
    client.v1.customers.update(
        merchant.customer_id, params={"invoice_settings": {"default_payment_method": failing.id}}
    )
    merchant.failing = True
    merchant.log.append("card_fails")


def _fix_card(merchant: Merchant) -> None:
    from billing.stripe.client import stripe_client

    client = stripe_client()
    good = client.v1.payment_methods.attach("pm_card_visa", params={"customer": merchant.customer_id})
    client.v1.customers.update(merchant.customer_id, params={"invoice_settings": {"default_payment_method": good.id}})
    merchant.failing = False
    merchant.log.append("card_fixed")  # Stripe's next retry collects with it


def _check_books(merchants, stripe_client) -> int:
    total_invoices = 0
    for merchant in merchants:
        invoices = [
            i
            for i in stripe_client.v1.invoices.list(
                params={"customer": merchant.customer_id, "limit": 100}
            ).auto_paging_iter()
            if i.status in ("paid", "open", "uncollectible")
        ]
        total_invoices += len(invoices)
        plan_fees = prorations = overage = other = 0
        ledger_lines = Counter()
        for invoice in invoices:
            assert invoice.total == sum(line.amount for line in invoice.lines.data), invoice.id
            for line in invoice.lines.data:
                parent = line.get("parent") or {}
                details = parent.get("subscription_item_details") or parent.get("invoice_item_details") or {}
                ledger_id = (line.get("metadata") or {}).get("ledger_entry_id")
                if ledger_id:
                    ledger_lines[ledger_id] += 1
                    overage += line.amount
                elif details.get("proration"):
                    prorations += line.amount
                elif parent.get("type") == "subscription_item_details" and _is_trial_line(invoice, line):
                    plan_fees += line.amount  # 0: the trial
                elif parent.get("type") == "subscription_item_details":
                    price_id = ((line.get("pricing") or {}).get("price_details") or {}).get("price")
                    price = PlanPrice.objects.get(
                        stripe_price_id=price_id if isinstance(price_id, str) else price_id["id"]
                    )
                    assert line.amount == price.amount_cents * (line.quantity or 1), (invoice.id, line.id)
                    plan_fees += line.amount
                else:
                    other += line.amount
        entries = LedgerEntry.objects.filter(
            account=merchant.account, state__in=[LedgerState.PUSHED, LedgerState.INVOICED]
        )
        invoiced_entries = {str(e.pk): e.amount_cents for e in entries if ledger_lines[str(e.pk)]}
        assert all(count == 1 for count in ledger_lines.values()), ledger_lines  # no ledger key twice
        assert overage == sum(invoiced_entries.values())
        assert other == 0, merchant.log
        invoiced = sum(invoice.total for invoice in invoices)
        assert invoiced == plan_fees + overage + prorations, (merchant.account.pk, merchant.log)
    return total_invoices


def _is_trial_line(invoice, line) -> bool:
    return line.amount == 0 and invoice.billing_reason == "subscription_create"


def _check_status(merchant: Merchant) -> None:
    from billing.subscriptions.selectors import subscription_current

    account = Account.objects.get(pk=merchant.account.pk)
    subscription = subscription_current(account=account)
    expected = ACCOUNT_STATUS_FOR_SUBSCRIPTION.get(subscription.stripe_data.get("status"))
    if expected == "past_due" and account.status == "suspended":
        return  # dunning suspended it after the grace period: still past due at Stripe
    if expected:
        assert account.status == expected, (
            account.pk,
            account.status,
            subscription.stripe_data.get("status"),
            merchant.log,
        )
