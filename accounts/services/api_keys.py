"""Per-account API keys: issue, revoke, authenticate (the secret is stored hashed)."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import timedelta

from django.db import transaction
from django.utils import timezone

from accounts.entitlements import entitlements_for_account
from accounts.errors import DomainError, NotAllowed
from accounts.models import Account, ApiKey, User
from accounts.services.audit import audit_record
from accounts.services.roles import require_manager
from accounts.services.standing import require_good_standing

API_KEY_PREFIX = "tb_"


def _hash_secret(secret: str) -> str:
    # The secret is 32 random bytes: a fast hash is safe (nothing to brute-force) and keeps
    # authentication cheap on every API call.
    return hashlib.sha256(secret.encode()).hexdigest()


def api_key_create(*, account: Account, actor: User, name: str) -> tuple[ApiKey, str]:
    """Issue an API key for the account. Returns the key and its plaintext, which is never stored."""
    require_manager(account=account, actor=actor)
    # API keys are a costly feature (scripted abuse): good standing first, then the plan.
    require_good_standing(account=account, action="creating API keys")
    if not entitlements_for_account(account=account).has("api_access"):
        raise NotAllowed(
            "Your plan doesn't include API access; upgrade to create API keys.", code="feature_not_in_plan"
        )
    name = " ".join((name or "").split())
    if not name:
        raise DomainError("Give the key a name, e.g. the system that will use it.", field="name", code="required")
    if len(name) > 100:
        raise DomainError("Keep the key's name to 100 characters or fewer.", field="name", code="max_length")
    prefix = secrets.token_hex(6)
    secret = secrets.token_urlsafe(32)
    with transaction.atomic():
        api_key = ApiKey.objects.create(
            account=account, name=name, prefix=prefix, secret_hash=_hash_secret(secret), created_by=actor
        )
        audit_record(
            account=account,
            actor=actor,
            action="api_key.created",
            target=f"api_key:{api_key.pk}",
            after={"name": name, "prefix": prefix},
        )
    return api_key, f"{API_KEY_PREFIX}{prefix}_{secret}"


def api_key_revoke(*, api_key: ApiKey, actor: User) -> ApiKey:
    """Revoke a key at once; requests made with it are refused from now on. Revoking twice is a no-op."""
    if not actor.is_staff:
        require_manager(account=api_key.account, actor=actor)
    with transaction.atomic():
        locked = ApiKey.objects.select_for_update().get(pk=api_key.pk)
        if locked.revoked_at is None:
            locked.revoked_at = timezone.now()
            locked.save(update_fields=["revoked_at"])
            audit_record(
                account=locked.account,
                actor=actor,
                action="api_key.revoked",
                target=f"api_key:{locked.pk}",
                before={"revoked": False},
                after={"revoked": True},
            )
    return locked


def api_key_authenticate(*, raw_key: str) -> ApiKey | None:
    """Return the live key matching a presented secret, or None. Constant-time on the secret."""
    if not raw_key.startswith(API_KEY_PREFIX) or raw_key.count("_") < 2:
        return None
    prefix, _, secret = raw_key[len(API_KEY_PREFIX) :].partition("_")
    api_key = ApiKey.objects.select_related("account").filter(prefix=prefix, revoked_at__isnull=True).first()
    if api_key is None or not hmac.compare_digest(api_key.secret_hash, _hash_secret(secret)):
        return None
    # Touch at most once a minute: a busy client must not turn every read into a write.
    now = timezone.now()
    if api_key.last_used_at is None or now - api_key.last_used_at > timedelta(minutes=1):
        ApiKey.objects.filter(pk=api_key.pk).update(last_used_at=now)
        api_key.last_used_at = now
    return api_key
