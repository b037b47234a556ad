"""Ops' view of billing: checkout attempts, and each account's Stripe customer, subscription and invoices."""

from django.contrib import admin
from django.urls import reverse
from django.utils.html import format_html, format_html_join

from accounts.admin import AccountAdmin
from accounts.models import Account
from billing import selectors
from billing.models import CheckoutAttempt


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


admin.site.unregister(Account)


@admin.register(Account)
class BillingAccountAdmin(AccountAdmin):
    """The accounts admin, plus what Stripe holds for the account (from dj-stripe's mirror), with links."""

    search_fields = [*AccountAdmin.search_fields, "djstripe_customers__id"]
    readonly_fields = [*AccountAdmin.readonly_fields, "stripe_billing"]
    fields = [*AccountAdmin.fields, "stripe_billing"]

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
