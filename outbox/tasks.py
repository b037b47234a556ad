"""The outbox's tasks: send one email or one event's deliveries at once after commit; beat sweeps what is due.
Redelivery is harmless: every row is claimed before it is sent."""

from __future__ import annotations

import logging

from celery import shared_task
from django.conf import settings

from outbox.deliveries import deliveries_send_due, deliveries_send_for_event
from outbox.mail import email_send, emails_send_due

logger = logging.getLogger(__name__)


@shared_task(name="outbox.send_email", acks_late=True)
def send_email(email_pk: int) -> bool:
    return email_send(email_pk=email_pk)


@shared_task(name="outbox.send_due_emails", acks_late=True)
def send_due_emails() -> int:
    return emails_send_due()


@shared_task(name="outbox.deliver_event", acks_late=True)
def deliver_event(event_pk: str) -> int:
    return deliveries_send_for_event(event_pk=event_pk)


@shared_task(name="outbox.send_due_deliveries", acks_late=True)
def send_due_deliveries() -> int:
    return deliveries_send_due()


def queue_task(name: str, *args) -> None:
    """Queue one of the tasks above after a commit. The broker being down is no error: the row waits in
    PostgreSQL for beat's sweep."""
    task = {"outbox.send_email": send_email, "outbox.deliver_event": deliver_event}[name]
    if settings.CELERY_TASK_ALWAYS_EAGER:
        task.delay(*args)  # "queueing" is running: a failure here is the task's, not the broker's
        return
    try:
        task.delay(*args)
    except Exception as error:  # kombu's OperationalError, a refused connection, a DNS failure...
        logger.warning("%s%s waits for beat's sweep: could not queue it (%s)", name, args, error)
