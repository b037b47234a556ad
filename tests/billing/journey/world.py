"""The simulated world: one sandbox test clock our clock follows, beat's jobs, and the faults we inject.

After every step the due jobs run as beat would run them, then run again: the second run must bill nothing
more (Kill Bill's `checkNoMoreInvoiceToGenerate`): no new invoice, no new invoice item, no new ledger entry.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime

from billing.dunning.cases import dunning_enforce_grace
from billing.ledger import push
from billing.ledger.push import ledger_entries_push_due
from billing.ledger.rate import usage_periods_rate_closed
from billing.models import LedgerEntry
from billing.notices.reminders import reminders_send_due, trials_end_due
from billing.subscriptions import changes
from billing.subscriptions.changes import scheduled_changes_apply_due
from billing.tasks import sweep_stripe_events
from plans.models import Entitlement, PlanPrice

BILLING_EVENTS = ["invoice.created", "invoiceitem.created"]
# Where a crash would cut a job: its Stripe write is done by the code before these, our record by these.
KILL_SEAMS = {
    "push_ledger_entries": (push, "_record_pushed"),
    "apply_due_plan_changes": (changes, "subscription_refresh"),
}


class WorkerKilled(Exception):
    """A worker dies between a job's Stripe write and its database record (injected once, in-process)."""


@dataclass
class World:
    sandbox: object
    stripe: object
    clock_id: str
    traveller: object
    endpoint_id: str
    finality_hours: int
    violations: list = field(default_factory=list)  # (when, what): a second run of the due jobs billed more
    crashes: list = field(default_factory=list)  # (when, what): a job or a step raised (a 500 in the product)
    kills: Counter = field(default_factory=Counter)
    cut: dict = field(default_factory=dict)  # seam -> (module, name, original) while cut and not yet hit

    def now(self) -> datetime:
        from django.utils import timezone

        return timezone.now()

    def advance(self, to: datetime) -> None:
        self.stripe.v1.test_helpers.test_clocks.advance(self.clock_id, params={"frozen_time": int(to.timestamp())})
        self.traveller.move_to(to)
        self.flush()

    def flush(self) -> None:
        # A large population queues thousands of deliveries: wait as long as they take.
        reply = self.sandbox.request("POST", "/_sandbox/webhooks/flush", {"timeout": 900}, api_key=None, timeout=910)
        assert reply.status == 200, reply.body

    def failed_deliveries(self) -> list[str]:
        """Webhook deliveries our endpoint answered with a 5xx (a handler crashed; Stripe retries it)."""
        reply = self.sandbox.request("GET", "/_sandbox/deliveries", {"endpoint": self.endpoint_id}, api_key=None)
        assert reply.status == 200, reply.body
        attempts = reply.body["data"]
        failed = Counter(attempt["type"] for attempt in attempts if (attempt.get("status_code") or 0) >= 500)
        return [f"{event_type}: {count} deliveries answered 5xx" for event_type, count in sorted(failed.items())]

    def webhook_faults(self, **faults) -> None:
        reply = self.sandbox.request("POST", f"/_sandbox/webhook_endpoints/{self.endpoint_id}/faults", faults)
        assert reply.status == 200, reply.body

    def deliver_twice_at_once(self, event_id: str) -> list[int]:
        """POST one signed event to our endpoint from two threads at once (the race the sandbox's fault cannot make)."""
        import hashlib
        import hmac
        import json
        import time
        import urllib.request
        from concurrent.futures import ThreadPoolExecutor

        from djstripe.models import WebhookEndpoint

        endpoint = WebhookEndpoint.objects.get(id=self.endpoint_id)
        reply = self.sandbox.request("GET", f"/v1/events/{event_id}")  # the event's own JSON, as Stripe sends it
        assert reply.status == 200, reply.body
        payload = json.dumps(reply.body).encode()
        stamp = int(time.time())
        signature = hmac.new(endpoint.secret.encode(), f"{stamp}.".encode() + payload, hashlib.sha256).hexdigest()
        request = {
            "url": endpoint.url,
            "data": payload,
            "headers": {"Content-Type": "application/json", "Stripe-Signature": f"t={stamp},v1={signature}"},
            "method": "POST",
        }

        def post(_):
            with urllib.request.urlopen(urllib.request.Request(**request), timeout=60) as reply:
                return reply.status

        with ThreadPoolExecutor(max_workers=2) as pool:
            return list(pool.map(post, range(2)))

    # --- beat ------------------------------------------------------------------------------------------------

    def run_due_jobs(self, label: str) -> None:
        """Run every due job, then again: the second run must write nothing billable."""
        kills = sum(self.kills.values())
        self._run_jobs(label)
        self.flush()
        if sum(self.kills.values()) != kills:
            # A worker died mid-batch: the next run finishes its work (that is the point); the check is the run after.
            self._run_jobs(label)
            self.flush()
        mark = self._newest_event_id()
        entries = LedgerEntry.objects.count()
        self._run_jobs(label)
        self.flush()
        after = LedgerEntry.objects.count()
        new_events = self._events_since(mark)
        if after != entries or new_events:
            self.violations.append(
                (
                    self.now(),
                    f"{label}: a second run of the due jobs billed more: ledger {entries}→{after}, "
                    f"Stripe {Counter(e['type'] for e in new_events)}",
                )
            )

    def _run_jobs(self, label: str) -> None:
        jobs = [
            ("apply_due_plan_changes", scheduled_changes_apply_due),
            ("rate_closed_usage_periods", usage_periods_rate_closed),
            ("push_ledger_entries", ledger_entries_push_due),
            ("dunning_enforce_grace", dunning_enforce_grace),
            ("send_reminders", reminders_send_due),
            ("end_trials", trials_end_due),
            ("sweep_stripe_events", sweep_stripe_events),  # a handler that failed is retried when its time comes
        ]
        for name, job in jobs:
            try:
                job()
            except WorkerKilled as killed:
                self.kills[f"{killed}@{name}"] += 1
            except Exception as error:  # a crashing job is a defect to report, not a reason to stop living
                self.crashes.append((self.now(), f"{label}: job {name} raised {error!r}"))

    def kill_next(self, seam: str) -> None:
        """The next write through `seam` dies once between its Stripe write and its database record.

        The seam stays cut until some job (or request) goes through it; then it is whole again, and the
        next run of the job must finish the work exactly once.
        """
        module, name = KILL_SEAMS[seam]
        original = getattr(module, name)
        if getattr(original, "is_cut", False):
            return  # already cut, not yet hit

        def die(*args, **kwargs):
            setattr(module, name, original)
            self.cut.pop(seam, None)
            raise WorkerKilled(seam)

        die.is_cut = True
        self.cut[seam] = (module, name, original)
        setattr(module, name, die)

    def heal(self) -> None:
        """Make every seam still cut whole again (the simulation is over; the next test must not die in it)."""
        for module, name, original in self.cut.values():
            setattr(module, name, original)
        self.cut.clear()

    def _newest_event_id(self) -> str | None:
        page = self.stripe.v1.events.list(params={"limit": 1})
        return page.data[0].id if page.data else None

    def _events_since(self, mark: str | None) -> list:
        # Filtered server-side the mark may not be in the list (Stripe answers 404): filter here instead.
        params = {"limit": 100, **({"ending_before": mark} if mark else {})}
        return [e for e in self.stripe.v1.events.list(params=params).data if e.type in BILLING_EVENTS]


def catalog_terms(when: datetime):
    """The catalog as the oracle takes it: plain prices and each plan's metered terms, read now."""
    from tests.billing.oracle import MetricTerms, Price

    prices = {
        price.stripe_price_id: Price(
            price.stripe_price_id, price.plan.code, price.plan.rank, price.interval, price.amount_cents, price.currency
        )
        for price in PlanPrice.objects.select_related("plan")
    }
    terms: dict = {}
    for entitlement in Entitlement.objects.filter(kind="metered").select_related("plan"):
        terms.setdefault(entitlement.plan.code, {})[entitlement.feature] = MetricTerms(
            entitlement.included_units, entitlement.overage_cents
        )
    return prices, (when, terms)
