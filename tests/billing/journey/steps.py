"""A merchant's life, one step at a time: each kind of step the issue lists, through the product's services.

A step that the product refuses (a DomainError) is part of life and logged as refused; anything else raising
is a defect, logged and reported. Every step appends to the merchant's log with the time, so a difference
found at the end reads next to what the merchant did. `TOLLBOOTH_SIM_STEPS_OFF=seats,switch` turns kinds off.
"""

from __future__ import annotations

import os
import random
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime

from django.db import transaction
from django.utils import timezone
from djstripe import models as djstripe_models

from accounts import services as accounts_services
from accounts.errors import DomainError
from accounts.models import Account, Membership
from accounts.services import account_provision
from billing.dunning.card import card_update_session
from billing.stripe.client import stripe_api_key
from billing.stripe.customers import customer_metadata
from billing.subscriptions.cancellation import subscription_cancel, subscription_reactivate
from billing.subscriptions.changes import subscription_change, subscription_change_preview
from billing.usage.ingest import usage_events_record
from plans.models import PlanPrice
from tests.billing.journey.world import WorkerKilled
from tests.billing.oracle import UsageEvent
from tests.factories import UserFactory

PLANS = ["starter", "basic", "pro", "advanced"]
INCLUDED = {"starter": 50, "basic": 300, "pro": 2000, "advanced": 5000}
SEAT_PLAN = "basic"  # priced per seat in the simulation, so seat changes reach Stripe's quantity

# The month's action, weighted; each has a precondition on the merchant (see `_possible`). Kinds whose
# precondition is rare (a cancel pending, a failing card, a trial running) weigh more, so that even CI's small
# population takes each kind a few times; "nothing" weighs little (canceled merchants pick it often anyway).
WEIGHTS = {
    "upgrade": 10,
    "downgrade": 8,
    "to_annual": 10,
    "to_monthly": 8,
    "seats": 25,
    "cancel": 6,
    "reactivate": 60,
    "switch": 5,
    "soft_decline": 5,
    "hard_decline": 5,
    "recover_card": 15,
    "void_invoice": 15,
    "mark_uncollectible": 15,
    "trial_end_now": 60,
    "subscribe_after_trial": 30,
    "kill_worker": 3,
    "duplicate_webhooks": 2,
    "concurrent_webhooks": 4,
    "nothing": 12,
}
OFF = {kind.strip() for kind in os.environ.get("TOLLBOOTH_SIM_STEPS_OFF", "").split(",") if kind.strip()}


@dataclass
class Merchant:
    n: int
    account_id: int
    user: object
    customer_id: str
    subscription_id: str | None = None
    signed_up_at: datetime | None = None
    failing: str = ""  # "soft" (a card that declines) or "hard" (no card at all)
    events: list = field(default_factory=list)  # the usage events the API accepted, for the oracle
    forgiven: set = field(default_factory=set)  # invoices ops voided on purpose
    log: list = field(default_factory=list)
    kinds: Counter = field(default_factory=Counter)  # steps taken, by kind (refusals and crashes apart)

    def note(self, what: str) -> None:
        self.log.append(f"{timezone.now():%Y-%m-%d %H:%M} {what}")

    @property
    def account(self) -> Account:
        return Account.objects.select_related("plan").get(pk=self.account_id)


def own_card_number(n: int, attempt: int = 0) -> str:
    """A Visa number of this merchant's own (Luhn-valid; the sandbox charges it like 4242...). Every merchant
    paying with Stripe's one test card would be one card shared by the population: the fraud rules would
    rightly hold every account for card reuse, and the journeys would be about that."""
    body = f"4716{n:07d}{attempt:04d}"  # 4716: no Stripe test card starts so (they would decline etc.)
    total = 0
    for index, digit in enumerate(reversed(body)):
        value = int(digit) * (2 if index % 2 == 0 else 1)
        total += value - 9 if value > 9 else value
    return body + str((10 - total % 10) % 10)


def sign_up(n: int, rng: random.Random, stripe, clock_id: str, flush) -> Merchant:
    user = UserFactory(email=f"merchant{n}-{clock_id[-6:].lower()}@sim{n}.example")
    # The customer (on the test clock) and its card first, and their webhooks applied (`flush`): the mirror
    # rows exist before the account's transaction, which only links them. Synced inside that transaction while
    # the webhooks insert the same rows, the two inserts deadlock (seen in the 300-merchant bench).
    customer = stripe.v1.customers.create(params={"email": user.email, "test_clock": clock_id})
    card = stripe.v1.payment_methods.create(
        params={"type": "card", "card": {"number": own_card_number(n), "exp_month": 12, "exp_year": 2035}}
    )
    stripe.v1.payment_methods.attach(card.id, params={"customer": customer.id})
    customer = stripe.v1.customers.update(customer.id, params={"invoice_settings": {"default_payment_method": card.id}})
    flush()
    # One transaction: the account's Stripe customer is linked before provisioning's after-commit work runs,
    # so that work finds it instead of creating a customer off the clock.
    with transaction.atomic():
        account = account_provision(user=user, name=f"Sim Shop {n}", signup_ip=None)
        mirrored = djstripe_models.Customer.sync_from_stripe_data(customer, api_key=stripe_api_key())
        djstripe_models.Customer.objects.filter(pk=mirrored.pk).update(subscriber=account)
    stripe.v1.customers.update(customer.id, params={"metadata": customer_metadata(account)})
    merchant = Merchant(n, account.pk, user, customer.id, signed_up_at=timezone.now())
    if rng.random() < 0.15 and "subscribe_after_trial" not in OFF:
        merchant.note("signup:trial_without_plan")
        merchant.kinds["signup:trial_without_plan"] += 1  # the account's own trial: it ends with or without a plan
        return merchant
    _subscribe(merchant, rng, stripe, "signup")
    return merchant


def _subscribe(merchant: Merchant, rng: random.Random, stripe, why: str) -> None:
    plan = rng.choice(PLANS)
    interval = "year" if rng.random() < 0.2 else "month"
    params = {
        "customer": merchant.customer_id,
        "items": [{"price": PlanPrice.objects.get(plan__code=plan, interval=interval).stripe_price_id}],
    }
    if why == "signup" and rng.random() < 0.7:  # most signups try first (trial_end_now needs a trial)
        params["trial_period_days"] = 14
    subscription = stripe.v1.subscriptions.create(params=params)
    merchant.subscription_id = subscription.id
    if why == "signup":
        merchant.kinds[f"signup:{interval}{':trial' if 'trial_period_days' in params else ''}"] += 1
    merchant.note(f"{why}:{plan}:{interval}{':trial' if 'trial_period_days' in params else ''}")


def report_usage(merchant: Merchant, rng: random.Random, key: str, *, occurred_at: datetime | None = None) -> None:
    """A month's usage, most months near the quota, some well over; `occurred_at` in the past for late events."""
    account = merchant.account
    if account.plan is None:
        return
    plan = account.plan.code
    count = rng.randint(0, 12)
    quantity = max(1, int(INCLUDED.get(plan, 300) * rng.choice([0.3, 0.8, 1.2, 1.6]) / max(count, 1)))
    when = occurred_at or timezone.now()
    metrics = ["tickets", "automated_resolutions"] if plan in ("pro", "advanced") else ["tickets"]
    events = [
        {
            "account": account.pk,
            "metric": rng.choice(metrics),
            "quantity": quantity,
            "occurred_at": when.isoformat(),
            "idempotency_key": f"{key}-{i}",
        }
        for i in range(count)
    ]
    if not events:
        return
    result = usage_events_record(events=events, caller_account=None)
    for event, outcome in zip(events, result.results, strict=True):
        if outcome["status"] == "new":
            merchant.events.append(UsageEvent(event["metric"], event["quantity"], when))
    merchant.kinds["usage"] += 1
    if occurred_at:
        merchant.note(f"late_usage:{result.counts}")
        merchant.kinds["late_usage"] += 1


def choose(merchant: Merchant, rng: random.Random, stripe) -> str:
    sub = _subscription(merchant, stripe)  # read once: every precondition looks at the same subscription
    live = sub is not None and sub.status in ("active", "trialing", "past_due")
    price = (
        PlanPrice.objects.select_related("plan").filter(stripe_price_id=sub["items"]["data"][0]["price"]["id"]).first()
        if live
        else None
    )
    # Ops act on an open invoice, and a merchant fixes the card once told a payment failed: both need one.
    open_invoice = bool(merchant.failing) and bool(
        stripe.v1.invoices.list(params={"customer": merchant.customer_id, "status": "open", "limit": 1}).data
    )
    possible = {
        kind: w
        for kind, w in WEIGHTS.items()
        if kind not in OFF and _possible(kind, merchant, sub, live, price, open_invoice)
    }
    return rng.choices(list(possible), weights=list(possible.values()))[0]


def _subscription(merchant: Merchant, stripe) -> dict | None:
    if merchant.subscription_id is None:
        return None
    return stripe.v1.subscriptions.retrieve(merchant.subscription_id)


def _possible(kind: str, merchant: Merchant, sub, live: bool, price: PlanPrice | None, open_invoice: bool) -> bool:
    if kind == "recover_card":  # a live subscription's card is fixed after a failed payment; a dead one's at once
        return bool(merchant.failing) and (open_invoice or not live)
    if kind == "subscribe_after_trial":  # a trial without a plan, or a subscription that ended, starts anew
        dead = merchant.subscription_id is None or sub.status in ("canceled", "incomplete_expired")
        return dead and not merchant.failing  # with a card that works (recover_card comes first)
    if kind in ("soft_decline", "hard_decline"):
        return live and not merchant.failing
    if kind in ("void_invoice", "mark_uncollectible"):
        return open_invoice
    if kind == "trial_end_now":
        return live and sub.status == "trialing"
    if kind == "reactivate":
        return live and bool(sub.cancel_at_period_end)
    if kind in ("upgrade", "to_annual"):
        return (
            live
            and price is not None
            and (price.plan.code != "advanced" if kind == "upgrade" else price.interval == "month")
        )
    if kind in ("downgrade", "to_monthly"):
        return (
            live
            and price is not None
            and (price.plan.code != "starter" if kind == "downgrade" else price.interval == "year")
        )
    if kind == "seats":
        return live and price is not None and price.plan.code == SEAT_PLAN
    if kind in ("cancel", "switch"):
        return live and not sub.cancel_at_period_end
    return True


def perform(kind: str, merchant: Merchant, rng: random.Random, world) -> None:
    """Do one step; refusals are logged, crashes are logged and reported as defects."""
    try:
        _STEPS[kind](merchant, rng, world)
        merchant.note(kind)
        merchant.kinds[kind] += 1
    except DomainError as error:
        merchant.note(f"{kind}:refused:{error.code}")
        merchant.kinds[f"{kind}:refused"] += 1
    except WorkerKilled as killed:  # the injected crash hit a request, not a job: as real as either
        merchant.note(f"{kind}:worker_killed:{killed}")
        world.kills[f"{killed}@{kind}"] += 1
        merchant.kinds[f"{kind}:worker_killed"] += 1
    except Exception as error:  # a 500 in the product: report it with the step, keep the population alive
        merchant.note(f"{kind}:CRASHED:{error!r}")
        merchant.kinds[f"{kind}:crashed"] += 1
        world.crashes.append((timezone.now(), f"merchant {merchant.n} step {kind} raised {error!r}"))


def _change(merchant: Merchant, *, plan: str | None = None, interval: str | None = None, step: int = 0) -> None:
    account = merchant.account
    current = PlanPrice.objects.get(stripe_price_id=_subscription_price(merchant))
    code = plan or PLANS[PLANS.index(current.plan.code) + step]
    target = PlanPrice.objects.get(plan__code=code, interval=interval or current.interval)
    preview = subscription_change_preview(account=account, actor=merchant.user, plan_price=target)
    result = subscription_change(account=account, actor=merchant.user, token=preview.token)
    if result["kind"] == "upgrade":
        # The preview promised a figure: the invoice must charge it to the cent.
        charged = result["invoice"]["amount_due_cents"]
        assert charged == preview.amount_due_now_cents, _preview_mismatch(merchant, preview, result)
    merchant.note(f"{result['kind']}:{code}/{target.interval}")


def _preview_mismatch(merchant: Merchant, preview, result) -> str:
    """What a failing seed needs to be understood: the preview's lines, the invoice's, the subscription."""
    from billing.stripe.client import stripe_client

    client = stripe_client()
    sub = client.v1.subscriptions.retrieve(merchant.subscription_id)
    invoice = client.v1.invoices.retrieve(result["invoice"]["id"]) if result["invoice"]["id"] else None
    lines = [(line.get("description"), line["amount"]) for line in invoice["lines"]["data"]] if invoice else None
    return (
        f"preview {preview.amount_due_now_cents} {[(x.description, x.amount_cents) for x in preview.lines]}; "
        f"invoice {result['invoice']} {lines}; subscription {sub.status} period "
        f"{sub['items']['data'][0]['current_period_start']}-{sub['items']['data'][0]['current_period_end']} "
        f"customer balance {client.v1.customers.retrieve(merchant.customer_id).balance}; story {merchant.log[-8:]}"
    )


def _subscription_price(merchant: Merchant) -> str:
    from billing.stripe.client import stripe_client

    return stripe_client().v1.subscriptions.retrieve(merchant.subscription_id)["items"]["data"][0]["price"]["id"]


def _seats(merchant: Merchant, rng, world) -> None:
    account = merchant.account
    members = list(Membership.objects.filter(account=account, is_active=True).exclude(role="owner"))
    if members and rng.random() < 0.4:
        accounts_services.membership_deactivate(membership=members[0], actor=merchant.user)
        return
    email = f"agent{len(merchant.log)}-{merchant.n}@sim{merchant.n}.example"
    invitation = accounts_services.invitation_create(account=account, actor=merchant.user, email=email)
    invitee = UserFactory(email=email)
    accounts_services.invitation_accept(invitation=invitation, user=invitee)


def _switch(merchant: Merchant, rng, world) -> None:
    world.stripe.v1.subscriptions.cancel(merchant.subscription_id)
    world.flush()
    _subscribe(merchant, rng, world.stripe, "switch_to")


def _decline(merchant: Merchant, hard: bool, world) -> None:
    client = world.stripe
    if hard:  # no card left at all: every attempt fails without a charge
        for method in client.v1.payment_methods.list(params={"customer": merchant.customer_id, "type": "card"}).data:
            client.v1.payment_methods.detach(method.id)
        default = ""
    else:  # a card that attaches, then declines every charge
        default = client.v1.payment_methods.attach(
            "pm_card_chargeCustomerFail", params={"customer": merchant.customer_id}
        ).id
    client.v1.customers.update(merchant.customer_id, params={"invoice_settings": {"default_payment_method": default}})
    # A recovered card is also the subscription's own default (card_updated), which wins over the customer's.
    client.v1.subscriptions.update(merchant.subscription_id, params={"default_payment_method": default})
    merchant.failing = "hard" if hard else "soft"


def _recover(merchant: Merchant, rng, world) -> None:
    """The merchant enters a good card on the card-update page (setup Checkout); the product takes it from there."""
    url = card_update_session(account=merchant.account, actor=merchant.user)
    session_id = url.rstrip("/").rsplit("/", 1)[-1]
    reply = world.sandbox.request(
        "POST",
        f"/_sandbox/checkout/{session_id}/complete",
        {"card": own_card_number(merchant.n, merchant.kinds["recover_card"] + 1)},
        api_key=None,
    )
    assert reply.status == 200, reply.body
    world.flush()  # the merchant waits for the page's answer: the product has taken the card
    merchant.failing = ""


def _ops_on_open_invoice(merchant: Merchant, world, action: str) -> None:
    client = world.stripe
    invoices = client.v1.invoices.list(params={"customer": merchant.customer_id, "status": "open"}).data
    if not invoices:
        raise DomainError("No open invoice to act on.", code="no_open_invoice")
    invoice = invoices[0]
    if action == "void":
        client.v1.invoices.void_invoice(invoice.id)
        merchant.forgiven.add(invoice.id)
    else:
        client.v1.invoices.mark_uncollectible(invoice.id)
    merchant.note(f"ops_{action}:{invoice.id}:{invoice.total}")


def _concurrent_webhooks(merchant: Merchant, world) -> None:
    """The merchant's latest subscription or invoice event, delivered to us twice at the same moment."""
    for event in world.stripe.v1.events.list(params={"limit": 100}).data:
        obj = event.data.object
        if (
            event.type.startswith(("customer.subscription.", "invoice."))
            and obj.get("customer") == merchant.customer_id
        ):
            statuses = world.deliver_twice_at_once(event.id)
            merchant.note(f"concurrent_webhooks:{event.type}:{statuses}")
            return
    raise DomainError("No recent event to deliver twice.", code="no_recent_event")


_STEPS = {
    "upgrade": lambda m, rng, w: _change(m, step=1),
    "downgrade": lambda m, rng, w: _change(m, step=-1),
    "to_annual": lambda m, rng, w: _change(m, step=0, interval="year"),
    "to_monthly": lambda m, rng, w: _change(m, step=0, interval="month"),
    "seats": _seats,
    "cancel": lambda m, rng, w: subscription_cancel(account=m.account, actor=m.user),
    "reactivate": lambda m, rng, w: subscription_reactivate(account=m.account, actor=m.user),
    "switch": _switch,
    "soft_decline": lambda m, rng, w: _decline(m, False, w),
    "hard_decline": lambda m, rng, w: _decline(m, True, w),
    "recover_card": _recover,
    "void_invoice": lambda m, rng, w: _ops_on_open_invoice(m, w, "void"),
    "mark_uncollectible": lambda m, rng, w: _ops_on_open_invoice(m, w, "uncollectible"),
    "trial_end_now": lambda m, rng, w: w.stripe.v1.subscriptions.update(m.subscription_id, params={"trial_end": "now"}),
    "subscribe_after_trial": lambda m, rng, w: _subscribe(m, rng, w.stripe, "subscribe"),
    "kill_worker": lambda m, rng, w: w.kill_next(rng.choice(["push_ledger_entries", "apply_due_plan_changes"])),
    "duplicate_webhooks": lambda m, rng, w: w.webhook_faults(duplicate="true"),
    "concurrent_webhooks": lambda m, rng, w: _concurrent_webhooks(m, w),
    "nothing": lambda m, rng, w: None,
}
