"""The evidence packet of a chargeback: what we know of the merchant, in Stripe's evidence fields.

Invoices and usage are billing's: the caller reads them and passes them in.
"""

from __future__ import annotations

from django.conf import settings

from accounts.models import Account, AuditLog, Membership, Role
from fraud.models import RiskAssessment, Stage

LOGINS_SHOWN = 20


def _when(value) -> str | None:
    return value.isoformat() if value else None


def evidence_packet(
    *, account: Account, charge: dict, dispute: dict, invoices: list[dict], usage_last_90_days: dict[str, int]
) -> dict:
    """Assemble the case: `story` for ops to read, `stripe` for the fields submitted to Stripe.

    `invoices`: the account's invoices as {id, number, status, amount_paid, currency, created};
    `usage_last_90_days`: units per metric reported in the last 90 days.
    """
    owner = account.provisioned_by or (
        Membership.objects.filter(account=account, role=Role.OWNER).select_related("user").order_by("pk").first()
    )
    owner = owner.user if isinstance(owner, Membership) else owner
    signup = RiskAssessment.objects.filter(account=account, stage=Stage.SIGNUP).order_by("created_at").first()
    logins = list(
        AuditLog.objects.filter(account=account, action="user.logged_in")
        .order_by("-created_at")
        .values_list("created_at", "actor_label", "after")[:LOGINS_SHOWN]
    )
    usage = usage_last_90_days
    story = {
        "account": {"id": account.pk, "name": account.name, "country": str(account.country or "")},
        "signup": {
            "ip": account.signup_ip or (signup.ip if signup else None),
            "at": _when(owner.date_joined if owner else account.created_at),
            "email": owner.email if owner else account.billing_email,
        },
        "terms": {
            "accepted_at": _when(owner.date_joined if owner else account.created_at),
            "how": "The signup form states that creating an account accepts the Terms of Service.",
            "url": f"{settings.SITE_URL}/terms/",
        },
        "logins": [{"at": _when(at), "who": who, "ip": (after or {}).get("ip")} for at, who, after in logins],
        "usage_last_90_days": usage,
        "invoices": invoices,
        "charge": {"id": charge.get("id"), "amount": charge.get("amount"), "currency": charge.get("currency")},
        "dispute": {"id": dispute.get("id"), "reason": dispute.get("reason"), "amount": dispute.get("amount")},
    }
    login_lines = [f"{line['at']} {line['who']} from {line['ip'] or 'unknown IP'}" for line in story["logins"]]
    usage_line = ", ".join(f"{metric}: {total}" for metric, total in sorted(usage.items())) or "no usage reported"
    paid = [i for i in invoices if i["status"] == "paid"]
    stripe_fields = {
        "customer_email_address": story["signup"]["email"],
        "customer_name": account.name,
        "customer_purchase_ip": story["signup"]["ip"] or "",
        "service_date": (story["signup"]["at"] or "")[:10],
        "product_description": (
            "Tollbooth helpdesk subscription (software as a service), billed per plan, seat and ticket."
        ),
        "access_activity_log": "\n".join(login_lines) or "No logins recorded.",
        "uncategorized_text": (
            f"Account created {story['signup']['at']} from IP {story['signup']['ip']}; terms of service accepted at "
            f"signup. Usage in the last 90 days: {usage_line}. Invoices paid before this dispute: {len(paid)}."
        ),
    }
    return {"story": story, "stripe": stripe_fields}
