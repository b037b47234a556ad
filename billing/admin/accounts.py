"""Admin: the account page with its billing (subscription, dunning, usage, ledger)."""

from __future__ import annotations

from django.contrib import admin
from django.utils.html import format_html, format_html_join

from accounts.admin import AccountAdmin
from accounts.models import Account
from billing.admin.common import admin_link
from billing.admin.dunning import DunningCaseInline
from billing.subscriptions.selectors import (
    customer_for_account,
    invoices_for_account,
    subscription_current,
    subscription_summary,
)

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
        customer = customer_for_account(account=account)
        if customer is None:
            return "No Stripe customer yet."
        subscription = subscription_current(account=account)
        summary = subscription_summary(account=account)
        invoices = invoices_for_account(account=account, limit=12)
        parts = [format_html("Customer {}", admin_link(customer))]
        if subscription is not None:
            plan = summary.plan_price.plan.name if summary and summary.plan_price else "unknown price"
            parts.append(format_html("Subscription {} · {} · {}", admin_link(subscription), plan, summary.status))
        if invoices:
            parts.append(
                format_html(
                    "Invoices: {}",
                    format_html_join(
                        ", ",
                        "{} ({} {})",
                        (
                            (
                                admin_link(invoice, invoice.stripe_data.get("number") or invoice.id),
                                invoice.stripe_data.get("status"),
                                f"{invoice.stripe_data.get('total', 0) / 100:.2f}",
                            )
                            for invoice in invoices
                        ),
                    ),
                )
            )
        return format_html_join("", "<div>{}</div>", ((part,) for part in parts))
