"""Reads for fraud: an account's story, the review queue. (Usage is billing's: billing reads it and passes it in.)"""

from __future__ import annotations

from datetime import timedelta

from django.db.models import Q, QuerySet
from django.utils import timezone

from accounts.models import AuditLog
from fraud.models import Decision, RiskAssessment

DAYS_PER_PERIOD = 30  # a plan's included units are per monthly period; a day's share is 1/30 of them


def review_queue() -> QuerySet[RiskAssessment]:
    """Open reviews, newest first."""
    return (
        RiskAssessment.objects.filter(decision=Decision.REVIEW, resolved_at__isnull=True)
        .select_related("account", "user")
        .prefetch_related("signals")
        .order_by("-created_at", "-pk")
    )


def account_story(*, assessment: RiskAssessment, limit: int = 30) -> dict:
    """What ops read before deciding: the account's assessments and audit trail, and other signups that
    share this one's IP or browser."""
    scope = Q(account=assessment.account) if assessment.account_id else Q(email=assessment.email)
    history = RiskAssessment.objects.filter(scope).prefetch_related("signals").order_by("-created_at")[:limit]
    related = RiskAssessment.objects.none()
    since = assessment.created_at - timedelta(days=30)
    link = Q(pk__in=[])
    if assessment.ip:
        link |= Q(ip=assessment.ip)
    if assessment.device_id:
        link |= Q(device_id=assessment.device_id)
    related = (
        RiskAssessment.objects.filter(link, stage="signup", created_at__gte=since)
        .exclude(scope)
        .order_by("-created_at")[:limit]
    )
    audit = (
        AuditLog.objects.filter(account=assessment.account).order_by("-created_at")[:limit]
        if assessment.account_id
        else AuditLog.objects.none()
    )
    return {"history": list(history), "related": list(related), "audit": list(audit), "now": timezone.now()}
