"""Reconciliation finds each kind of seeded drift, heals only what is safe, and reports zero on a clean book."""

from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.utils import timezone

from accounts.models import Account, AccountStatus
from billing.models import DifferenceKind, LedgerEntry, LedgerState, UsagePeriod
from billing.reconciliation.run import reconciliation_run
from billing.subscriptions.selectors import customer_for_account, subscription_summary
from plans.models import PlanPrice
from tests.billing.reconciliation_helpers import subscribe_through_checkout


@pytest.fixture
def subscriber(sandbox, catalog, owner):
    """The owner's account paying Pro monthly (no trial), mirrored as the webhook handler would."""
    Account.objects.filter(pk=owner.account.pk).update(trial_ends_at=None)
    owner.account.refresh_from_db()
    return subscribe_through_checkout(sandbox, owner)


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


def _ledger_entry(account, *, amount, item_id="", period_days_ago=31):
    summary = subscription_summary(account=account)
    now = timezone.now()
    period = UsagePeriod.objects.create(
        account=account,
        start=now - timedelta(days=period_days_ago),
        end=now - timedelta(days=period_days_ago - 30),
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


def test_a_ledger_line_deleted_at_stripe_is_reported_not_re_pushed_and_nothing_is_charged(subscriber, stripe_client):
    entry = _ledger_entry(subscriber.account, amount=2500)
    item = _item(stripe_client, subscriber.account, entry, 2500)
    LedgerEntry.objects.filter(pk=entry.pk).update(stripe_invoice_item_id=item.id)
    stripe_client.v1.invoice_items.delete(item.id)  # ops waived it at Stripe
    customer = customer_for_account(account=subscriber.account).id
    invoices_before = [i.id for i in stripe_client.v1.invoices.list(params={"customer": customer}).data]

    for _night in range(2):  # reported every night until staff decide; never healed by a charge
        run = reconciliation_run()
        [missing] = run.differences.all()
        assert (missing.kind, missing.stripe_id, missing.expected, missing.healed) == (
            DifferenceKind.LEDGER_LINE_MISSING,
            item.id,
            "2500",
            False,
        )
        assert (run.differences_found, run.differences_healed, run.differences_unhealed) == (1, 0, 1)

    entry.refresh_from_db()
    assert (entry.state, entry.stripe_invoice_item_id) == (LedgerState.PUSHED, item.id)
    assert stripe_client.v1.invoice_items.list(params={"customer": customer}).data == []
    assert [i.id for i in stripe_client.v1.invoices.list(params={"customer": customer}).data] == invoices_before


def test_a_ledger_line_pushed_but_not_invoiced_after_35_days_is_reported(subscriber, stripe_client):
    entry = _ledger_entry(subscriber.account, amount=2500)
    item = _item(stripe_client, subscriber.account, entry, 2500)
    LedgerEntry.objects.filter(pk=entry.pk).update(stripe_invoice_item_id=item.id)
    assert _kinds(reconciliation_run()) == []  # a pending item waits for the next invoice: not yet a difference

    LedgerEntry.objects.filter(pk=entry.pk).update(pushed_at=timezone.now() - timedelta(days=36))
    run = reconciliation_run()
    [late] = run.differences.all()
    assert (late.kind, late.stripe_id, late.healed) == (DifferenceKind.LEDGER_NOT_INVOICED, item.id, False)
    assert late.details["ledger_entry"] == entry.pk


def test_entries_whose_push_failed_or_that_wait_unpushed_for_hours_are_reported(subscriber):
    failed = _ledger_entry(subscriber.account, amount=2500)
    LedgerEntry.objects.filter(pk=failed.pk).update(state="failed", last_error="card_declined", push_attempts=8)
    waiting = _ledger_entry(subscriber.account, amount=1200, period_days_ago=62)
    LedgerEntry.objects.filter(pk=waiting.pk).update(
        state=LedgerState.RATED, pushed_at=None, created_at=timezone.now() - timedelta(hours=7)
    )
    fresh = _ledger_entry(subscriber.account, amount=900, period_days_ago=93)
    LedgerEntry.objects.filter(pk=fresh.pk).update(state=LedgerState.RATED, pushed_at=None)

    run = reconciliation_run()
    assert _kinds(run) == [DifferenceKind.LEDGER_NOT_PUSHED, DifferenceKind.LEDGER_PUSH_FAILED]
    assert run.differences.get(kind=DifferenceKind.LEDGER_PUSH_FAILED).details["ledger_entry"] == failed.pk
    assert run.differences.get(kind=DifferenceKind.LEDGER_NOT_PUSHED).details["ledger_entry"] == waiting.pk
    assert not run.differences.filter(healed=True).exists()


def test_the_command_shows_progress_and_the_report(subscriber):
    out = StringIO()
    call_command("reconcile", stdout=out)
    text = out.getvalue()
    assert "1/1 accounts" in text
    assert "differences: 0 (healed: 0, unhealed: 0)" in text
