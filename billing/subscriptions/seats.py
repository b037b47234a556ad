"""Seats as billing sees them: the quantity a per-seat price is billed for, and whether a team fits a plan.

Two counts, on purpose, one function each:
- billed seats (`seat_quantity`): the account's active members. A pending invitation is nobody working yet;
  Stripe's quantity follows `seats_changed` (an invitation accepted, a member deactivated or reactivated).
- seats held (`accounts.services.seats_in_use`): active members plus live invitations, because an accepted
  invitation takes its seat without a second check. The plan's seat limit is checked against this count, for
  an invitation and for a downgrade alike.
"""

from __future__ import annotations

from djstripe import models as djstripe_models

from accounts.errors import DomainError
from accounts.models import Account, AuditLog, Membership
from accounts.services import audit_record, seats_in_use
from billing.stripe.client import idempotent, stripe_api_key, stripe_client
from billing.subscriptions.selectors import subscription_summary
from plans.models import PlanPrice


def seat_quantity(*, account: Account, plan_price: PlanPrice) -> int:
    """The quantity `plan_price` is billed for: one per active member on a per-seat plan (at least one), else 1."""
    if not plan_price.plan.per_seat:
        return 1
    return max(1, Membership.objects.filter(account=account, is_active=True).count())


def require_seats_fit(*, account: Account, plan_price: PlanPrice) -> None:
    """Refuse a move to a plan whose seat limit is below the seats the team holds (members and live invitations)."""
    seats = plan_price.plan.entitlements.filter(feature="seats").values_list("limit", flat=True).first()
    held = seats_in_use(account=account)
    if seats is not None and held > seats:
        raise DomainError(
            f"The {plan_price.plan.name} plan includes {seats} seats and your team holds {held} (active members and "
            f"pending invitations): remove {held - seats} before moving to it.",
            field="plan_price",
            code="too_many_seats",
        )


def _seats_key(*, subscription_id: str, change_id: int, quantity: int) -> str:
    """The quantity write's key: the subscription, the quantity and the moment of the team change (to the
    microsecond). The audit row's primary key alone would name another change in another database sharing
    the Stripe account; its time, on the same subscription, does not."""
    changed_at = AuditLog.objects.filter(pk=change_id).values_list("created_at", flat=True).first()
    moment = int(changed_at.timestamp() * 1_000_000) if changed_at else f"change-{change_id}"
    return f"seats:{subscription_id}:quantity:{quantity}:at:{moment}"


def subscription_sync_seats(*, account: Account, change_id: int) -> int | None:
    """Make a per-seat subscription's quantity equal the account's active members, prorated and invoiced now.

    `change_id` (the audit row of the team change) names the change in the idempotency key, so a retried
    task repeats the same write and two different changes never collide. Returns the new quantity, or
    None when there is nothing to sync (no live subscription, or a flat-priced plan).
    """
    summary = subscription_summary(account=account)
    if summary is None or summary.status not in ("active", "trialing", "past_due") or summary.plan_price is None:
        return None
    if not summary.plan_price.plan.per_seat:
        return None
    quantity = seat_quantity(account=account, plan_price=summary.plan_price)
    data = stripe_client().v1.subscriptions.retrieve(summary.id)
    item = data["items"]["data"][0]
    if item["quantity"] == quantity:
        return quantity
    updated = stripe_client().v1.subscriptions.update(
        summary.id,
        # Invoiced at once, not left pending for the next renewal: an annual plan's renewal is months away,
        # and a subscription canceled or replaced before it would never invoice a pending proration.
        params={"items": [{"id": item["id"], "quantity": quantity}], "proration_behavior": "always_invoice"},
        options=idempotent(_seats_key(subscription_id=summary.id, change_id=change_id, quantity=quantity)),
    )
    djstripe_models.Subscription.sync_from_stripe_data(updated, api_key=stripe_api_key())
    audit_record(
        account=account,
        actor=None,
        action="subscription.seats_synced",
        target=f"subscription:{summary.id}",
        before={"quantity": item["quantity"]},
        after={"quantity": quantity},
    )
    return quantity
