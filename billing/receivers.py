"""Billing's reactions to other apps' events: thin, they only enqueue work."""

from django.dispatch import receiver

from accounts.signals import account_provisioned, seats_changed


@receiver(account_provisioned)
def create_stripe_customer_for_new_account(sender, account_id: int, **kwargs):
    from billing.tasks import ensure_stripe_customer

    ensure_stripe_customer.delay(account_id)


@receiver(seats_changed)
def follow_seat_changes(sender, account_id: int, change_id: int, **kwargs):
    from billing.tasks import sync_seat_quantity

    sync_seat_quantity.delay(account_id, change_id)
