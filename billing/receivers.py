"""Billing's reactions to other apps' events: thin, they only enqueue work."""

from django.dispatch import receiver

from accounts.signals import account_provisioned


@receiver(account_provisioned)
def create_stripe_customer_for_new_account(sender, account_id: int, **kwargs):
    from billing.tasks import ensure_stripe_customer

    ensure_stripe_customer.delay(account_id)
