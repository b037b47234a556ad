"""Write an email to the outbox inside the caller's transaction; the relay sends it once that has committed.

- **Once per key:** `email_enqueue` is an insert on a unique key; the same key again (a retried handler, a
  redelivered task) is the same email and is not written twice.
- **After commit:** the row commits with the state change or not at all; on commit a task is queued to send it at
  once, and beat's `outbox.send_due_emails` sends whatever that task did not (broker down, a killed worker).
- **Sent once, as far as SMTP allows:** the relay claims a row for a lease before sending and marks it sent right
  after the SMTP server took it. A relay killed between the two sends that email again after the lease — an email
  once too often after a crash, never none; its Message-ID is derived from the key, so mail clients fold the two.
- **Refusals are retried** with backoff (1, 2, 4 … minutes, at most an hour apart); after `MAX_ATTEMPTS` the row
  is failed, visible in the admin. The sending is outbox.mail's.
"""

from __future__ import annotations

from functools import partial

from django.db import transaction
from django.utils import timezone

from outbox.models import OutgoingEmail


def email_enqueue(*, key: str, to: list[str], subject: str, text: str, html: str = "") -> bool:
    """Write the email `key` names, in the current transaction; False when that key was written before."""
    email, created = OutgoingEmail.objects.get_or_create(
        key=key,
        defaults={"to": list(to), "subject": subject, "text": text, "html": html, "next_attempt_at": timezone.now()},
    )
    if not created:
        return False
    transaction.on_commit(partial(_send_soon, email.pk))
    return True


def _send_soon(email_pk: int) -> None:
    from outbox.tasks import queue_task

    queue_task("outbox.send_email", email_pk)
