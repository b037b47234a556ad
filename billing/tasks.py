"""Billing's Celery tasks: thin, by id, idempotent."""

from celery import shared_task

from accounts.models import Account
from billing import services


@shared_task(
    name="billing.ensure_stripe_customer", acks_late=True, autoretry_for=(Exception,), retry_backoff=True, max_retries=8
)
def ensure_stripe_customer(account_id: int) -> None:
    # Retried on any error (Stripe unreachable, say): the customer is created under an idempotency key
    # derived from the account, so a retry never makes a second one.
    account = Account.objects.filter(pk=account_id).first()
    if account is None:
        return
    services.customer_ensure(account=account)
