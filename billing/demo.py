"""The living demo of `make run`: three merchants with a history, seeded through the real services.

- "Demo Shop" (owner@demo.tollbooth.test): Pro monthly since four months ago, lived on a Stripe test clock, so
  its renewal invoices are real and paid; a past period over its quota, rated, pushed and paid on a renewal
  (an overage line); a later one pushed and waiting for the next renewal; usage this period above the plan's
  pace, so the usage page projects overage; two agents and a pending invitation.
- "Late Payer Ltd": Basic monthly whose latest renewal failed (a card that attaches but cannot be charged):
  past_due, an open invoice at Stripe, a dunning case.
- "Quick Farm Demo": a signup the fraud check sent to review (fraud/demo.py).

No webhook reaches us while this runs (the web server is not up yet, and the endpoint is registered after):
after driving Stripe, each step applies what the webhooks would, by calling the services their handlers call.

Each merchant is seeded in one database transaction that ends with a marker row (an audit entry
`demo.seeded`), and lives on a test clock of its own name at Stripe. A crash rolls the database back; the
next run finds no marker, deletes the clock left behind (with everything on it) and starts that merchant
again. With every marker present the seeder returns after one query.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from allauth.account.models import EmailAddress
from django.db import transaction
from django.utils import timezone
from djstripe import models as djstripe_models
from djstripe.settings import djstripe_settings

from accounts.models import Account, AuditLog, Role, User
from accounts.services import account_provision, audit_record, invitation_accept_as_new_user, invitation_create
from billing.dunning.cases import dunning_on_invoice_failed, dunning_on_invoice_paid
from billing.ledger.push import ledger_entries_push_due
from billing.ledger.rate import usage_periods_rate_closed
from billing.ledger.settle import ledger_entries_mark_invoiced
from billing.stripe.catalog import catalog_sync_to_stripe
from billing.stripe.client import idempotent, stripe_api_key, stripe_client
from billing.stripe.fraud_events import invoice_paid_trust
from billing.subscriptions.sync import invoice_refresh, subscription_refresh
from billing.usage.ingest import usage_events_record
from billing.usage.periods import add_months
from fraud import demo as fraud_demo
from plans.demo_catalog import catalog_seed_demo
from plans.models import Entitlement, PlanPrice

logger = logging.getLogger(__name__)

DEMO_OWNER = ("owner@demo.tollbooth.test", "tollbooth-demo")
DEMO_OPS = ("ops@demo.tollbooth.test", "tollbooth-ops")
DEMO_SHOP = "Demo Shop"
DEMO_AGENTS = [("sam@demo.tollbooth.test", "Sam Agent"), ("kim@demo.tollbooth.test", "Kim Agent")]
DEMO_AGENT_PASSWORD = "tollbooth-agent"
DEMO_PENDING_INVITATION = "lee@demo.tollbooth.test"
LATE_OWNER = ("owner@late-payer.tollbooth.test", "tollbooth-late")
LATE_PAYER = "Late Payer Ltd"

DEMO_SEEDED = fraud_demo.DEMO_SEEDED
SHOP_MARKER = "demo:demo-shop"
LATE_MARKER = "demo:late-payer"
MARKERS = frozenset({SHOP_MARKER, LATE_MARKER, fraud_demo.FLAGGED_MARKER})

# Demo Shop's closed periods (oldest first): units used as (tickets, automated resolutions) beyond (+) or
# as a share of (float) the plan's included units. The first and the last are over the quota.
SHOP_HISTORY = [(+340, +60), (0.8, 0.6), (0.95, 0.85), (+150, 0.9)]
# This period: the share of the plan's pro-rata pace used so far (over 1 for tickets: overage projected).
SHOP_PACE = {"tickets": 1.4, "automated_resolutions": 0.7}
SHOP_MONTHS = len(SHOP_HISTORY)  # closed periods before the current one
FINALITY_PASSED = timedelta(hours=73)  # past the 72-hour finality window, when beat rates a period


@dataclass
class DemoReport:
    seeded: list[str] = field(default_factory=list)
    already: bool = False
    seconds: float = 0.0


def demo_seed(*, now: datetime | None = None) -> DemoReport:
    """Seed whatever part of the demo is missing; with all of it there, return after one query."""
    started = time.monotonic()
    report = DemoReport()
    done = set(AuditLog.objects.filter(action=DEMO_SEEDED, target__in=MARKERS).values_list("target", flat=True))
    if done >= MARKERS:
        report.already = True
        report.seconds = time.monotonic() - started
        return report
    now = (now or timezone.now()).replace(microsecond=0)
    # The catalog, here and on Stripe (idempotent; `sync_plans` runs after us and finds nothing to do).
    catalog_seed_demo()
    catalog_sync_to_stripe()
    with transaction.atomic():
        _user(*DEMO_OPS, is_staff=True, is_superuser=True)
    fraud_demo.fraud_demo_ops_join(ops_email=DEMO_OPS[0])
    if SHOP_MARKER not in done:
        _seed_demo_shop(now=now, report=report)
        report.seeded.append(DEMO_SHOP)
    if LATE_MARKER not in done:
        _seed_late_payer(now=now)
        report.seeded.append(LATE_PAYER)
    _account, created = fraud_demo.fraud_demo_flagged_signup()
    if created:
        report.seeded.append(fraud_demo.FLAGGED_ACCOUNT)
    report.seconds = time.monotonic() - started
    return report


def _user(email: str, password: str, **flags) -> User:
    user, created = User.objects.get_or_create(email=email, defaults=flags)
    if created:
        user.set_password(password)
        user.save(update_fields=["password"])
    EmailAddress.objects.get_or_create(user=user, email=email, defaults={"verified": True, "primary": True})
    return user


# --- Stripe: a merchant's test clock -----------------------------------------------------------------------


class _Clock:
    """A merchant's Stripe test clock and customer; every advance is followed by what its webhooks would do."""

    def __init__(self, *, account: Account, name: str, frozen_time: datetime, card: str):
        self.client = stripe_client()
        self.account = account
        self._settled: set[tuple[str, str]] = set()
        # Left by a run that crashed before its marker: Stripe deletes the clock's customers with it.
        for clock in self.client.v1.test_helpers.test_clocks.list(params={"limit": 100}).auto_paging_iter():
            if clock.get("name") == name:
                self.client.v1.test_helpers.test_clocks.delete(clock.id)
        stamp = int(frozen_time.timestamp())
        # The account is new in each attempt (a failed one rolled back) and its public id is a fresh UUID, never
        # reused as primary keys are by another database or a restored backup on the same Stripe account: a
        # retried request finds its clock, and no attempt replays a clock deleted above or made elsewhere.
        self.clock = self.client.v1.test_helpers.test_clocks.create(
            params={"frozen_time": stamp, "name": name},
            options=idempotent(f"demo:clock:{account.public_id}:{stamp}"),
        )
        self.now = frozen_time
        data = self.client.v1.customers.create(
            params={
                "email": account.billing_email,
                "name": account.name,
                "test_clock": self.clock.id,
                "invoice_settings": {"default_payment_method": card},
                "metadata": {
                    "account_id": str(account.pk),
                    djstripe_settings.SUBSCRIBER_CUSTOMER_KEY: str(account.pk),
                },
            },
            options=idempotent(f"demo:{self.clock.id}:customer"),
        )
        # One customer per account in the mirror: an account made by an earlier version of this seeder got
        # one off the clock from provisioning; this one replaces it.
        djstripe_models.Customer.objects.filter(subscriber=account).exclude(id=data.id).update(subscriber=None)
        customer = djstripe_models.Customer.sync_from_stripe_data(data, api_key=stripe_api_key())
        djstripe_models.Customer.objects.filter(pk=customer.pk).update(subscriber=account)
        self.customer_id = data.id

    def subscribe(self, *, plan: str, interval: str = "month") -> str:
        price = PlanPrice.objects.get(plan__code=plan, interval=interval, currency="usd")
        subscription = self.client.v1.subscriptions.create(
            params={
                "customer": self.customer_id,
                "items": [{"price": price.stripe_price_id}],
                "metadata": {"account_id": str(self.account.pk)},
            },
            options=idempotent(f"demo:{self.clock.id}:subscription"),
        )
        subscription_refresh(subscription_id=subscription.id)
        self.settle()
        return subscription.id

    def change_card(self, card: str) -> None:
        data = self.client.v1.customers.update(
            self.customer_id,
            params={"invoice_settings": {"default_payment_method": card}},
            options=idempotent(f"demo:{self.clock.id}:card:{card}"),
        )
        djstripe_models.Customer.sync_from_stripe_data(data, api_key=stripe_api_key())

    def advance(self, to: datetime) -> None:
        clock = self.client.v1.test_helpers.test_clocks.advance(
            self.clock.id, params={"frozen_time": int(to.timestamp())}
        )
        while clock.status != "ready":  # the sandbox answers when ready; Stripe works in the background
            time.sleep(0.5)
            clock = self.client.v1.test_helpers.test_clocks.retrieve(self.clock.id)
        self.now = to
        self.settle()

    def settle(self) -> None:
        """What the invoice webhooks would do, once per invoice and status: the same services, in their order."""
        invoices = self.client.v1.invoices.list(params={"customer": self.customer_id, "limit": 100})
        for invoice in sorted(invoices.auto_paging_iter(), key=lambda i: i.created):
            if invoice.status == "draft" or (invoice.id, invoice.status) in self._settled:
                continue
            self._settled.add((invoice.id, invoice.status))
            invoice_refresh(invoice_id=invoice.id)
            if invoice.status == "paid":
                ledger_entries_mark_invoiced(invoice_id=invoice.id)
                dunning_on_invoice_paid(invoice_id=invoice.id)
                invoice_paid_trust(invoice_id=invoice.id)
            elif invoice.status == "open" and invoice.attempt_count:
                dunning_on_invoice_failed(invoice_id=invoice.id)


# --- Demo Shop -------------------------------------------------------------------------------------------------


def _seed_demo_shop(*, now: datetime, report: DemoReport) -> None:
    anchor = add_months(now, -SHOP_MONTHS) - timedelta(days=10)  # this period began about ten days ago
    with transaction.atomic():
        owner = _user(*DEMO_OWNER)
        account = account_provision(user=owner, name=DEMO_SHOP, signup_ip="127.0.0.1", country="FR")
        clock = _Clock(account=account, name=f"Tollbooth demo: {DEMO_SHOP}", frozen_time=anchor, card="pm_card_visa")
        clock.subscribe(plan="pro")
        included = {
            e.feature: e.included_units
            for e in Entitlement.objects.filter(plan__code="pro", feature__in=("tickets", "automated_resolutions"))
        }
        for k, (tickets, automated) in enumerate(SHOP_HISTORY):
            start, end = add_months(anchor, k), add_months(anchor, k + 1)
            used = {"tickets": _units(tickets, included["tickets"])}
            used["automated_resolutions"] = _units(automated, included["automated_resolutions"])
            _report_usage(account, start=start, end=start + timedelta(days=25), used=used, key=f"p{k}")
            # The renewal at `end` (charged an hour later), then the finality window: beat rates and pushes.
            clock.advance(end + FINALITY_PASSED)
            usage_periods_rate_closed(now=clock.now)
            ledger_entries_push_due(now=clock.now)
        clock.advance(now)
        start, end = add_months(anchor, SHOP_MONTHS), add_months(anchor, SHOP_MONTHS + 1)
        share = (now - start) / (end - start)
        used = {metric: math.floor(included[metric] * share * pace) for metric, pace in SHOP_PACE.items()}
        _report_usage(account, start=start, end=now, used=used, key="current")
        for email, name in DEMO_AGENTS:
            invitation = invitation_create(account=account, actor=owner, email=email, role=Role.AGENT)
            invitation_accept_as_new_user(invitation=invitation, password=DEMO_AGENT_PASSWORD, full_name=name)
        invitation_create(account=account, actor=owner, email=DEMO_PENDING_INVITATION, role=Role.AGENT)
        audit_record(account=account, actor=None, action=DEMO_SEEDED, target=SHOP_MARKER)


def _units(spec: int | float, included: int) -> int:
    """`+n`: n units beyond the quota; a float: that share of it."""
    return included + spec if isinstance(spec, int) else int(included * spec)


def _report_usage(account: Account, *, start: datetime, end: datetime, used: dict[str, int], key: str) -> None:
    """Report `used` units per metric in daily events over [start, end), as the product would, when they
    happen (`now` is the event's day, so closed periods still take them)."""
    days = max(1, (end - start) // timedelta(days=1))
    events = []
    for metric, units in used.items():
        per_day, rest = divmod(units, days)
        for day in range(days):
            quantity = per_day + (1 if day < rest else 0)
            if quantity:
                occurred = min(start + timedelta(days=day, hours=10), end - timedelta(minutes=1))
                events.append(
                    {
                        "account": account.pk,
                        "metric": metric,
                        "quantity": quantity,
                        "occurred_at": occurred.isoformat(),
                        "idempotency_key": f"demo:{key}:{metric}:{day}",
                    }
                )
    result = usage_events_record(events=events, caller_account=None, now=end)
    refused = [r for r in result.results if r["status"] == "refused"]
    if refused:
        raise RuntimeError(f"The demo's usage was refused: {refused[:3]}")


# --- Late Payer Ltd --------------------------------------------------------------------------------------------


def _seed_late_payer(*, now: datetime) -> None:
    # Two renewals: the first paid, the second (a couple of days ago) declined, with Stripe's retry still ahead.
    anchor = add_months(now, -2) - timedelta(days=2)
    with transaction.atomic():
        owner = _user(*LATE_OWNER)
        account = account_provision(user=owner, name=LATE_PAYER, signup_ip="198.51.100.7", country="GB")
        clock = _Clock(account=account, name=f"Tollbooth demo: {LATE_PAYER}", frozen_time=anchor, card="pm_card_visa")
        clock.subscribe(plan="basic")
        clock.advance(add_months(anchor, 1) + timedelta(hours=2))
        clock.change_card("pm_card_chargeCustomerFail")  # attaches fine, every charge is declined
        clock.advance(now)
        audit_record(account=account, actor=None, action=DEMO_SEEDED, target=LATE_MARKER)


def demo_logins() -> list[tuple[str, str, str]]:
    """(who, email, password) of the demo's people, for the command to print."""
    return [
        ("merchant (Demo Shop owner)", *DEMO_OWNER),
        ("ops (admin, fraud group)", *DEMO_OPS),
        ("agent of Demo Shop", DEMO_AGENTS[0][0], DEMO_AGENT_PASSWORD),
        ("merchant in dunning (Late Payer Ltd)", *LATE_OWNER),
        ("flagged signup (in review)", fraud_demo.FLAGGED_EMAIL, fraud_demo.FLAGGED_PASSWORD),
    ]
