"""What billing reads and hands to fraud: Stripe's charges, setup intents, invoices, disputes and early fraud
warnings, re-read (never trusting the payload) with their account found; the account's usage and invoices.

Fraud decides on these facts (`fraud.services`) and never imports billing.
"""

from __future__ import annotations

from datetime import timedelta

from django.db.models import QuerySet, Sum
from django.utils import timezone

from accounts.models import Account
from billing.models import UsageEvent, UsagePeriod, UsagePeriodState
from billing.selectors import invoices_for_account
from billing.stripe.client import idempotent, retrieve_or_none, stripe_client
from billing.stripe.objects import stripe_object_with_account
from fraud import services as fraud

EVIDENCE_USAGE_WINDOW = timedelta(days=90)


def usage_by_metric(*, account: Account, since) -> dict[str, int]:
    """Units reported per metric since `since` (by when they occurred)."""
    rows = (
        UsageEvent.objects.filter(account=account, occurred_at__gte=since)
        .values("metric")
        .annotate(total=Sum("quantity"))
    )
    return {row["metric"]: int(row["total"] or 0) for row in rows}


def accounts_with_recent_usage(*, since) -> QuerySet[Account]:
    """Accounts with an open usage period: only they can have reported usage lately. (Events carry no index on
    their time, so the scan goes by account, whose key prefix is indexed.)"""
    ids = UsagePeriod.objects.filter(state=UsagePeriodState.OPEN, end__gte=since).values("account_id")
    return Account.objects.filter(pk__in=ids)


def account_usage_burst_check(*, account: Account):
    """Hand fraud the account's last day of usage; returns fraud's burst assessment, if one fired."""
    if not fraud.usage_burst_due(account=account):
        return None
    usage = usage_by_metric(account=account, since=timezone.now() - fraud.BURST_WINDOW)
    return fraud.usage_burst_check(account=account, usage_by_metric=usage)


def usage_bursts_scan() -> int:
    """Check every account that reported usage in the last day; returns how many were flagged."""
    since = timezone.now() - fraud.BURST_WINDOW
    flagged = 0
    # 500 accounts a round trip: each check is a few small queries, and the iterator keeps memory flat.
    for account in accounts_with_recent_usage(since=since).iterator(chunk_size=500):
        if account_usage_burst_check(account=account) is not None:
            flagged += 1
    return flagged


def _card(details: dict | None) -> dict:
    return ((details or {}).get("card")) or {}


def charge_assess(*, charge_id: str) -> None:
    """charge.succeeded / charge.failed: the card attempt's checks (card testing, reuse, countries, Radar)."""
    charge, account = stripe_object_with_account(stripe_client().v1.charges, charge_id)
    if account is None:
        return
    card = _card(charge.get("payment_method_details"))
    facts = fraud.ChargeFacts(
        reference=charge["id"],
        succeeded=charge.get("status") == "succeeded",
        fingerprint=card.get("fingerprint") or "",
        card_country=card.get("country") or "",
        funding=card.get("funding") or "",
        risk_level=((charge.get("outcome") or {}).get("risk_level")) or "",
    )
    fraud.payment_record_attempt(account=account, facts=facts)


def setup_failure_assess(*, setup_intent_id: str) -> None:
    """setup_intent.setup_failed: a card refused while being saved (Checkout with a trial) is a decline too."""
    intent, account = stripe_object_with_account(stripe_client().v1.setup_intents, setup_intent_id)
    if account is None:
        return
    error = intent.get("last_setup_error") or {}
    card = ((error.get("payment_method") or {}).get("card")) or {}
    fraud.payment_record_attempt(
        account=account,
        facts=fraud.ChargeFacts(reference=intent["id"], succeeded=False, fingerprint=card.get("fingerprint") or ""),
    )


def invoice_paid_trust(*, invoice_id: str) -> None:
    """invoice.paid: a first invoice actually paid (not a €0 trial invoice) gives the account good standing."""
    invoice, account = stripe_object_with_account(stripe_client().v1.invoices, invoice_id)
    if account is not None and invoice.get("paid", invoice.get("status") == "paid"):
        fraud.invoice_paid_trust(account=account, invoice_id=invoice["id"], amount_paid=invoice.get("amount_paid") or 0)


def _invoice_facts(account: Account) -> list[dict]:
    return [
        {
            "id": invoice.id,
            "number": invoice.stripe_data.get("number"),
            "status": invoice.stripe_data.get("status"),
            "amount_paid": invoice.stripe_data.get("amount_paid"),
            "currency": invoice.stripe_data.get("currency"),
            "created": invoice.stripe_data.get("created"),
        }
        for invoice in invoices_for_account(account=account)
    ]


def dispute_open(*, dispute_id: str):
    """charge.dispute.created: re-read the dispute and its charge, then hand the chargeback to fraud."""
    dispute = retrieve_or_none(stripe_client().v1.disputes, dispute_id)
    if dispute is None:
        return None
    charge, account = stripe_object_with_account(stripe_client().v1.charges, dispute.get("charge"))
    charge = charge or {}
    return fraud.chargeback_record(
        account=account,
        dispute=dispute,
        charge=charge,
        invoices=_invoice_facts(account) if account else [],
        usage_last_90_days=(
            usage_by_metric(account=account, since=timezone.now() - EVIDENCE_USAGE_WINDOW) if account else {}
        ),
    )


def dispute_evidence_send(dispute_id: str, fields: dict, metadata: dict, idempotency_key: str) -> None:
    """Submit a dispute's evidence to Stripe (registered with fraud at start-up: fraud's admin submits cases)."""
    stripe_client().v1.disputes.update(
        dispute_id,
        params={"evidence": fields, "submit": True, "metadata": metadata},
        options=idempotent(idempotency_key),
    )


def early_fraud_warning_handle(*, warning_id: str) -> None:
    """radar.early_fraud_warning.created: refund the charge before it becomes a chargeback; fraud suspends."""
    warning = retrieve_or_none(stripe_client().v1.radar.early_fraud_warnings, warning_id)
    if warning is None:
        return
    charge, account = stripe_object_with_account(stripe_client().v1.charges, warning.get("charge"))
    if charge is None:
        return
    if not charge.get("refunded"):
        stripe_client().v1.refunds.create(
            params={"charge": charge["id"], "reason": "fraudulent"},
            options=idempotent(f"efw-refund:{charge['id']}"),
        )
    if account is None:
        return
    fraud.early_fraud_warning_record(account=account, warning_id=warning["id"], charge_id=charge["id"])
