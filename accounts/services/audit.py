"""The audit log: one row per change, written in the change's transaction."""

from __future__ import annotations

from accounts.models import Account, AuditLog, User

SYSTEM = "system"


def audit_record(
    *,
    account: Account | None,
    actor: User | None,
    action: str,
    target: str = "",
    before: dict | None = None,
    after: dict | None = None,
    reason: str = "",
) -> AuditLog:
    """Write one audit row. Call it inside the transaction of the change it records."""
    return AuditLog.objects.create(
        account=account,
        actor=actor,
        actor_label=actor.email if actor else SYSTEM,
        action=action,
        target=target or (f"account:{account.pk}" if account else ""),
        before=before or {},
        after=after or {},
        reason=reason,
    )


def plain_value(value) -> str | None:
    """A JSON-friendly rendering of a field value for the audit log."""
    if value is None:
        return None
    return value.isoformat() if hasattr(value, "isoformat") else str(value)
