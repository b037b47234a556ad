"""Sending the outbox's emails (outbox.services writes them): claimed for a lease, sent, marked; refusals retried."""

from __future__ import annotations

import hashlib
import logging
from datetime import timedelta

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.db.models import F
from django.utils import timezone

from outbox.models import EmailStatus, OutgoingEmail

logger = logging.getLogger(__name__)

LEASE = timedelta(minutes=5)  # longer than an SMTP send takes (Django's EMAIL_TIMEOUT and a margin)
MAX_ATTEMPTS = 12  # with the backoff: about 8 hours of retries
BATCH = 200


def retry_delay(attempts: int) -> timedelta:
    return min(timedelta(minutes=2 ** max(attempts - 1, 0)), timedelta(hours=1))


def email_send(*, email_pk: int) -> bool:
    """Send one pending email if it is due and unclaimed; True when this call sent it."""
    now = timezone.now()
    claimed = OutgoingEmail.objects.filter(pk=email_pk, status=EmailStatus.PENDING, next_attempt_at__lte=now).update(
        next_attempt_at=now + LEASE, attempts=F("attempts") + 1
    )
    if not claimed:
        return False  # sent, given up, another relay holds it, or its backoff runs
    email = OutgoingEmail.objects.get(pk=email_pk)
    message = EmailMultiAlternatives(
        subject=email.subject,
        body=email.text,
        from_email=None,
        to=email.to,
        headers={"Message-ID": _message_id(email.key)},
    )
    if email.html:
        message.attach_alternative(email.html, "text/html")
    try:
        message.send()
    except Exception as error:
        gave_up = email.attempts >= MAX_ATTEMPTS
        logger.warning("Outgoing email %s refused (attempt %s): %s", email.key, email.attempts, error)
        OutgoingEmail.objects.filter(pk=email.pk).update(
            status=EmailStatus.FAILED if gave_up else EmailStatus.PENDING,
            next_attempt_at=None if gave_up else timezone.now() + retry_delay(email.attempts),
            last_error=repr(error)[:2000],
        )
        return False
    OutgoingEmail.objects.filter(pk=email.pk).update(
        status=EmailStatus.SENT, sent_at=timezone.now(), next_attempt_at=None, last_error=""
    )
    return True


def emails_send_due(*, limit: int = BATCH) -> int:
    """Send the due emails (their task was lost, their lease ran out, their retry came); how many were sent."""
    due = OutgoingEmail.objects.filter(status=EmailStatus.PENDING, next_attempt_at__lte=timezone.now())
    return sum(email_send(email_pk=pk) for pk in due.order_by("next_attempt_at").values_list("pk", flat=True)[:limit])


def _message_id(key: str) -> str:
    digest = hashlib.sha256(key.encode()).hexdigest()[:32]
    domain = settings.DEFAULT_FROM_EMAIL.rsplit("@", 1)[-1].strip(">") or "tollbooth.localhost"
    return f"<{digest}@{domain}>"
