"""Accounts' reactions to its own events: thin, they only enqueue work."""

from django.dispatch import receiver

from accounts.signals import account_provisioned
from accounts.tasks import send_welcome_email


@receiver(account_provisioned)
def send_welcome_email_to_new_account(sender, account_id: int, **kwargs):
    # account_provisioned is sent from the provisioning transaction's on_commit: the task is enqueued after commit.
    send_welcome_email.delay(account_id)
