"""Fraud's reactions to other apps' events: link signups to users and accounts, remember logins.

Each runs inside someone else's request (signup, onboarding, login): a failure here is logged, never a 500. The
review hold itself does not depend on them: the signup form sets it on the user, provisioning copies it.
"""

import functools
import logging
from functools import partial

from allauth.account.signals import user_signed_up
from django.contrib.auth.signals import user_logged_in
from django.db import transaction
from django.dispatch import receiver

from accounts.http import client_ip
from accounts.models import Account, Membership
from accounts.services import audit_record
from accounts.signals import account_provisioned
from fraud.services import signup_link_account, signup_link_user
from fraud.tasks import recheck_signup

logger = logging.getLogger("fraud")


def _never_fails(receiver_function):
    @functools.wraps(receiver_function)
    def wrapper(*args, **kwargs):
        try:
            return receiver_function(*args, **kwargs)
        except Exception:
            logger.exception("fraud receiver %s failed", receiver_function.__name__)
            return None

    return wrapper


@receiver(user_signed_up)
@_never_fails
def link_signup_to_user(sender, request, user, **kwargs):
    assessment = signup_link_user(user=user)
    if assessment is not None:
        # The deeper checks run in Celery once the signup has committed.
        transaction.on_commit(partial(recheck_signup.delay, assessment.pk))


@receiver(account_provisioned)
@_never_fails
def link_signup_to_account(sender, account_id: int, **kwargs):
    account = Account.objects.select_related("provisioned_by").filter(pk=account_id).first()
    if account is not None:
        signup_link_account(account=account)


@receiver(user_logged_in)
@_never_fails
def remember_login(sender, request, user, **kwargs):
    # Logins (time, IP) are part of a chargeback's evidence: one audit row per login, on the user's accounts.
    ip = client_ip(request) if request is not None else None
    for membership in Membership.objects.filter(user=user, is_active=True).select_related("account")[:5]:
        audit_record(account=membership.account, actor=user, action="user.logged_in", after={"ip": ip})
