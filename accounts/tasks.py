"""Celery tasks for accounts: thin, by id, idempotent."""

import smtplib

from celery import shared_task

from accounts import services


@shared_task(
    name="accounts.send_welcome_email",
    acks_late=True,
    # An SMTP server that refuses (4xx/5xx: SMTPException) or cannot be reached (OSError) is tried again,
    # after 1, 2, 4, 8, 16... seconds (jittered, at most 10 minutes): the service gave its claim back.
    autoretry_for=(smtplib.SMTPException, OSError),
    retry_backoff=True,
    retry_backoff_max=600,
    max_retries=8,
)
def send_welcome_email(account_id: int) -> None:
    # acks_late is safe: the service claims the send with a lease (conditional UPDATE) and marks it sent
    # only after the send, so a redelivery of a sent welcome is a no-op.
    services.account_send_welcome(account_id=account_id)
