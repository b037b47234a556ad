"""Plan changes: preview (a signed token), upgrade now with proration, downgrade at the period's end."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import stripe
from django.core import signing
from django.utils import timezone

from accounts.errors import Conflict, DomainError, PaymentDeclined
from accounts.models import Account
from accounts.services import audit_record, require_manager
from billing.models import ScheduledPlanChange
from billing.stripe.client import idempotent, stripe_client
from billing.stripe.minimums import due_now_and_carried
from billing.stripe.objects import stripe_id
from billing.subscriptions.checkout import plan_price_require_for_sale
from billing.subscriptions.scheduled import (
    scheduled_change_schedule,
    scheduled_change_withdraw,
    scheduled_changes_apply_due,
)
from billing.subscriptions.seats import require_seats_fit, seat_quantity
from billing.subscriptions.selectors import customer_for_account, subscription_summary
from billing.subscriptions.sync import subscription_refresh
from plans.models import PlanPrice

logger = logging.getLogger(__name__)

PREVIEW_SALT = "tollbooth.plan-change-preview"

PREVIEW_LIFETIME = timedelta(minutes=30)

CHANGEABLE_STATUSES = ("active", "trialing", "past_due")

# The beat task and older callers find the scheduled-change runner here, beside the changes it applies.
__all__ = ["scheduled_changes_apply_due", "subscription_change", "subscription_change_preview"]


@dataclass(frozen=True)
class PreviewLine:
    description: str
    amount_cents: int
    proration: bool


@dataclass(frozen=True)
class PlanChangePreview:
    kind: str  # "upgrade" (now) or "downgrade" (at period end)
    plan_price: PlanPrice
    currency: str
    amount_due_now_cents: int
    effective_at: datetime
    next_invoice_cents: int
    lines: list[PreviewLine] = field(default_factory=list)
    token: str = ""
    # Under Stripe's minimum charge: nothing is charged now, this is added to the next invoice.
    carried_forward_cents: int = 0


@dataclass(frozen=True)
class SubscriptionState:
    subscription_id: str
    item_id: str
    quantity: int
    plan_price: PlanPrice
    period_end: datetime
    cancel_at_period_end: bool
    status: str
    latest_invoice: str | None


def subscription_state(account: Account) -> SubscriptionState:
    summary = subscription_summary(account=account)
    if summary is None or summary.status not in CHANGEABLE_STATUSES:
        raise Conflict("There is no active subscription to change; choose a plan first.", code="no_subscription")
    if summary.plan_price is None:
        raise Conflict("This subscription's price isn't in the catalog; contact support.", code="unknown_price")
    data = stripe_client().v1.subscriptions.retrieve(summary.id)
    item = data["items"]["data"][0]
    return SubscriptionState(
        subscription_id=summary.id,
        item_id=item["id"],
        quantity=item["quantity"] or 1,
        plan_price=summary.plan_price,
        period_end=datetime.fromtimestamp(item["current_period_end"], tz=UTC),
        cancel_at_period_end=bool(data.get("cancel_at_period_end")),
        status=data["status"],
        latest_invoice=stripe_id(data.get("latest_invoice")),
    )


def _kind(current: PlanPrice, target: PlanPrice) -> str:
    if current.pk == target.pk:
        raise DomainError("This is already your plan.", field="plan_price", code="same_plan")
    if target.plan.rank > current.plan.rank:
        return "upgrade"
    if target.plan.rank < current.plan.rank:
        return "downgrade"
    return "upgrade" if target.interval == "year" else "downgrade"  # same plan: monthly ↔ annual


def subscription_change_preview(*, account: Account, actor, plan_price: PlanPrice) -> PlanChangePreview:
    """What moving to `plan_price` would cost now and at renewal, with a token to confirm it."""
    require_manager(account=account, actor=actor)
    plan_price_require_for_sale(plan_price)
    current = subscription_state(account)
    kind = _kind(current.plan_price, plan_price)
    require_seats_fit(account=account, plan_price=plan_price)
    quantity = seat_quantity(account=account, plan_price=plan_price)
    if kind == "downgrade":
        return PlanChangePreview(
            kind=kind,
            plan_price=plan_price,
            currency=plan_price.currency,
            amount_due_now_cents=0,
            effective_at=current.period_end,
            next_invoice_cents=plan_price.amount_cents * quantity,
            token=_sign(account, current, plan_price, proration_date=None),
        )
    proration_date = int(timezone.now().timestamp())
    if current.status == "trialing":
        # A trial pays nothing for its own days: the new plan applies now, its first charge at the trial's end.
        return PlanChangePreview(
            kind=kind,
            plan_price=plan_price,
            currency=plan_price.currency,
            amount_due_now_cents=0,
            effective_at=datetime.fromtimestamp(proration_date, tz=UTC),
            next_invoice_cents=plan_price.amount_cents * quantity,
            token=_sign(account, current, plan_price, proration_date=proration_date, amount=0),
        )
    preview = stripe_client().v1.invoices.create_preview(
        params={
            "customer": customer_for_account(account=account).id,
            "subscription": current.subscription_id,
            "subscription_details": {
                "items": [{"id": current.item_id, "price": plan_price.stripe_price_id, "quantity": quantity}],
                "proration_date": proration_date,
                "proration_behavior": "always_invoice",
            },
        }
    )
    lines = [
        PreviewLine(line.get("description") or "", line["amount"], bool(_is_proration(line)))
        for line in preview["lines"]["data"]
    ]
    due_now, carried = due_now_and_carried(amount_due=preview["amount_due"], currency=preview["currency"])
    return PlanChangePreview(
        kind=kind,
        plan_price=plan_price,
        currency=preview["currency"],
        amount_due_now_cents=due_now,
        carried_forward_cents=carried,
        effective_at=datetime.fromtimestamp(proration_date, tz=UTC),
        next_invoice_cents=plan_price.amount_cents * quantity,
        lines=lines,
        token=_sign(account, current, plan_price, proration_date=proration_date, amount=due_now),
    )


def _is_proration(line) -> bool:
    parent = line.get("parent") or {}
    details = parent.get("subscription_item_details") or parent.get("invoice_item_details") or {}
    return bool(details.get("proration") or line.get("proration"))


def _sign(account, current: SubscriptionState, plan_price: PlanPrice, *, proration_date, amount=0) -> str:
    return signing.dumps(
        {
            "a": account.pk,
            "s": current.subscription_id,
            "f": current.plan_price.stripe_price_id,
            "t": plan_price.stripe_price_id,
            "p": plan_price.pk,
            "d": proration_date,
            "m": amount,
        },
        salt=PREVIEW_SALT,
    )


def subscription_change(*, account: Account, actor, token: str) -> dict:
    """Make the previewed change: an upgrade now (charged at once), a downgrade scheduled for period end."""
    require_manager(account=account, actor=actor)
    try:
        claim = signing.loads(token, salt=PREVIEW_SALT, max_age=PREVIEW_LIFETIME.total_seconds())
    except signing.SignatureExpired:
        raise DomainError(
            "This preview has expired; preview the change again.", field="token", code="preview_expired"
        ) from None
    except signing.BadSignature:
        raise DomainError("This preview token is not valid.", field="token", code="invalid_preview") from None
    if claim["a"] != account.pk:
        raise DomainError("This preview token is not valid.", field="token", code="invalid_preview")
    plan_price = PlanPrice.objects.select_related("plan").filter(pk=claim["p"]).first()
    if plan_price is None:
        raise DomainError("This plan no longer exists.", field="token", code="plan_unavailable")
    plan_price_require_for_sale(plan_price)
    current = subscription_state(account)
    if (current.subscription_id, current.plan_price.stripe_price_id, plan_price.stripe_price_id) != (
        claim["s"],
        claim["f"],
        claim["t"],
    ):
        raise Conflict(
            "Prices or your subscription changed since this preview; preview the change again.", code="preview_stale"
        )
    kind = _kind(current.plan_price, plan_price)
    require_seats_fit(account=account, plan_price=plan_price)
    if kind == "downgrade":
        return {"kind": kind, "scheduled": _schedule_downgrade(account, actor, current, plan_price)}
    return {"kind": kind, "invoice": _upgrade_now(account, actor, current, plan_price, claim)}


def _upgrade_now(account, actor, current: SubscriptionState, plan_price: PlanPrice, claim: dict) -> dict:
    quantity = seat_quantity(account=account, plan_price=plan_price)
    try:
        updated = stripe_client().v1.subscriptions.update(
            current.subscription_id,
            params={
                "items": [{"id": current.item_id, "price": plan_price.stripe_price_id, "quantity": quantity}],
                "proration_behavior": "always_invoice",
                "proration_date": claim["d"],
                # A card that fails refuses the change instead of leaving an unpaid upgrade behind.
                "payment_behavior": "error_if_incomplete",
            },
            options=idempotent(f"plan-change:{current.subscription_id}:{claim['f']}:{claim['t']}:{claim['d']}"),
        )
    except stripe.CardError as error:
        # error_if_incomplete: Stripe changed nothing. Say so, and what to do (a 402, never a 500).
        raise PaymentDeclined(
            f"Your card was declined ({error.code or 'card_declined'}), so your plan was not changed. "
            "Update your card and try again.",
            field="token",
        ) from None
    except stripe.InvalidRequestError as error:
        if "payment method" not in (error.user_message or str(error)).lower():
            raise
        raise PaymentDeclined(
            "There is no card on file to pay for the upgrade, so your plan was not changed. Add a card and try again.",
            field="token",
            code="no_payment_method",
        ) from None
    invoice_id = stripe_id(updated.get("latest_invoice"))
    invoice = None if invoice_id == current.latest_invoice else stripe_client().v1.invoices.retrieve(invoice_id)
    charged = invoice["amount_due"] if invoice else 0  # no new invoice: nothing was due (a trial)
    if charged != claim["m"]:
        # The preview promised a figure; say loudly if Stripe charged another.
        logger.error("Upgrade of %s charged %s, preview said %s", account.pk, charged, claim["m"])
    scheduled_change_withdraw(account=account, actor=actor, reason=f"upgraded to {plan_price.lookup_key}")
    subscription_refresh(subscription_id=current.subscription_id)
    audit_record(
        account=account,
        actor=actor,
        action="subscription.upgraded",
        target=f"subscription:{current.subscription_id}",
        before={"price": current.plan_price.lookup_key},
        after={"price": plan_price.lookup_key, "invoice": invoice_id if invoice else None, "amount_due": charged},
    )
    if invoice is None:
        return {
            "id": None,
            "amount_due_cents": 0,
            "amount_paid_cents": 0,
            "status": "none",
            "currency": plan_price.currency,
        }
    return {
        "id": invoice["id"],
        "amount_due_cents": invoice["amount_due"],
        "amount_paid_cents": invoice["amount_paid"],
        "status": invoice["status"],
        "currency": invoice["currency"],
    }


def _schedule_downgrade(account, actor, current: SubscriptionState, plan_price: PlanPrice) -> ScheduledPlanChange:
    return scheduled_change_schedule(
        account=account,
        actor=actor,
        subscription_id=current.subscription_id,
        from_price=current.plan_price,
        to_price=plan_price,
        effective_at=current.period_end,
    )
