"""One real Celery worker against the Redis broker: a task sent after commit changes the database."""

import time

import pytest
from celery.contrib.testing.worker import start_worker
from django.core import mail

from accounts.models import Account
from accounts.services import account_provision
from config.celery import app
from tests.factories import UserFactory


@pytest.fixture
def real_worker(transactional_db):
    """A worker thread consuming from Redis, with eager mode off for the test's duration."""
    previous = app.conf.task_always_eager
    app.conf.task_always_eager = False
    try:
        with start_worker(app, pool="solo", perform_ping_check=False, shutdown_timeout=10):
            yield
    finally:
        app.conf.task_always_eager = previous


@pytest.mark.worker
def test_welcome_task_runs_on_a_real_worker_and_marks_the_account(real_worker):
    assert app.conf.broker_url.startswith("redis://")
    account = account_provision(user=UserFactory(email="worker@shop.example"), name="Worker Shop", signup_ip=None)

    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        account.refresh_from_db()
        if account.welcome_sent_at is not None:
            break
        time.sleep(0.1)

    assert Account.objects.get(pk=account.pk).welcome_sent_at is not None
    assert [m.to for m in mail.outbox] == [["worker@shop.example"]]


def test_welcome_task_sends_once_when_delivered_twice(db):
    """A redelivered task (acks_late) finds the claim taken and sends nothing more."""
    from accounts.tasks import send_welcome_email

    account = account_provision(user=UserFactory(email="twice@shop.example"), name="Twice Shop", signup_ip=None)
    send_welcome_email.delay(account.pk)
    send_welcome_email.delay(account.pk)
    assert len(mail.outbox) == 1


def test_welcome_task_for_a_deleted_account_is_a_quiet_no_op(db):
    from accounts.tasks import send_welcome_email

    send_welcome_email.delay(987654)
    assert mail.outbox == []
