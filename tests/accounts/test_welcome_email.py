"""The welcome email is marked sent only after an SMTP server took it; a refused send is retried, not lost.

A real local SMTP server (the `smtp` fixture: tests/accounts/smtp_server.py) refuses with 554. The task runs in
eager mode, where Celery runs its retries at once: this proves the service's outcome and the task's retry policy on
a failing server. What a real worker would add (the backoff's countdown, redelivery after a worker dies
mid-send, the lease taken over after it expires) is not exercised here.
"""

import smtplib
from datetime import timedelta

import pytest
from django.utils import timezone

from accounts.models import Account
from accounts.services import account_send_welcome
from accounts.tasks import send_welcome_email
from config.celery import app
from tests.factories import AccountFactory


@pytest.fixture
def account(db):
    return AccountFactory(billing_email="owner@welcome.example", welcome_sent_at=None)


def test_a_refused_send_is_not_marked_sent_and_gives_its_claim_back(smtp, account):
    server = smtp(refuse_first=1)

    with pytest.raises(smtplib.SMTPDataError):
        account_send_welcome(account_id=account.pk)

    account.refresh_from_db()
    assert (account.welcome_sent_at, account.welcome_claimed_at) == (None, None)
    assert server.received == []
    assert account_send_welcome(account_id=account.pk) is True  # the retry sends it
    account.refresh_from_db()
    assert account.welcome_sent_at is not None and account.welcome_claimed_at is None
    assert len(server.received) == 1
    assert account_send_welcome(account_id=account.pk) is False  # and never again
    assert len(server.received) == 1


@pytest.fixture
def eager_retries():
    """Eager apply() runs a retry at once, unless errors propagate (then each retry re-raises its Retry)."""
    previous = app.conf.task_eager_propagates
    app.conf.task_eager_propagates = False
    yield
    app.conf.task_eager_propagates = previous


def test_the_task_retries_an_smtp_refusal_and_the_email_goes_out_once(smtp, account, eager_retries):
    server = smtp(refuse_first=2)

    result = send_welcome_email.apply(args=[account.pk])

    assert result.state == "SUCCESS"
    assert server.refused == 2
    assert len(server.received) == 1 and "owner@welcome.example" in server.received[0]
    account.refresh_from_db()
    assert account.welcome_sent_at is not None
    send_welcome_email.apply(args=[account.pk])  # a redelivery after success
    assert len(server.received) == 1


def test_a_send_in_progress_is_not_sent_twice_but_a_dead_workers_claim_expires(smtp, account):
    server = smtp(refuse_first=0)
    Account.objects.filter(pk=account.pk).update(welcome_claimed_at=timezone.now())
    assert account_send_welcome(account_id=account.pk) is False  # another worker holds the lease
    assert server.received == []

    Account.objects.filter(pk=account.pk).update(welcome_claimed_at=timezone.now() - timedelta(minutes=11))
    assert account_send_welcome(account_id=account.pk) is True
    assert len(server.received) == 1
