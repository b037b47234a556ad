"""Billing pages: pricing (public and in-app), the account's billing page, and checkout's return pages."""

from __future__ import annotations

import logging

import stripe
from django.contrib import messages
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_POST

from accounts.decorators import account_required, manager_required, request_membership
from accounts.errors import DomainError
from accounts.http import client_country, client_ip
from accounts.services import membership_is_manager
from billing.dunning.card import card_update_session
from billing.stripe.client import stripe_client
from billing.subscriptions import cancellation, checkout
from billing.subscriptions.changes import subscription_change, subscription_change_preview
from billing.subscriptions.selectors import (
    LIVE_STATUSES,
    customer_for_account,
    default_card,
    invoices_for_account,
    subscription_summary,
)
from plans.models import BillingInterval, PlanPrice
from plans.selectors import annual_saving_cents, plans_public

logger = logging.getLogger(__name__)


# Billing pages are for the account's owners and admins.
billing_managers_only = manager_required("Only the account's owners and admins see billing.")


def pricing(request):
    interval = request.GET.get("interval", BillingInterval.MONTH)
    if interval not in BillingInterval.values:
        interval = BillingInterval.MONTH
    membership = request_membership(request) if request.user.is_authenticated else None
    summary = subscription_summary(account=membership.account) if membership else None
    plans = []
    for plan in plans_public():
        price = next((p for p in plan.prices.all() if p.interval == interval and p.currency == "usd"), None)
        if price is None:
            continue
        plans.append(
            {
                "plan": plan,
                "price": price,
                "monthly_equivalent_cents": price.amount_cents // 12 if interval == "year" else price.amount_cents,
                "saving_cents": annual_saving_cents(plan=plan),
                "is_current": bool(summary and summary.plan_price and summary.plan_price.plan_id == plan.pk),
            }
        )
    return render(
        request,
        "billing/pricing.html",
        {
            "plans": plans,
            "interval": interval,
            "membership": membership,
            "can_buy": membership_is_manager(membership),
            "subscribed": bool(summary and summary.status in LIVE_STATUSES),
        },
    )


@account_required
@billing_managers_only
def billing(request):
    account = request.account
    summary = subscription_summary(account=account)
    return render(
        request,
        "billing/billing.html",
        {
            "account": account,
            "subscription": summary,
            "card": default_card(account=account),
            "invoices": invoices_for_account(account=account),
            "upcoming": _upcoming_invoice(account, summary),
            "renewal_soon": _annual_renewal_within(summary, days=30),
        },
    )


def _annual_renewal_within(summary, *, days: int) -> bool:
    """The in-app side of the renewal reminders: an annual plan renewing within `days`."""
    if summary is None or summary.plan_price is None or summary.current_period_end is None:
        return False
    left = summary.current_period_end - timezone.now()
    return summary.plan_price.interval == "year" and not summary.cancel_at_period_end and left.days < days


def _upcoming_invoice(account, summary):
    """Stripe's preview of the next invoice, or None when there is nothing to preview or Stripe is away."""
    if summary is None or summary.status not in ("active", "trialing", "past_due"):
        return None
    customer = customer_for_account(account=account)
    try:
        preview = stripe_client().v1.invoices.create_preview(
            params={"customer": customer.id, "subscription": summary.id}
        )
    except stripe.StripeError:
        logger.warning("No invoice preview for account %s", account.pk, exc_info=True)
        return None
    return {
        "amount_due": preview.amount_due,
        "currency": preview.currency,
        "date": preview.get("next_payment_attempt") or preview.get("period_end"),
    }


@account_required
@require_POST
@billing_managers_only
def checkout_start(request):
    price = (
        PlanPrice.objects.select_related("plan").filter(pk=request.POST.get("plan_price") or 0).first()
        if str(request.POST.get("plan_price", "")).isdigit()
        else None
    )
    if price is None:
        messages.error(request, "Choose a plan first.")
        return redirect("pricing")
    try:
        attempt = checkout.checkout_start(
            account=request.account,
            actor=request.user,
            plan_price=price,
            ip=client_ip(request),
            ip_country=client_country(request),
        )
    except DomainError as error:
        messages.error(request, error.message)
        return redirect("pricing")
    except stripe.StripeError:
        logger.exception("Checkout could not start for account %s", request.account.pk)
        messages.error(request, "Payments are unavailable right now; please try again in a minute.")
        return redirect("pricing")
    return redirect(attempt.url)


@account_required
def checkout_success(request):
    summary = subscription_summary(account=request.account)
    return render(
        request, "billing/checkout_done.html", {"summary": summary, "outcome": "success", "waiting": summary is None}
    )


@account_required
def checkout_cancelled(request):
    return render(request, "billing/checkout_done.html", {"outcome": "cancelled"})


@account_required
def usage(request):
    """This period's usage against the plan; owners and admins also see money, agents only units."""
    from billing.api.usage import usage_payload
    from billing.usage.selectors import usage_summary

    summary = usage_summary(account=request.account)
    money_visible = membership_is_manager(request.membership)
    return render(
        request,
        "billing/usage.html",
        {
            "account": request.account,
            "usage": usage_payload(summary, money_visible=money_visible) if summary else None,
            "money_visible": money_visible,
        },
    )


# --- plan changes ----------------------------------------------------------------------------------------


@account_required
@billing_managers_only
def plan_change(request):
    """GET: the preview of moving to ?plan_price=; POST: confirm it with the preview's token."""
    if request.method == "POST":
        try:
            result = subscription_change(
                account=request.account, actor=request.user, token=request.POST.get("token", "")
            )
        except DomainError as error:
            messages.error(request, error.message)
            return redirect("pricing")
        if result["kind"] == "downgrade":
            change = result["scheduled"]
            messages.success(request, f"You'll move to {change.to_price.plan.name} on {change.effective_at:%d %B %Y}.")
        else:
            messages.success(request, "Your plan is upgraded; the difference was charged to your card.")
        return redirect("billing")
    price = PlanPrice.objects.select_related("plan").filter(pk=_int(request.GET.get("plan_price"))).first()
    if price is None:
        messages.error(request, "Choose a plan first.")
        return redirect("pricing")
    try:
        preview = subscription_change_preview(account=request.account, actor=request.user, plan_price=price)
    except DomainError as error:
        messages.error(request, error.message)
        return redirect("pricing")
    return render(request, "billing/plan_change.html", {"preview": preview})


def _int(value) -> int:
    return int(value) if str(value or "").isdigit() else 0


@account_required
@require_POST
@billing_managers_only
def subscription_cancel(request):
    try:
        result = cancellation.subscription_cancel(account=request.account, actor=request.user)
    except DomainError as error:
        messages.error(request, error.message)
    else:
        messages.success(
            request, f"Your subscription ends on {result['ends_at']:%d %B %Y}; until then nothing changes."
        )
    return redirect("billing")


@account_required
@require_POST
@billing_managers_only
def subscription_reactivate(request):
    try:
        cancellation.subscription_reactivate(account=request.account, actor=request.user)
    except DomainError as error:
        messages.error(request, error.message)
    else:
        messages.success(request, "Your subscription continues; it renews as before.")
    return redirect("billing")


@account_required
@billing_managers_only
def fix_card(request):
    """The link of the failed-payment email: a setup-mode Checkout page for a new card (owners and admins)."""
    try:
        return redirect(card_update_session(account=request.account, actor=request.user))
    except DomainError as error:
        messages.error(request, error.message)
    except stripe.StripeError:
        logger.exception("No card update session for account %s", request.account.pk)
        messages.error(request, "Payments are unavailable right now; please try again in a minute.")
    return redirect("billing")
