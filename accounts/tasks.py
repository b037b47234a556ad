"""Celery tasks for accounts: thin, by id, idempotent."""

from celery import shared_task

from accounts import services


@shared_task(
    name="accounts.send_welcome_email",
    acks_late=True,
    autoretry_for=(ConnectionError,),
    retry_backoff=True,
    max_retries=5,
)
def send_welcome_email(account_id: int) -> None:
    # acks_late is safe: the service claims the send with a conditional UPDATE, so a redelivery is a no-op.
    services.account_send_welcome(account_id=account_id)
