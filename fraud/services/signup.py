"""Signup: cheap synchronous checks before any user or account exists, and deeper ones in Celery after."""

from __future__ import annotations

import ipaddress
import logging
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from accounts.models import Account, User
from fraud.blocklist import blocklist_matches
from fraud.counters import CounterUnavailable, counter_hit
from fraud.models import BlocklistEntry, BlocklistKind, DecidedBy, Decision, RiskAssessment, Stage
from fraud.services.scoring import (
    CACHE_DOWN,
    CHECK_FAILED,
    Hit,
    assessment_record,
    decision_apply,
    decision_for,
    degraded_hit,
    rules_active,
)

logger = logging.getLogger("fraud")

# Webmail: thousands of unrelated merchants share these, so a burst of them says nothing.
WEBMAIL_DOMAINS = frozenset(
    {
        "gmail.com", "googlemail.com", "outlook.com", "hotmail.com", "live.com", "msn.com", "yahoo.com",
        "icloud.com", "me.com", "aol.com", "proton.me", "protonmail.com", "gmx.com", "gmx.de", "gmx.net",
        "web.de", "mail.com", "yandex.com", "yandex.ru", "zoho.com", "fastmail.com", "orange.fr", "free.fr",
        "laposte.net", "libero.it", "qq.com", "163.com",
    }
)  # fmt: skip


@dataclass(frozen=True)
class SignupVerdict:
    decision: str
    score: int
    assessment_id: int | None

    @property
    def blocked(self) -> bool:
        return self.decision == Decision.BLOCK

    @property
    def hold(self) -> bool:
        return self.decision == Decision.REVIEW


def _disposable_domains() -> frozenset[str]:
    # Imported on first use, not at module load: the list is ~10 000 domains.
    from disposable_email_domains import blocklist

    return blocklist


def _subnet(ip: str) -> str | None:
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return None
    prefix = 24 if address.version == 4 else 48
    return str(ipaddress.ip_network(f"{ip}/{prefix}", strict=False))


def _velocity(rules: dict, kind: str, namespace: str, value: str | None, hits: list[Hit]) -> None:
    rule = rules.get(kind)
    if rule is None or not value:
        return
    count = counter_hit(namespace=namespace, value=value, window_seconds=rule["window_minutes"] * 60)
    if count >= rule["threshold"]:
        hits.append(Hit(kind, rule["score"], {"count": count, "threshold": rule["threshold"], "value": value}))


def signup_checks(
    *, email: str, ip: str | None, device_id: str, honeypot: str, form_seconds: float | None
) -> list[Hit]:
    """The synchronous checks. Local ones first; the cache-backed counters last, degrading to a review."""
    rules = rules_active(stage=Stage.SIGNUP)
    hits: list[Hit] = []
    domain = email.rpartition("@")[2]
    if "honeypot" in rules and honeypot:
        hits.append(Hit("honeypot", rules["honeypot"]["score"]))
    if "form_too_fast" in rules:
        minimum = rules["form_too_fast"]["min_seconds"]
        if form_seconds is None or form_seconds < minimum:
            seconds = None if form_seconds is None else round(form_seconds, 2)
            hits.append(Hit("form_too_fast", rules["form_too_fast"]["score"], {"seconds": seconds, "min": minimum}))
    if "disposable_email" in rules and domain in _disposable_domains():
        hits.append(Hit("disposable_email", rules["disposable_email"]["score"], {"domain": domain}))
    if "blocklisted" in rules:
        matched = blocklist_matches(email=email, ip=ip)
        if matched:
            hits.append(Hit("blocklisted", rules["blocklisted"]["score"], {"lists": matched}))
    if "blocked_device" in rules and device_id:
        since = timezone.now() - timedelta(minutes=rules["blocked_device"]["window_minutes"])
        if RiskAssessment.objects.filter(device_id=device_id, decision=Decision.BLOCK, created_at__gte=since).exists():
            hits.append(Hit("blocked_device", rules["blocked_device"]["score"]))
    try:
        _velocity(rules, "velocity_ip", "ip", ip, hits)
        _velocity(rules, "velocity_subnet", "net", _subnet(ip) if ip else None, hits)
        _velocity(rules, "velocity_device", "dev", device_id, hits)
        if domain not in WEBMAIL_DOMAINS:
            _velocity(rules, "email_domain_burst", "dom", domain, hits)
    except CounterUnavailable as error:
        hits.append(degraded_hit(CACHE_DOWN, str(error)))
    return hits


def assess_signup(
    *, email: str, ip: str | None, device_id: str | None, honeypot: str = "", form_seconds: float | None = None
) -> SignupVerdict:
    """Score a signup before the user is created: block (refuse, neutral message), review (create, on hold)
    or allow. Never raises: whatever breaks, the signup goes to review and the failure is logged."""
    email = (email or "").strip().lower()
    device_id = (device_id or "")[:64]
    try:
        hits = signup_checks(email=email, ip=ip, device_id=device_id, honeypot=honeypot, form_seconds=form_seconds)
    except Exception as error:  # a bug or the database: fail open to review
        logger.exception("signup checks failed")
        hits = [degraded_hit(CHECK_FAILED, repr(error))]
    try:
        assessment = assessment_record(stage=Stage.SIGNUP, hits=hits, email=email, ip=ip, device_id=device_id)
    except Exception:
        logger.exception("could not record the signup assessment; signup sent to review")
        return SignupVerdict(Decision.REVIEW, settings.FRAUD_REVIEW_SCORE, None)
    return SignupVerdict(assessment.decision, assessment.score, assessment.pk)


def signup_link_user(*, user: User) -> RiskAssessment | None:
    """Tie the user just created to the signup assessment of their address; returns it, for the deeper checks.

    The caller (fraud's `user_signed_up` receiver) enqueues the recheck: services never import tasks."""
    assessment = (
        RiskAssessment.objects.filter(stage=Stage.SIGNUP, email=user.email.lower(), user__isnull=True)
        .order_by("-created_at", "-pk")
        .first()
    )
    if assessment is None:
        return None
    RiskAssessment.objects.filter(pk=assessment.pk).update(user=user)
    return assessment


def signup_link_account(*, account: Account) -> None:
    """On provisioning: the user's signup assessments become the account's, and a decision taken meanwhile
    (a deeper check, staff) is applied to the account."""
    user = account.provisioned_by
    if user is None:
        return
    RiskAssessment.objects.filter(account__isnull=True, stage=Stage.SIGNUP).filter(email=user.email.lower()).update(
        account=account, user=user
    )
    latest = RiskAssessment.objects.filter(account=account, stage=Stage.SIGNUP).order_by("-created_at", "-pk").first()
    if (
        latest is not None
        and latest.decision != Decision.ALLOW
        and (latest.decision == Decision.BLOCK or latest.resolved_at is None)
    ):
        decision_apply(assessment=latest)


# --- deeper checks (Celery) ---------------------------------------------------------------------------------

LINK_WINDOW = timedelta(days=30)


def _canonical_email(email: str) -> str:
    """One mailbox's many spellings: plus-tags everywhere, dots at Gmail."""
    local, _, domain = email.lower().partition("@")
    local = local.split("+", 1)[0]
    if domain in ("gmail.com", "googlemail.com"):
        local, domain = local.replace(".", ""), "gmail.com"
    return f"{local}@{domain}"


def _staff_decided(assessment: RiskAssessment) -> bool:
    scope = {"account": assessment.account} if assessment.account_id else {"email": assessment.email}
    return RiskAssessment.objects.filter(stage=Stage.SIGNUP, decided_by=DecidedBy.STAFF, **scope).exists()


def signup_recheck(*, assessment_id: int) -> RiskAssessment | None:
    """Slower checks over the whole history. May raise a signup's decision (never lower it); audited through
    the accounts services. Also pulls into review the earlier signups of a farm that has just shown itself."""
    assessment = RiskAssessment.objects.select_related("account", "user").filter(pk=assessment_id).first()
    if assessment is None or _staff_decided(assessment):
        return None
    since = timezone.now() - LINK_WINDOW
    hits: list[Hit] = []
    canonical = _canonical_email(assessment.email)
    if canonical != assessment.email:
        blocked_emails = BlocklistEntry.objects.filter(kind=BlocklistKind.EMAIL).values_list("value", flat=True)
        blocked_signups = RiskAssessment.objects.filter(decision=Decision.BLOCK, created_at__gte=since).values_list(
            "email", flat=True
        )
        if any(_canonical_email(other) == canonical for other in [*blocked_emails, *blocked_signups] if other):
            hits.append(Hit("alias_of_blocked_email", settings.FRAUD_BLOCK_SCORE, {"canonical": canonical}))
    previous_blocks = RiskAssessment.objects.filter(decision=Decision.BLOCK, created_at__gte=since).exclude(
        pk=assessment.pk
    )
    if assessment.ip and previous_blocks.filter(ip=assessment.ip).exists():
        hits.append(Hit("ip_of_blocked_signup", settings.FRAUD_REVIEW_SCORE, {"ip": assessment.ip}))
    new_score = assessment.score + sum(hit.score for hit in hits)
    escalated = None
    if hits and assessment.decision != Decision.BLOCK and decision_for(new_score) != assessment.decision:
        own = [Hit(s.code, s.score, s.details) for s in assessment.signals.all()]
        escalated = assessment_record(
            stage=Stage.SIGNUP,
            hits=own + hits,
            account=assessment.account,
            email=assessment.email,
            user=assessment.user,
            ip=assessment.ip,
            device_id=assessment.device_id,
            note=f"Deeper check after signup raised assessment {assessment.pk}.",
        )
        RiskAssessment.objects.filter(pk=assessment.pk, resolved_at__isnull=True).update(resolved_at=timezone.now())
        decision_apply(assessment=escalated)
    _review_farm_siblings(assessment)
    return escalated


def _review_farm_siblings(flagged: RiskAssessment) -> None:
    """A signup flagged for IP or device velocity reveals the farm's first signups, which went through
    (the counters start at one): send those to review too."""
    codes = set(flagged.signals.values_list("code", flat=True))
    if flagged.decision == Decision.ALLOW or not codes & {"velocity_ip", "velocity_device"}:
        return
    rules = rules_active(stage=Stage.SIGNUP)
    window = max(rules.get(kind, {}).get("window_minutes", 0) for kind in ("velocity_ip", "velocity_device"))
    since = flagged.created_at - timedelta(minutes=window)
    siblings = RiskAssessment.objects.filter(
        stage=Stage.SIGNUP, decision=Decision.ALLOW, decided_by=DecidedBy.SYSTEM, created_at__gte=since
    ).exclude(pk=flagged.pk)
    linked = siblings.none()
    if "velocity_ip" in codes and flagged.ip:
        linked |= siblings.filter(ip=flagged.ip)
    if "velocity_device" in codes and flagged.device_id:
        linked |= siblings.filter(device_id=flagged.device_id)
    for sibling in linked.select_related("account", "user"):
        already = RiskAssessment.objects.filter(
            stage=Stage.SIGNUP, email=sibling.email, created_at__gte=sibling.created_at
        ).exclude(decision=Decision.ALLOW)
        if _staff_decided(sibling) or already.exists():
            continue
        review = assessment_record(
            stage=Stage.SIGNUP,
            hits=[Hit("farm_sibling", settings.FRAUD_REVIEW_SCORE, {"flagged_assessment": flagged.pk})],
            account=sibling.account,
            email=sibling.email,
            user=sibling.user,
            ip=sibling.ip,
            device_id=sibling.device_id,
            note=f"Same IP or browser as the signup flagged in assessment {flagged.pk}.",
        )
        decision_apply(assessment=review)
