"""Ops' view of billing: checkout attempts, each account's Stripe objects, usage periods and the ledger."""

import stripe
from django.contrib import admin, messages
from django.urls import reverse
from django.utils.html import format_html, format_html_join

from accounts.admin import AccountAdmin, ReadOnlyInline
from accounts.errors import DomainError
from accounts.models import Account
from billing import ledger, selectors
from billing.models import (
    CheckoutAttempt,
    DunningCase,
    DunningPolicy,
    LedgerEntry,
    ReconciliationDifference,
    ReconciliationRun,
    UsageEvent,
    UsagePeriod,
    UsageRollup,
)


def _admin_link(obj, label=None):
    url = reverse(f"admin:{obj._meta.app_label}_{obj._meta.model_name}_change", args=[obj.pk])
    return format_html('<a href="{}">{}</a>', url, label or obj.id)


@admin.register(CheckoutAttempt)
class CheckoutAttemptAdmin(admin.ModelAdmin):
    list_display = ["created_at", "account", "plan_price", "status", "stripe_session_id", "completed_at"]
    list_filter = ["status"]
    search_fields = ["account__name", "stripe_session_id", "=account__id"]
    readonly_fields = [
        "account",
        "plan_price",
        "started_by",
        "status",
        "stripe_session_id",
        "url",
        "expires_at",
        "created_at",
        "completed_at",
    ]
    list_select_related = ["account", "plan_price__plan"]

    def has_add_permission(self, request):
        return False


@admin.register(DunningPolicy)
class DunningPolicyAdmin(admin.ModelAdmin):
    list_display = ["name", "grace_days", "hard_decline_codes"]


class DunningCaseInline(ReadOnlyInline):
    model = DunningCase
    fields = [
        "stripe_invoice_id",
        "status",
        "opened_at",
        "failures",
        "last_decline_code",
        "hard_decline",
        "suspended_at",
        "closed_at",
    ]
    verbose_name_plural = "dunning"


@admin.register(DunningCase)
class DunningCaseAdmin(admin.ModelAdmin):
    list_display = ["opened_at", "account", "stripe_invoice_id", "status", "failures", "last_decline_code"]
    list_filter = ["status", "hard_decline"]
    search_fields = ["account__name", "stripe_invoice_id", "=account__id"]
    readonly_fields = [f.name for f in DunningCase._meta.fields]

    def has_add_permission(self, request):
        return False


class ReconciliationDifferenceInline(ReadOnlyInline):
    model = ReconciliationDifference
    fields = ["kind", "account", "stripe_id", "expected", "actual", "healed", "details"]


@admin.register(ReconciliationRun)
class ReconciliationRunAdmin(admin.ModelAdmin):
    list_display = ["started_at", "accounts_checked", "invoices_checked", "differences_found", "differences_healed"]
    readonly_fields = [f.name for f in ReconciliationRun._meta.fields]
    inlines = [ReconciliationDifferenceInline]

    def has_add_permission(self, request):
        return False


admin.site.unregister(Account)


@admin.register(Account)
class BillingAccountAdmin(AccountAdmin):
    """The accounts admin, plus what Stripe holds for the account (from dj-stripe's mirror), with links."""

    search_fields = [*AccountAdmin.search_fields, "djstripe_customers__id"]
    readonly_fields = [*AccountAdmin.readonly_fields, "stripe_billing"]
    fields = [*AccountAdmin.fields, "stripe_billing"]
    inlines = [*AccountAdmin.inlines[:-1], DunningCaseInline, AccountAdmin.inlines[-1]]  # audit log stays last

    @admin.display(description="Stripe")
    def stripe_billing(self, account):
        customer = selectors.customer_for_account(account=account)
        if customer is None:
            return "No Stripe customer yet."
        subscription = selectors.subscription_current(account=account)
        summary = selectors.subscription_summary(account=account)
        invoices = selectors.invoices_for_account(account=account, limit=12)
        parts = [format_html("Customer {}", _admin_link(customer))]
        if subscription is not None:
            plan = summary.plan_price.plan.name if summary and summary.plan_price else "unknown price"
            parts.append(format_html("Subscription {} · {} · {}", _admin_link(subscription), plan, summary.status))
        if invoices:
            parts.append(
                format_html(
                    "Invoices: {}",
                    format_html_join(
                        ", ",
                        "{} ({} {})",
                        (
                            (
                                _admin_link(invoice, invoice.stripe_data.get("number") or invoice.id),
                                invoice.stripe_data.get("status"),
                                f"{invoice.stripe_data.get('total', 0) / 100:.2f}",
                            )
                            for invoice in invoices
                        ),
                    ),
                )
            )
        return format_html_join("", "<div>{}</div>", ((part,) for part in parts))


class UsageRollupInline(ReadOnlyInline):
    model = UsageRollup
    fields = ["metric", "used", "updated_at"]


class LedgerEntryInline(ReadOnlyInline):
    model = LedgerEntry
    fields = ["kind", "state", "amount_cents", "currency", "stripe_invoice_item_id", "stripe_invoice_id"]
    show_change_link = True


@admin.register(UsagePeriod)
class UsagePeriodAdmin(admin.ModelAdmin):
    """Usage per account and period: the rollups (what rating reads) and the ledger entry it produced."""

    list_display = ["account", "start", "end", "state", "plan_price", "used"]
    list_filter = ["state"]
    search_fields = ["=account__id", "account__name", "account__billing_email", "subscription_id"]
    date_hierarchy = "start"
    readonly_fields = ["account", "start", "end", "subscription_id", "plan_price", "state", "created_at", "rated_at"]
    inlines = [UsageRollupInline, LedgerEntryInline]
    list_select_related = ["account", "plan_price__plan"]

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("rollups")

    @admin.display(description="Used")
    def used(self, period):
        return ", ".join(f"{rollup.metric} {rollup.used:,}" for rollup in period.rollups.all()) or "—"

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(LedgerEntry)
class LedgerEntryAdmin(admin.ModelAdmin):
    list_display = [
        "created_at",
        "account",
        "period",
        "kind",
        "state",
        "amount",
        "stripe_invoice_item_id",
        "stripe_invoice_id",
        "push_attempts",
    ]
    list_filter = ["state", "kind"]
    search_fields = ["=account__id", "account__name", "stripe_invoice_item_id", "stripe_invoice_id"]
    readonly_fields = [f.name for f in LedgerEntry._meta.fields]
    list_select_related = ["account", "period"]
    actions = ["repush"]

    @admin.display(description="Amount")
    def amount(self, entry):
        return f"{entry.amount_cents / 100:,.2f} {entry.currency.upper()}"

    @admin.action(description="Re-push selected stuck entries to Stripe (looks for an existing item first)")
    def repush(self, request, queryset):
        for entry in queryset:
            try:
                entry = ledger.ledger_entry_repush(entry=entry, actor=request.user)
            except DomainError as error:
                self.message_user(request, error.message, messages.WARNING)
            except stripe.StripeError as error:
                self.message_user(request, f"Entry {entry.pk}: Stripe refused: {error}", messages.ERROR)
            else:
                self.message_user(request, f"Entry {entry.pk} is {entry.get_state_display().lower()}.")

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(UsageEvent)
class UsageEventAdmin(admin.ModelAdmin):
    list_display = ["received_at", "account_id", "metric", "quantity", "occurred_at", "idempotency_key"]
    search_fields = ["=account__id", "=idempotency_key"]
    readonly_fields = [f.name for f in UsageEvent._meta.fields]
    show_full_result_count = False  # a count(*) over millions of events on every page view is not worth it

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
