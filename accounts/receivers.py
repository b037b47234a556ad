"""Accounts' reactions to its own events: thin, they only enqueue work."""

from django.dispatch import receiver

from accounts.services import audit_record
from accounts.signals import account_provisioned
from accounts.tasks import send_welcome_email
from plans.signals import catalog_edited


@receiver(account_provisioned)
def send_welcome_email_to_new_account(sender, account_id: int, **kwargs):
    # account_provisioned is sent from the provisioning transaction's on_commit: the task is enqueued after commit.
    send_welcome_email.delay(account_id)


@receiver(catalog_edited)
def audit_catalog_edit(sender, actor, action: str, target: str, before: dict, after: dict, **kwargs):
    # The catalog imports no app: it announces its edits and the audit log is kept here, in the same transaction.
    audit_record(account=None, actor=actor, action=action, target=target, before=before, after=after)
