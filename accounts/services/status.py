"""Account status and plan in force: each move one locked, checked, audited write."""

from __future__ import annotations

from django.db import transaction

from accounts.errors import Conflict
from accounts.models import Account, AccountStatus, User
from accounts.services.audit import audit_record
from outbox.events import event_record

# Legal status moves. A move not listed here is a bug or an attack, and is refused.
ALLOWED_TRANSITIONS: dict[str, set[str]] = {
    AccountStatus.TRIALING: {
        AccountStatus.ACTIVE,
        AccountStatus.SUSPENDED,
        AccountStatus.BLOCKED,
        AccountStatus.CLOSED,
    },
    AccountStatus.ACTIVE: {
        AccountStatus.PAST_DUE,
        AccountStatus.SUSPENDED,
        AccountStatus.BLOCKED,
        AccountStatus.CLOSED,
    },
    AccountStatus.PAST_DUE: {
        AccountStatus.ACTIVE,
        AccountStatus.SUSPENDED,
        AccountStatus.BLOCKED,
        AccountStatus.CLOSED,
    },
    AccountStatus.SUSPENDED: {AccountStatus.ACTIVE, AccountStatus.BLOCKED, AccountStatus.CLOSED},
    AccountStatus.BLOCKED: {AccountStatus.SUSPENDED, AccountStatus.ACTIVE, AccountStatus.CLOSED},
    AccountStatus.CLOSED: {AccountStatus.ACTIVE},
}


def account_set_plan(*, account: Account, plan, reason: str) -> Account:
    """Record the plan in force (billing calls this when the subscription's price changes). Audited."""
    with transaction.atomic():
        locked = Account.objects.select_for_update().get(pk=account.pk)
        if locked.plan_id == (plan.pk if plan else None):
            return locked
        before = locked.plan.code if locked.plan_id else None
        locked.plan = plan
        locked.save(update_fields=["plan"])
        audit_record(
            account=locked,
            actor=None,
            action="account.plan_changed",
            before={"plan": before},
            after={"plan": plan.code if plan else None},
            reason=reason,
        )
    return locked


def account_change_status(*, account: Account, to: str, actor: User | None, reason: str) -> Account:
    """Move an account to another status: row locked, move checked, audited. Same status is a no-op."""
    to = AccountStatus(to)
    with transaction.atomic():
        locked = Account.objects.select_for_update().get(pk=account.pk)
        if locked.status == to:
            return locked
        if to not in ALLOWED_TRANSITIONS[locked.status]:
            raise Conflict(
                f"An account that is {locked.get_status_display().lower()} cannot become {to.label.lower()}."
            )
        before = locked.status
        locked.status = to
        locked.save(update_fields=["status"])
        audit_record(
            account=locked,
            actor=actor,
            action="account.status_changed",
            before={"status": before},
            after={"status": to.value},
            reason=reason,
        )
        _status_event_record(locked, before, reason)
    return locked


def _status_event_record(account: Account, before: str, reason: str) -> None:
    """The domain event of a status move, in its transaction (account.activated / suspended / reactivated)."""
    to = account.status
    if to == AccountStatus.ACTIVE:
        kind = "account.activated" if before == AccountStatus.TRIALING else "account.reactivated"
    elif to == AccountStatus.SUSPENDED:
        kind = "account.suspended"
    else:
        return  # past due, blocked, closed: not in the catalogue (yet)
    # The audit row count orders moves of one account: the key names this move, once.
    moves = account.audit_log.filter(action="account.status_changed").count()
    event_record(
        type=kind,
        key=f"{kind}:{account.public_id}:{moves}",
        account_id=account.pk,
        data={"account": str(account.public_id), "status": to, "previous_status": before, "reason": reason},
    )
