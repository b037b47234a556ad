"""The books at the end of a simulation: the oracle against Stripe's invoices, the ledger, periods, statuses.

Each check returns readable findings (account, period, kind, expected, actual) instead of stopping at the first,
so one run of a seed shows the lead every defect it met.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta

from django.db import connection

from accounts.models import Account
from billing.models import LedgerEntry, LedgerState
from tests.billing import oracle

RENEWAL_FINALIZE_DELAY = timedelta(hours=1)  # the sandbox (and Stripe) finalize a renewal an hour after drafting


def subscription_history(stripe) -> dict[str, list[oracle.SubscriptionState]]:
    """Every customer's subscription history as Stripe's events report it, oldest first."""
    events = stripe.v1.events.list(params={"limit": 100, "type": "customer.subscription.*"}).auto_paging_iter()
    return oracle.history_from_events([event.to_dict() for event in reversed(list(events))])


def customer_invoices(stripe, customer_id: str) -> list[dict]:
    listing = stripe.v1.invoices.list(params={"customer": customer_id, "limit": 100}).auto_paging_iter()
    return [invoice.to_dict() for invoice in listing]


def oracle_differences(
    merchants, stripe, catalog: oracle.Catalog, *, as_of: datetime, rated_through: datetime, finality: timedelta
) -> tuple[int, list[str]]:
    """(finalized invoices seen, one readable block per merchant whose invoices differ from the oracle)."""
    histories = subscription_history(stripe)
    blocks, invoices_seen = [], 0
    for merchant in merchants:
        history = histories.get(merchant.customer_id, [])
        expected = oracle.expected_fees(catalog, history, as_of=as_of, finalize_delay=RENEWAL_FINALIZE_DELAY)
        expected += oracle.expected_overage(
            catalog, history, merchant.events, rated_through=rated_through, finality=finality
        )
        invoices = customer_invoices(stripe, merchant.customer_id)
        invoices_seen += sum(1 for i in invoices if i["status"] in ("paid", "open", "uncollectible"))
        actual = oracle.actual_lines(invoices, forgiven=merchant.forgiven)
        differences = oracle.compare(expected, actual)
        if differences:
            blocks.append(_block(merchant, differences, oracle.usage_periods(catalog, history)))
    return invoices_seen, blocks


def _block(merchant, differences, oracle_periods) -> str:
    lines = [f"account {merchant.account_id} (merchant {merchant.n}, customer {merchant.customer_id}):"]
    lines += [f"    {difference}" for difference in differences]
    lines += ["  usage periods (ours):"] + [f"    {row}" for row in usage_period_rows(merchant.account_id)]
    lines += ["  usage periods (the oracle's):"] + [
        f"    {p.start:%Y-%m-%d %H:%M:%S} → {p.end:%Y-%m-%d %H:%M:%S}{' trial' if p.trial else ''} "
        + ", ".join(f"{since:%Y-%m-%d %H:%M} {price}" for since, price in p.plans)
        for p in oracle_periods
    ]
    lines += ["  steps:"] + [f"    {step}" for step in merchant.log]
    return "\n".join(lines)


def usage_period_rows(account_id: int) -> list[str]:
    """The account's stored periods as the product sees them: bounds, plan, state, usage, ledger entries."""
    from billing.models import UsagePeriod

    rows = []
    periods = UsagePeriod.objects.filter(account_id=account_id).select_related("plan_price__plan").order_by("start")
    for period in periods.prefetch_related("rollups", "ledger_entries"):
        used = ", ".join(f"{r.metric} {r.used}" for r in period.rollups.all())
        entries = ", ".join(f"{e.amount_cents / 100:.2f} {e.state}" for e in period.ledger_entries.all())
        rows.append(
            f"#{period.pk} {period.start:%Y-%m-%d %H:%M:%S} → {period.end:%Y-%m-%d %H:%M:%S} {period.subscription_id} "
            f"{period.plan_price.plan.code}/{period.plan_price.interval} {period.state}"
            f"{' trial' if period.trial else ''} used [{used}] ledger [{entries}]"
        )
    return rows


def difference_kinds(blocks: list[str]) -> Counter:
    kinds = Counter()
    for block in blocks:
        for line in block.splitlines():
            parts = line.split()
            if (
                line.startswith("    ")
                and parts
                and parts[0] in (oracle.PLAN_FEE, oracle.PRORATION, oracle.OVERAGE, oracle.OTHER)
            ):
                side = "missing" if "actual —" in line else "unexpected" if "expected —" in line else "amount"
                kinds[f"{parts[0]}:{side}"] += 1
    return kinds


def ledger_not_on_one_invoice(merchants, stripe) -> list[str]:
    """Every rated ledger entry is on exactly one finalized invoice (an entry that never got there is a finding)."""
    findings = []
    for merchant in merchants:
        on_invoices = Counter()
        for invoice in customer_invoices(stripe, merchant.customer_id):
            if invoice["status"] not in ("paid", "open", "uncollectible") and invoice["id"] not in merchant.forgiven:
                continue
            for line in invoice["lines"]["data"]:
                entry_id = (line.get("metadata") or {}).get("ledger_entry_id")
                if entry_id:
                    on_invoices[entry_id] += 1
        entries = LedgerEntry.objects.filter(account_id=merchant.account_id).exclude(state=LedgerState.NOTHING_DUE)
        for entry in entries:
            count = on_invoices.pop(str(entry.pk), 0)
            if count != 1:
                findings.append(
                    f"account {merchant.account_id}: ledger entry {entry.pk} ({entry.amount_cents} cents, "
                    f"{entry.state}, period {entry.period_id}) is on {count} finalized invoices "
                    f"({_entry_story(entry, stripe, merchant)})"
                )
        findings += [f"account {merchant.account_id}: invoice line for unknown ledger entry {k}" for k in on_invoices]
    return findings


def _entry_story(entry, stripe, merchant) -> str:
    """What happened to an entry that did not land once, for the replay: its pushes, subscription, invoices."""

    def day(stamp) -> str:
        return f"{datetime.fromtimestamp(stamp, UTC):%Y-%m-%d %H:%M}" if stamp else "-"

    pushed = f"pushed {entry.pushed_at:%Y-%m-%d %H:%M}" if entry.pushed_at else "not pushed"
    sub = stripe.v1.subscriptions.retrieve(entry.period.subscription_id)
    invoices = "; ".join(
        f"{i['id']} {i['status']} {i['billing_reason']} {day(i['created'])} {i['total']}"
        for i in customer_invoices(stripe, merchant.customer_id)
    )
    return (
        f"rated {entry.created_at:%Y-%m-%d %H:%M}, {pushed} after {entry.push_attempts} attempts, "
        f"item {entry.stripe_invoice_item_id or '-'}, last error {entry.last_error or '-'}; "
        f"{sub.id} {sub.status}, canceled {day(sub.canceled_at)}; invoices: {invoices}"
    )


def overlapping_periods() -> list[str]:
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT a.account_id, a.id, a.start, a."end", b.id, b.start, b."end"
            FROM billing_usageperiod a JOIN billing_usageperiod b
              ON a.account_id = b.account_id AND a.id < b.id
             AND tstzrange(a.start, a."end") && tstzrange(b.start, b."end")
            """
        )
        return [
            f"account {row[0]}: period {row[1]} [{row[2]}, {row[3]}) overlaps {row[4]} [{row[5]}, {row[6]})"
            for row in cursor.fetchall()
        ]


def _owes(merchant) -> bool:
    """Stripe holds an unpaid invoice of this merchant's customer: open, or written off by ops (uncollectible)."""
    from billing.stripe.client import stripe_client

    for status in ("open", "uncollectible"):
        params = {"customer": merchant.customer_id, "status": status, "limit": 1}
        if stripe_client().v1.invoices.list(params=params).data:
            return True
    return False


def status_mismatches(merchants) -> list[str]:
    from billing.subscriptions.selectors import subscription_current
    from billing.subscriptions.sync import ACCOUNT_STATUS_FOR_SUBSCRIPTION

    findings = []
    for merchant in merchants:
        account = Account.objects.get(pk=merchant.account_id)
        subscription = subscription_current(account=account)
        if subscription is None:
            continue
        stripe_status = subscription.stripe_data.get("status")
        expected = ACCOUNT_STATUS_FOR_SUBSCRIPTION.get(stripe_status)
        if expected in ("past_due", "active") and account.status == "suspended" and _owes(merchant):
            # Dunning suspended it for an invoice still unpaid: past due at Stripe after the grace period, a
            # one-off overage invoice (the subscription stays active) refused by a hard decline, or an invoice
            # ops wrote off (the suspension stands until a payment lifts it).
            continue
        if expected and account.status != expected:
            findings.append(
                f"account {account.pk}: status {account.status}, subscription {stripe_status} "
                f"(expected {expected}); steps: {merchant.log[-4:]}"
            )
    return findings


def step_counts(merchants) -> dict:
    counts = Counter()
    for merchant in merchants:
        counts.update(merchant.kinds)
    return dict(sorted(counts.items()))


def handlers_not_succeeded() -> list[str]:
    """Stripe event handlers that failed and are still failing at the end (each retry is its own chance)."""
    from billing.models import HandlingStatus, StripeEventHandling

    found = []
    done = [HandlingStatus.SUCCEEDED, HandlingStatus.COVERED]  # covered: a later event of its object ran it
    for h in StripeEventHandling.objects.exclude(status__in=done).select_related("event"):
        last_line = (h.last_error.strip().splitlines() or [""])[-1]
        found.append(
            f"{h.event.type} {h.event.stripe_id} {h.handler}: {h.status} after {h.attempts} attempts: {last_line}"
        )
    return found
