"""Reconciliation finds each kind of seeded drift, heals only what is safe, and reports zero on a clean book."""

from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.utils import timezone

from accounts.models import Account, AccountStatus
from billing.models import DifferenceKind, LedgerEntry, LedgerState, UsagePeriod
from billing.reconciliation.run import reconciliation_run
from billing.subscriptions.checkout import checkout_completed, checkout_start
from billing.subscriptions.selectors import customer_for_account, subscription_summary
from plans.models import PlanPrice


@pytest.fixture
def subscriber(sandbox, catalog, owner):
    """The owner's account paying Pro monthly (no trial), mirrored as the webhook handler would."""
    call_command("sync_plans", stdout=StringIO())
    Account.objects.filter(pk=owner.account.pk).update(trial_ends_at=None)
    owner.account.refresh_from_db()
    attempt = checkout_start(
        account=owner.account, actor=owner.user, plan_price=PlanPrice.objects.get(plan__code="pro", interval="month")
    )
    sandbox.request(
        "POST", f"/_sandbox/checkout/{attempt.stripe_session_id}/complete", {"card": "4242424242424242"}, api_key=None
    )
    checkout_completed(session_id=attempt.stripe_session_id)
    owner.account.refresh_from_db()
    assert owner.account.status == AccountStatus.ACTIVE
    return owner


def _kinds(run):
    return sorted(run.differences.values_list("kind", flat=True))


def test_a_clean_book_has_no_difference(subscriber):
    run = reconciliation_run()
    assert (run.accounts_checked, run.invoices_checked) == (1, 1)
    assert _kinds(run) == []


def test_status_drift_is_found_and_healed_by_a_resync(subscriber, stripe_client):
    subscription_id = subscription_summary(account=subscriber.account).id
    stripe_client.v1.subscriptions.cancel(subscription_id)  # no webhook reaches us: the mirror is stale
    run = reconciliation_run()
    [drift] = run.differences.filter(kind=DifferenceKind.STATUS_DRIFT)
    assert (drift.expected, drift.actual, drift.healed) == ("suspended", "active", True)
    subscriber.account.refresh_from_db()
    assert subscriber.account.status == AccountStatus.SUSPENDED


def test_orphan_subscription_and_account_without_one_are_reported(subscriber, stripe_client, outsider):
    stranger = stripe_client.v1.customers.create(
        params={"email": "x@elsewhere.example", "invoice_settings": {"default_payment_method": "pm_card_visa"}}
    )
    price = PlanPrice.objects.get(plan__code="basic", interval="month")
    orphan = stripe_client.v1.subscriptions.create(
        params={"customer": stranger.id, "items": [{"price": price.stripe_price_id}]}
    )
    Account.objects.filter(pk=outsider.account.pk).update(status=AccountStatus.ACTIVE)
    run = reconciliation_run()
    assert _kinds(run) == [DifferenceKind.ACCOUNT_WITHOUT_SUBSCRIPTION, DifferenceKind.SUBSCRIPTION_WITHOUT_ACCOUNT]
    assert run.differences.get(kind=DifferenceKind.SUBSCRIPTION_WITHOUT_ACCOUNT).stripe_id == orphan.id
    assert run.differences.get(kind=DifferenceKind.ACCOUNT_WITHOUT_SUBSCRIPTION).account_id == outsider.account.pk
    assert not run.differences.filter(healed=True).exists()  # nothing to heal safely


def test_a_plan_fee_that_differs_from_the_catalog_is_reported(subscriber):
    PlanPrice.objects.filter(plan__code="pro", interval="month").update(amount_cents=10900)
    run = reconciliation_run()
    [difference] = run.differences.all()
    assert (difference.kind, difference.expected, difference.actual) == (
        DifferenceKind.PLAN_FEE_DIFFERS,
        "10900",
        "9900",
    )


def _ledger_entry(account, *, amount, item_id=""):
    summary = subscription_summary(account=account)
    now = timezone.now()
    period = UsagePeriod.objects.create(
        account=account,
        start=now - timedelta(days=31),
        end=now - timedelta(days=1),
        subscription_id=summary.id,
        plan_price=summary.plan_price,
        state="rated",
    )
    return LedgerEntry.objects.create(
        account=account,
        period=period,
        state=LedgerState.PUSHED,
        plan_price=summary.plan_price,
        currency="usd",
        amount_cents=amount,
        stripe_invoice_item_id=item_id,
        pushed_at=now,
        push_attempts=1,
    )


def _item(stripe_client, account, entry, amount):
    return stripe_client.v1.invoice_items.create(
        params={
            "customer": customer_for_account(account=account).id,
            "amount": amount,
            "currency": "usd",
            "metadata": {"ledger_entry_id": str(entry.pk)},
        }
    )


def test_ledger_lines_differing_or_duplicated_at_stripe_are_reported(subscriber, stripe_client):
    entry = _ledger_entry(subscriber.account, amount=2500)
    item = _item(stripe_client, subscriber.account, entry, 2400)
    LedgerEntry.objects.filter(pk=entry.pk).update(stripe_invoice_item_id=item.id)
    _item(stripe_client, subscriber.account, entry, 2400)  # a second line for the same ledger entry
    run = reconciliation_run()
    assert _kinds(run) == [DifferenceKind.LEDGER_AMOUNT_DIFFERS, DifferenceKind.LEDGER_LINE_DUPLICATED]
    differs = run.differences.get(kind=DifferenceKind.LEDGER_AMOUNT_DIFFERS)
    assert (differs.expected, differs.actual, differs.healed) == ("2500", "2400", False)


def test_a_ledger_line_missing_at_stripe_is_re_pushed_once(subscriber, stripe_client):
    entry = _ledger_entry(subscriber.account, amount=2500, item_id="ii_gone")
    run = reconciliation_run()
    [missing] = run.differences.all()
    assert (missing.kind, missing.healed) == (DifferenceKind.LEDGER_LINE_MISSING, True)
    entry.refresh_from_db()
    customer = customer_for_account(account=subscriber.account).id
    items = [
        i
        for i in stripe_client.v1.invoice_items.list(params={"customer": customer}).data
        if i.metadata.get("ledger_entry_id") == str(entry.pk)
    ]
    assert [(i.id, i.amount) for i in items] == [(entry.stripe_invoice_item_id, 2500)]
    # The next night finds nothing: the re-push made the book whole, and made no second line.
    assert _kinds(reconciliation_run()) == []


def test_the_command_shows_progress_and_the_report(subscriber):
    out = StringIO()
    call_command("reconcile", stdout=out)
    text = out.getvalue()
    assert "1/1 accounts" in text
    assert "differences: 0 (healed: 0)" in text
